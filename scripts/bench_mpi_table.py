#!/usr/bin/env python3
"""The strong-scaling table of scripts/bench-mpi.sh (bench/README.md "More than one process").

Usage: bench_mpi_table.py np1.json np2.json   (Google Benchmark JSON of `mpirun -np N bench_mpi`)

Markdown on stdout:
  1. measured: per hypergradient / hyper-step, wall time on 1 and 2 ranks and t(1)/t(2); at 2
     ranks the communication (wall time inside Communicator::sum) and the computation; the same
     computation in CPU time (what a rank with a core of its own would take);
  2. the cost model checked against the 2-rank run:
        t(N) = t_rep + (t(1) − t_rep)/N + k_1·s(1, N) + k_D·s(D, N)
     t_rep: the same call on n = 16 rows on 1 rank (the work that does not shrink with the rows:
     CG's vectors, the optimisers), k_1 / k_D: the scalar and D-vector sums per call (counted by
     TimedCommunicator), s(d, N): one sum of d doubles on N ranks (BM_MpiSum, same run);
  3. predictions for N machines on a network of latency α and bandwidth B, with a ring
     all-gather (what the rank-order sum does): s(d, N) = (N − 1)(α + 8d/B).
"""
import json
import re
import sys

NETWORKS = [("10 GbE", 30e-6, 1.25e9), ("100 Gb/s InfiniBand", 2e-6, 12.5e9)]
PREDICT_N = [2, 4, 8, 16, 64]
D_OF = {"LogReg": 7850, "Mlp784x256x10": 203530}


def load(path):
    with open(path) as f:
        doc = json.load(f)
    ranks = int(doc["context"].get("ranks", "0"))
    runs = {}
    for b in doc["benchmarks"]:
        name = re.sub(r"/iterations:\d+|/real_time", "", b["name"])
        runs[name] = b
    return ranks, doc["context"].get("loadavg", "?"), runs


def ms(b, key):
    return float(b[key]) if key in b else float("nan")


def main():
    by_np = {}
    for path in sys.argv[1:]:
        ranks, load_avg, runs = load(path)
        by_np[ranks] = (runs, load_avg)
    if 1 not in by_np or 2 not in by_np:
        sys.exit("bench_mpi_table.py: needs the JSON of a 1-rank and a 2-rank run")
    one, two = by_np[1][0], by_np[2][0]
    print(f"Load average at the start: 1 rank {by_np[1][1]}; 2 ranks {by_np[2][1]}.\n")

    s2 = {int(k.split(":")[1]): ms(v, "comm_ms") for k, v in two.items() if k.startswith("BM_MpiSum/")}
    print("One sum (gather + rank-order add) on 2 ranks, wall ms: " +
          ", ".join(f"d = {d:,}: {t:.3f}" for d, t in sorted(s2.items())) + "\n")

    print("| call | t(1) ms | t(2) ms | **t(1)/t(2)** | 2 ranks: comm ms (CPU) | compute ms (slowest rank) "
          "| CPU: compute(1) ms | compute(2) ms | CPU ratio | sums (k_1 + k_D) | received per rank MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, b1 in one.items():
        m = re.match(r"BM_Mpi(Hypergradient|HyperStep)_(\w+)/cg:20/n:(\d+)$", name)
        if not m or name not in two or int(m.group(3)) <= 16:
            continue
        kind, model, n = m.group(1), m.group(2), int(m.group(3))
        b2 = two[name]
        rep = one.get(f"BM_Mpi{kind}_{model}/cg:20/n:16")
        t1, t2 = ms(b1, "real_time"), ms(b2, "real_time")
        c1, c2 = ms(b1, "compute_cpu_ms"), ms(b2, "compute_cpu_max_ms")
        D = D_OF[model]
        sums, scalars = ms(b1, "sums"), ms(b1, "scalars_summed")
        k_D = round((scalars - sums) / (D - 1))
        k_1 = round(sums) - k_D
        print(f"| {kind} {model} n = {n:,} | {t1:.1f} | {t2:.1f} | **{t1 / t2:.2f}** "
              f"| {ms(b2, 'comm_ms'):.1f} ({ms(b2, 'comm_cpu_ms'):.1f}) "
              f"| {ms(b2, 'compute_max_ms'):.1f} | {c1:.1f} | {c2:.1f} | {c1 / c2:.2f} | {k_1} + {k_D} "
              f"| {ms(b2, 'recv_MB'):.2f} |")
        rows.append((kind, model, n, D, t1, t2, c1, c2, k_1, k_D, rep, b2))

    print("\nCost model against the 2-rank run (t_rep from n = 16 on 1 rank; s(d, 2) from BM_MpiSum above):\n")
    print("| call | t_rep ms | predicted t(2) ms = t_rep + (t(1) − t_rep)/2 + comm | of which comm | measured t(2) ms "
          "| predicted / measured | CPU: predicted compute(2) | measured | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, model, n, D, t1, t2, c1, c2, k_1, k_D, rep, b2 in rows:
        if rep is None or D not in s2 or 1 not in s2:
            continue
        r_wall, r_cpu = ms(rep, "real_time"), ms(rep, "compute_cpu_ms")
        comm = k_1 * s2[1] + k_D * s2[D]
        pred = r_wall + (t1 - r_wall) / 2 + comm
        pred_cpu = r_cpu + (c1 - r_cpu) / 2
        print(f"| {kind} {model} n = {n:,} | {r_wall:.1f} | {pred:.1f} | {comm:.1f} | {t2:.1f} | {pred / t2:.2f} "
              f"| {pred_cpu:.1f} | {c2:.1f} | {pred_cpu / c2:.2f} |")

    print("\nPredicted t(N) on N machines (one rank each, the compute of the 1-rank run's CPU times; "
          "s(d, N) = (N − 1)(α + 8d/B)), ms:\n")
    header = "| call | network | " + " | ".join(f"N = {N}" for N in PREDICT_N) + " |"
    print(header)
    print("|---|---|" + "---|" * len(PREDICT_N))
    for kind, model, n, D, t1, t2, c1, c2, k_1, k_D, rep, b2 in rows:
        if rep is None:
            continue
        r_cpu = ms(rep, "compute_cpu_ms")
        for net, alpha, bw in NETWORKS:
            cells = []
            for N in PREDICT_N:
                comm = (N - 1) * (k_1 * alpha + k_D * (alpha + 8.0 * D / bw)) * 1e3
                t = r_cpu + (c1 - r_cpu) / N + comm
                cells.append(f"{t:.1f} ({comm / t:.0%} comm)")
            print(f"| {kind} {model} n = {n:,} | {net} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
