#!/usr/bin/env python3
"""Best validation loss so far against compute (gradient-equivalents) for ift-baselines' CSV,
one line per method and start (random search / Bayesian optimisation re-initialised or
warm-started, the hypernetwork, each IFT inverse approximation), like the paper's figures.

Usage: /usr/bin/python3 plots/plot_baselines.py OUT/baselines.csv -o OUT/baselines.png
       (several CSV files: one panel each, e.g. one per hyperparameter family)
"""
import argparse
import csv
import math
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    comments, rows = [], []
    with open(path, newline="", encoding="utf-8") as f:
        lines = []
        for line in f:
            (comments if line.startswith("#") else lines).append(line)
        rows = list(csv.DictReader(lines))
    return comments, rows


def number(text):
    return float(text) if text not in ("", None) else math.nan


def title_of(comments, path):
    for c in comments:
        if c.startswith("# ift-baselines"):
            return c[2:].split(": ", 1)[-1].strip()
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", help="baselines.csv written by ift-baselines")
    parser.add_argument("-o", "--output", default="baselines.png", help="PNG to write")
    parser.add_argument("--log-x", action="store_true", help="logarithmic cost axis")
    args = parser.parse_args()

    fig, axes = plt.subplots(1, len(args.csv), figsize=(6.5 * len(args.csv), 4.5), squeeze=False)
    for ax, path in zip(axes[0], args.csv):
        comments, rows = read(path)
        series = OrderedDict()
        for row in rows:
            key = row["method"] if row["method"] not in ("random-search", "bayes-opt") \
                else f'{row["method"]} ({row["start"]})'
            s = series.setdefault(key, ([], []))
            s[0].append(number(row["cost"]))
            s[1].append(number(row["best_val_loss"]))
        for key, (cost, best) in series.items():
            style = "--" if "reinit" in key else "-"
            ax.step(cost, best, where="post", linestyle=style, marker=".", label=key)
        if args.log_x:
            ax.set_xscale("log")
        ax.set_xlabel("cost (gradient-equivalents)")
        ax.set_ylabel("best validation loss so far")
        ax.set_title(title_of(comments, path), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
