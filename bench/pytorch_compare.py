#!/usr/bin/python3
"""ift against PyTorch in one run: the issue-15 ratio table.

Runs the ift Google Benchmark cases (bench_logreg, bench_mlp) and the same operations written in
PyTorch (Debian's python3-torch, OpenBLAS; float64; the same thread count) in alternating rounds,
so both sides see the same machine state, and writes the table PyTorch time / ift time per
operation (median over the rounds of each side's mean time per call).

Both sides use the same data (the first rows of the Fashion-MNIST train file, x = pixel/255, bias
column for logistic regression; validation = the next n rows), the same sizes and the same work
per call:
  gradient            mean cross-entropy and its gradient (ift: BM_Gradient_*)
  HVP cached          one Hessian-vector product, the forward pass kept (ift: BM_HvpCached_*;
                      PyTorch: autograd.grad of the kept gradient graph, retain_graph)
  HVP from scratch    forward + HVP (ift: BM_HvpScratch_*; PyTorch: forward, gradient with
                      create_graph, then the product)
  neumann(k), cg(k)   one hypergradient at a new point, per-weight decay exp(λ)·w²/2 in L_T:
                      training gradient graph, validation gradient, k HVPs, the mixed product
                      (ift: BM_Neumann_*/BM_Cg_* = set_point + HypergradientEngine::compute; the
                      same fixed α = 1/|λ_max| from 30 power iterations on both sides).
                      PyTorch's cg is the plain three-term recurrence; ift's cg by default the
                      Lanczos form with full reorthogonalisation (BM_Cg_*, the same iterates in
                      exact arithmetic, O(D·k²) more work), and its plain recurrence beside it
                      (BM_CgPlain_*: the same algorithm on both sides)
  exact               dense Hessian, factorisation, solve, mixed product (ift: BM_Exact_LogReg,
                      the default precision: at D = 7,850 a float Cholesky refined to double
                      accuracy in double; BM_ExactDouble_LogReg, double throughout, beside it).
                      PyTorch builds the Hessian by the closed form ift uses (Kronecker blocks
                      Xᵀ diag(s) X / n, one GEMM each: autograd's own
                      torch.autograd.functional.hessian(vectorize=True) took 127 s already at
                      D = 3,010 on this machine, so it is no contender at D = 7,850), then
                      torch.linalg.solve (LU, the general solver: the target row, as in the
                      issue's table) and, reported beside it, torch.linalg.cholesky +
                      cholesky_solve (what a user who knows H is SPD writes).

Before timing, the PyTorch code checks itself: its HVP against its dense Hessian times v, its
cg(200) against its exact solve, its gradient against a finite difference.

Usage: /usr/bin/python3 bench/pytorch_compare.py [--build DIR] [--rounds R] [--threads T]
                                                 [--min-time S] [--out FILE.md] [--only REGEX]
Needs: python3-torch (scripts/setup-deps.sh --with-pytorch), built bench_logreg and bench_mlp.
"""
import argparse
import gzip
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

