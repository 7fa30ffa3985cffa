// One pass over cache-sized row blocks of a column-major data matrix X (n × F), the fused
// kernel of the linear models (SoftmaxRegression, LogisticRegression; issue 15):
//
//   for each block X_b of `Plan::block` rows:   Z_b = X_b V          (forward, m columns)
//                                               R_b = op(Z_b)        (the model's per-row map)
//                                               Out += X_bᵀ R_b      (backward, while X_b is in L2)
//
// so X is read from memory once per product instead of twice (two thin GEMMs). Gradients (V = w,
// R = the residual), HVPs and Gauss-Newton products (R = the per-row softmax Jacobian of X_b V),
// Fisher products and the k-vector block forms are all this one loop with another `op`.
//
// Threads: the existing OpenMP pool only (`#pragma omp parallel for` over block groups). Rows are
// cut into blocks and blocks into at most kMaxGroups contiguous groups by n, F and the scalar
// alone; each group accumulates its blocks in order into its own F × m accumulator, and the
// accumulators are summed in group order. So a product has the same bits on any thread count.
// Allocation-free once the Workspace is sized (the first call at these sizes).
//
// Memory: X beyond the cache (more than kCachedBlocks blocks) is streamed in block by block (one
// read per 64-byte line, column after column) just before the block's forward, whose row tiles touch only
// a few lines per column at a time, too short a run for the hardware prefetcher (measured on P1,
// n = 10,000, one thread: 7.3–9.0 → 5.8 ms per HVP).
//
// Microkernels: Eigen's packet primitives (AVX-512, AVX2, SSE, NEON: whatever the build targets),
// vectorised over rows (X's columns are contiguous): the forward keeps an RP-packet × W-column tile
// of Z_b in registers (W of V's columns at once, V packed row-major per chunk of W columns), the
// backward a JT-feature × W-column tile of X_bᵀ R_b, reduced across the packet's lanes once per
// block.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/core.hpp"

