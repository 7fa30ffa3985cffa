#!/usr/bin/python3
"""Seed corpora for the libFuzzer targets in fuzz/ (scripts/fuzz.sh calls this).

Usage: fuzz-seeds.py OUT_DIR [APPS_BIN_DIR]

Writes OUT_DIR/<target>/ seeds, each in the layout its harness reads (see fuzz/*.cpp: the IDX
and CSV harnesses take their mode from the input's last byte(s), the checkpoint harness from the
first byte). Sources, all small (a few KB each; nothing is committed):
  IDX         the first rows of the real Fashion-MNIST files ($IFT_FASHION_MNIST_DIR or
              /usr/share/datasets/fashion-mnist), re-headed, raw and gzipped, plus a tiny array
  CSV         what the apps write (compare.csv of a tiny synthetic run) and hand-made tables
  .npy        numpy.save of small float64/float32 arrays (C and Fortran order), app outputs
  checkpoint  small checkpoints written by the library ($IFT_CHECKPOINT_SEED_MAKER, built as
              fuzz/make_checkpoint_seed)
  options     the argument lists of the app smoke tests
"""
import gzip
import io
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

out = pathlib.Path(sys.argv[1])
apps = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
data_dir = pathlib.Path(os.environ.get("IFT_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def idx(dims, payload):
    return struct.pack(">I", 0x800 | len(dims)) + b"".join(struct.pack(">I", n) for n in dims) + payload


def frd_escape(b):  # FuzzedDataProvider::ConsumeRandomLengthString: '\\' doubled, "\\n" ends it
    return b.replace(b"\\", b"\\\\") + b"\\n"


# ---- IDX: fuzz_idx reads mode = last byte (1: gzip, 2: pair, 4: float), then for pairs
# max_rows and first_row (one byte each, from the end), images (escaped) and labels.
images = labels = None
for prefix in ("train", "t10k"):
    ip, lp = data_dir / f"{prefix}-images-idx3-ubyte.gz", data_dir / f"{prefix}-labels-idx1-ubyte.gz"
    if ip.exists() and lp.exists():
        with gzip.open(ip) as f:
            head = f.read(16 + 3 * 784)
        with gzip.open(lp) as f:
            lhead = f.read(8 + 3)
        images, labels = idx([3, 28, 28], head[16:]), idx([3], lhead[8:])
        break
if images is None:
    print(f"fuzz-seeds: no Fashion-MNIST in {data_dir}; IDX seeds are synthetic only", file=sys.stderr)
    images, labels = idx([3, 28, 28], bytes(range(256)) * 9 + bytes(3 * 784 - 256 * 9)), idx([3], b"\x01\x02\x09")
tiny = idx([2, 2, 2], bytes(range(8)))
for i, (content, mode) in enumerate([(images, 0), (labels, 0), (tiny, 0), (images, 1), (labels, 1)]):
    put("fuzz_idx", f"single-{i}", content + bytes([mode]))
put("fuzz_idx", "gzip-file", gzip.compress(images, mtime=0) + b"\x00")
for mode in (2, 3, 6):
    put("fuzz_idx", f"pair-{mode}", frd_escape(images) + labels + bytes([1, 0, mode]))
    put("fuzz_idx", f"pair-rows-{mode}", frd_escape(images) + labels + bytes([2, 3, mode]))

# ---- CSV: fuzz_csv reads mode = last byte, target column = the byte before (-4 + b % 9).
tables = {
    "labels": b"# a comment\nx1,x2,label\n0.5,1,0\n-1e-3,+2,1\n3,4,2\n",
    "noheader": b"1,2,3\n4,5,6\n",
    "quoted": b'"a" ; "b" ; "c"\n1 ; 2 ; 0\n',
    "tabs": b"1\t2\t1\n3\t4\t0\n",
}
with tempfile.TemporaryDirectory() as tmp:
    if apps and (apps / "ift-compare").exists():
        run = pathlib.Path(tmp) / "run"
        subprocess.run([str(apps / "ift-compare"), "--data", "synthetic", "--train", "20", "--val", "20",
                        "--test", "10", "--hyper-steps", "2", "--inner-steps", "1", "--methods",
                        "identity,cg", "--steps", "2", "--threads", "1", "--out", str(run)],
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
        tables["compare"] = (run / "compare.csv").read_bytes()[:8000]
    else:
        print("fuzz-seeds: no apps given; no app CSV seeds", file=sys.stderr)
    # Checkpoints: small ones written by the library (fuzz/make_checkpoint_seed; the apps' hold
    # 7,850 weights, 450 KB, too large to fuzz quickly).
    maker = pathlib.Path(os.environ.get("IFT_CHECKPOINT_SEED_MAKER", ""))
    if maker.is_file():
        for scalar, mode in (("double", 0), ("float", 2)):
            path = pathlib.Path(tmp) / f"{scalar}.ckpt"
            subprocess.run([str(maker), str(path), scalar], check=True)
            raw = path.read_bytes()
            put("fuzz_checkpoint", f"{scalar}-file", bytes([mode]) + raw)            # as written
            put("fuzz_checkpoint", f"{scalar}-sealed", bytes([mode | 1]) + raw[:-8])  # re-sealed
    else:
        print("fuzz-seeds: IFT_CHECKPOINT_SEED_MAKER not set; checkpoint seed is a bare head", file=sys.stderr)
for name, text in tables.items():
    delim = 3 if name == "tabs" else 0
    put("fuzz_csv", name, text + bytes([8, delim << 3]))
    put("fuzz_csv", name + "-regression", text + bytes([8, (delim << 3) | 1]))
# A minimal checkpoint head, so the target has a seed even without the apps.
put("fuzz_checkpoint", "head", b"\x01IFTCKPT\n" + struct.pack("<II", 3, 8))

# ---- .npy
arrays = {"vec-f8": np.arange(5, dtype="<f8"), "vec-f4": np.linspace(0, 1, 4, dtype="<f4"),
          "mat-f8": np.arange(6, dtype="<f8").reshape(2, 3),
          "mat-fortran": np.asfortranarray(np.arange(6, dtype="<f4").reshape(3, 2)),
          "col": np.ones((3, 1))}
for name, a in arrays.items():
    b = io.BytesIO()
    np.save(b, a)
    put("fuzz_npy", name, b.getvalue())
b = io.BytesIO()
np.lib.format.write_array(b, np.zeros((2, 2)), version=(2, 0))
put("fuzz_npy", "v2", b.getvalue())

# ---- options: argv words separated by NUL (the program name is added by the harness).
argvs = [
    "--data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 --inner-steps 2 --warmup-steps 5 --steps 3 --threads 1",
    "--methods identity,cg --inner-optimizer adam --n-train 100 --resume",
    "--method neumann --alpha 0.5 --damping 1e-3 --power-iterations 20 --curvature gauss-newton",
    "--inner newton-cg --inner-tol 1e-8 --seed 7 --batch-size 10 --out /tmp",
    "--init-log-decay=-3 --outer-optimizer sgd --outer-lr 0.1 --on-failure stop --checkpoint-every 0",
    "--steps-list 0,1,2,5 --model mlp --hidden 8 --activation relu --device cuda:0 --dtype double",
    "--help",
]
for i, a in enumerate(argvs):
    put("fuzz_options", f"argv-{i}", b"\x00".join(w.encode() for w in a.split()))
print(f"fuzz-seeds: wrote {sum(1 for _ in out.rglob('*') if _.is_file())} seeds under {out}")
