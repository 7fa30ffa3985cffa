// Exact derivatives of every model against finite differences, dense twins and identities.
#include <gtest/gtest.h>

#include <limits>

#include <Eigen/Eigenvalues>

#include "fixtures.hpp"
#include "ift/models/logistic_regression.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"

namespace ift {
namespace {

using testing::rel_error;
using testing::Tol;

template <class S_>
struct SoftmaxCase {
  using S = S_;
  using Model = SoftmaxRegression<S>;
  static constexpr bool linear_logits = true;
  static Model model() { return Model(5, 3); }
  static Dataset<S> data(Index n, std::uint64_t seed) {
    return testing::random_classification<S>(n, 4, 3, seed);
  }
};

template <class S_>
struct LogisticCase {
  using S = S_;
  using Model = LogisticRegression<S>;
  static constexpr bool linear_logits = true;
  static Model model() { return Model(6); }
  static Dataset<S> data(Index n, std::uint64_t seed) {
    return testing::random_classification<S>(n, 5, 2, seed);
  }
};

template <class S_, Activation act, OutputLoss loss, int depth = 1>
struct MlpCase {
  using S = S_;
  using Model = Mlp<S>;
  static constexpr bool linear_logits = false;
  static Model model() {
    std::vector<Index> widths{4};
    for (int i = 0; i < depth; ++i) widths.push_back(5 - i);
    widths.push_back(3);
    return Model(widths, act, loss);
  }
  static Dataset<S> data(Index n, std::uint64_t seed) {
    if (loss == OutputLoss::SquaredError) return testing::random_regression<S>(n, 4, 3, seed);
    return testing::random_classification<S>(n, 4, 3, seed, /*bias=*/false);
  }
};

template <class Case>
class ModelDerivatives : public ::testing::Test {
 protected:
  using S = typename Case::S;
  using Model = typename Case::Model;
  Model model = Case::model();
  typename Model::Cache cache;

