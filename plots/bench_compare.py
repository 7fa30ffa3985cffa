#!/usr/bin/python3
"""Compare two runs of the benchmark suites (e.g. OpenBLAS kernels against Eigen's own).

Usage: /usr/bin/python3 plots/bench_compare.py DIR_A DIR_B [--all]
  DIR_A, DIR_B: folders with bench_logreg.json and bench_mlp.json (scripts/bench.sh OUT_DIR).
Prints, per (model, threads), the geometric mean over the benchmarks both runs have of
time(B) / time(A), with its range; > 1 means A is faster. --all lists every benchmark too.
Runs minutes apart on a shared machine differ by 20-50% case by case: read the geometric means.
"""
import argparse
import math
import os
from collections import defaultdict

from bench_json import iterations


def load(folder):
    out = {}
    for name in ("bench_logreg.json", "bench_mlp.json"):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            continue
        for b in iterations(path):
            out[b["name"].replace("/real_time", "")] = b
    if not out:
        raise SystemExit(f"bench_compare.py: no benchmark JSON in {folder}")
    return out


def group(name):
    model = "LogReg" if "LogReg" in name else ("Mlp784x1000x1000x10" if "1000x1000" in name
                                               else "Mlp784x256x10")
    threads = name.rsplit("threads:", 1)[-1]
    return model, threads


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--all", action="store_true")
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    ratios = defaultdict(list)
    rows = []
    for name in sorted(set(a) & set(b)):
        # GEMM yardsticks compare kernels, mixed products are elementwise: neither is a model cost.
        if name.startswith("BM_Gemm") or "MixedProduct" in name:
            continue
        r = b[name]["real_time"] / a[name]["real_time"]
        ratios[group(name)].append(r)
        rows.append((name, a[name]["real_time"], b[name]["real_time"], r))
    print(f"| model | threads | benchmarks | geomean time(B)/time(A) | range |")
    print("|---|---|---|---|---|")
    for key in sorted(ratios):
        v = ratios[key]
        g = math.exp(sum(math.log(x) for x in v) / len(v))
        print(f"| {key[0]} | {key[1]} | {len(v)} | {g:.2f} | {min(v):.2f}–{max(v):.2f} |")
    if args.all:
        print()
        for name, ta, tb, r in rows:
            print(f"{name:72s} {ta:10.3f} {tb:10.3f} {r:6.2f}")


if __name__ == "__main__":
    main()
