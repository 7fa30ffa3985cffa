// C = A B or C += A B on the library's one OpenMP pool, allocation-free.
//
// Multi-threaded GEMMs allocate per call (OpenBLAS's threaded driver its job table, Eigen's
// parallel GEMM its shared packing block) and would bring their own threading. So this splits C
// into one contiguous slab per thread (along its larger dimension, so the operand read by every
// thread is the smaller one) and lets each thread multiply its slab sequentially with ift's own
// packed kernel (gemm_kernel.hpp: AVX-512 where the build targets it, 1.7–1.9× OpenBLAS 0.3.21's
// AVX2 dgemm on Zen 5), whose packing buffers are per thread and kept: no allocation after the
// first call. Scalars other than float and double, and operands without direct access, go to
// Eigen's product (or OpenBLAS's under EIGEN_USE_BLAS).
//
// A and B may be any Eigen matrix expressions with direct access (matrices, Maps, blocks,
// transposes of those); C a writable matrix, Map or block of the right size.
#pragma once

#include <Eigen/Core>
#include <type_traits>
#include <utility>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/core.hpp"
#include "ift/linalg/gemm_kernel.hpp"

namespace ift {

/// Threads a product of this many multiply-adds gets (1 below ~1 MFLOP, or inside a parallel
/// region).
inline int gemm_threads(double madds) {
#ifdef _OPENMP
  if (omp_in_parallel() || madds < 5e5) return 1;
  return omp_get_max_threads();
#else
  (void)madds;
  return 1;
#endif
}

namespace detail {

/// (row stride, column stride) of an expression with direct access.
template <class X>
std::pair<Index, Index> strides(const X& x) {
  if constexpr (std::remove_cvref_t<X>::IsRowMajor)
    return {x.outerStride(), x.innerStride()};
  else
    return {x.innerStride(), x.outerStride()};
}

template <class X>
inline constexpr bool kDirect =
    (int(std::remove_cvref_t<X>::Flags) & Eigen::DirectAccessBit) != 0;

/// c (+)= α a b, sequentially: ift's packed kernel for float and double with direct access, else
/// Eigen's product.
template <class Dst, class Lhs, class Rhs>
void sequential_product(Dst&& c, const Lhs& a, const Rhs& b, bool accumulate,
                        typename std::remove_cvref_t<Dst>::Scalar alpha) {
  using S = typename std::remove_cvref_t<Dst>::Scalar;
  constexpr bool kernel = (std::is_same_v<S, double> || std::is_same_v<S, float>) &&
                          kDirect<Dst> && kDirect<Lhs> && kDirect<Rhs> &&
                          std::is_same_v<typename Lhs::Scalar, S> &&
                          std::is_same_v<typename Rhs::Scalar, S>;
  if constexpr (kernel) {
    const auto [a_rs, a_cs] = strides(a);
    const auto [b_rs, b_cs] = strides(b);
    const auto [c_rs, c_cs] = strides(c);
    if (c_rs == 1) {
      gemm_kernel::gemm<S>(a.rows(), b.cols(), a.cols(), a.data(), a_rs, a_cs, b.data(), b_rs,
                           b_cs, c.data(), c_cs, accumulate, alpha);
      return;
    }
    if (c_cs == 1) {  // row-major C: Cᵀ = Bᵀ Aᵀ, column-major with leading dimension c_rs
      gemm_kernel::gemm<S>(b.cols(), a.rows(), a.cols(), b.data(), b_cs, b_rs, a.data(), a_cs,
                           a_rs, c.data(), c_rs, accumulate, alpha);
      return;
    }
  }
  if (accumulate)
    c.noalias() += alpha * (a * b);
  else
    c.noalias() = alpha * (a * b);
}

}  // namespace detail

/// The lower triangle (i ≥ j) of C = α A B (accumulate = false) or C += α A B, the rest of C
/// neither read nor written: a symmetric rank-k update (A B symmetric, as for B = Aᵀ) at half a
/// GEMM's flops. Sequential (its callers share their own loops among the threads); float or
/// double operands with direct access, C column-major.
template <class Dst, class Lhs, class Rhs>
void gemm_lower(Dst&& C, const Lhs& A, const Rhs& B, bool accumulate = false,
                typename std::remove_cvref_t<Dst>::Scalar alpha = 1) {
  using S = typename std::remove_cvref_t<Dst>::Scalar;
  static_assert((std::is_same_v<S, double> || std::is_same_v<S, float>) && detail::kDirect<Dst> &&
                    detail::kDirect<Lhs> && detail::kDirect<Rhs> &&
                    std::is_same_v<typename Lhs::Scalar, S> &&
                    std::is_same_v<typename Rhs::Scalar, S>,
                "gemm_lower: float or double operands with direct access");
  const auto [a_rs, a_cs] = detail::strides(A);
  const auto [b_rs, b_cs] = detail::strides(B);
  const auto [c_rs, c_cs] = detail::strides(C);
  require(c_rs == 1, "gemm_lower: C must be column-major with unit inner stride");
  gemm_kernel::gemm<S>(A.rows(), B.cols(), A.cols(), A.data(), a_rs, a_cs, B.data(), b_rs, b_cs,
                       C.data(), c_cs, accumulate, alpha, gemm_kernel::Part::Lower);
}

/// C = α A B (accumulate = false) or C += α A B (accumulate = true).
template <class Dst, class Lhs, class Rhs>
void gemm(Dst&& C, const Lhs& A, const Rhs& B, bool accumulate = false,
          typename std::remove_cvref_t<Dst>::Scalar alpha = 1) {
  const Index m = A.rows(), k = A.cols(), n = B.cols();
  const auto product = [&](auto&& c, const auto& a, const auto& b) {
    detail::sequential_product(c, a, b, accumulate, alpha);
  };
  const int threads = gemm_threads(double(m) * double(k) * double(n));
  if (threads <= 1 || (m < 16 * threads && n < 16 * threads)) {
    product(C, A, B);
    return;
  }
  const bool split_columns = n >= m;
  const Index extent = split_columns ? n : m;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const Index t = omp_get_thread_num(), T = omp_get_num_threads();
    const Index begin = extent * t / T, end = extent * (t + 1) / T;
    if (end > begin) {
      if (split_columns)
        product(C.middleCols(begin, end - begin), A, B.middleCols(begin, end - begin));
      else
        product(C.middleRows(begin, end - begin), A.middleRows(begin, end - begin), B);
    }
  }
#else
  (void)extent;
  (void)split_columns;
  product(C, A, B);
#endif
}

}  // namespace ift