FASHION = os.environ.get("IFT_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
LOG_DECAY = -6.907755278982137  # λ_i = log 1e-3, as bench_common.hpp


def fail(msg):
    print(f"pytorch_compare.py: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="ift build directory (bin/bench_logreg, bin/bench_mlp)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (ift, PyTorch) per group")
    ap.add_argument("--threads", type=int, default=2, help="threads for both sides")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement and side")
    ap.add_argument("--out", default="results/bench/pytorch_compare.md", help="markdown table")
    ap.add_argument("--only", default="", help="regex: run only the rows whose name matches")
    a = ap.parse_args()
    if a.rounds < 1 or a.rounds > 100:
        fail(f"--rounds must lie in [1, 100], got {a.rounds}")
    if a.threads < 1 or a.threads > 256:
        fail(f"--threads must lie in [1, 256], got {a.threads}")
    if not (0 < a.min_time <= 60):
        fail(f"--min-time must lie in (0, 60] seconds, got {a.min_time}")
    return a


ARGS = parse_args()
# The same thread settings as the ift side (scripts/bench.sh): passive OpenMP waiting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    fail(f"{e}: install Debian's PyTorch with scripts/setup-deps.sh --with-pytorch "
         "and run this script with /usr/bin/python3")
torch.set_num_threads(ARGS.threads)
torch.set_default_dtype(torch.float64)


# ---- Data (the same rows as bench_common.hpp's pool) ---------------------------------------------
def read_idx(path, count):
    if not os.path.exists(path):
        fail(f"{path}: not found (apt-get install dataset-fashion-mnist, or set IFT_FASHION_MNIST_DIR)")
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        if dims[0] < count:
            fail(f"{path}: {dims[0]} rows, {count} needed")
        row = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        return np.frombuffer(f.read(count * row), dtype=np.uint8).reshape(count, row)


def fashion(rows):
    x = read_idx(os.path.join(FASHION, "train-images-idx3-ubyte.gz"), rows).astype(np.float64) / 255.0
    y = read_idx(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"), rows).reshape(-1).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


POOL_X, POOL_Y = fashion(20000)


def split(n, bias):
    def part(b):
        x = POOL_X[b:b + n]
        if bias:
            x = torch.cat([x, torch.ones(n, 1)], dim=1)
        return x.contiguous(), POOL_Y[b:b + n].contiguous()
    return part(0), part(n)


# ---- Problems ------------------------------------------------------------------------------------
class LogReg:
    """P1: softmax regression, 785 features (bias), 10 classes, w class-major (w[c·F + j]);
    `pixels` keeps only the first pixels (the self-checks' small twin)."""
    C = 10

    def __init__(self, n, pixels=784):
        (self.X, self.y), (self.Xv, self.yv) = split(n, bias=True)
        if pixels < 784:
            keep = list(range(pixels)) + [784]
            self.X, self.Xv = self.X[:, keep].contiguous(), self.Xv[:, keep].contiguous()
        self.F = pixels + 1
        g = torch.Generator().manual_seed(1)
        self.D = self.F * self.C
        self.w = (torch.rand(self.D, generator=g) * 2 - 1) * 0.01

    def loss(self, w, X, y):
        return F.cross_entropy(X @ w.view(self.C, self.F).T, y)


class Mlp:
    """784-256-10, tanh, softmax cross-entropy; layer l is an (in + 1) × out block (bias row)."""

    def __init__(self, n, widths=(784, 256, 10)):
        (self.X, self.y), (self.Xv, self.yv) = split(n, bias=False)
        self.widths = widths
        self.shapes = [(widths[l] + 1, widths[l + 1]) for l in range(len(widths) - 1)]
        self.D = sum(a * b for a, b in self.shapes)
        g = torch.Generator().manual_seed(1)
        parts = []
        for a, b in self.shapes:
            limit = (6.0 / (a - 1 + b)) ** 0.5
            parts.append(((torch.rand(a * b, generator=g) * 2 - 1) * limit))
        self.w = torch.cat(parts)

    def loss(self, w, X, y):
        h, off = X, 0
        for l, (a, b) in enumerate(self.shapes):
            W = w[off:off + a * b].view(a, b)
            off += a * b
            h = torch.addmm(W[a - 1], h, W[: a - 1])
            if l + 1 < len(self.shapes):
                h = torch.tanh(h)
        return F.cross_entropy(h, y)


def train_loss(p, w, lam):
    return p.loss(w, p.X, p.y) + 0.5 * (lam.exp() * w * w).sum()


def hvp_fn(g, w):
    return lambda v: torch.autograd.grad(g, w, v, retain_graph=True)[0]


def neumann_alpha(p, lam):
    """1/|λ_max| by 30 power iterations, as bench_common.hpp's Setup::neumann_alpha."""
    w = p.w.clone().requires_grad_(True)
    g = torch.autograd.grad(train_loss(p, w, lam), w, create_graph=True)[0]
    hvp = hvp_fn(g, w)
    v = p.w.clone()
    v /= v.norm()
    eig = 0.0
    for _ in range(30):
        hv = hvp(v)
        eig = float(v @ hv)
        v = hv / hv.norm()
    return 1.0 / abs(eig)


def hypergradient(p, lam, method, k, alpha):
    """The hypergradient at a new point: −(∂²L_T/∂w∂λ)ᵀ H⁻¹ ∇_w L_V (∂L_V/∂λ = 0 here)."""
    w = p.w.clone().requires_grad_(True)
    lam = lam.clone().requires_grad_(True)
    g = torch.autograd.grad(train_loss(p, w, lam), w, create_graph=True)[0]
    gv = torch.autograd.grad(p.loss(w, p.Xv, p.yv), w)[0]
    hvp = hvp_fn(g, w)
    if method == "neumann":
        v, acc = gv.clone(), gv.clone()
        for _ in range(k):
            v = v - alpha * hvp(v)
            acc = acc + v
        x = alpha * acc
    elif method == "cg":
        x = torch.zeros_like(gv)
        r, d = gv.clone(), gv.clone()
        rs = r @ r
        stop = (1e-12 * gv.norm()) ** 2  # ift's default CG tolerance (relative residual 1e-12)
        for _ in range(k):
            if rs <= stop:
                break
            hd = hvp(d)
            a = rs / (d @ hd)
            x = x + a * d
            r = r - a * hd
            rs_new = r @ r
            d = r + (rs_new / rs) * d
            rs = rs_new
    elif method == "exact":
        x = torch.linalg.solve(closed_form_hessian(p, w.detach(), lam.detach()), gv)
    elif method == "exact_cholesky":
        L = torch.linalg.cholesky(closed_form_hessian(p, w.detach(), lam.detach()))
        x = torch.cholesky_solve(gv.unsqueeze(1), L).squeeze(1)
    else:
        raise ValueError(method)
    return -torch.autograd.grad(g, lam, x)[0]


def closed_form_hessian(p, w, lam):
    """H = Σ_{c,c'} (block c,c') Xᵀ diag(s_cc') X / n + diag(exp λ): one GEMM per block pair."""
    n = p.X.shape[0]
    P = torch.softmax(p.X @ w.view(p.C, p.F).T, dim=1)
    H = torch.empty(p.D, p.D)
    for c in range(p.C):
        for c2 in range(c, p.C):
            s = (P[:, c] * ((1.0 if c == c2 else 0.0) - P[:, c2])) / n
            B = p.X.T @ (p.X * s.unsqueeze(1))
            H[c * p.F:(c + 1) * p.F, c2 * p.F:(c2 + 1) * p.F] = B
            if c2 != c:
                H[c2 * p.F:(c2 + 1) * p.F, c * p.F:(c + 1) * p.F] = B.T
    H.diagonal().add_(lam.exp())
    return H


# ---- Self-checks of the PyTorch side ---------------------------------------------------------------
def self_check():
    p = LogReg(200, pixels=40)
    lam = torch.full((p.D,), -2.0)  # well conditioned: the checks test arithmetic, not κ
    w = p.w.clone().requires_grad_(True)
    g = torch.autograd.grad(train_loss(p, w, lam), w, create_graph=True)[0]
    v = torch.rand(p.D, generator=torch.Generator().manual_seed(2)) - 0.5
    H = closed_form_hessian(p, p.w, lam)
    hv = hvp_fn(g, w)(v)
    e1 = float((hv - H @ v).norm() / (H @ v).norm())
    Ha = torch.autograd.functional.hessian(lambda u: train_loss(p, u, lam), p.w, vectorize=True)
    e2 = float((Ha - H).norm() / H.norm())
    exact = hypergradient(p, lam, "exact", 0, 0)
    cg = hypergradient(p, lam, "cg", 400, 0)
    chol = hypergradient(p, lam, "exact_cholesky", 0, 0)
    e6 = float((chol - exact).norm() / exact.norm())
    e3 = float((cg - exact).norm() / exact.norm())
    h = 1e-6
    fd = (train_loss(p, p.w + h * v, lam) - train_loss(p, p.w - h * v, lam)) / (2 * h)
    e4 = abs(float(fd) - float(g.detach() @ v)) / abs(float(fd))
    mlp = Mlp(50)
    wm = mlp.w.clone().requires_grad_(True)
    gm = torch.autograd.grad(mlp.loss(wm, mlp.X, mlp.y), wm)[0]
    vm = torch.rand(mlp.D, generator=torch.Generator().manual_seed(3)) - 0.5
    fdm = (mlp.loss(mlp.w + h * vm, mlp.X, mlp.y) - mlp.loss(mlp.w - h * vm, mlp.X, mlp.y)) / (2 * h)
    e5 = abs(float(fdm) - float(gm @ vm)) / abs(float(fdm))
    checks = {"HVP vs closed-form Hessian": (e1, 1e-12), "autograd Hessian vs closed form": (e2, 1e-12),
              "cg(400) vs exact hypergradient": (e3, 1e-6), "gradient vs finite difference": (e4, 1e-7),
              "MLP gradient vs finite difference": (e5, 1e-7),
              "Cholesky vs LU exact hypergradient": (e6, 1e-10)}
    for name, (err, tol) in checks.items():
        print(f"  self-check {name}: {err:.3g} (tolerance {tol:g})", file=sys.stderr)
        if not err <= tol:
            fail(f"self-check failed: {name}: relative error {err:.3g} > {tol:g}")


def loaded_blas():
    """The BLAS behind Debian's generic libblas.so.3 (the alternatives system picks it): the
    shared objects mapped after one product. Netlib's reference BLAS would measure the wrong thing
    (DESIGN.md §5), so it is refused."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    with open("/proc/self/maps") as f:
        maps = f.read()
    libs = sorted({os.path.basename(line.split()[-1]) for line in maps.splitlines()
                   if "blas" in line.split()[-1].lower()})
    if any("openblas" in l for l in libs) or any("openblas" in os.path.realpath(l) for l in libs):
        return "OpenBLAS"
    real = {os.path.realpath(line.split()[-1]) for line in maps.splitlines() if "blas" in line.lower()}
    if any("openblas" in r for r in real):
        return "OpenBLAS"
    fail(f"PyTorch's BLAS is not OpenBLAS ({', '.join(sorted(real)) or 'none mapped'}): "
         "install libopenblas0-pthread (scripts/setup-deps.sh)")


# ---- Timing --------------------------------------------------------------------------------------
def time_torch(fn, min_time):
    fn()  # warm-up, as the ift side's untimed first call
    calls, total = 0, 0.0
    while calls < 3 or total < min_time:
        t0 = time.perf_counter()
        fn()
        total += time.perf_counter() - t0
        calls += 1
    return total / calls * 1e3


def time_ift(binary, names, min_time):
    exe = os.path.join(ARGS.build, "bin", binary)
    if not os.access(exe, os.X_OK):
        fail(f"{exe}: not found or not executable (build it: cmake --build {ARGS.build} --target {binary})")
    regex = "^(" + "|".join(re.escape(n) for n in names) + ")(/real_time)?$"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "ift.json")
        r = subprocess.run([exe, f"--benchmark_filter={regex}", f"--benchmark_out={report}",
                            "--benchmark_out_format=json", f"--benchmark_min_time={min_time}"],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0 or not os.path.exists(report):
            fail(f"{exe} exited with {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}")
        with open(report) as f:
            results = json.load(f)["benchmarks"]
    out = {}
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for b in results:
        out[b["name"].removesuffix("/real_time")] = b["real_time"] * scale[b["time_unit"]]
    missing = [n for n in names if n not in out]
    if missing:
        fail(f"{exe}: no result for {', '.join(missing)}")
    return out


def rows(threads):
    t = f"/threads:{threads}"
    lr = lambda n: f"<double>/n:{n}"
    return [
        # name, ift binary, ift benchmark, torch problem key, torch op, target (PyTorch ÷ ift)
        ("P1 gradient, n = 1,000", "bench_logreg", f"BM_Gradient_LogReg{lr(1000)}{t}", ("lr", 1000), "gradient", None),
        ("P1 neumann(20) hypergradient, n = 1,000", "bench_logreg", f"BM_Neumann_LogReg{lr(1000)}/k:20{t}", ("lr", 1000), "neumann", 5.0),
        ("P1 cg(20) hypergradient, n = 1,000", "bench_logreg", f"BM_Cg_LogReg{lr(1000)}/k:20{t}", ("lr", 1000), "cg", 5.0),
        ("P1 cg(20), n = 1,000, ift's plain recurrence (PyTorch's algorithm)", "bench_logreg", f"BM_CgPlain_LogReg{lr(1000)}/k:20{t}", ("lr", 1000), "cg", 5.0),
        ("P1 neumann(20), n = 10,000", "bench_logreg", f"BM_Neumann_LogReg{lr(10000)}/k:20{t}", ("lr", 10000), "neumann", 2.5),
        ("P1 cg(20), n = 10,000", "bench_logreg", f"BM_Cg_LogReg{lr(10000)}/k:20{t}", ("lr", 10000), "cg", 2.5),
        ("P1 exact hypergradient, n = 1,000", "bench_logreg", f"BM_Exact_LogReg{lr(1000)}{t}", ("lr", 1000), "exact", 3.0),
        ("P1 exact, PyTorch with Cholesky instead of LU", "bench_logreg", f"BM_Exact_LogReg{lr(1000)}{t}", ("lr", 1000), "exact_cholesky", None),
        ("P1 exact, ift in double throughout (--exact-precision double)", "bench_logreg", f"BM_ExactDouble_LogReg{lr(1000)}{t}", ("lr", 1000), "exact", None),
        ("MLP 784-256-10 gradient, n = 1,000", "bench_mlp", f"BM_Gradient_Mlp784x256x10<double>/n:1000{t}", ("mlp", 1000), "gradient", 1.5),
        ("MLP 784-256-10 HVP cached", "bench_mlp", f"BM_HvpCached_Mlp784x256x10<double>/n:1000{t}", ("mlp", 1000), "hvp_cached", 1.5),
        ("MLP 784-256-10 HVP from scratch", "bench_mlp", f"BM_HvpScratch_Mlp784x256x10<double>/n:1000{t}", ("mlp", 1000), "hvp_scratch", 1.5),
    ]


class TorchOps:
    def __init__(self):
        self.problems, self.alphas, self.graphs = {}, {}, {}

    def problem(self, key):
        if key not in self.problems:
            self.problems[key] = LogReg(key[1]) if key[0] == "lr" else Mlp(key[1])
        return self.problems[key]

    def op(self, key, name):
        p = self.problem(key)
        lam = torch.full((p.D,), LOG_DECAY)
        v = torch.rand(p.D, generator=torch.Generator().manual_seed(4)) * 2 - 1
        if name == "gradient":
            def f():
                w = p.w.clone().requires_grad_(True)
                return torch.autograd.grad(p.loss(w, p.X, p.y), w)[0]
            return f
        if name == "hvp_cached":
            w = p.w.clone().requires_grad_(True)
            g = torch.autograd.grad(p.loss(w, p.X, p.y), w, create_graph=True)[0]
            self.graphs[key] = (w, g)
            return lambda: torch.autograd.grad(g, w, v, retain_graph=True)[0]
        if name == "hvp_scratch":
            def f():
                w = p.w.clone().requires_grad_(True)
                g = torch.autograd.grad(p.loss(w, p.X, p.y), w, create_graph=True)[0]
                return torch.autograd.grad(g, w, v)[0]
            return f
        if key not in self.alphas:
            self.alphas[key] = neumann_alpha(p, lam)
        k = 20 if name in ("neumann", "cg") else 0
        return lambda: hypergradient(p, lam, name, k, self.alphas[key])


def main():
    only = re.compile(ARGS.only) if ARGS.only else None
    table = [r for r in rows(ARGS.threads) if only is None or only.search(r[0])]
    if not table:
        fail(f"--only {ARGS.only!r} matches no row")
    blas = loaded_blas()
    print(f"PyTorch {torch.__version__} ({blas}), {ARGS.threads} threads; self-checks:", file=sys.stderr)
    self_check()
    ops = TorchOps()
    ift_t = {r[0]: [] for r in table}
    torch_t = {r[0]: [] for r in table}
    binaries = sorted({r[1] for r in table})
    for rnd in range(ARGS.rounds):
        for binary in binaries:
            group = [r for r in table if r[1] == binary]
            print(f"round {rnd + 1}/{ARGS.rounds}: {binary} ({len(group)} cases) ...", file=sys.stderr, flush=True)
            got = time_ift(binary, sorted({r[2] for r in group}), ARGS.min_time)
            for r in group:
                ift_t[r[0]].append(got[r[2]])
            print(f"round {rnd + 1}/{ARGS.rounds}: PyTorch twins of {binary} ...", file=sys.stderr, flush=True)
            for r in group:
                torch_t[r[0]].append(time_torch(ops.op(r[3], r[4]), ARGS.min_time))
    lines = [f"PyTorch {torch.__version__} ({blas}) vs ift, float64, {ARGS.threads} threads, "
             f"median of {ARGS.rounds} alternating rounds, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", "| operation | ift (ms) | PyTorch (ms) | PyTorch ÷ ift | target | met |",
             "|---|---|---|---|---|---|"]
    missed = 0
    for name, *_rest in table:
        target = _rest[4]
        a, b = statistics.median(ift_t[name]), statistics.median(torch_t[name])
        ratio = b / a
        met = "" if target is None else ("yes" if ratio >= target else "**no**")
        missed += target is not None and ratio < target
        lines.append(f"| {name} | {a:.3g} | {b:.3g} | {ratio:.2f}× | "
                     f"{'' if target is None else f'≥ {target:g}×'} | {met} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(ARGS.out)), exist_ok=True)
    tmp = ARGS.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, ARGS.out)
    print(f"wrote {ARGS.out} ({missed} target(s) missed)", file=sys.stderr)


if __name__ == "__main__":
    main()
