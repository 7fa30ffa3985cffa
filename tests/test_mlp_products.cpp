// The MLP's fast products (issue 15: GEMMs into cached buffers split over the OpenMP pool, fused
// activation passes, vectorised tanh, the batched R-operator) against a plain reference written
// from the formulas (std::tanh, Eigen products with temporaries, one direction at a time: the
// implementation before issue 15), in double and float, on 1 and 2 threads; and the vectorised
// tanh against std::tanh in extended precision.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fixtures.hpp"
#include "ift/models/fast_math.hpp"
#include "ift/models/mlp.hpp"

namespace ift {
namespace {

using testing::rel_error;

// ---- tanh ------------------------------------------------------------------------------------

/// Largest error of f over xs in units in the last place of the correctly rounded tanh
/// (std::tanh in long double as the reference).
template <class S, class F>
double max_ulp_error(const std::vector<S>& xs, F&& f) {
  double worst = 0;
  for (S x : xs) {
    const long double exact = std::tanh(static_cast<long double>(x));
    const S rounded = static_cast<S>(exact);
    const double ulp = static_cast<double>(
        std::nextafter(std::abs(rounded), std::numeric_limits<S>::infinity()) - std::abs(rounded));
    const double err =
        static_cast<double>(std::abs(static_cast<long double>(f(x)) - exact)) /
        (ulp > 0 ? ulp : std::numeric_limits<double>::denorm_min());
    worst = std::max(worst, err);
  }
  return worst;
}

template <class S>
std::vector<S> tanh_arguments() {
  std::vector<S> xs;
  std::mt19937_64 gen(7);
  // Log-uniform magnitudes from 1e-30 to 50 with both signs, plus a dense sweep around the
  // branch point 0.625 and the values where the clamp and the saturation start.
  std::uniform_real_distribution<double> exponent(-30, std::log10(50.0));
  for (int i = 0; i < 200000; ++i) {
    const double x = std::pow(10.0, exponent(gen));
    xs.push_back(static_cast<S>(i % 2 ? x : -x));
  }
  for (int i = -2000; i <= 2000; ++i) xs.push_back(static_cast<S>(0.625 + i * 1e-6));
  for (double x : {0.0, 1e-300, 0.5, 0.625, 1.0, 5.0, 19.0, 20.0, 39.9, 40.0, 41.0, 1e3, 1e300})
    if (std::isfinite(static_cast<S>(x))) xs.push_back(static_cast<S>(x));
  return xs;
}

template <class S>
class FastTanh : public ::testing::Test {};
using Scalars = ::testing::Types<double, float>;
TYPED_TEST_SUITE(FastTanh, Scalars);

TYPED_TEST(FastTanh, WithinTwoUlpOfTanhOnPacketAndScalarPaths) {
  using S = TypeParam;
  const std::vector<S> xs = tanh_arguments<S>();
  Eigen::Array<S, Eigen::Dynamic, 1> x = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(
      xs.data(), static_cast<Index>(xs.size()));
  const Eigen::Array<S, Eigen::Dynamic, 1> y = x.unaryExpr(TanhOp<S>{});  // packets (+ a tail)
  std::size_t i = 0;
  const double packet = max_ulp_error<S>(xs, [&](S) { return y(static_cast<Index>(i++)); });
  const double scalar = max_ulp_error<S>(xs, [](S v) { return TanhOp<S>{}(v); });
  EXPECT_LE(packet, 2.0);
  EXPECT_LE(scalar, 2.0);
  // Same values on both paths up to an ulp (the exp differs: Eigen's packet exp vs std::exp).
  for (Index j = 0; j < x.size(); ++j)
    ASSERT_LE(std::abs(y(j) - TanhOp<S>{}(x(j))), 2 * std::numeric_limits<S>::epsilon())
        << "x = " << x(j);
}

TYPED_TEST(FastTanh, SpecialValues) {
  using S = TypeParam;
  const S inf = std::numeric_limits<S>::infinity(), nan = std::numeric_limits<S>::quiet_NaN();
  Eigen::Array<S, Eigen::Dynamic, 1> x(32);
  x.setConstant(S(0.3));
  x.head(6) << S(0), S(-0.0), inf, -inf, nan, S(-1e30);
  const Eigen::Array<S, Eigen::Dynamic, 1> y = x.unaryExpr(TanhOp<S>{});
  for (const auto& values : {y, x.unaryExpr([](S v) { return TanhOp<S>{}(v); }).eval()}) {
    EXPECT_EQ(values(0), S(0));
    EXPECT_FALSE(std::signbit(values(0)));
    EXPECT_EQ(values(1), S(0));
    EXPECT_TRUE(std::signbit(values(1)));
    EXPECT_EQ(values(2), S(1));
    EXPECT_EQ(values(3), S(-1));
    EXPECT_TRUE(std::isnan(values(4)));  // a NaN is never turned into a number
    EXPECT_EQ(values(5), S(-1));
  }
}

// ---- Products against the plain reference ----------------------------------------------------

/// The MLP's loss, gradient, R-operator HVP and Gauss-Newton product written directly from the
/// formulas of mlp.hpp (one temporary per step, std::tanh, Eigen's products): what Mlp computed
/// before issue 15.
template <class S>
struct Reference {
  std::vector<Index> widths;
  Activation act;
  OutputLoss loss;
  std::vector<Index> offsets{0};
  std::vector<Matrix<S>> In, Z, D1, D2, delta, E;  // In[l]: input of layer l
  Matrix<S> P;

