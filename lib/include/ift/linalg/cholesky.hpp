// Dense Cholesky factorisation that uses every core, and a 1-norm condition estimate from it.
//
// A blocked right-looking algorithm whose two O(n³) parts are split into independent tiles shared
// among the OpenMP threads (one thread pool, DESIGN.md §5):
//   for each panel k of width b:  A11 = L11 L11ᵀ      (Eigen's LLT kernel in place, b × b)
//                                 A21 ← A21 L11⁻ᵀ     (row blocks in parallel)
//                                 A22 ← A22 − A21 A21ᵀ (lower column blocks in parallel on
//                                                       ift's GEMM kernel: the diagonal tile's
//                                                       lower triangle, then the tiles below)
// Only the lower triangle of A is read and written; the strict upper triangle is left as it was.
//
// Why not LAPACK's potrf: Eigen's LLT runs its rank updates on one core, and OpenBLAS 0.3.21's
// potrf runs its AVX2 kernels on Zen 5; with the trailing update on gemm_kernel.hpp this is
// 1.6× faster than OpenBLAS's spotrf / dpotrf at D = 7,850 on one thread (191 / 90 GFLOP/s
// against 117 / 57) and no slower from n = 100 up (bench/README.md, "Own GEMM kernel").
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <Eigen/Cholesky>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/core.hpp"
#include "ift/linalg/parallel_gemm.hpp"

