#!/usr/bin/env python3
"""Figure-5-style plot of ift-compare's CSV: validation loss and test accuracy per hyper-step,
one line per inverse approximation (method names as in the CSV).

Usage: /usr/bin/python3 plots/plot_compare.py OUT/compare.csv -o OUT/compare.png
"""
import argparse
import csv
import math
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def number(text):
    # Non-finite values are written as empty cells (the status column says why).
    return float(text) if text not in ("", None) else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="compare.csv written by ift-compare")
    parser.add_argument("-o", "--output", default="compare.png", help="PNG to write")
    args = parser.parse_args()

    series = OrderedDict()
    for row in read_rows(args.csv):
        s = series.setdefault(row["method"], {"step": [], "val": [], "test": [], "failed": []})
        step = int(row["step"])
        s["step"].append(step)
        s["val"].append(number(row["val_loss"]))
        s["test"].append(100.0 * number(row["test_accuracy"]))
        if row["status"] not in ("converged", "max-iterations"):
            s["failed"].append(step)
    if not series:
        raise SystemExit(f"{args.csv}: no rows")

    fig, (ax_val, ax_test) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, s in series.items():
        (line,) = ax_val.plot(s["step"], s["val"], marker="o", markersize=3, label=method)
        ax_test.plot(s["step"], s["test"], marker="o", markersize=3, color=line.get_color(),
                     label=method)
        # Failed solves (e.g. the exact Hessian turning singular) are marked, not hidden.
        bad = [(st, v) for st, v in zip(s["step"], s["val"]) if st in s["failed"]]
        if bad:
            ax_val.scatter(*zip(*bad), marker="x", s=60, color=line.get_color(), zorder=5)
    ax_val.set_xlabel("hyper-step")
    ax_val.set_ylabel("validation loss (mean cross-entropy)")
    ax_val.set_title("Validation loss")
    ax_test.set_xlabel("hyper-step")
    ax_test.set_ylabel("test accuracy (%)")
    ax_test.set_title("Test accuracy")
    for ax in (ax_val, ax_test):
        ax.grid(True, alpha=0.3)
    ax_val.legend(title="inverse approximation", fontsize=8)
    fig.suptitle("Inverse-Hessian approximations inside Algorithm 2 (x: failed solve)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