  Vector<S> gradient(const Dataset<S>& d, const Vector<S>& w) {
    typename Model::Cache c;
    Vector<S> g;
    model.evaluate(d, w, c, &g);
    return g;
  }
  S loss(const Dataset<S>& d, const Vector<S>& w) {
    typename Model::Cache c;
    return model.evaluate(d, w, c, nullptr);
  }
  Vector<S> hvp(const Dataset<S>& d, const Vector<S>& w, const Vector<S>& v) {
    Vector<S> out;
    model.evaluate(d, w, cache, nullptr);
    model.hvp(d, w, cache, v, out);
    return out;
  }
};

using Cases = ::testing::Types<
    SoftmaxCase<double>, SoftmaxCase<float>, LogisticCase<double>, LogisticCase<float>,
    MlpCase<double, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy>,
    MlpCase<float, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy>,
    MlpCase<double, Activation::Sigmoid, OutputLoss::SoftmaxCrossEntropy, 2>,
    MlpCase<double, Activation::Softplus, OutputLoss::SquaredError, 3>,
    MlpCase<float, Activation::Softplus, OutputLoss::SquaredError>,
    MlpCase<double, Activation::Relu, OutputLoss::SoftmaxCrossEntropy, 2>>;
TYPED_TEST_SUITE(ModelDerivatives, Cases);

constexpr Index kSizes[] = {1, 9, 40};

TYPED_TEST(ModelDerivatives, GradientMatchesCentralDifferences) {
  using S = typename TypeParam::S;
  for (Index n : kSizes) {
    const auto data = TypeParam::data(n, 11 + n);
    const Vector<S> w = testing::random_vector<S>(this->model.num_params(), 3 + n, 0.5);
    const Vector<S> g = this->gradient(data, w);
    Vector<S> fd(w.size());
    const S h = static_cast<S>(Tol<S>::fd_step);
    for (Index i = 0; i < w.size(); ++i) {
      Vector<S> wp = w, wm = w;
      wp(i) += h;
      wm(i) -= h;
      fd(i) = (this->loss(data, wp) - this->loss(data, wm)) / (2 * h);
    }
    EXPECT_LT(rel_error(g, fd), Tol<S>::fd) << "n = " << n;
  }
}

TYPED_TEST(ModelDerivatives, HvpMatchesCentralDifferencesOfGradient) {
  using S = typename TypeParam::S;
  for (Index n : kSizes) {
    const auto data = TypeParam::data(n, 21 + n);
    const Vector<S> w = testing::random_vector<S>(this->model.num_params(), 5 + n, 0.5);
    const Vector<S> v = testing::random_vector<S>(this->model.num_params(), 7 + n);
    const S h = static_cast<S>(Tol<S>::fd_step);
    const Vector<S> fd = (this->gradient(data, w + h * v) - this->gradient(data, w - h * v)) / (2 * h);
    EXPECT_LT(rel_error(this->hvp(data, w, v), fd), Tol<S>::fd) << "n = " << n;
  }
}

// evaluate() without a gradient keeps what the gradient needs: gradient_from_cache() after it, and
// after curvature products that share the cache, gives the gradient evaluate() computes directly.
TYPED_TEST(ModelDerivatives, GradientFromCacheEqualsEvaluateAndSurvivesCurvatureProducts) {
  using S = typename TypeParam::S;
  const auto data = TypeParam::data(9, 31);
  const Vector<S> w = testing::random_vector<S>(this->model.num_params(), 32, 0.5);
  const Vector<S> v = testing::random_vector<S>(this->model.num_params(), 33);
  const Vector<S> direct = this->gradient(data, w);
  typename TypeParam::Model::Cache cache;
  this->model.evaluate(data, w, cache, nullptr);
  Vector<S> out, lazy;
  this->model.hvp(data, w, cache, v, out);
  this->model.gauss_newton_product(data, w, cache, v, out);
  this->model.fisher_product(data, w, cache, v, out);
  this->model.gradient_from_cache(data, cache, lazy);
  ASSERT_EQ(lazy.size(), direct.size());
  EXPECT_LE(rel_error(lazy, direct), 4 * std::numeric_limits<S>::epsilon());
  EXPECT_GT(direct.norm(), S(0));
  // A cache from other data is refused, not silently used.
  const auto other = TypeParam::data(4, 34);
  EXPECT_THROW(this->model.gradient_from_cache(other, cache, lazy), std::invalid_argument);
}

TYPED_TEST(ModelDerivatives, DenseHessianMatchesHvpAndFiniteDifferences) {
  using S = typename TypeParam::S;
  const auto data = TypeParam::data(13, 31);
  const Index D = this->model.num_params();
  const Vector<S> w = testing::random_vector<S>(D, 9, 0.5);
  Matrix<S> H;
  this->model.evaluate(data, w, this->cache, nullptr);
  this->model.hessian(data, w, this->cache, H);
  ASSERT_EQ(H.rows(), D);
  // Dense twin: H v equals the matrix-free product.
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const Vector<S> v = testing::random_vector<S>(D, seed);
    const Vector<S> Hv = H * v;
    EXPECT_LT(rel_error(this->hvp(data, w, v), Hv), Tol<S>::exact) << "seed " << seed;
  }
  // Independent check: each column against differences of the analytic gradient.
  const S h = static_cast<S>(Tol<S>::fd_step);
  Matrix<S> fd(D, D);
  for (Index j = 0; j < D; ++j) {
    Vector<S> wp = w, wm = w;
    wp(j) += h;
    wm(j) -= h;
    fd.col(j) = (this->gradient(data, wp) - this->gradient(data, wm)) / (2 * h);
  }
  EXPECT_LT(rel_error(H, fd), Tol<S>::fd);
}

TYPED_TEST(ModelDerivatives, HvpIsSymmetric) {
  using S = typename TypeParam::S;
  const auto data = TypeParam::data(17, 41);
  const Index D = this->model.num_params();
  const Vector<S> w = testing::random_vector<S>(D, 10, 0.5);
  const Vector<S> u = testing::random_vector<S>(D, 11), v = testing::random_vector<S>(D, 12);
  const S uHv = u.dot(this->hvp(data, w, v));
  const S vHu = v.dot(this->hvp(data, w, u));
  EXPECT_NEAR(uHv, vHu, Tol<S>::exact * (std::abs(uHv) + 1e-3));
}

TYPED_TEST(ModelDerivatives, GaussNewtonIsPositiveSemidefiniteAndEqualsHessianForLinearLogits) {
  using S = typename TypeParam::S;
  const auto data = TypeParam::data(15, 51);
  const Index D = this->model.num_params();
  const Vector<S> w = testing::random_vector<S>(D, 13, 0.5);
  this->model.evaluate(data, w, this->cache, nullptr);
  Matrix<S> G(D, D);
  Vector<S> e = Vector<S>::Zero(D), col;
  for (Index j = 0; j < D; ++j) {
    e(j) = 1;
    this->model.gauss_newton_product(data, w, this->cache, e, col);
    G.col(j) = col;
    e(j) = 0;
  }
  EXPECT_LT(rel_error(G.transpose(), G), Tol<S>::exact);
  const Matrix<double> Gd = G.template cast<double>();
  const double min_eig = Eigen::SelfAdjointEigenSolver<Matrix<double>>(Gd).eigenvalues().minCoeff();
  EXPECT_GT(min_eig, -Tol<S>::exact * Gd.cwiseAbs().maxCoeff());
  if constexpr (TypeParam::linear_logits) {
    Matrix<S> H;
    this->model.hessian(data, w, this->cache, H);
    EXPECT_LT(rel_error(G, H), Tol<S>::exact);
  }
}

TYPED_TEST(ModelDerivatives, FisherProductMatchesPerExampleGradients) {
  using S = typename TypeParam::S;
  const Index n = 12;
  const auto data = TypeParam::data(n, 61);
  const Index D = this->model.num_params();
  const Vector<S> w = testing::random_vector<S>(D, 14, 0.5);
  const Vector<S> v = testing::random_vector<S>(D, 15);
  Vector<S> expected = Vector<S>::Zero(D);
  for (Index i = 0; i < n; ++i) {
    const Vector<S> gi = this->gradient(data.slice(i, 1), w);
    expected += gi * gi.dot(v) / S(n);
  }
  this->model.evaluate(data, w, this->cache, nullptr);
  Vector<S> out;
  this->model.fisher_product(data, w, this->cache, v, out);
  EXPECT_LT(rel_error(out, expected), Tol<S>::exact);
}

TYPED_TEST(ModelDerivatives, KfacIsExactForOneExample) {
  // With one example each layer's Gauss-Newton block is exactly (JᵀH_out J) ⊗ ã ãᵀ.
  using S = typename TypeParam::S;
  const auto data = TypeParam::data(1, 71);
  const Index D = this->model.num_params();
  const Vector<S> w = testing::random_vector<S>(D, 16, 0.5);
  this->model.evaluate(data, w, this->cache, nullptr);
  const auto factors = this->model.kfac_factors(data, w, this->cache);
  Vector<S> e = Vector<S>::Zero(D), col;
  Index covered = 0;
  for (const auto& f : factors) {
    const Index size = f.A.rows() * f.G.rows();
    Matrix<S> block(size, size);
    for (Index j = 0; j < size; ++j) {
      e(f.offset + j) = 1;
      this->model.gauss_newton_product(data, w, this->cache, e, col);
      block.col(j) = col.segment(f.offset, size);
      e(f.offset + j) = 0;
    }
    // Kronecker product G ⊗ A in the (in+1) × out column-major layout.
    Matrix<S> kron(size, size);
    for (Index a = 0; a < f.G.rows(); ++a)
      for (Index b = 0; b < f.G.cols(); ++b)
        kron.block(a * f.A.rows(), b * f.A.rows(), f.A.rows(), f.A.rows()) = f.G(a, b) * f.A;
    EXPECT_LT(rel_error(kron, block), Tol<S>::exact) << "block at offset " << f.offset;
    covered += size;
  }
  EXPECT_EQ(covered, D);
}

// ---- Closed forms ----------------------------------------------------------------------------

TEST(SoftmaxRegression, DenseHessianMatchesKroneckerSumClosedForm) {
  const Index n = 20, F = 6, C = 4;
  const auto data = testing::random_classification<double>(n, F - 1, C, 5);
  SoftmaxRegression<double> model(F, C);
  const Vector<double> w = testing::random_vector<double>(F * C, 6, 0.3);
  SoftmaxRegression<double>::Cache cache;
  model.evaluate(data, w, cache, nullptr);
  Matrix<double> H;
  model.hessian(data, w, cache, H);
  // H = (1/n) Σ_i (diag p_i − p_i p_iᵀ) ⊗ x_i x_iᵀ with p_i recomputed here from the logits.
  Eigen::Map<const Matrix<double>> Wt(w.data(), F, C);
  Matrix<double> expected = Matrix<double>::Zero(F * C, F * C);
  for (Index i = 0; i < n; ++i) {
    Vector<double> z = Wt.transpose() * data.X.row(i).transpose();
    Vector<double> p = (z.array() - z.maxCoeff()).exp();
    p /= p.sum();
    const Matrix<double> Si = Matrix<double>(p.asDiagonal()) - p * p.transpose();
    const Matrix<double> xx = data.X.row(i).transpose() * data.X.row(i);
    for (Index a = 0; a < C; ++a)
      for (Index b = 0; b < C; ++b) expected.block(a * F, b * F, F, F) += Si(a, b) * xx / double(n);
  }
  EXPECT_LT(rel_error(H, expected), 1e-12);
}

TEST(Mlp, HessianEqualsGaussNewtonAtZeroResidual) {
  // For squared error, H = G + Σ r ∇²z; with targets equal to the outputs every residual is zero.
  Mlp<double> model({4, 6, 5, 3}, Activation::Tanh, OutputLoss::SquaredError);
  auto data = testing::random_regression<double>(10, 4, 3, 8);
  const Vector<double> w = model.initial_weights(3);
  Mlp<double>::Cache cache;
  model.evaluate(data, w, cache, nullptr);
  data.targets = cache.out;
  model.evaluate(data, w, cache, nullptr);
  Matrix<double> H, G;
  model.hessian(data, w, cache, H);
  model.gauss_newton_matrix(data, w, cache, G);
  EXPECT_LT(rel_error(H, G), 1e-12);
  // And away from it they differ (the test above is not vacuous).
  data.targets.array() += 1.0;
  model.evaluate(data, w, cache, nullptr);
  model.hessian(data, w, cache, H);
  model.gauss_newton_matrix(data, w, cache, G);
  EXPECT_GT(rel_error(H, G), 1e-3);
}

TEST(Mlp, RejectsBadInput) {
  EXPECT_THROW(Mlp<double>({4}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy),
               std::invalid_argument);
  EXPECT_THROW(parse_activation("gelu"), std::invalid_argument);
  Mlp<double> model({4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  Mlp<double>::Cache cache;
  const auto data = testing::random_classification<double>(5, 3, 3, 1, false);
  EXPECT_THROW(model.evaluate(data, Vector<double>::Zero(model.num_params()), cache, nullptr),
               std::invalid_argument);
}

// Dataset::gather into a reused data set (the minibatch products' storage) equals a fresh gather,
// row by row, for every shape change: a smaller batch, a larger one, and from regression rows.
TEST(Dataset, GatherIntoReusedStorageEqualsFreshGather) {
  const auto data = testing::random_classification<double>(9, 3, 4, 5);
  Dataset<double> reused;
  for (const std::vector<Index>& rows :
       {std::vector<Index>{4, 0, 8, 4}, std::vector<Index>{2}, std::vector<Index>{1, 3, 5, 7, 6, 0}}) {
    data.gather(rows, reused);
    ASSERT_EQ(reused.size(), static_cast<Index>(rows.size()));
    EXPECT_EQ(reused.num_classes, data.num_classes);
    EXPECT_EQ(reused.targets.size(), 0);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(reused.X.row(static_cast<Index>(i)), data.X.row(rows[i]));
      EXPECT_EQ(reused.labels(static_cast<Index>(i)), data.labels(rows[i]));
    }
    const Dataset<double> fresh = data.gather(rows);
    EXPECT_EQ(fresh.X, reused.X);
    EXPECT_EQ(fresh.labels, reused.labels);
  }
  Dataset<double> regression;
  regression.X = data.X;
  regression.targets = data.X.leftCols(2) * 2.0;
  regression.gather({3, 1}, reused);  // from a classification batch to regression rows
  EXPECT_EQ(reused.labels.size(), 0);
  EXPECT_EQ(reused.num_classes, 0);
  ASSERT_EQ(reused.targets.rows(), 2);
  EXPECT_EQ(reused.targets.row(0), regression.targets.row(3));
  EXPECT_EQ(reused.targets.row(1), regression.targets.row(1));
}

// Issue 14, point 7: a label outside the classes names its row and the range, in both models.
TEST(Models, LabelsOutsideTheClassesNameTheirRow) {
  auto data = testing::random_classification<double>(6, 4, 3, 2);  // 4 features + bias: 5
  data.labels(4) = 7;
  auto message_of = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no error)";
  };
  SoftmaxRegression<double> logreg(data.num_features(), 3);
  SoftmaxRegression<double>::Cache cache;
  EXPECT_EQ(message_of([&] {
              logreg.evaluate(data, Vector<double>::Zero(logreg.num_params()), cache, nullptr);
            }),
            "SoftmaxRegression: label 7 at row 4 (0-based) outside [0, 3)");
  Mlp<double> mlp({data.num_features(), 4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  Mlp<double>::Cache mlp_cache;
  data.labels(4) = 1;
  data.labels(1) = -2;
  EXPECT_EQ(message_of([&] {
              mlp.evaluate(data, Vector<double>::Zero(mlp.num_params()), mlp_cache, nullptr);
            }),
            "Mlp: label -2 at row 1 (0-based) outside [0, 3)");
  data.labels(1) = 0;
  EXPECT_EQ(label_range_error(data.labels, 2), "label 2 at row 2 (0-based) outside [0, 2)");
  EXPECT_EQ(label_range_error(data.labels, 3), "");
}

}  // namespace
}  // namespace ift