namespace ift {

/// Factorises the symmetric matrix held in the lower triangle of A in place by the tiled algorithm
/// above: on success A's lower triangle is L with A = L Lᵀ and the result is −1; otherwise the
/// index of the first column whose pivot was not positive (or not finite), and A is partly
/// overwritten. `block` is the panel width (the tiles' GEMM depth; 256 measured best at
/// n = 4,000 in float and double against 128, 384, 512).
template <class S>
Index cholesky_in_place(Matrix<S>& A, Index block = 256) {
  require(A.rows() == A.cols(), "cholesky_in_place: the matrix must be square");
  require(block >= 1, "cholesky_in_place: block must be >= 1");
  const Index n = A.rows();
  for (Index k = 0; k < n; k += block) {
    const Index b = std::min(block, n - k), m = n - k - b;
    Eigen::Ref<Matrix<S>> A11 = A.block(k, k, b, b);
    // Eigen's own in-place kernel (what LLT::compute runs), which returns the failing column.
    const Index failed = Eigen::internal::llt_inplace<S, Eigen::Lower>::blocked(A11);
    if (failed >= 0) return k + failed;
    for (Index j = 0; j < b; ++j)
      if (!std::isfinite(A11(j, j))) return k + j;
    if (m == 0) break;
    // Row blocks of the panel below: A21 ← A21 L11⁻ᵀ.
    const Index row_blocks = (m + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (Index r = 0; r < row_blocks; ++r) {
      const Index r0 = r * block, rows = std::min(block, m - r0);
      auto panel = A.block(k + b + r0, k, rows, b);
      A11.adjoint().template triangularView<Eigen::Upper>().template solveInPlace<Eigen::OnTheRight>(
          panel);
    }
    // Trailing update of the lower triangle, one column block per task (largest first).
    const auto A21 = A.block(k + b, k, m, b);
    const Index col_blocks = (m + block - 1) / block;
#pragma omp parallel for schedule(dynamic, 1)
    for (Index c = 0; c < col_blocks; ++c) {
      const Index c0 = c * block, cols = std::min(block, m - c0), below = m - c0 - cols;
      const Index j = k + b + c0;
      gemm_lower(A.block(j, j, cols, cols), A21.middleRows(c0, cols),
                 A21.middleRows(c0, cols).transpose(), /*accumulate=*/true, S(-1));
      if (below > 0)
        gemm(A.block(j + cols, j, below, cols), A21.middleRows(c0 + cols, below),
             A21.middleRows(c0, cols).transpose(), /*accumulate=*/true, S(-1));
    }
  }
  return -1;
}

/// x ← (L Lᵀ)⁻¹ x for a lower-triangular L from cholesky_in_place (the strict upper triangle of
/// the storage is ignored).
template <class S, class Rhs>
void cholesky_solve_in_place(const Matrix<S>& L, Rhs&& x) {
  L.template triangularView<Eigen::Lower>().solveInPlace(x);
  L.template triangularView<Eigen::Lower>().adjoint().solveInPlace(x);
}

namespace cholesky_detail {
#ifdef _OPENMP
inline int threads_here() { return omp_get_num_threads(); }
inline int thread_here() { return omp_get_thread_num(); }
#else
inline int threads_here() { return 1; }
inline int thread_here() { return 0; }
#endif

/// Column j of the lower triangle: Σ_{i>=j} |a_i| into `sum`, max |a_i| into `top`, |a_i| for
/// i > j into acc[i] (row i's part of column i's sum), and a_i rounded to float into f when
/// kConvert.
template <bool kConvert, class S>
inline void lower_column(const S* a, float* f, double* acc, Index j, Index n, double& sum,
                         double& top) {
  if constexpr (kConvert) f[j] = static_cast<float>(a[j]);
  sum = std::abs(static_cast<double>(a[j]));  // the diagonal belongs to column j alone
  top = sum;
  for (Index i = j + 1; i < n; ++i) {
    const double m = std::abs(static_cast<double>(a[i]));
    if constexpr (kConvert) f[i] = static_cast<float>(a[i]);
    sum += m;
    acc[i] += m;
    top = m > top ? m : top;
  }
}

/// One pass over the lower triangle of the symmetric A, shared among the OpenMP threads:
/// returns ‖A‖₁ (= ‖A‖∞), the largest |a_ij| in `top`, and, when `low` is given, the lower
/// triangle rounded to float in it (resized to n × n; its strict upper triangle is left unset).
/// |a_ik| for i > k also belongs to column i's sum: accumulated per thread (a fixed interleaved
/// assignment of the columns), then added in thread order, so the result is the same bits on
/// every run with the same thread count.
template <class S>
double lower_pass(const Matrix<S>& A, Matrix<float>* low, double& top) {
  const Index n = A.rows();
  if (low) low->resize(n, n);
  Vector<double> column = Vector<double>::Zero(n);
  std::vector<Vector<double>> row_parts;
  std::vector<double> tops;
#pragma omp parallel if (n >= 256)
  {
#pragma omp single
    {
      row_parts.assign(static_cast<std::size_t>(threads_here()), Vector<double>::Zero(n));
      tops.assign(row_parts.size(), 0.0);
    }
    const auto t = static_cast<std::size_t>(thread_here());
    double* acc = row_parts[t].data();
    double thread_top = 0;
#pragma omp for schedule(static, 16)
    for (Index j = 0; j < n; ++j) {
      double sum = 0, column_top = 0;
      const S* a = A.data() + j * n;
      if (low)
        lower_column<true>(a, low->data() + j * n, acc, j, n, sum, column_top);
      else
        lower_column<false>(a, nullptr, acc, j, n, sum, column_top);
      column[j] = sum;
      thread_top = column_top > thread_top ? column_top : thread_top;
    }
    tops[t] = thread_top;
  }
  for (const Vector<double>& part : row_parts) column += part;
  top = 0;
  for (const double x : tops) top = x > top ? x : top;
  // A non-finite entry leaves its column sums non-finite; maxCoeff need not propagate a NaN.
  if (!column.allFinite()) return std::numeric_limits<double>::quiet_NaN();
  return n > 0 ? column.maxCoeff() : 0.0;
}
}  // namespace cholesky_detail

/// ‖A‖₁ of the symmetric matrix held in A's lower triangle (one parallel pass over it).
template <class S>
double symmetric_l1_norm(const Matrix<S>& A) {
  double top = 0;
  return cholesky_detail::lower_pass(A, nullptr, top);
}

/// Rounds the lower triangle of the symmetric A to float into `low` (resized to n × n; its strict
/// upper triangle is left unset) and returns ‖A‖₁ (= ‖A‖∞) in the same pass over A, which is
/// what the mixed-precision solve needs from A before its float factorisation: one read of the
/// lower triangle, shared among the OpenMP threads, instead of a copy and a norm loop.
/// `representable` becomes false when an entry's magnitude exceeds float's largest value, or an
/// entry is not finite (the norm then is not finite either).
inline double lower_to_float(const Matrix<double>& A, Matrix<float>& low, bool& representable) {
  double top = 0;
  const double norm = cholesky_detail::lower_pass(A, &low, top);
  representable =
      std::isfinite(norm) && top <= static_cast<double>(std::numeric_limits<float>::max());
  return norm;
}

/// Reciprocal condition number 1 / (‖A‖₁ ‖A⁻¹‖₁) with ‖A⁻¹‖₁ estimated from the factor by
/// Hager's method with Higham's extra test vector (what LAPACK's xPOCON and Eigen's rcond() do):
/// a lower bound on ‖A⁻¹‖₁, exact in most cases, a few solves of O(n²) each.
template <class S>
double cholesky_rcond(const Matrix<S>& L, double a_l1_norm) {
  const Index n = L.rows();
  if (n == 0 || !(a_l1_norm > 0)) return 0.0;
  Vector<S> x = Vector<S>::Constant(n, S(1) / static_cast<S>(n)), z(n);
  cholesky_solve_in_place(L, x);
  double estimate = static_cast<double>(x.template lpNorm<1>());
  Index previous = -1;
  for (int iteration = 0; iteration < 5; ++iteration) {
    z = x.unaryExpr([](S v) { return v >= S(0) ? S(1) : S(-1); });
    cholesky_solve_in_place(L, z);  // A⁻ᵀ = A⁻¹
    Index j = 0;
    z.cwiseAbs().maxCoeff(&j);
    if (j == previous) break;
    x.setZero();
    x(j) = S(1);
    cholesky_solve_in_place(L, x);
    const double next = static_cast<double>(x.template lpNorm<1>());
    if (next <= estimate) break;
    estimate = next;
    previous = j;
  }
  // Higham's alternating vector guards against the cases where the iteration stalls.
  for (Index i = 0; i < n; ++i)
    x(i) = static_cast<S>((i % 2 ? -1.0 : 1.0) *
                          (1.0 + static_cast<double>(i) / static_cast<double>(std::max<Index>(n - 1, 1))));
  cholesky_solve_in_place(L, x);
  estimate = std::max(estimate, 2.0 * static_cast<double>(x.template lpNorm<1>()) / (3.0 * double(n)));
  if (!std::isfinite(estimate) || estimate <= 0) return 0.0;
  return 1.0 / (a_l1_norm * estimate);
}

}  // namespace ift
