#!/usr/bin/env python3
"""Compares two CSV tables of the apps cell by cell (the multi-process tests: N processes
against one). Usage: compare_csv.py REF OTHER TOL [--abs COLUMN=ATOL]...

Same header and row count; every numeric cell within TOL relative of REF's (columns named
*seconds* and `message` skipped: timings and free text); every other cell equal. Prints the
worst relative difference and where; exits non-zero naming the cell when it exceeds TOL.
--abs COLUMN=ATOL: that column's cells within ATOL absolute instead, for values at rounding
level whose relative difference means nothing (a solver's final gradient norm of 5e-14)."""
import csv
import sys


def rows(path):
    with open(path) as f:
        return list(csv.reader(line for line in f if not line.startswith("#")))


def main():
    ref, other, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    absolute = {}
    extra = sys.argv[4:]
    while extra:
        if extra[0] != "--abs" or len(extra) < 2 or "=" not in extra[1]:
            sys.exit(f"compare_csv.py: expected --abs COLUMN=ATOL, got {' '.join(extra)}")
        name, value = extra[1].split("=", 1)
        absolute[name] = float(value)
        extra = extra[2:]
    a, b = rows(ref), rows(other)
    if len(a) != len(b) or a[0] != b[0]:
        sys.exit(f"{other}: {len(b)} rows / header {b[0]}, expected {len(a)} / {a[0]}")
    worst, where = 0.0, ""
    for ra, rb in zip(a[1:], b[1:]):
        for name, x, y in zip(a[0], ra, rb):
            if "seconds" in name or name == "message":
                continue
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                if x != y:
                    sys.exit(f"{other}: {name} is {y!r}, the reference wrote {x!r}")
                continue
            if name in absolute:
                if not abs(fx - fy) <= absolute[name]:
                    sys.exit(f"{other}: {name} of row {ra[:2]} differs by {abs(fx - fy):.2e} "
                             f"absolute (> {absolute[name]:g})")
                continue
            d = abs(fx - fy) / max(abs(fx), 1e-300) if fx != fy else 0.0
            if d > worst:
                worst, where = d, f"{name} of row {ra[:2]}"
    print(f"  worst relative difference {worst:.2e} ({where or '-'})")
    if worst > tol:
        sys.exit(f"{other}: {where} differs by {worst:.2e} relative (> {tol:g})")


if __name__ == "__main__":
    main()
