#!/usr/bin/env python3
"""Plot of ift-overfit's CSV (the paper's Figures 3/4): train, validation and test accuracy per
hyper-step. Several CSV files (e.g. logreg and mlp) become side-by-side panels.

Usage: /usr/bin/python3 plots/plot_overfit.py OUT/overfit.csv [MORE.csv ...] -o OUT/overfit.png
"""
import argparse
import csv
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def number(text):
    return float(text) if text not in ("", None) else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", help="overfit.csv files written by ift-overfit")
    parser.add_argument("-o", "--output", default="overfit.png", help="PNG to write")
    args = parser.parse_args()

    fig, axes = plt.subplots(1, len(args.csv), figsize=(5.5 * len(args.csv), 4.2), squeeze=False)
    for ax, path in zip(axes[0], args.csv):
        rows = read_rows(path)
        if not rows:
            raise SystemExit(f"{path}: no rows")
        steps = [int(r["step"]) for r in rows]
        for column, label in (("train_accuracy", "train"), ("val_accuracy", "validation"),
                              ("test_accuracy", "test")):
            ax.plot(steps, [100.0 * number(r[column]) for r in rows], label=label)
        ax.set_xlabel("hyper-step")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{rows[0]['model']}, {rows[0]['method']} inverse")
        ax.set_ylim(top=101)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle("Per-weight decay tuned by Algorithm 2 overfits the validation set", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
