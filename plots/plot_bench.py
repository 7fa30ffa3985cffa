#!/usr/bin/python3
"""Time per hypergradient against k for each method, from Google Benchmark JSON.

Usage: /usr/bin/python3 plots/plot_bench.py results/bench/bench_logreg.json [more.json ...]
       [-o results/bench/hypergradient_vs_k.png]
One panel per (model, scalar type, n, threads) that has k-dependent results; cg, neumann and
unrolled as lines over k, identity and kfac (no k) as horizontal lines; the y axis is also shown
in units of one gradient (the x_gradient counter) on the right.
"""
import argparse
import re
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench_json import iterations  # noqa: E402

NAME = re.compile(r"^BM_(Cg|Neumann|Unrolled|Identity|Kfac)_([A-Za-z0-9x]+)<(\w+)>/n:(\d+)"
                  r"(?:/k:(\d+))?/threads:(\d+)(?:/point:(\w+))?")


def load(paths):
    panels = defaultdict(lambda: defaultdict(list))
    for path in paths:
        for b in iterations(path):
            m = NAME.match(b["name"])
            if not m:
                continue
            method, model, scalar, n, k, threads, point = m.groups()
            if point:  # MLP solver benchmarks: one panel per point (Glorot / trained)
                model = f"{model} ({point})"
            scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
            ms = b["real_time"] * scale
            key = (model, scalar, int(n), int(threads))
            panels[key][method].append((int(k) if k else None, ms, b.get("x_gradient")))
    return panels


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("json", nargs="+")
    ap.add_argument("-o", "--output", default="results/bench/hypergradient_vs_k.png")
    args = ap.parse_args()
    panels = {k: v for k, v in load(args.json).items()
              if any(p[0] is not None for pts in v.values() for p in pts)}
    if not panels:
        raise SystemExit("no hypergradient benchmarks with k in the JSON files")
    keys = sorted(panels)
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        series = panels[key]
        ks = sorted({p[0] for pts in series.values() for p in pts if p[0] is not None})
        for method, pts in sorted(series.items()):
            with_k = sorted(p for p in pts if p[0] is not None)
            if with_k:
                ax.plot([p[0] for p in with_k], [p[1] for p in with_k], "o-", label=method.lower())
            else:
                ax.hlines(pts[0][1], min(ks), max(ks), linestyles="--", label=method.lower(),
                          colors="C5" if method == "Kfac" else "C6")
        # (k + 2) gradients: the target for cg and neumann.
        xg = [p for pts in series.values() for p in pts if p[2]]
        if xg:
            grad_ms = xg[0][1] / xg[0][2]
            ax.plot(ks, [(k + 2) * grad_ms for k in ks], "k:", label="(k+2) gradients")
        model, scalar, n, threads = key
        ax.set_title(f"{model} {scalar} n={n} threads={threads}", fontsize=9)
        ax.set_xlabel("k (CG iterations / Neumann terms / unrolled steps)")
        ax.set_ylabel("ms per hypergradient")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
