// ift's own sequential GEMM: C (+)= A B with packed panels and a register-blocked microkernel in
// Eigen's packet primitives (AVX-512, AVX2, SSE, NEON: whatever the build targets), the
// structure of Goto & van de Geijn (2008) and BLIS (Van Zee & van de Geijn 2015):
//
//   for each KC-deep slice of k:   pack B's slice into NR-column micro-panels   (L3 / L2)
//     for each MC-row block of A:  pack it into MR-row micro-panels             (L2)
//       for each micro-panel pair: an MR × NR tile of C in registers, KC rank-1 updates
//
// Why not the linked BLAS: OpenBLAS 0.3.21 runs its Haswell (AVX2) kernels on Zen 5, half the
// width of the machine's FMA units; Eigen's own GEMM kernels are slower still here
// (bench/README.md). The MLP products (issue 15: ≥ 80% of GEMM, ≥ 1.5× PyTorch) are GEMMs of
// modest size (784 × 1000 × 256), where the packing costs O(mk + kn) against O(mnk).
//
// The tile: MR = 3 packets (24 doubles, 48 floats on AVX-512) × NR = 8 columns, 24 accumulator
// registers of 32, each B value broadcast once per k and used by 3 FMAs; enough independent FMA
// chains (24) to cover the FMA latency on two pipes. Operands are addressed by (row, column)
// strides, so A or B may be transposed views at no cost beyond the packing.
//
// Sequential and allocation-free after the first call on each thread (thread-local packing
// buffers); threads come from ift::gemm (parallel_gemm.hpp), which gives each thread a slab of C.
// The sum over k is in a fixed order (KC slices in order, k ascending within a slice), so the
// result does not depend on the thread count.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "ift/core.hpp"

