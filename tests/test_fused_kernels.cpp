// The fused row-block kernels of the linear models (ift/models/row_block.hpp, issue 15) against
// the straightforward formulas they replace (two GEMMs with the whole X, written here), the dense
// Hessian, and themselves on another thread count (bitwise: the block groups are fixed by n, F and
// the scalar, never by the threads). Sizes are taken from the kernels' own plan so that they
// cover n = 1, n below one block, n an exact multiple of it, n with a partial last block, more
// blocks than groups (groups of several blocks) and X beyond the cache (more than 16 blocks).
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fixtures.hpp"
#include "ift/models/logistic_regression.hpp"
#include "ift/models/row_block.hpp"
#include "ift/models/softmax_regression.hpp"

namespace ift {
namespace {

/// 1e-13 relative in double (the bound), the same number of ulps in float.
template <class S>
double tolerance() {
  return 1e-13 * double(std::numeric_limits<S>::epsilon()) /
         double(std::numeric_limits<double>::epsilon());
}

template <class A, class B>
double relative_error(const A& a, const B& b) {
  const double scale = std::max(double(b.norm()), 1e-300);
  return double((a - b).norm()) / scale;
}

/// Row counts around the plan's block size for F features and C output columns.
template <class S>
std::vector<Index> row_counts(Index F, Index C) {
  (void)C;
  const Index b = row_block::max_block_rows<S>(F);
  // The last: more than 16 blocks, where each block is streamed in before its forward pass.
  return {1, 7, b - 3, 2 * b, 3 * b + 5, (row_block::kMaxGroups + 3) * b + 11, 17 * b + 5};
}

void set_threads(int t) {
#ifdef _OPENMP
  omp_set_num_threads(t);
#else
  (void)t;
#endif
}

/// The number of threads the tests compare against one (2, as on the benchmark machine).
constexpr int kThreads = 2;

template <class S>
Dataset<S> data_for(Index n, Index F, Index classes, std::uint64_t seed) {
  // F − 1 features plus the bias column; uniform-ish pixels via |N(0,1)| like image data.
  Dataset<S> d = testing::random_classification<S>(n, F - 1, classes, seed, true);
  return d;
}

/// Everything a caller can get from the model at one point, on the current thread count.
template <class Model>
struct Outputs {
  using S = typename Model::Scalar;
  S loss;
  decltype(typename Model::Cache{}.probs) probs;
  Vector<S> gradient, cached_gradient, hvp, gn, fisher;
  Matrix<S> block;

  Outputs(const Model& model, const Dataset<S>& data, const Vector<S>& w, const Vector<S>& v,
          const Matrix<S>& V) {
    typename Model::Cache cache;
    loss = model.evaluate(data, w, cache, nullptr);
    model.gradient_from_cache(data, cache, cached_gradient);
    model.evaluate(data, w, cache, &gradient);
    probs = cache.probs;
    model.hvp(data, w, cache, v, hvp);
    model.gauss_newton_product(data, w, cache, v, gn);
    model.fisher_product(data, w, cache, v, fisher);
    model.hvp_block(data, w, cache, V, block);
  }

