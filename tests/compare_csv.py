#!/usr/bin/env python3
"""Compares two CSV tables of the apps cell by cell (the multi-process tests: N processes
against one). Usage: compare_csv.py REF OTHER TOL

Same header and row count; every numeric cell within TOL relative of REF's (columns named
*seconds* and `message` skipped: timings and free text); every other cell equal. Prints the
worst relative difference and where; exits non-zero naming the cell when it exceeds TOL."""
import csv
import sys


def rows(path):
    with open(path) as f:
        return list(csv.reader(line for line in f if not line.startswith("#")))


def main():
    ref, other, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
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
            d = abs(fx - fy) / max(abs(fx), 1e-300) if fx != fy else 0.0
            if d > worst:
                worst, where = d, f"{name} of row {ra[:2]}"
    print(f"  worst relative difference {worst:.2e} ({where or '-'})")
    if worst > tol:
        sys.exit(f"{other}: {where} differs by {worst:.2e} relative (> {tol:g})")


if __name__ == "__main__":
    main()