  Reference(std::vector<Index> w, Activation a, OutputLoss l) : widths(std::move(w)), act(a), loss(l) {
    for (std::size_t i = 0; i + 1 < widths.size(); ++i)
      offsets.push_back(offsets.back() + (widths[i] + 1) * widths[i + 1]);
  }
  Index L() const { return static_cast<Index>(widths.size()) - 1; }
  auto block(const Vector<S>& v, Index l) const {
    return Eigen::Map<const Matrix<S>>(v.data() + offsets[l], widths[l] + 1, widths[l + 1]);
  }
  Matrix<S> sigma(const Matrix<S>& z, int derivative) const {
    Matrix<S> out(z.rows(), z.cols());
    for (Index i = 0; i < z.size(); ++i) {
      const S x = z(i);
      S f = 0, f1 = 0, f2 = 0;
      switch (act) {
        case Activation::Tanh:
          f = std::tanh(x), f1 = 1 - f * f, f2 = -2 * f * f1;
          break;
        case Activation::Sigmoid:
          f = 1 / (1 + std::exp(-x)), f1 = f * (1 - f), f2 = f1 * (1 - 2 * f);
          break;
        case Activation::Softplus:
          f = std::max(x, S(0)) + std::log1p(std::exp(-std::abs(x)));
          f1 = 1 / (1 + std::exp(-x)), f2 = f1 * (1 - f1);
          break;
        case Activation::Relu:
          f = std::max(x, S(0)), f1 = x > 0 ? 1 : 0, f2 = 0;
          break;
      }
      out(i) = derivative == 0 ? f : derivative == 1 ? f1 : f2;
    }
    return out;
  }
  /// Loss; fills the forward and backward caches; gradient.
  S forward(const Dataset<S>& d, const Vector<S>& w, Vector<S>& g) {
    const Index n = d.size();
    In.assign(L(), Matrix<S>());
    Z = D1 = D2 = delta = E = std::vector<Matrix<S>>(L());
    In[0] = d.X;
    for (Index l = 0; l < L(); ++l) {
      const auto W = block(w, l);
      Z[l] = In[l] * W.topRows(widths[l]);
      Z[l].rowwise() += W.row(widths[l]);
      if (l + 1 < L()) {
        In[l + 1] = sigma(Z[l], 0);
        D1[l] = sigma(Z[l], 1);
        D2[l] = sigma(Z[l], 2);
      }
    }
    double total = 0;
    const Matrix<S>& logits = Z.back();
    if (loss == OutputLoss::SoftmaxCrossEntropy) {
      P.resize(n, logits.cols());
      for (Index i = 0; i < n; ++i) {
        const S m = logits.row(i).maxCoeff();
        P.row(i) = (logits.row(i).array() - m).exp().matrix();
        const S sum = P.row(i).sum();
        total += std::log(double(sum)) - double(logits(i, d.labels(i)) - m);
        P.row(i) /= sum;
      }
      delta.back() = P / S(n);
      for (Index i = 0; i < n; ++i) delta.back()(i, d.labels(i)) -= S(1) / S(n);
    } else {
      total = 0.5 * double((logits - d.targets).squaredNorm());
      delta.back() = (logits - d.targets) / S(n);
    }
    for (Index l = L() - 1; l > 0; --l) {
      E[l - 1] = delta[l] * block(w, l).topRows(widths[l]).transpose();
      delta[l - 1] = E[l - 1].cwiseProduct(D1[l - 1]);
    }
    g.resize(offsets.back());
    for (Index l = 0; l < L(); ++l) {
      Eigen::Map<Matrix<S>> G(g.data() + offsets[l], widths[l] + 1, widths[l + 1]);
      G.topRows(widths[l]) = In[l].transpose() * delta[l];
      G.row(widths[l]) = delta[l].colwise().sum();
    }
    return S(total / double(n));
  }
  Matrix<S> output_curvature(const Matrix<S>& r) const {
    const S n = S(r.rows());
    if (loss == OutputLoss::SquaredError) return r / n;
    Matrix<S> out(r.rows(), r.cols());
    for (Index i = 0; i < r.rows(); ++i)
      out.row(i) = P.row(i).cwiseProduct((r.row(i).array() - P.row(i).dot(r.row(i))).matrix()) / n;
    return out;
  }
  /// H v (gauss_newton = false) or G v: R-forward, then the R-backward with or without the
  /// second-order terms.
  Vector<S> product(const Vector<S>& w, const Vector<S>& v, bool gauss_newton) const {
    std::vector<Matrix<S>> RZ(L()), RIn(L());
    for (Index l = 0; l < L(); ++l) {
      const auto W = block(w, l), V = block(v, l);
      RZ[l] = In[l] * V.topRows(widths[l]);
      RZ[l].rowwise() += V.row(widths[l]);
      if (l > 0) {
        RIn[l] = D1[l - 1].cwiseProduct(RZ[l - 1]);
        RZ[l] += RIn[l] * W.topRows(widths[l]);
      }
    }
    Matrix<S> Rd = output_curvature(RZ.back());
    Vector<S> out(offsets.back());
    for (Index l = L() - 1; l >= 0; --l) {
      const Index in = widths[l];
      Eigen::Map<Matrix<S>> O(out.data() + offsets[l], in + 1, widths[l + 1]);
      O.topRows(in) = In[l].transpose() * Rd;
      if (!gauss_newton && l > 0) O.topRows(in) += RIn[l].transpose() * delta[l];
      O.row(in) = Rd.colwise().sum();
      if (l > 0) {
        Matrix<S> below = Rd * block(w, l).topRows(in).transpose();
        if (gauss_newton) {
          Rd = below.cwiseProduct(D1[l - 1]);
        } else {
          below += delta[l] * block(v, l).topRows(in).transpose();
          Rd = below.cwiseProduct(D1[l - 1]) +
               E[l - 1].cwiseProduct(D2[l - 1]).cwiseProduct(RZ[l - 1]);
        }
      }
    }
    return out;
  }
};

struct Arch {
  std::vector<Index> widths;
  Activation act;
  OutputLoss loss;
};

/// Large enough that the products are split over two threads (ift::gemm's threshold).
const std::vector<Arch>& architectures() {
  static const std::vector<Arch> a{
      {{40, 64, 48, 5}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy},
      {{40, 72, 3}, Activation::Sigmoid, OutputLoss::SoftmaxCrossEntropy},
      {{40, 64, 32, 4}, Activation::Softplus, OutputLoss::SquaredError},
      {{40, 64, 48, 5}, Activation::Relu, OutputLoss::SoftmaxCrossEntropy},
  };
  return a;
}

/// Tolerance (max-norm relative) between two computations of the same product: 1e-13 in double
/// (issue 15: results unchanged to 1e-13), the fixtures' exact tolerance in float.
template <class S>
double same_product() {
  return sizeof(S) == 8 ? 1e-13 : testing::Tol<float>::exact;
}

template <class S>
Dataset<S> arch_data(const Arch& a, Index n, std::uint64_t seed) {
  if (a.loss == OutputLoss::SquaredError)
    return testing::random_regression<S>(n, a.widths.front(), a.widths.back(), seed);
  return testing::random_classification<S>(n, a.widths.front(), a.widths.back(), seed, false);
}

void set_threads(int t) {
#ifdef _OPENMP
  omp_set_num_threads(t);
#endif
  Eigen::setNbThreads(t);
}

template <class S>
class MlpProducts : public ::testing::Test {
 protected:
  void TearDown() override { set_threads(threads_before_); }
#ifdef _OPENMP
  int threads_before_ = omp_get_max_threads();
#else
  int threads_before_ = 1;
#endif
};
TYPED_TEST_SUITE(MlpProducts, Scalars);

TYPED_TEST(MlpProducts, EqualThePlainReferenceOnOneAndTwoThreads) {
  using S = TypeParam;
  const Index n = 300;
  for (const Arch& a : architectures())
    for (int threads : {1, 2}) {
      set_threads(threads);
      SCOPED_TRACE(std::string(to_string(a.act)) + ", threads " + std::to_string(threads));
      Mlp<S> model(a.widths, a.act, a.loss);
      Reference<S> ref(a.widths, a.act, a.loss);
      const auto data = arch_data<S>(a, n, 5);
      const Vector<S> w = model.initial_weights(3) + testing::random_vector<S>(model.num_params(), 4, 0.05);
      const Vector<S> v = testing::random_vector<S>(model.num_params(), 9);
      typename Mlp<S>::Cache cache;
      Vector<S> g, g_ref, hv, gv;
      const S loss = model.evaluate(data, w, cache, &g);
      const S loss_ref = ref.forward(data, w, g_ref);
      EXPECT_LE(std::abs(double(loss - loss_ref)), same_product<S>() * std::abs(double(loss_ref)));
      EXPECT_LT(rel_error(g, g_ref), same_product<S>());
      model.hvp(data, w, cache, v, hv);
      EXPECT_LT(rel_error(hv, ref.product(w, v, false)), same_product<S>());
      model.gauss_newton_product(data, w, cache, v, gv);
      EXPECT_LT(rel_error(gv, ref.product(w, v, true)), same_product<S>());
      // Calls in a row reuse the cache's buffers and give the same numbers (no state leaks).
      Vector<S> hv2;
      model.gauss_newton_product(data, w, cache, v, gv);
      model.hvp(data, w, cache, v, hv2);
      EXPECT_EQ(hv, hv2);
      // Gradient without the weight-gradient GEMMs, completed later.
      Vector<S> g2;
      model.evaluate(data, w, cache, nullptr);
      model.gradient_from_cache(data, cache, g2);
      EXPECT_EQ(g, g2);
    }
}

TYPED_TEST(MlpProducts, BlockHvpEqualsOneHvpPerColumn) {
  using S = TypeParam;
  const Index n = 300, k = 5;
  for (const Arch& a : architectures())
    for (int threads : {1, 2}) {
      set_threads(threads);
      SCOPED_TRACE(std::string(to_string(a.act)) + ", threads " + std::to_string(threads));
      Mlp<S> model(a.widths, a.act, a.loss);
      const auto data = arch_data<S>(a, n, 6);
      const Vector<S> w = model.initial_weights(8);
      Matrix<S> V(model.num_params(), k);
      for (Index j = 0; j < k; ++j) V.col(j) = testing::random_vector<S>(model.num_params(), 20 + j);
      typename Mlp<S>::Cache cache;
      model.evaluate(data, w, cache, nullptr);
      Matrix<S> expected(model.num_params(), k);
      Vector<S> column;
      for (Index j = 0; j < k; ++j) {
        model.hvp(data, w, cache, V.col(j), column);
        expected.col(j) = column;
      }
      for (Index chunk : {Index(0), Index(2), Index(1)}) {  // one pass; chunks 2+2+1; per column
        Matrix<S> block;
        model.hvp_block(data, w, cache, V, block, chunk);
        ASSERT_EQ(block.cols(), k);
        for (Index j = 0; j < k; ++j)
          EXPECT_LT(rel_error(block.col(j), expected.col(j)), same_product<S>())
              << "column " << j << ", chunk " << chunk;
      }
      // An empty block is an empty product.
      Matrix<S> none;
      model.hvp_block(data, w, cache, Matrix<S>(model.num_params(), 0), none);
      EXPECT_EQ(none.cols(), 0);
    }
}

TEST(MlpProducts, BlockHvpRejectsAWrongHeightAndAMissingForwardPass) {
  Mlp<double> model({4, 5, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  const auto data = testing::random_classification<double>(10, 4, 3, 1, false);
  const Vector<double> w = model.initial_weights(1);
  Mlp<double>::Cache cache;
  Matrix<double> out;
  EXPECT_THROW(model.hvp_block(data, w, cache, Matrix<double>::Ones(model.num_params(), 2), out),
               std::invalid_argument);
  model.evaluate(data, w, cache, nullptr);
  EXPECT_THROW(model.hvp_block(data, w, cache, Matrix<double>::Ones(model.num_params() - 1, 2), out),
               std::invalid_argument);
}

}  // namespace
}  // namespace ift
