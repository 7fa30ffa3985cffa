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


def print_table(path):
    comments, rows = read(path)
    print(f"\n{title_of(comments, path)}\n")
    runs = OrderedDict()
    for row in rows:
        runs.setdefault((row["method"], row["start"]), []).append(row)
    # The target of the last column: the best L_V(w*(λ)) any trial or hyper-step reached, plus
    # 0.001 (the hypernetwork is left out: its losses are at w_φ(λ), not at w*(λ)).
    finite = [number(r["val_loss"]) for (m, _), rs in runs.items() if m != "hypernetwork"
              for r in rs if r["val_loss"]]
    target = min(finite) + 1e-3 if finite else math.nan
    print(f"(target of the last column: {target:.4f})\n")
    print("| method | start | steps | cost | cost per step | best val loss | its test loss |"
          " its test accuracy | cost to reach the re-initialised run's best |"
          " cost to reach the target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (method, start), rs in runs.items():
        cost = number(rs[-1]["cost"])
        best = min(rs, key=lambda r: number(r["val_loss"]) if r["val_loss"] else math.inf)
        reach = ""
        ref = runs.get((method, "reinit"))
        if ref is not None and start != "reinit":
            # 1e-4: the inner solves stop at a tolerance, so equal λ give L_V equal to ~1e-6
            ref_best = min(number(r["val_loss"]) for r in ref) + 1e-4
            hit = [number(r["cost"]) for r in rs if number(r["best_val_loss"]) <= ref_best]
            ref_hit = [number(r["cost"]) for r in ref if number(r["best_val_loss"]) <= ref_best]
            reach = (f"{hit[0]:.0f} (re-initialised: {ref_hit[0]:.0f})" if hit
                     else f"not reached (re-initialised: {ref_hit[0]:.0f})")
        hit = [number(r["cost"]) for r in rs if number(r["best_val_loss"]) <= target]
        print(f"| {method} | {start} | {len(rs)} | {cost:.0f} | {cost / len(rs):.1f} | "
              f"{number(best['val_loss']):.4f} | {number(best['test_loss']):.4f} | "
              f"{100 * number(best['test_accuracy']):.2f}% | "
              f"{reach} | {f'{hit[0]:.0f}' if hit else 'not reached'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", help="baselines.csv written by ift-baselines")
    parser.add_argument("-o", "--output", default="baselines.png", help="PNG to write")
    parser.add_argument("--log-x", action="store_true", help="logarithmic cost axis")
    parser.add_argument("--table", action="store_true",
                        help="also print a Markdown table per CSV: steps, cost per step, best "
                             "validation loss and the test accuracy where it was reached")
    args = parser.parse_args()
    if args.table:
        for path in args.csv:
            print_table(path)

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
