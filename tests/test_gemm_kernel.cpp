// ift's own packed GEMM (linalg/gemm_kernel.hpp) and the threaded ift::gemm over it
// (linalg/parallel_gemm.hpp): every product within the forward error bound of a dot product,
// |C − AB| ≤ γ_k |A| |B| elementwise (γ_k = k·u / (1 − k·u), u the unit round-off; Higham,
// Accuracy and Stability of Numerical Algorithms, §3.5), against a long-double reference, at
// sizes that cross every blocking edge (MR, NR, KC, MC, NC); transposed operands, accumulation,
// a row-major destination, k = 0, and the same bits on one and two threads.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/linalg/gemm_kernel.hpp"
#include "ift/linalg/parallel_gemm.hpp"

namespace {

using ift::Index;
using ift::Matrix;
using Scalars = ::testing::Types<double, float>;

template <class S>
Matrix<S> random_matrix(Index rows, Index cols, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Matrix<S> M(rows, cols);
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) M(i, j) = static_cast<S>(u(gen));
  return M;
}

/// Largest |C − (C0 + A B)| / (γ_k (|C0| + |A| |B|)) over the elements, with the reference in
/// long double (C0 = 0 when not accumulating). At most 1 for any correct summation order.
/// With `lower`, the elements i ≥ j only.
template <class S, class MC, class MA, class MB>
double bound_ratio(const MC& C, const MA& A, const MB& B, const Matrix<S>* C0,
                   bool lower = false) {
  const Index m = A.rows(), k = A.cols(), n = B.cols();
  const long double u = std::numeric_limits<S>::epsilon() / 2;
  const long double gamma = (k + 1) * u / (1 - (k + 1) * u);  // + 1: the accumulation's add
  double worst = 0;
  for (Index j = 0; j < n; ++j)
    for (Index i = lower ? j : 0; i < m; ++i) {
      long double exact = C0 ? (*C0)(i, j) : 0, magnitude = C0 ? std::fabs((*C0)(i, j)) : 0;
      for (Index p = 0; p < k; ++p) {
        exact += static_cast<long double>(A(i, p)) * B(p, j);
        magnitude += std::fabs(static_cast<long double>(A(i, p)) * B(p, j));
      }
      const long double err = std::fabs(static_cast<long double>(C(i, j)) - exact);
      if (err == 0) continue;
      worst = std::max(worst, static_cast<double>(err / (gamma * magnitude)));
    }
  return worst;
}

template <class S>
class GemmKernel : public ::testing::Test {};
TYPED_TEST_SUITE(GemmKernel, Scalars);

/// Sizes straddling the tile (MR rows, NR = 8 columns), the k slice (KC), the A block (MC).
TYPED_TEST(GemmKernel, WithinTheDotProductErrorBoundAcrossBlockEdges) {
  using S = TypeParam;
  namespace gk = ift::gemm_kernel::detail;
  const Index MR = gk::kMR<S>, KC = gk::kKC<S>, MC = gk::kMC<S>;
  const Index ms[] = {1, MR - 1, MR, MR + 1, MC + MR + 3};
  const Index ns[] = {1, 7, 8, 9, 17};
  const Index ks[] = {1, 5, KC, KC + 1, 2 * KC + 37};
  unsigned seed = 1;
  for (const Index m : ms)
    for (const Index n : ns)
      for (const Index k : ks) {
        const Matrix<S> A = random_matrix<S>(m, k, seed++), B = random_matrix<S>(k, n, seed++);
        Matrix<S> C = Matrix<S>::Constant(m, n, S(7));  // overwritten, not accumulated
        ift::gemm_kernel::gemm<S>(m, n, k, A.data(), 1, A.outerStride(), B.data(), 1,
                                  B.outerStride(), C.data(), C.outerStride(), false);
        ASSERT_LE(bound_ratio<S>(C, A, B, nullptr), 1.0) << "m " << m << " n " << n << " k " << k;
      }
}

/// More columns than one packed B slice (NC): every slice lands in its own columns.
TYPED_TEST(GemmKernel, ColumnsBeyondOneBSlice) {
  using S = TypeParam;
  const Index n = ift::gemm_kernel::detail::kNC + 13;
  const Matrix<S> A = random_matrix<S>(5, 3, 11), B = random_matrix<S>(3, n, 12);
  Matrix<S> C(5, n);
  ift::gemm_kernel::gemm<S>(5, n, 3, A.data(), 1, 5, B.data(), 1, 3, C.data(), 5, false);
  EXPECT_LE(bound_ratio<S>(C, A, B, nullptr), 1.0);
}

