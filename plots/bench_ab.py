#!/usr/bin/python3
"""Median-of-rounds comparison written by scripts/bench-blas-vs-eigen.sh.

Usage: /usr/bin/python3 plots/bench_ab.py results/bench-ab
Reads {A,B}{round}-{logreg,mlp}.json (A = OpenBLAS kernels, B = Eigen's own), prints a markdown
table of the median time per benchmark over the rounds and B/A (> 1: OpenBLAS faster), then the
geometric mean of B/A.
"""
import glob
import math
import os
import re
import statistics
import sys
from collections import defaultdict

from bench_json import iterations


def main(folder):
    times = defaultdict(lambda: defaultdict(list))
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        m = re.match(r"([AB])(\d+)-", os.path.basename(path))
        if not m:
            continue
        for b in iterations(path):
            times[b["name"].replace("/real_time", "")][m.group(1)].append(b["real_time"])
    rows = [(n, statistics.median(d["A"]), statistics.median(d["B"]))
            for n, d in times.items() if d["A"] and d["B"] and not n.startswith("BM_Gemm")]
    if not rows:
        raise SystemExit(f"bench_ab.py: no A/B benchmark JSON in {folder}")
    print("| benchmark | OpenBLAS (A), ms | Eigen (B), ms | B/A |")
    print("|---|---|---|---|")
    for n, a, b in rows:
        print(f"| {n} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    g = math.exp(sum(math.log(b / a) for _, a, b in rows) / len(rows))
    print(f"\ngeometric mean of B/A over {len(rows)} benchmarks: {g:.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
