#!/usr/bin/python3
"""Probe of the apps with malformed inputs and bad options (issue 14), run by CTest (apps.probe).

Usage: probe.py BIN_DIR

Every case asserts the exit code (2 for command-line errors, 1 for everything else), that stderr
names the culprit (the option, or the file), and that nothing was left half-written: a fresh
--out folder is not created (or stays empty), and an existing run's files are byte-for-byte
untouched. Inputs are tiny (a fake Fashion-MNIST folder of 30 + 10 images; synthetic runs of 20
rows), so the whole probe takes seconds. The CSV reader has no app behind it: tests/test_data.cpp
and fuzz/fuzz_csv.cpp cover it.
"""
import gzip
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time

BIN = pathlib.Path(sys.argv[1])
APPS = ["ift-compare", "ift-hypergrad", "ift-accuracy", "ift-overfit", "ift-distill"]
failures = []
cases = 0
ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")


def run(app, args):
    p = subprocess.run([str(BIN / app)] + [str(a) for a in args], capture_output=True, text=True,
                       env=ENV, timeout=120)
    return p.returncode, p.stderr


def snapshot(folder):
    """Every file under folder with its bytes (None: the folder does not exist)."""
    folder = pathlib.Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expect(app, args, code, *needles, out=None, give_out=True):
    """Runs app with --out out (a fresh folder unless given; none with give_out=False) and args,
    checks the exit code, that stderr holds every needle, and that the output folder is as it
    was."""
    global cases
    cases += 1
    fresh = out is None
    if fresh:
        out = work / f"out-{cases}"
    before = snapshot(out)
    rc, err = run(app, (["--out", out] if give_out else []) + list(args))
    where = f"{app} {' '.join(map(str, args))}"
    if rc != code:
        failures.append(f"{where}: exit {rc}, expected {code}\n{err}")
    for needle in needles:
        if str(needle) not in err:
            failures.append(f"{where}: stderr lacks {needle!r}:\n{err}")
    after = snapshot(out)
    if fresh and after:
        failures.append(f"{where}: left files behind in a fresh --out: {sorted(after)}")
    if not fresh and after != before:
        failures.append(f"{where}: changed the existing run's files")


def idx(dims, payload):
    return struct.pack(">I", 0x800 | len(dims)) + b"".join(struct.pack(">I", n) for n in dims) + payload


def fake_fashion(name, images=None, labels=None, rows=28, cols=28, train_labels=None):
    """A Fashion-MNIST folder of 30 train and 10 test images (raw IDX); parts replaced by bytes."""
    d = work / name
    d.mkdir()
    n = 30
    img = bytes((i * 37) % 256 for i in range(n * rows * cols))
    (d / "train-images-idx3-ubyte").write_bytes(images if images is not None else idx([n, rows, cols], img))
    lab = bytes(train_labels if train_labels is not None else [i % 10 for i in range(n)])
    (d / "train-labels-idx1-ubyte").write_bytes(labels if labels is not None else idx([n], lab))
    (d / "t10k-images-idx3-ubyte").write_bytes(idx([10, 28, 28], bytes(10 * 784)))
    (d / "t10k-labels-idx1-ubyte").write_bytes(idx([10], bytes(range(10))))
    return d


