#!/usr/bin/python3
"""The issue's speed targets, read from Google Benchmark JSON: one markdown row per measured case.

Usage: /usr/bin/python3 plots/bench_targets.py results/bench/bench_logreg.json [more.json ...]

Every figure is a ratio taken within one run (x_gradient, gemm_fraction, x_inner_steps are
counters the benchmarks compute against yardsticks measured in the same process). Allocations
per solver iteration are the slope of allocs_per_call between the two largest k of a method.
Exit status 0 always: this reports, the JSON is the record.
"""
import re
import sys
from collections import defaultdict

from bench_json import iterations

NAME = re.compile(r"^BM_(\w+?)_([A-Za-z0-9x]+)<(\w+)>/n:(\d+)(?:/k:(\d+))?/threads:(\d+)"
                  r"(?:/point:(\w+))?")


def load(paths):
    rows = []
    for path in paths:
        for b in iterations(path):
            m = NAME.match(b["name"])
            if not m:
                continue
            kind, model, scalar, n, k, threads, point = m.groups()
            if point:  # MLP solver benchmarks: at the Glorot point or at a trained point
                model = f"{model} ({point})"
            rows.append(dict(kind=kind, model=model, scalar=scalar, n=int(n),
                             k=int(k) if k else None, threads=int(threads), b=b))
    return rows


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def main(paths):
    rows = load(paths)
    if not rows:
        raise SystemExit("bench_targets.py: no ift benchmarks in " + ", ".join(paths))
    out = ["| target | case | measured | met |", "|---|---|---|---|"]

    def case(r):
        k = f" k={r['k']}" if r["k"] is not None else ""
        return f"{r['model']} {r['scalar']} n={r['n']}{k} {r['threads']} thr"

    for r in rows:
        b = r["b"]
        if r["kind"] == "HvpCached":
            limit = 1.0 if r["model"] == "LogReg" else 1.5
            x = b.get("x_gradient")
            out.append(f"| cached HVP ≤ {limit}× gradient | {case(r)} | {fmt(x)}× "
                       f"(GEMM fraction {fmt(b.get('gemm_fraction'))}) | "
                       f"{'yes' if x <= limit else '**no**'} |")
    for r in rows:
        b = r["b"]
        if r["kind"] in ("Cg", "Neumann"):
            x, target = b.get("x_gradient"), b.get("target_x")
            status = b.get("label", "")
            out.append(f"| {r['kind'].lower()}(k) ≤ (k+2)× gradient | {case(r)} | {fmt(x)}× "
                       f"(target {fmt(target, 0)}; {fmt(b.get('hvps'), 0)} HVPs, {status}) | "
                       f"{'yes' if x <= target else '**no**'} |")
    for r in rows:
        b = r["b"]
        if r["kind"] in ("DensePath", "Hessian", "Cholesky"):
            f = b.get("gemm_fraction")
            met = "yes" if f >= 0.5 else "**no**"
            label = "Hessian + Cholesky" if r["kind"] == "DensePath" else r["kind"] + " alone"
            out.append(f"| dense path ≥ 50% of GEMM | {label}, {case(r)} | "
                       f"{fmt(b.get('GFLOPs'), 1)} GFLOP/s = {fmt(f)} of GEMM | "
                       f"{met if r['kind'] == 'DensePath' else '(part)'} |")
    for r in rows:
        b = r["b"]
        if r["kind"] == "HyperStep":
            x = b.get("x_inner_steps")
            out.append(f"| hyper-step ≤ 2× the 5 inner steps | {case(r)} | {fmt(x)}× | "
                       f"{'yes' if x <= 2 else '**no**'} |")
    # Allocation slope per solver iteration, from the two largest k of each (method, case), and
    # how many of those the curvature product itself makes (BM_HvpCached of the same case).
    hvp_allocs = {(r["model"], r["scalar"], r["n"], r["threads"]): r["b"].get("allocs_per_call", 0.0)
                  for r in rows if r["kind"] == "HvpCached"}
    series = defaultdict(list)
    for r in rows:
        if r["kind"] in ("Cg", "Neumann", "Unrolled") and r["k"] is not None:
            key = (r["kind"], r["model"], r["scalar"], r["n"], r["threads"])
            series[key].append((r["k"], r["b"].get("allocs_per_call", 0.0)))
    for key, pts in sorted(series.items()):
        pts.sort()
        if len(pts) < 2:
            continue
        (k1, a1), (k2, a2) = pts[-2], pts[-1]
        slope = (a2 - a1) / (k2 - k1)
        kind, model, scalar, n, threads = key
        in_hvp = hvp_allocs.get((model, scalar, n, threads))
        own = None if in_hvp is None else slope - in_hvp
        where = "" if in_hvp is None else f"; {fmt(in_hvp, 0)} of them inside one HVP"
        out.append(f"| no allocation in solver iterations | {kind.lower()} {model} {scalar} n={n} "
                   f"{threads} thr | {fmt(slope, 1)} allocations per iteration "
                   f"({fmt(a1, 0)} at k={k1}, {fmt(a2, 0)} at k={k2}{where}) | "
                   f"{'yes' if slope == 0 else ('solver: yes; HVP: **no**' if own is not None and abs(own) < 0.5 else '**no**')} |")
    for r in rows:
        if r["kind"] in ("HvpCached", "Gradient"):
            out.append(f"| (allocations) | {r['kind']} {case(r)} | "
                       f"{fmt(r['b'].get('allocs_per_call'), 0)} per call | |")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