namespace ift::row_block {

/// Bytes of X per row block: X_b stays in cache (L2, else the L3) between the forward and the
/// backward. Measured on P1 (n = 1,000, one thread, Zen 5): 256 KB 0.67 ms per HVP, 512 KB 0.46,
/// 1 MB 0.36, 2 MB 0.32, 4 MB 0.33 (fewer blocks: fewer reductions across a packet's lanes).
inline constexpr Index kBlockBytes = 2 * 1024 * 1024;
/// X of more blocks than this is streamed in (touch_block) before each block's forward: 16 MB,
/// half this machine's 32 MB L3, whose share a VM actually keeps is smaller. Measured with the
/// one-pass inner steps on P2's shape (n = 3,500, X 22 MB), one thread: 5 inner steps 13.4 and
/// 15.7 ms with the earlier threshold of 16 blocks (32 MB), 10.5 and 12.2 ms with 8; P1's
/// n = 1,000 (4 blocks) is not streamed and stays as it was (bench/README.md, "Streaming X_train
/// from 16 MB"). Only the reads change, not the results.
inline constexpr Index kCachedBlocks = 8;
/// Most groups (independent accumulators) of a pass; fixed, so results do not depend on threads.
inline constexpr Index kMaxGroups = 8;
/// Widest column chunk of the microkernels (Z_b tile of 2 packets × 10 columns in registers).
inline constexpr Index kMaxWidth = 10;
/// Features per forward sweep: the packed V chunk (kFeatureChunk × W) stays in L1.
inline constexpr Index kFeatureChunk = 256;

/// The fixed partition of n rows into blocks and of blocks into groups (n, F and S only).
struct Plan {
  Index n = 0, block = 0, blocks = 0, groups = 0;
  /// First block of group g (g = groups: one past the last).
  Index first_block(Index g) const { return g * blocks / groups; }
};

/// Most rows per block for F features: kBlockBytes of X's rows, in whole row tiles of the
/// microkernels (4 packets).
template <class S>
Index max_block_rows(Index F) {
  constexpr Index unit = 4 * kPacket<S>;
  const Index b = kBlockBytes / (std::max<Index>(F, 1) * static_cast<Index>(sizeof(S)));
  return std::clamp<Index>(b / unit * unit, unit, 4096);
}

template <class S>
Plan make_plan(Index n, Index F, Index out_cols) {
  constexpr Index PS = kPacket<S>;
  Plan p;
  p.n = n;
  // As few blocks as max_block_rows allows, an even number of them when there are several, of
  // equal size up to a packet of rows: the groups are dealt to the threads round-robin, and a
  // short last block (n = 1,000 in blocks of 320: 320, 320, 320, 40) left one of two threads
  // 640 rows and the other 360 (the P1 HVP ran 1.32× faster on 2 threads than on 1, not ~2×).
  // Depends on n, F and S only, as before.
  const Index most = max_block_rows<S>(F);
  Index count = (n + most - 1) / most;
  if (count > 1) count += count % 2;
  const Index b = std::max<Index>(PS, ((n + count - 1) / count + PS - 1) / PS * PS);
  p.block = std::min(b, most);
  p.blocks = (n + p.block - 1) / p.block;
  p.groups = std::min<Index>(p.blocks, kMaxGroups);
  // Each group holds an F × out_cols accumulator: at most 64 MB of them (wide k-vector blocks).
  const double acc_bytes = double(F) * double(out_cols) * double(sizeof(S));
  if (acc_bytes > 0)
    p.groups = std::clamp<Index>(std::min<Index>(p.groups, Index(64e6 / acc_bytes)), 1, p.groups);
  p.groups = std::max<Index>(p.groups, 1);
  return p;
}

/// Per-call buffers, kept in a model's Cache: sized on the first call, reused after.
template <class S>
struct Workspace {
  Vector<S> panel;             ///< V packed row-major per column chunk (F × m values).
  std::vector<Matrix<S>> acc;  ///< per group ≥ F·m_out accumulator (group 0 writes `out`).
  std::vector<Matrix<S>> z;    ///< per group block × ≥ (columns + extra) scratch: Z_b, then R_b.
  std::vector<double> partial;  ///< per group scalar (a loss), summed in group order by the model.
  /// X is cold at every pass (read once between passes over other data as large): stream each
  /// block in before its forward (touch_block), as for X beyond the cache, whatever its size.
  /// Only the reads change, not the results. RegularizedProblem sets it for its validation rows.
  bool stream = false;
};

/// Z_b's map as the row op sees it: `rows` × (columns + extra), leading dimension Plan::block.
template <class S>
using BlockMap = Eigen::Map<Matrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;

namespace detail {

/// Row packets per forward tile and features per backward tile: enough independent FMA chains
/// (≥ 8) within 32 vector registers.
template <int W>
inline constexpr int kRowPackets = W >= 4 ? 2 : (W >= 2 ? 4 : 8);
template <int W>
inline constexpr int kFeatureTile = W >= 4 ? 2 : (W >= 2 ? 4 : 8);

/// z[0 .. RP·PS) × W (leading dimension ldz) (+)= X rows [0, RP·PS) × features [j0, j1) times
/// the packed chunk (row j: panel[j·W .. j·W + W)).
template <class S, int W, int RP>
EIGEN_ALWAYS_INLINE void forward_tile(const S* x, Index ldx, Index j0, Index j1, const S* panel,
                                      S* z, Index ldz, bool accumulate) {
  using namespace Eigen::internal;
  using P = Packet<S>;
  constexpr Index PS = kPacket<S>;
  P acc[RP][W];
  for (int r = 0; r < RP; ++r)
    for (int c = 0; c < W; ++c)
      acc[r][c] = accumulate ? ploadu<P>(z + c * ldz + r * PS) : pset1<P>(S(0));
  for (Index j = j0; j < j1; ++j) {
    const S* xj = x + j * ldx;
    P xp[RP];
    for (int r = 0; r < RP; ++r) xp[r] = ploadu<P>(xj + r * PS);
    const S* pj = panel + j * W;
    for (int c = 0; c < W; ++c) {
      const P b = pset1<P>(pj[c]);
      for (int r = 0; r < RP; ++r) acc[r][c] = pmadd(xp[r], b, acc[r][c]);
    }
  }
  for (int r = 0; r < RP; ++r)
    for (int c = 0; c < W; ++c) pstoreu(z + c * ldz + r * PS, acc[r][c]);
}

/// The same for `rows` < one packet of rows, in scalars.
template <class S, int W>
void forward_rows(const S* x, Index ldx, Index rows, Index j0, Index j1, const S* panel, S* z,
                  Index ldz, bool accumulate) {
  for (Index i = 0; i < rows; ++i) {
    S acc[W];
    for (int c = 0; c < W; ++c) acc[c] = accumulate ? z[c * ldz + i] : S(0);
    for (Index j = j0; j < j1; ++j) {
      const S xv = x[j * ldx + i];
      for (int c = 0; c < W; ++c) acc[c] += xv * panel[j * W + c];
    }
    for (int c = 0; c < W; ++c) z[c * ldz + i] = acc[c];
  }
}

/// Z_b (rows × W, leading dimension ldz) = X_b (rows × F at x, leading dimension ldx) times the
/// packed chunk, in feature sweeps of kFeatureChunk.
template <class S, int W>
void forward_chunk(const S* x, Index ldx, Index rows, Index F, const S* panel, S* z, Index ldz) {
  constexpr Index PS = kPacket<S>;
  constexpr int RP = kRowPackets<W>;
  for (Index j0 = 0; j0 < F; j0 += kFeatureChunk) {
    const Index j1 = std::min(F, j0 + kFeatureChunk);
    const bool acc = j0 > 0;
    Index i = 0;
    for (; i + RP * PS <= rows; i += RP * PS)
      forward_tile<S, W, RP>(x + i, ldx, j0, j1, panel, z + i, ldz, acc);
    for (; i + PS <= rows; i += PS)
      forward_tile<S, W, 1>(x + i, ldx, j0, j1, panel, z + i, ldz, acc);
    if (i < rows) forward_rows<S, W>(x + i, ldx, rows - i, j0, j1, panel, z + i, ldz, acc);
  }
}

/// out[t + c·ldo] += Σ_i X(i, t) R(i, c) for t < JT features, c < W columns, i < rows.
template <class S, int W, int JT>
EIGEN_ALWAYS_INLINE void backward_tile(const S* x, Index ldx, Index rows, const S* r, Index ldr,
                                       S* out, Index ldo) {
  using namespace Eigen::internal;
  using P = Packet<S>;
  constexpr Index PS = kPacket<S>;
  P acc[JT][W];
  for (int t = 0; t < JT; ++t)
    for (int c = 0; c < W; ++c) acc[t][c] = pset1<P>(S(0));
  Index i = 0;
  for (; i + PS <= rows; i += PS) {
    P xp[JT];
    for (int t = 0; t < JT; ++t) xp[t] = ploadu<P>(x + t * ldx + i);
    for (int c = 0; c < W; ++c) {
      const P rp = ploadu<P>(r + c * ldr + i);
      for (int t = 0; t < JT; ++t) acc[t][c] = pmadd(xp[t], rp, acc[t][c]);
    }
  }
  for (int t = 0; t < JT; ++t)
    for (int c = 0; c < W; ++c) {
      S s = predux(acc[t][c]);
      for (Index k = i; k < rows; ++k) s += x[t * ldx + k] * r[c * ldr + k];
      out[t + c * ldo] += s;
    }
}

/// Out (F × W at out, leading dimension ldo) += X_bᵀ R_b (rows × W at r, leading dimension ldr).
template <class S, int W>
void backward_chunk(const S* x, Index ldx, Index rows, Index F, const S* r, Index ldr, S* out,
                    Index ldo) {
  constexpr int JT = kFeatureTile<W>;
  Index j = 0;
  for (; j + JT <= F; j += JT)
    backward_tile<S, W, JT>(x + j * ldx, ldx, rows, r, ldr, out + j, ldo);
  for (; j < F; ++j) backward_tile<S, W, 1>(x + j * ldx, ldx, rows, r, ldr, out + j, ldo);
}

/// Reads one scalar per 64-byte line of the block, column after column: long sequential runs
/// that the hardware prefetcher streams, so the block arrives from memory at the copy bandwidth
/// before the forward's row tiles (a few lines per column at a time) touch it.
template <class S>
EIGEN_DONT_INLINE S touch_block(const S* x, Index ldx, Index rows, Index F) {
  constexpr Index line = 64 / static_cast<Index>(sizeof(S));
  S sink[4] = {S(0), S(0), S(0), S(0)};
  for (Index j = 0; j < F; ++j) {
    const S* xj = x + j * ldx;
    Index i = 0;
    for (; i + 4 * line <= rows; i += 4 * line) {
      sink[0] += xj[i];
      sink[1] += xj[i + line];
      sink[2] += xj[i + 2 * line];
      sink[3] += xj[i + 3 * line];
    }
    for (; i < rows; i += line) sink[0] += xj[i];
  }
  return sink[0] + sink[1] + sink[2] + sink[3];
}

/// Calls f(std::integral_constant<int, W>) for W = width ∈ [1, kMaxWidth].
template <class F>
void dispatch_width(Index width, F&& f) {
  switch (width) {
    case 1:
      f(std::integral_constant<int, 1>{});
      break;
    case 2:
      f(std::integral_constant<int, 2>{});
      break;
    case 3:
      f(std::integral_constant<int, 3>{});
      break;
    case 4:
      f(std::integral_constant<int, 4>{});
      break;
    case 5:
      f(std::integral_constant<int, 5>{});
      break;
    case 6:
      f(std::integral_constant<int, 6>{});
      break;
    case 7:
      f(std::integral_constant<int, 7>{});
      break;
    case 8:
      f(std::integral_constant<int, 8>{});
      break;
    case 9:
      f(std::integral_constant<int, 9>{});
      break;
    default:
      f(std::integral_constant<int, 10>{});
      break;
  }
}

}  // namespace detail

/// The fused pass. X: n × F column-major. V: F × m column-major (nullptr: no forward, `op` fills
/// Z_b itself, e.g. from a cached residual). op(group, row0, Z_b) receives Z_b as a BlockMap of
/// rows × (max(m, m_out) + extra) whose first m columns hold X_b V, and must leave R_b in its
/// first m_out columns (the `extra` columns are scratch for the op). out: F × m_out column-major
/// (nullptr: no backward; the op's side effects are the result). ws.partial holds one zeroed
/// double per group for the op (summed by the caller in group order after the pass).
/// `chunk` (≤ kMaxWidth): the columns of V and of R_b go through the microkernels `chunk` at a
/// time. A column's bits can depend on the kernel's width (the scalar row tails' rounding is
/// the compiler's), so a pass that stacks two products' columns ([W, V]) passes each product's
/// width to get each one's bits (SoftmaxRegression::evaluate_with_hvp).
template <class S, class Op>
void fused_pass(const Matrix<S>& X, const S* V, Index m, S* out, Index m_out, Index extra,
                Workspace<S>& ws, Op&& op, Index chunk = kMaxWidth) {
  chunk = std::clamp<Index>(chunk, 1, kMaxWidth);
  const Index n = X.rows(), F = X.cols();
  const Plan plan = make_plan<S>(n, F, out ? m_out : 0);
  const Index cols = std::max(m, out ? m_out : Index(0)) + extra;
  // Buffers only grow: alternating calls (evaluate, hvp, hvp_block) reuse them without
  // reallocating.
  if (V) {  // pack V row-major per column chunk of width ≤ kMaxWidth
    if (ws.panel.size() < F * m) ws.panel.resize(F * m);
    for (Index c0 = 0; c0 < m; c0 += chunk) {
      const Index w = std::min(chunk, m - c0);
      S* p = ws.panel.data() + c0 * F;
      for (Index j = 0; j < F; ++j)
        for (Index c = 0; c < w; ++c) p[j * w + c] = V[j + (c0 + c) * F];
    }
  }
  const auto groups = static_cast<std::size_t>(plan.groups);
  if (ws.z.size() < groups) ws.z.resize(groups);
  if (ws.acc.size() < groups) ws.acc.resize(groups);
  ws.partial.assign(static_cast<std::size_t>(plan.groups), 0.0);
  for (Index g = 0; g < plan.groups; ++g) {
    Matrix<S>& z = ws.z[static_cast<std::size_t>(g)];
    if (z.rows() != plan.block || z.cols() < cols) z.resize(plan.block, std::max(cols, z.cols()));
    Matrix<S>& a = ws.acc[static_cast<std::size_t>(g)];
    if (out && g > 0 && a.size() < F * m_out) a.resize(F * m_out, 1);
  }
  const S* x = X.data();
  // X beyond the cache (> kCachedBlocks blocks), or known to be cold (ws.stream): stream each
  // block in before its forward.
  const bool from_memory = (plan.blocks > kCachedBlocks || ws.stream) && V != nullptr;
  const auto run_group = [&](Index g) {
    double touched = 0;  // kept (volatile store below) so the reads are not optimised away
    Matrix<S>& zg = ws.z[static_cast<std::size_t>(g)];
    S* acc = out ? (g == 0 ? out : ws.acc[static_cast<std::size_t>(g)].data()) : nullptr;
    if (acc) std::fill(acc, acc + F * m_out, S(0));
    for (Index b = plan.first_block(g); b < plan.first_block(g + 1); ++b) {
      const Index i0 = b * plan.block, rows = std::min(plan.block, n - i0);
      if (from_memory) touched += double(detail::touch_block(x + i0, n, rows, F));
      if (V)
        for (Index c0 = 0; c0 < m; c0 += chunk)
          detail::dispatch_width(std::min(chunk, m - c0), [&](auto w) {
            detail::forward_chunk<S, decltype(w)::value>(x + i0, n, rows, F,
                                                         ws.panel.data() + c0 * F,
                                                         zg.data() + c0 * plan.block, plan.block);
          });
      op(g, i0, BlockMap<S>(zg.data(), rows, cols, Eigen::OuterStride<>(plan.block)));
      if (acc)
        for (Index c0 = 0; c0 < m_out; c0 += chunk)
          detail::dispatch_width(std::min(chunk, m_out - c0), [&](auto w) {
            detail::backward_chunk<S, decltype(w)::value>(
                x + i0, n, rows, F, zg.data() + c0 * plan.block, plan.block, acc + c0 * F, F);
          });
    }
    if (from_memory) {
      volatile double keep = touched;
      (void)keep;
    }
  };
  const bool parallel = plan.groups > 1 && double(n) * double(F) * double(std::max(m, m_out)) > 2e5;
#pragma omp parallel for schedule(static, 1) if (parallel)
  for (Index g = 0; g < plan.groups; ++g) run_group(g);
  if (out && plan.groups > 1) {  // out = Σ_g acc_g, in group order (entrywise, any thread)
    const Index total = F * m_out;
    // Threads only for a sum worth a parallel region: for P1's HVP (7,850 entries, 3 more
    // groups: 24k adds, a few µs) waking the pool again cost more than the sum itself (with
    // OMP_WAIT_POLICY=PASSIVE a wake-up per region, 20 of them per neumann(20) solve).
    const bool parallel_sum = parallel && double(total) * double(plan.groups - 1) > 1e6;
#pragma omp parallel for schedule(static) if (parallel_sum)
    for (Index e0 = 0; e0 < total; e0 += 1024) {
      const Index e1 = std::min(total, e0 + 1024);
      for (Index g = 1; g < plan.groups; ++g) {
        const S* a = ws.acc[static_cast<std::size_t>(g)].data();
        for (Index e = e0; e < e1; ++e) out[e] += a[e];
      }
    }
  }
}

}  // namespace ift::row_block