start = time.time()
with tempfile.TemporaryDirectory() as tmp:
    work = pathlib.Path(tmp)
    sizes = {app: ["--train", 10, "--val", 10] + ([] if app == "ift-accuracy" else ["--test", 5])
             for app in APPS}

    # ---- Malformed data: exit 1, the file named, nothing written -------------------------------
    good = idx([30, 28, 28], bytes(30 * 784))
    data_cases = {
        "truncated": (fake_fashion("truncated", images=good[:-100]), "train-images-idx3-ubyte",
                      ["truncated file: expected 23520 bytes of data, found 23420"]),
        "trailing": (fake_fashion("trailing", images=good + b"xx"), "train-images-idx3-ubyte",
                     ["2 trailing bytes"]),
        "magic": (fake_fashion("magic", labels=b"\x00\x00\x09\x01" + bytes(34)), "train-labels-idx1-ubyte",
                  ["wrong magic number"]),
        # Same bytes per image as 28 × 28: refused from the header, expected before found.
        "size": (fake_fashion("size", rows=14, cols=56), "train-images-idx3-ubyte",
                 ["images of 14 × 56 pixels, expected 28 × 28"]),
        "label": (fake_fashion("label", train_labels=[0, 1, 2, 12] + [0] * 26), "train-labels-idx1-ubyte",
                  ["label 12 at row 3 (0-based) outside [0, 10)"]),
    }
    gz = fake_fashion("gzip")
    blob = gzip.compress(good, mtime=0)
    (gz / "train-images-idx3-ubyte").unlink()
    (gz / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2] + bytes(64))
    data_cases["gzip"] = (gz, "train-images-idx3-ubyte.gz", ["gzip"])
    for name, (folder, culprit, needles) in data_cases.items():
        for app in APPS:
            expect(app, ["--data-dir", folder] + sizes[app], 1, folder / culprit, *needles)

    # ---- Bad options: exit 2, the option named, no --out created --------------------------------
    for app in APPS:
        expect(app, ["--seed", "-1"], 2, "--seed: expected an integer in [0, 18446744073709551615]")
        expect(app, ["--threads", "5000"], 2, "--threads: expected an integer in [0, 4096]")
        expect(app, ["--train", "0"], 2, "--train")
        expect(app, ["--data", "synthetic", "extra"], 2, "unexpected argument 'extra'")
        expect(app, ["--bogus", "1"], 2, "unrecognised option '--bogus'")
        expect(app, ["--seed"], 2, "--seed: expected a value")
        expect(app, ["--train", "10", "--train", "11"], 2, "--train: given more than once")
        expect(app, ["--out", ""], 2, "--out: expected a", give_out=False)
    for app in ["ift-compare", "ift-hypergrad", "ift-accuracy", "ift-overfit"]:
        expect(app, ["--init-log-decay", "700"], 2, "--init-log-decay: expected a number in [-50, 50]")
    for app in ["ift-compare", "ift-overfit", "ift-distill"]:
        expect(app, ["--inner-lr", "inf"], 2, "--inner-lr: expected a number in (0, 1e+06]")
    expect("ift-hypergrad", ["--grad-tol", "inf"], 2, "--inner-tol: expected a number in (0, 1]")
    expect("ift-compare", ["--methods", "cg,cg"], 2, "--methods")
    # In range option by option, but terabytes in all: refused before allocating, with the estimate.
    for app in ["ift-compare", "ift-overfit", "ift-distill"]:
        expect(app, ["--data", "synthetic", "--train", "1000000000", "--val", "1000000000"], 2,
               "--train, --val, --test: the run needs at least", "of memory available")

    # ---- Bad .npy for ift-hypergrad --w-start: exit 1, the file named ---------------------------
    ok = fake_fashion("ok")
    npy_header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (10, 785), }"
    header += b" " * (118 - len(header) - 1) + b"\n"
    bad_npy = {"garbage.npy": (b"not numpy at all", "not a .npy file"),
               "short.npy": (npy_header + header + bytes(80), "bytes of data"),
               "empty.npy": (b"", "npy file")}
    for name, (content, needle) in bad_npy.items():
        (work / name).write_bytes(content)
        expect("ift-hypergrad", ["--data-dir", ok, "--w-start", work / name] + sizes["ift-hypergrad"], 1,
               work / name, needle)

    # ---- Checkpoints: a damaged one and a changed method list leave the run untouched -----------
    run_dir = work / "run"
    base = ["--data", "synthetic", "--train", 20, "--val", 20, "--test", 10, "--hyper-steps", 2,
            "--inner-steps", 1, "--warmup-steps", 0, "--threads", 1, "--checkpoint-every", 1]
    rc, err = run("ift-compare", base + ["--methods", "identity,zero", "--out", run_dir])
    if rc != 0:
        failures.append(f"ift-compare baseline run failed ({rc}):\n{err}")
    else:
        expect("ift-compare", base + ["--methods", "identity", "--resume"], 2, "--methods",
               "identity,zero", out=run_dir)
        expect("ift-compare", base + ["--methods", "zero,identity", "--resume"], 2, "--methods", out=run_dir)
        ckpt = run_dir / "checkpoint-zero.bin"
        damaged = bytearray(ckpt.read_bytes())
        damaged[len(damaged) // 2] ^= 0x10
        ckpt.write_bytes(bytes(damaged))
        expect("ift-compare", base + ["--methods", "identity,zero", "--resume"], 1, ckpt, "damaged",
               out=run_dir)
        ckpt.write_bytes(ckpt.read_bytes()[:100])
        expect("ift-compare", base + ["--methods", "identity,zero", "--resume"], 1, ckpt, out=run_dir)
    overfit = work / "overfit"
    obase = ["--data", "synthetic", "--train", 20, "--val", 20, "--test", 10, "--hyper-steps", 1,
             "--inner-steps", 1, "--warmup-steps", 0, "--threads", 1]
    rc, err = run("ift-overfit", obase + ["--out", overfit])
    if rc != 0:
        failures.append(f"ift-overfit baseline run failed ({rc}):\n{err}")
    else:
        ckpt = overfit / "checkpoint-overfit.bin"
        damaged = bytearray(ckpt.read_bytes())
        damaged[-3] ^= 0x01
        ckpt.write_bytes(bytes(damaged))
        expect("ift-overfit", obase + ["--resume"], 1, ckpt, "damaged", out=overfit)

for f in failures:
    print("probe: FAIL:", f, file=sys.stderr)
print(f"probe: {cases} cases, {len(failures)} failures, {time.time() - start:.1f} s")
sys.exit(1 if failures else 0)
