#!/usr/bin/python3
"""Plot a P5 dataset-distillation run (DESIGN.md §2) written by ift-distill.

    /usr/bin/python3 plots/plot_distill.py results/distill/distill.csv [--out FILE.png]

Left panel: validation loss (the outer objective) per outer step. Right panel: validation and
test accuracy of logistic regression trained on the distilled images alone. The learned images
themselves are already a picture: distilled.png next to the CSV.
"""
import argparse
import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HEADER = ["step", "val_loss", "val_accuracy", "test_accuracy", "hypergradient_norm", "status",
          "inner_gradient_norm", "seconds"]


def number(text):
    return float(text) if text != "" else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="distill.csv from ift-distill")
    parser.add_argument("--out", help="output PNG (default: distill_curves.png next to the CSV)")
    args = parser.parse_args()
    with open(args.csv, newline="") as f:
        reader = csv.reader(line for line in f if not line.startswith("#"))
        header = next(reader)
        if header != HEADER:
            raise SystemExit(f"{args.csv}: unexpected header {header}, expected {HEADER}")
        rows = [dict(zip(header, cells)) for cells in reader]
    if not rows:
        raise SystemExit(f"{args.csv}: no rows")
    steps = [int(r["step"]) for r in rows]
    col = {name: [number(r[name]) for r in rows] for name in HEADER if name != "status"}
    bad = [s for s, r in zip(steps, rows) if r["status"] not in ("converged", "max-iterations")]

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_loss.plot(steps, col["val_loss"], color="C0")
    ax_loss.set_xlabel("outer step (Adam on the pixels)")
    ax_loss.set_ylabel("validation cross-entropy  L_V")
    ax_loss.set_title("outer objective")
    ax_acc.plot(steps, [100 * a for a in col["val_accuracy"]], color="C1", label="validation")
    ax_acc.plot(steps, [100 * a for a in col["test_accuracy"]], color="C2", label="test")
    ax_acc.set_xlabel("outer step (Adam on the pixels)")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("logistic regression trained on the 10 distilled images")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        for s in bad:  # steps whose inner solve or hypergradient was not trustworthy
            ax.axvline(s, color="red", alpha=0.2, linewidth=0.8)
    final = rows[-1]
    fig.suptitle(f"dataset distillation: final test accuracy {100 * number(final['test_accuracy']):.1f}% "
                 f"after {steps[-1]} steps ({number(final['seconds']):.0f} s)", fontsize=11)
    fig.tight_layout()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.csv)), "distill_curves.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(out)


if __name__ == "__main__":
    main()