namespace ift::gemm_kernel {

namespace detail {

/// Row packets per tile and columns per tile (see the header comment).
inline constexpr int kRowPackets = 3;
inline constexpr int kNR = 8;
template <class S>
inline constexpr Index kMR = kRowPackets * kPacket<S>;

/// Depth of a k slice (a B micro-panel of KC × NR stays in L1: 16 KB in double), rows of an A
/// block (MC × KC in L2: 480 KB in double), and columns of a B slice (KC × NC in L3: 4 MB).
template <class S>
inline constexpr Index kKC = sizeof(S) == 8 ? 256 : 512;
template <class S>
inline constexpr Index kMC = 10 * kMR<S>;
inline constexpr Index kNC = 2048;

/// A strided operand: element (i, j) at data[i·rs + j·cs].
template <class S>
struct View {
  const S* data;
  Index rs, cs;
  const S* at(Index i, Index j) const { return data + i * rs + j * cs; }
};

/// Packs rows [i0, i0 + mc) × columns [p0, p0 + kc) of A into MR-row micro-panels: panel q holds
/// element (i0 + q·MR + r, p0 + p) at q·MR·kc + p·MR + r; rows past mc are zero.
template <class S>
void pack_a(View<S> A, Index i0, Index mc, Index p0, Index kc, S* out) {
  constexpr Index MR = kMR<S>;
  for (Index q = 0; q < mc; q += MR) {
    const Index rows = std::min(MR, mc - q);
    S* panel = out + q * kc;
    if (A.rs == 1 && rows == MR) {
      using P = Packet<S>;
      constexpr Index PS = kPacket<S>;
      for (Index p = 0; p < kc; ++p) {
        const S* src = A.at(i0 + q, p0 + p);
        for (int r = 0; r < kRowPackets; ++r)
          Eigen::internal::pstore(panel + p * MR + r * PS, Eigen::internal::ploadu<P>(src + r * PS));
      }
    } else {
      // Rows contiguous in k (A a transposed view): read each row's run, write it strided.
      for (Index r = 0; r < rows; ++r) {
        const S* src = A.at(i0 + q + r, p0);
        for (Index p = 0; p < kc; ++p) panel[p * MR + r] = src[p * A.cs];
      }
      for (Index r = rows; r < MR; ++r)
        for (Index p = 0; p < kc; ++p) panel[p * MR + r] = S(0);
    }
  }
}

/// Packs rows [p0, p0 + kc) × columns [j0, j0 + nc) of B into NR-column micro-panels: panel q
/// holds element (p0 + p, j0 + q·NR + c) at q·NR·kc + p·NR + c; columns past nc are zero.
template <class S>
void pack_b(View<S> B, Index p0, Index kc, Index j0, Index nc, S* out) {
  constexpr Index NR = kNR;
  for (Index q = 0; q < nc; q += NR) {
    const Index cols = std::min(NR, nc - q);
    S* panel = out + q * kc;
    if (B.cs == 1) {
      for (Index p = 0; p < kc; ++p) {
        const S* src = B.at(p0 + p, j0 + q);
        for (Index c = 0; c < cols; ++c) panel[p * NR + c] = src[c];
        for (Index c = cols; c < NR; ++c) panel[p * NR + c] = S(0);
      }
    } else {
      for (Index c = 0; c < cols; ++c) {
        const S* src = B.at(p0, j0 + q + c);
        for (Index p = 0; p < kc; ++p) panel[p * NR + c] = src[p * B.rs];
      }
      for (Index c = cols; c < NR; ++c)
        for (Index p = 0; p < kc; ++p) panel[p * NR + c] = S(0);
    }
  }
}

/// An edge tile's write-back from its MR × NR buffer (out of line: the microkernel's registers
/// stay free of it).
template <class S>
EIGEN_DONT_INLINE void write_edge(const S* tile, S* c, Index ldc, Index rows, Index cols,
                                  bool accumulate, S alpha, bool full, Index offset) {
  for (Index j = 0; j < cols; ++j)
    for (Index i = full ? 0 : std::max<Index>(0, j - offset); i < rows; ++i)
      c[j * ldc + i] = std::fma(alpha, tile[j * kMR<S> + i], accumulate ? c[j * ldc + i] : S(0));
}

/// The MR × NR tile C[0 .. rows) × [0 .. cols) (column-major, leading dimension ldc)
/// = (C if accumulate, else 0) + α · the packed micro-panels' product over kc (α = 1 adds the
/// product exactly as it is: fma(1, p, c) = p + c).
/// With `offset` ≥ 0 only the elements with offset + i ≥ j are written (offset = the tile's first
/// row minus its first column in C: the lower triangle of C); offset < 0 with `full`: all.
template <class S>
EIGEN_ALWAYS_INLINE void micro_kernel(Index kc, const S* a, const S* b, S* c, Index ldc,
                                      Index rows, Index cols, bool accumulate, S alpha,
                                      bool full, Index offset) {
  using namespace Eigen::internal;
  using P = Packet<S>;
  constexpr Index PS = kPacket<S>;
  constexpr Index MR = kMR<S>;
  constexpr int RP = kRowPackets;
  P acc[RP][kNR];
  for (int r = 0; r < RP; ++r)
    for (int j = 0; j < kNR; ++j) acc[r][j] = pset1<P>(S(0));
  for (Index p = 0; p < kc; ++p) {
    P ap[RP];
    for (int r = 0; r < RP; ++r) ap[r] = pload<P>(a + r * PS);
    for (int j = 0; j < kNR; ++j) {
      const P bj = pset1<P>(b[j]);
      for (int r = 0; r < RP; ++r) acc[r][j] = pmadd(ap[r], bj, acc[r][j]);
    }
    a += MR;
    b += kNR;
  }
  const P a_scale = pset1<P>(alpha);
  if (full && rows == MR && cols == kNR) {
    for (int j = 0; j < kNR; ++j)
      for (int r = 0; r < RP; ++r) {
        S* dst = c + j * ldc + r * PS;
        pstoreu(dst, pmadd(a_scale, acc[r][j], accumulate ? ploadu<P>(dst) : pset1<P>(S(0))));
      }
    return;
  }
  alignas(64) S tile[MR * kNR];
  for (int j = 0; j < kNR; ++j)
    for (int r = 0; r < RP; ++r) pstore(tile + j * MR + r * PS, acc[r][j]);
  write_edge(tile, c, ldc, rows, cols, accumulate, alpha, full, offset);
}

/// Per-thread packing buffers, grown on first use and kept (no allocation after that).
template <class S>
struct Buffers {
  std::vector<S, Eigen::aligned_allocator<S>> a, b;
};
template <class S>
Buffers<S>& buffers() {
  thread_local Buffers<S> buf;
  return buf;
}

}  // namespace detail

/// Which elements of C a product writes: all, or the lower triangle i ≥ j only (a symmetric
/// rank-k update C ± A Aᵀ, SYRK: tiles above the diagonal are skipped, half the flops).
enum class Part { Full, Lower };

/// C (m × n, column-major with leading dimension ldc) = α A B (accumulate = false) or += α A B,
/// for A m × k and B k × n given by their (row, column) strides, on `part` of C (the rest is
/// neither read nor written). Sequential.
template <class S>
void gemm(Index m, Index n, Index k, const S* a, Index a_rs, Index a_cs, const S* b, Index b_rs,
          Index b_cs, S* c, Index ldc, bool accumulate, S alpha = S(1), Part part = Part::Full) {
  using namespace detail;
  if (m <= 0 || n <= 0) return;
  const bool lower = part == Part::Lower;
  if (k <= 0) {
    if (!accumulate)
      for (Index j = 0; j < n; ++j)
        std::fill(c + j * ldc + (lower ? std::min(j, m) : 0), c + j * ldc + m, S(0));
    return;
  }
  constexpr Index MR = kMR<S>, NR = kNR, KC = kKC<S>, MC = kMC<S>, NC = kNC;
  const View<S> A{a, a_rs, a_cs}, B{b, b_rs, b_cs};
  Buffers<S>& buf = buffers<S>();
  const Index nc_max = std::min(NC, (n + NR - 1) / NR * NR);
  const Index kc_max = std::min(KC, k);
  const Index mc_max = std::min(MC, (m + MR - 1) / MR * MR);
  if (buf.b.size() < static_cast<std::size_t>(nc_max * kc_max))
    buf.b.resize(static_cast<std::size_t>(nc_max * kc_max));
  if (buf.a.size() < static_cast<std::size_t>(mc_max * kc_max))
    buf.a.resize(static_cast<std::size_t>(mc_max * kc_max));
  for (Index j0 = 0; j0 < n; j0 += NC) {
    const Index nc = std::min(NC, n - j0);
    for (Index p0 = 0; p0 < k; p0 += KC) {
      const Index kc = std::min(KC, k - p0);
      const bool acc = accumulate || p0 > 0;
      pack_b(B, p0, kc, j0, nc, buf.b.data());
      // Lower: the rows from the slice's first column on (the blocks above it are all above
      // the diagonal).
      for (Index i0 = lower ? j0 / MR * MR : 0; i0 < m; i0 += MC) {
        const Index mc = std::min(MC, m - i0);
        pack_a(A, i0, mc, p0, kc, buf.a.data());
        for (Index jr = 0; jr < nc; jr += NR) {
          const S* bp = buf.b.data() + jr * kc;
          const Index col = j0 + jr, cols = std::min(NR, nc - jr);
          for (Index ir = 0; ir < mc; ir += MR) {
            const Index row = i0 + ir, rows = std::min(MR, mc - ir);
            if (lower && row + rows - 1 < col) continue;  // the tile is above the diagonal
            const bool full = !lower || row >= col + cols - 1;
            micro_kernel(kc, buf.a.data() + ir * kc, bp, c + col * ldc + row, ldc, rows, cols, acc,
                         alpha, full, row - col);
          }
        }
      }
    }
  }
}

}  // namespace ift::gemm_kernel
