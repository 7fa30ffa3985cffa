#!/usr/bin/python3
"""Plot the P3 hypergradient accuracy sweep (DESIGN.md §2) written by ift-accuracy.

    /usr/bin/python3 plots/plot_accuracy.py results/accuracy/accuracy.csv [more.csv ...] [--out DIR]

One PNG per model found in the CSV files (accuracy_<model>.png, next to the first CSV unless
--out is given). With --x hvps the horizontal axis is the cost instead of k: the HVPs each result
used (power iterations, sampling and residual products included, as the CSV's hvps column counts
them), on a symmetric-log axis so that methods costing no HVP (identity, shine, kfac) sit at 0;
every method, old and new, is a line or a marker in one figure (accuracy_<model>_per_hvp.png):
the accuracy-per-HVP comparison of issue 11. Left panel the relative error ||h - h_exact|| / ||h_exact|| against k (log
scale), right panel the cosine to the exact hypergradient. Methods with a k are lines (Gauss-Newton
variants dashed on top of their Hessian twins, which they equal for logistic regression);
k-independent methods (kfac, identity, gauss-newton/exact) are dotted horizontal lines; the exact
method itself (error 0) is left out, and zero errors appear only in the legend.
"""
import argparse
import csv
import math
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HEADER = ["model", "method", "k", "relative_error", "cosine", "status", "hvps", "seconds"]


def read_rows(path):
    with open(path, newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    reader = csv.reader(lines)
    header = next(reader)
    if header != HEADER:
        raise SystemExit(f"{path}: unexpected header {header}, expected {HEADER}")
    for cells in reader:
        row = dict(zip(header, cells))
        yield row


def number(text):
    return float(text) if text != "" else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", help="accuracy.csv files from ift-accuracy")
    parser.add_argument("--out", help="output folder (default: the first CSV's folder)")
    parser.add_argument("--x", choices=["k", "hvps"], default="k",
                        help="horizontal axis: the step count k (default) or the HVPs used")
    args = parser.parse_args()
    out_dir = args.out or os.path.dirname(os.path.abspath(args.csv[0]))
    os.makedirs(out_dir, exist_ok=True)

    # model -> method -> list of (k, error, cosine, status)
    data = defaultdict(lambda: defaultdict(list))
    for path in args.csv:
        for row in read_rows(path):
            data[row["model"]][row["method"]].append(
                (number(row["k"]), number(row["relative_error"]), number(row["cosine"]), row["status"],
                 number(row["hvps"])))

    if args.x == "hvps":
        for model, methods in data.items():
            print(plot_per_hvp(model, methods, out_dir))
        return

    for model, methods in data.items():
        fig, (ax_err, ax_cos) = plt.subplots(1, 2, figsize=(12, 4.8))
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        color = 0
        k_max = max((k for rows in methods.values() for k, *_ in rows if not math.isnan(k)), default=1)
        positive = [r[1] for rows in methods.values() for r in rows if r[1] > 0]
        floor = max(1e-16, min(positive) / 3) if positive else 1e-16
        for method, rows in methods.items():
            if method == "exact":
                continue
            c = cycle[color % len(cycle)]
            color += 1
            # The same solver over the Hessian and the Gauss-Newton matrix coincide for linear
            # logits: draw Gauss-Newton dashed and thinner on top so both stay visible.
            gauss_newton = method.startswith("gauss-newton/")
            style = {"linestyle": "--" if gauss_newton else "-", "linewidth": 1.3 if gauss_newton else 2.4}
            if method == "unrolled":
                style = {"linestyle": ":", "linewidth": 1.6, "marker": "o", "markersize": 3, "markevery": 5}
            ks = [r[0] for r in rows]
            if all(math.isnan(k) for k in ks):  # k-independent: one value for every k
                err, cos = rows[0][1], rows[0][2]
                label = method + (" (error 0)" if err == 0 else "")
                if err > 0:
                    ax_err.axhline(err, color=c, linestyle=(0, (2, 2)), linewidth=1.4, label=label)
                else:  # a zero error has no place on a log scale: legend only
                    ax_err.plot([], [], color=c, linestyle=(0, (2, 2)), linewidth=1.4, label=label)
                ax_cos.axhline(cos, color=c, linestyle=(0, (2, 2)), linewidth=1.4, label=label)
                continue
            rows = sorted(rows)
            ks = [r[0] for r in rows]
            errs = [r[1] if r[1] > 0 else math.nan for r in rows]  # zeros cannot be drawn on log axes
            ax_err.plot(ks, errs, color=c, label=method, **style)
            ax_cos.plot(ks, [r[2] for r in rows], color=c, label=method, **style)
        ax_err.set_yscale("log")
        ax_err.set_ylim(bottom=floor)
        ax_err.set_xlabel("k (CG iterations, Neumann terms, unrolled steps)")
        ax_err.set_ylabel("relative error  ||h − h_exact|| / ||h_exact||")
        ax_err.set_title(f"{model}: relative error to the exact hypergradient")
        ax_cos.set_xlabel("k (CG iterations, Neumann terms, unrolled steps)")
        ax_cos.set_ylabel("cosine to h_exact")
        ax_cos.set_title(f"{model}: cosine to the exact hypergradient")
        for ax in (ax_err, ax_cos):
            ax.set_xlim(0, k_max)
            ax.grid(True, which="major", alpha=0.3)
        ax_cos.set_ylim(min(-0.05, ax_cos.get_ylim()[0]), 1.05)
        handles, labels = ax_err.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=9,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        path = os.path.join(out_dir, f"accuracy_{model}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print(path)


def plot_per_hvp(model, methods, out_dir):
    """Relative error and cosine against the HVPs used: one line per method (its k-sweep ordered
    by cost), one marker for a method with a single result."""
    fig, (ax_err, ax_cos) = plt.subplots(1, 2, figsize=(12, 4.8))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>pP*Xh"
    positive = [r[1] for rows in methods.values() for r in rows if r[1] > 0]
    floor = max(1e-16, min(positive) / 3) if positive else 1e-16
    plotted = 0
    for method, rows in methods.items():
        if method == "exact":
            continue
        rows = sorted({(r[4], r[1], r[2]) for r in rows if not math.isnan(r[4])})
        if not rows:
            continue
        c = cycle[plotted % len(cycle)]
        style = {"color": c, "marker": markers[plotted % len(markers)], "markersize": 4,
                 "linewidth": 1.8, "linestyle": "--" if "/" in method else "-"}
        if len(rows) > 12:
            style["markevery"] = max(1, len(rows) // 8)
        plotted += 1
        hv = [r[0] for r in rows]
        errs = [r[1] if r[1] > 0 else math.nan for r in rows]
        label = method + (" (error 0)" if all(r[1] == 0 for r in rows) else "")
        ax_err.plot(hv, errs, label=label, **style)
        ax_cos.plot(hv, [r[2] for r in rows], label=label, **style)
    ax_err.set_yscale("log")
    ax_err.set_ylim(bottom=floor)
    for ax, what in ((ax_err, "relative error  ||h − h_exact|| / ||h_exact||"),
                     (ax_cos, "cosine to h_exact")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel("Hessian-vector products used")
        ax.set_ylabel(what)
        ax.grid(True, which="major", alpha=0.3)
    ax_err.set_title(f"{model}: relative error per HVP")
    ax_cos.set_title(f"{model}: cosine per HVP")
    ax_cos.set_ylim(min(-0.05, ax_cos.get_ylim()[0]), 1.05)
    handles, labels = ax_err.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, max(1, len(labels))), fontsize=9,
               frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    path = os.path.join(out_dir, f"accuracy_{model}_per_hvp.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
