// C = A B or C += A B on the library's one OpenMP pool, allocation-free.
//
// Eigen's (or OpenBLAS's) own multi-threaded GEMM allocates per call: OpenBLAS's threaded driver
// mallocs its job table, Eigen's parallel GEMM its shared packing block. Inside an OpenMP
// parallel region both run single-threaded (Eigen checks omp_get_num_threads(); OpenBLAS's
// OpenMP build, the one the library links, checks omp_in_parallel()), and OpenBLAS's
// single-threaded GEMM packs into buffers it owns. So this splits C into one contiguous slab per
// thread (along its larger dimension, so the operand read by every thread is the smaller one)
// and lets each thread multiply its slab sequentially: no allocation on 1 or 2 threads with the
// OpenBLAS build. With Eigen's own kernels (IFT_USE_BLAS=OFF) each sequential product still
// allocates its packing buffers (Eigen's, beyond EIGEN_STACK_ALLOCATION_LIMIT).
//
// A and B may be any Eigen matrix expressions with direct access (matrices, Maps, blocks,
// transposes of those); C a writable matrix, Map or block of the right size.
#pragma once

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/core.hpp"

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

/// C = A B (accumulate = false) or C += A B (accumulate = true).
template <class Dst, class Lhs, class Rhs>
void gemm(Dst&& C, const Lhs& A, const Rhs& B, bool accumulate = false) {
  const Index m = A.rows(), k = A.cols(), n = B.cols();
  const auto product = [&](auto&& c, const auto& a, const auto& b) {
    if (accumulate)
      c.noalias() += a * b;
    else
      c.noalias() = a * b;
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
