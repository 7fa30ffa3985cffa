"""Reading Google Benchmark JSON, shared by the bench_*.py and plot_bench.py scripts."""
import json


def iterations(path):
    """The measured runs in one Google Benchmark JSON file (no aggregates, no failed runs)."""
    with open(path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") == "iteration" and "error_occurred" not in b:
            yield b