/// Through ift::gemm: transposed operands and blocks with outer strides (the MLP's Xᵀ δ and
/// δ Wᵀ with W a block of the parameter vector), accumulation, a row-major destination.
TYPED_TEST(GemmKernel, TransposedStridedAccumulatedAndRowMajor) {
  using S = TypeParam;
  const Index m = 61, n = 19, k = 300;
  const Matrix<S> At = random_matrix<S>(k, m, 21);           // A = Atᵀ
  const Matrix<S> Wbig = random_matrix<S>(n + 3, k + 1, 22);  // B = Wbig.topLeft(n, k)ᵀ
  const auto A = At.transpose();
  const auto B = Wbig.topLeftCorner(n, k).transpose();
  const Matrix<S> C0 = random_matrix<S>(m, n, 23);
  const Matrix<S> Ad = A, Bd = B;

  Matrix<S> C = C0;
  ift::gemm(C, A, B, /*accumulate=*/true);
  EXPECT_LE(bound_ratio<S>(C, Ad, Bd, &C0), 1.0);

  Matrix<S> Cbig = Matrix<S>::Constant(m + 4, n + 2, S(3));
  ift::gemm(Cbig.block(2, 1, m, n), A, B);
  EXPECT_LE(bound_ratio<S>(Cbig.block(2, 1, m, n), Ad, Bd, nullptr), 1.0);
  EXPECT_TRUE((Cbig.topRows(2).array() == S(3)).all());  // outside the block: untouched
  EXPECT_TRUE((Cbig.col(0).array() == S(3)).all());

  Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> R(m, n);
  ift::gemm(R, A, B);
  EXPECT_LE(bound_ratio<S>(R, Ad, Bd, nullptr), 1.0);
}

/// gemm_lower: the lower triangle (i ≥ j) of C − A Aᵀ within the error bound, every element
/// above it untouched, on square and trapezoidal C across the tile and block edges.
TYPED_TEST(GemmKernel, LowerTriangleOnlyWithinTheBound) {
  using S = TypeParam;
  namespace gk = ift::gemm_kernel::detail;
  const Index MR = gk::kMR<S>, MC = gk::kMC<S>;
  const Index sizes[][2] = {{1, 1}, {9, 9}, {MR + 3, MR + 3}, {MC + 17, MC + 17}, {70, 23}};
  unsigned seed = 41;
  for (const auto& size : sizes) {
    const Index m = size[0], n = size[1], k = gk::kKC<S> + 9;
    const Matrix<S> A = random_matrix<S>(m, k, seed++);
    const Matrix<S> At = A.topRows(n).transpose();  // C's columns: the first n rows of A
    const Matrix<S> minusA = -A;
    const Matrix<S> C0 = random_matrix<S>(m, n, seed++);
    for (const bool accumulate : {false, true}) {
      Matrix<S> C = C0;
      ift::gemm_lower(C, A, At, accumulate, S(-1));
      bool upper_untouched = true;
      for (Index j = 0; j < n; ++j)
        for (Index i = 0; i < std::min(j, m); ++i) upper_untouched &= C(i, j) == C0(i, j);
      EXPECT_TRUE(upper_untouched) << "m " << m << " n " << n;
      EXPECT_LE(bound_ratio<S>(C, minusA, At, accumulate ? &C0 : nullptr, /*lower=*/true), 1.0)
          << "m " << m << " n " << n << (accumulate ? " accumulated" : "");
    }
  }
}

TYPED_TEST(GemmKernel, EmptyInnerDimensionGivesZeroOrKeepsC) {
  using S = TypeParam;
  Matrix<S> A(4, 0), B(0, 3), C = Matrix<S>::Constant(4, 3, S(2));
  ift::gemm_kernel::gemm<S>(4, 3, 0, A.data(), 1, 4, B.data(), 1, 0, C.data(), 4, true);
  EXPECT_TRUE((C.array() == S(2)).all());
  ift::gemm_kernel::gemm<S>(4, 3, 0, A.data(), 1, 4, B.data(), 1, 0, C.data(), 4, false);
  EXPECT_TRUE((C.array() == S(0)).all());
}

/// Each element's sum runs in the same order whichever slab holds it: the product has the same
/// bits on one and on two threads (ift::gemm splits C above its ~1 MFLOP threshold).
TYPED_TEST(GemmKernel, SameBitsOnOneAndTwoThreads) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  using S = TypeParam;
  const int before = omp_get_max_threads();
  const Matrix<S> A = random_matrix<S>(300, 400, 31), B = random_matrix<S>(400, 70, 32);
  const Matrix<S> X = random_matrix<S>(400, 90, 33);  // a wide C: split along columns
  Matrix<S> C1(300, 70), C2(300, 70), D1(70, 90), D2(70, 90);
  omp_set_num_threads(1);
  ift::gemm(C1, A, B);
  ift::gemm(D1, B.transpose(), X);
  omp_set_num_threads(2);
  ift::gemm(C2, A, B);
  ift::gemm(D2, B.transpose(), X);
  omp_set_num_threads(before);
  EXPECT_TRUE(C1 == C2);
  EXPECT_TRUE(D1 == D2);
  EXPECT_LE(bound_ratio<S>(C2, A, B, nullptr), 1.0);
#endif
}

}  // namespace
