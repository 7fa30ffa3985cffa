#!/usr/bin/env python3
"""Distance of each run's validation-loss curve from the exact method's: |val_loss - exact's
val_loss| per hyper-step (log scale), one line per run, with the HVPs each run spent over the
run in its label, and a horizontal line at the tolerance (issue 11's P2 target: 1e-3).

Every run must come from the same set-up (ift-compare with the same data, steps and start);
the reference CSV holds the `exact` method.

Usage: /usr/bin/python3 plots/plot_gap.py REF/compare.csv LABEL=RUN/compare.csv[:METHOD] ...
           [--tolerance 1e-3] [--budget-of cg] -o gap.png
"""
import argparse
import csv
import math
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_methods(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    except OSError as e:
        sys.exit(f"plot_gap.py: cannot read {path}: {e.strerror}")
    out = {}
    for row in rows:
        for column in ("method", "step", "val_loss", "hvps"):
            if column not in row:
                sys.exit(f"plot_gap.py: {path}: no column '{column}' (expected ift-compare's CSV)")
        out.setdefault(row["method"], []).append(row)
    return out


def number(text):
    return float(text) if text not in ("", None) else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="compare.csv holding the exact method")
    parser.add_argument("runs", nargs="+", help="LABEL=PATH[:METHOD] (METHOD: when the CSV has several)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="horizontal line (default 1e-3)")
    parser.add_argument("--budget-of", default="cg",
                        help="method of the reference CSV whose HVPs the labels divide by (default cg)")
    parser.add_argument("-o", "--output", default="gap.png", help="PNG to write")
    args = parser.parse_args()

    reference = read_methods(args.reference)
    if "exact" not in reference:
        sys.exit(f"plot_gap.py: {args.reference} has no 'exact' rows")
    exact = {int(r["step"]): number(r["val_loss"]) for r in reference["exact"]}
    budget = None
    if args.budget_of in reference:
        budget = sum(int(r["hvps"]) for r in reference[args.budget_of])

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for spec in args.runs:
        if "=" not in spec:
            sys.exit(f"plot_gap.py: run '{spec}': expected LABEL=PATH[:METHOD]")
        label, rest = spec.split("=", 1)
        path, _, method = rest.partition(":")
        methods = read_methods(path)
        if not method:
            candidates = [m for m in methods if m != "exact"]
            if len(candidates) != 1:
                sys.exit(f"plot_gap.py: {path} holds {sorted(methods)}: name one as PATH:METHOD")
            method = candidates[0]
        if method not in methods:
            sys.exit(f"plot_gap.py: {path} has no method '{method}' (it has {sorted(methods)})")
        steps, gaps = [], []
        for r in methods[method]:
            step = int(r["step"])
            if step not in exact:
                sys.exit(f"plot_gap.py: {path}: step {step} is not in the reference")
            steps.append(step)
            gaps.append(abs(number(r["val_loss"]) - exact[step]))
        hvps = sum(int(r["hvps"]) for r in methods[method])
        share = f", {hvps / budget:.3g} of {args.budget_of}'s" if budget else ""
        worst = max(gaps)
        shown = [(s, g) for s, g in zip(steps, gaps) if g > 0]  # a log scale has no 0
        ax.plot([s for s, _ in shown], [g for _, g in shown], marker="o", markersize=3,
                label=f"{label}: {hvps} HVPs{share}, max {worst:.2g}")
    ax.axhline(args.tolerance, color="black", linestyle="--", linewidth=1,
               label=f"tolerance {args.tolerance:g}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("hyper-step")
    ax.set_ylabel("|val loss − exact's|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