  /// Against the reference formulas (in double) to `tolerance<S>()`, and bitwise against the
  /// same calls on another thread count.
  template <class P>
  void check(double ref_loss, const P& ref_probs, const Vector<double>& ref_gradient,
             const Vector<double>& ref_hvp, const Vector<double>& ref_fisher,
             const Matrix<double>& ref_block, const Outputs& other) const {
    const double tol = tolerance<S>();
    EXPECT_LE(std::abs(double(loss) - ref_loss) / std::abs(ref_loss), tol);
    EXPECT_LE(relative_error(probs.template cast<double>(), ref_probs), tol);
    EXPECT_LE(relative_error(gradient.template cast<double>(), ref_gradient), tol);
    EXPECT_LE(relative_error(cached_gradient.template cast<double>(), ref_gradient), tol);
    EXPECT_LE(relative_error(hvp.template cast<double>(), ref_hvp), tol);
    EXPECT_LE(relative_error(fisher.template cast<double>(), ref_fisher), tol);
    EXPECT_LE(relative_error(block.template cast<double>(), ref_block), tol);
    EXPECT_TRUE(gn == hvp);  // one code path
    // Thread-count determinism: the same bits on 1 and 2 threads.
    EXPECT_EQ(loss, other.loss);
    EXPECT_TRUE(probs == other.probs);
    EXPECT_TRUE(gradient == other.gradient);
    EXPECT_TRUE(cached_gradient == other.cached_gradient);
    EXPECT_TRUE(hvp == other.hvp);
    EXPECT_TRUE(fisher == other.fisher);
    EXPECT_TRUE(block == other.block);
  }
};

/// The model's outputs on one thread, checked against the references and against kThreads.
template <class Model, class P>
void check_model(const Model& model, const Dataset<typename Model::Scalar>& data,
                 const Vector<typename Model::Scalar>& w, const Vector<typename Model::Scalar>& v,
                 const Matrix<typename Model::Scalar>& V, double loss, const P& probs,
                 const Vector<double>& grad, const Vector<double>& hv, const Vector<double>& fv,
                 const Matrix<double>& HV) {
  set_threads(1);
  const Outputs<Model> one(model, data, w, v, V);
  set_threads(kThreads);
  const Outputs<Model> two(model, data, w, v, V);
  set_threads(1);
  one.check(loss, probs, grad, hv, fv, HV, two);
}

template <class S>
void check_softmax(Index F, Index C, Index m) {
  const SoftmaxRegression<S> model(F, C);
  const Index D = F * C;
  for (const Index n : row_counts<S>(F, C * m)) {
    SCOPED_TRACE("n = " + std::to_string(n) + ", F = " + std::to_string(F) +
                 ", C = " + std::to_string(C) + ", m = " + std::to_string(m));
    const Dataset<S> data = data_for<S>(n, F, C, 11 + n);
    const Vector<S> w = testing::random_vector<S>(D, 3, 0.3);
    const Vector<S> v = testing::random_vector<S>(D, 4);
    Matrix<S> V(D, m);
    for (Index j = 0; j < m; ++j) V.col(j) = testing::random_vector<S>(D, 100 + j);

    // Reference: the formulas of the two-GEMM implementation, on the whole X, in double.
    const Matrix<double> X = data.X.template cast<double>();
    const Vector<double> wd = w.template cast<double>();
    const Eigen::Map<const Matrix<double>> Wt(wd.data(), F, C);
    Matrix<double> Z = X * Wt, P(n, C), Res(n, C);
    double loss = 0;
    for (Index i = 0; i < n; ++i) {
      const double zmax = Z.row(i).maxCoeff();
      const double lse = zmax + std::log((Z.row(i).array() - zmax).exp().sum());
      loss += lse - Z(i, data.labels(i));
      P.row(i) = (Z.row(i).array() - lse).exp().matrix();
      Res.row(i) = P.row(i) / double(n);
      Res(i, data.labels(i)) -= 1.0 / double(n);
    }
    loss /= double(n);
    Vector<double> grad(D);
    Eigen::Map<Matrix<double>>(grad.data(), F, C) = X.transpose() * Res;
    const auto curvature = [&](const Vector<double>& vd, bool fisher) {
      const Eigen::Map<const Matrix<double>> Vm(vd.data(), F, C);
      Matrix<double> R = X * Vm;
      for (Index i = 0; i < n; ++i) {
        if (fisher) {
          const double s = double(n) * Res.row(i).dot(R.row(i));
          R.row(i) = s * Res.row(i);
        } else {
          const double mean = P.row(i).dot(R.row(i));
          R.row(i) = (P.row(i).array() * (R.row(i).array() - mean) / double(n)).matrix();
        }
      }
      Vector<double> out(D);
      Eigen::Map<Matrix<double>>(out.data(), F, C) = X.transpose() * R;
      return out;
    };
    const Vector<double> hv = curvature(v.template cast<double>(), false);
    const Vector<double> fv = curvature(v.template cast<double>(), true);
    Matrix<double> HV(D, m);
    for (Index j = 0; j < m; ++j) HV.col(j) = curvature(V.col(j).template cast<double>(), false);

    check_model(model, data, w, v, V, loss, P, grad, hv, fv, HV);
  }
}

TEST(FusedKernels, SoftmaxMatchesTwoGemmFormulasDouble) { check_softmax<double>(131, 10, 3); }
TEST(FusedKernels, SoftmaxMatchesTwoGemmFormulasFloat) { check_softmax<float>(131, 10, 3); }
// C·m = 39 columns: chunks of 10, 10, 10, 9; C = 3: one chunk of 3 columns per vector.
TEST(FusedKernels, SoftmaxOddShapesDouble) { check_softmax<double>(37, 3, 13); }
TEST(FusedKernels, SoftmaxOddShapesFloat) { check_softmax<float>(37, 3, 13); }

/// The fused HVP equals the dense Kronecker-block Hessian (an independent formula) times v, to
/// 1e-13 of Σ|H||v| (the products' rounding scale). Small weights keep the probabilities away from
/// 1: there the dense formula's p(1 − p) loses digits to cancellation (1e-11 at p = 1 − 1e-7 for
/// n = 1, while the two-GEMM formula and the fused pass agree to 1e-17).
TEST(FusedKernels, SoftmaxHvpEqualsDenseHessianTimesV) {
  const Index F = 41, C = 4, D = F * C;
  const SoftmaxRegression<double> model(F, C);
  for (const Index n : row_counts<double>(F, C)) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Dataset<double> data = data_for<double>(n, F, C, 5 + n);
    const Vector<double> w = testing::random_vector<double>(D, 6, 0.02);
    const Vector<double> v = testing::random_vector<double>(D, 7);
    SoftmaxRegression<double>::Cache cache;
    model.evaluate(data, w, cache, nullptr);
    Matrix<double> H;
    model.hessian(data, w, cache, H);
    Vector<double> hv;
    model.hvp(data, w, cache, v, hv);
    const Vector<double> scale = H.cwiseAbs() * v.cwiseAbs();
    EXPECT_LE((hv - H * v).norm() / scale.norm(), 1e-13);
  }
}

// ---- Binary logistic regression -----------------------------------------------------------------

template <class S>
void check_logistic(Index F, Index m) {
  const LogisticRegression<S> model(F);
  for (const Index n : row_counts<S>(F, m)) {
    SCOPED_TRACE("n = " + std::to_string(n) + ", F = " + std::to_string(F) +
                 ", m = " + std::to_string(m));
    const Dataset<S> data = data_for<S>(n, F, 2, 21 + n);
    const Vector<S> w = testing::random_vector<S>(F, 8, 0.3);
    const Vector<S> v = testing::random_vector<S>(F, 9);
    Matrix<S> V(F, m);
    for (Index j = 0; j < m; ++j) V.col(j) = testing::random_vector<S>(F, 200 + j);

    const Matrix<double> X = data.X.template cast<double>();
    const Vector<double> z = X * w.template cast<double>();
    Vector<double> p(n), r(n);
    double loss = 0;
    for (Index i = 0; i < n; ++i) {
      const double y = data.labels(i);
      loss += std::max(z(i), 0.0) + std::log1p(std::exp(-std::abs(z(i)))) - y * z(i);
      p(i) = 1.0 / (1.0 + std::exp(-z(i)));
      r(i) = (p(i) - y) / double(n);
    }
    loss /= double(n);
    const Vector<double> grad = X.transpose() * r;
    const Vector<double> d = (p.array() * (1.0 - p.array()) / double(n)).matrix();
    const Vector<double> dv = X.transpose() * (d.asDiagonal() * (X * v.template cast<double>()));
    const Vector<double> fv =
        X.transpose() *
        ((double(n) * r.array().square()).matrix().asDiagonal() * (X * v.template cast<double>()));
    const Matrix<double> HV = X.transpose() * (d.asDiagonal() * (X * V.template cast<double>()));

    check_model(model, data, w, v, V, loss, p, grad, dv, fv, HV);
  }
}

TEST(FusedKernels, LogisticMatchesTwoGemmFormulasDouble) { check_logistic<double>(131, 13); }
TEST(FusedKernels, LogisticMatchesTwoGemmFormulasFloat) { check_logistic<float>(131, 13); }
TEST(FusedKernels, LogisticOddShapesDouble) { check_logistic<double>(5, 2); }

/// The plan depends on n, F and the scalar only; every row lies in exactly one block and every
/// block in one group.
TEST(FusedKernels, PlanCoversEveryRowOnce) {
  for (const Index F : {1, 5, 131, 785})
    for (const Index n : {1, 63, 64, 65, 1000, 10000}) {
      const row_block::Plan p = row_block::make_plan<double>(n, F, 10);
      EXPECT_GE(p.block * p.blocks, n);
      EXPECT_LT(p.block * (p.blocks - 1), n);
      EXPECT_GE(p.groups, 1);
      EXPECT_LE(p.groups, std::min(p.blocks, row_block::kMaxGroups));
      EXPECT_EQ(p.first_block(0), 0);
      EXPECT_EQ(p.first_block(p.groups), p.blocks);
      for (Index g = 0; g < p.groups; ++g) EXPECT_LT(p.first_block(g), p.first_block(g + 1));
      EXPECT_LE(p.block, row_block::max_block_rows<double>(F));
    }
}

/// The blocks are balanced for the threads, which take the groups round-robin: several blocks
/// come in an even number, and the last one (the only one that can be shorter) is short by less
/// than a packet of rows per block (the P1 case, n = 1,000 at F = 785: 4 blocks of 256 and 232
/// rows, not 320, 320, 320 and 40).
TEST(FusedKernels, PlanBalancesBlocks) {
  constexpr Index PS = Eigen::internal::packet_traits<double>::size;
  for (const Index F : {1, 131, 785, 3000})
    for (const Index n : {65, 1000, 1001, 4097, 10000, 12345}) {
      const row_block::Plan p = row_block::make_plan<double>(n, F, 10);
      if (p.blocks == 1) continue;
      const Index last = n - p.block * (p.blocks - 1);
      EXPECT_GT(last, p.block - PS * p.blocks) << "n = " << n << ", F = " << F;
      if (p.blocks <= row_block::kMaxGroups) {
        EXPECT_EQ(p.blocks % 2, 0) << "n = " << n << ", F = " << F;
      }
    }
  const row_block::Plan p1 = row_block::make_plan<double>(1000, 785, 10);
  EXPECT_EQ(p1.blocks, 4);
  EXPECT_EQ(p1.groups, 4);
  EXPECT_LT(p1.block - (1000 - 3 * p1.block), PS * 4);
}

}  // namespace
}  // namespace ift
