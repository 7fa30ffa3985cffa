// Tests of ift/linalg: operators against their dense twins, CG/Neumann/power iteration/Spectra
// against Eigen's own solvers and closed forms, the exact (dense) solver, KFAC, and that every
// SolverStatus is reachable. Typed over float and double, fixed seeds, several sizes.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/Sparse>
#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <vector>

#include "ift/linalg/linalg.hpp"

namespace {

using ift::Index;
template <class S>
using Vec = ift::Vector<S>;
template <class S>
using Mat = ift::Matrix<S>;

// ---- fixtures --------------------------------------------------------------------------------

/// Tolerance per precision for quantities that should agree to rounding.
template <class S>
double tight() {
  return std::is_same_v<S, float> ? 2e-4 : 1e-10;
}

template <class S>
Vec<S> random_vector(Index n, std::uint64_t seed) {
  Vec<S> v(n);
  ift::VectorSpace<Vec<S>>::fill_random(v, seed);
  return v;
}

/// Random orthogonal matrix (QR of a seeded random matrix), built in double.
inline Mat<double> random_orthogonal(Index n, std::uint64_t seed) {
  Mat<double> M(n, n);
  for (Index j = 0; j < n; ++j) M.col(j) = random_vector<double>(n, seed * 1000 + j);
  Eigen::HouseholderQR<Mat<double>> qr(M);
  return qr.householderQ() * Mat<double>::Identity(n, n);
}

/// Symmetric matrix Q diag(eigenvalues) Qᵀ with a seeded random Q.
template <class S>
Mat<S> symmetric_with_spectrum(const Vec<double>& eigenvalues, std::uint64_t seed) {
  const Mat<double> Q = random_orthogonal(eigenvalues.size(), seed);
  Mat<double> H = Q * eigenvalues.asDiagonal() * Q.transpose();
  H = 0.5 * (H + H.transpose());
  return H.cast<S>();
}

/// Eigenvalues spaced geometrically from lo to hi (condition number hi/lo).
inline Vec<double> geometric_spectrum(Index n, double lo, double hi) {
  Vec<double> d(n);
  for (Index i = 0; i < n; ++i)
    d[i] = n == 1 ? hi : lo * std::pow(hi / lo, static_cast<double>(i) / static_cast<double>(n - 1));
  return d;
}

template <class S>
Mat<S> random_spd(Index n, double kappa, std::uint64_t seed) {
  return symmetric_with_spectrum<S>(geometric_spectrum(n, 1.0, kappa), seed);
}

template <class S>
double rel_error(const Vec<S>& x, const Vec<S>& ref) {
  return static_cast<double>((x - ref).norm()) / std::max(1e-300, static_cast<double>(ref.norm()));
}

/// Operator that counts its applications, to check every reported HVP count.
template <class S>
ift::FunctionOperator<Vec<S>> counting(const Mat<S>& H, Index* count) {
  return ift::FunctionOperator<Vec<S>>(H.rows(), [&H, count](const Vec<S>& x, Vec<S>& y) {
    ++*count;
    y.noalias() = H * x;
  });
}

// ---- Eigen's matrix-free wrapper (Eigen docs, "Matrix-free solvers") --------------------------

template <class Op>
class MatrixReplacement;

}  // namespace

namespace Eigen::internal {
template <class Op>
struct traits<MatrixReplacement<Op>>
    : public Eigen::internal::traits<Eigen::SparseMatrix<typename Op::Scalar>> {};
}  // namespace Eigen::internal

namespace {
template <class Op>
class MatrixReplacement : public Eigen::EigenBase<MatrixReplacement<Op>> {
 public:
  using Scalar = typename Op::Scalar;
  using RealScalar = Scalar;
  using StorageIndex = int;
  enum { ColsAtCompileTime = Eigen::Dynamic, MaxColsAtCompileTime = Eigen::Dynamic, IsRowMajor = false };

  explicit MatrixReplacement(const Op& op) : op_(&op) {}
  Index rows() const { return op_->rows(); }
  Index cols() const { return op_->cols(); }
  template <class Rhs>
  Eigen::Product<MatrixReplacement, Rhs, Eigen::AliasFreeProduct> operator*(
      const Eigen::MatrixBase<Rhs>& x) const {
    return Eigen::Product<MatrixReplacement, Rhs, Eigen::AliasFreeProduct>(*this, x.derived());
  }
  const Op& op() const { return *op_; }

 private:
  const Op* op_;
};
}  // namespace

namespace Eigen::internal {
template <class Op, class Rhs>
struct generic_product_impl<MatrixReplacement<Op>, Rhs, SparseShape, DenseShape, GemvProduct>
    : generic_product_impl_base<MatrixReplacement<Op>, Rhs,
                                generic_product_impl<MatrixReplacement<Op>, Rhs>> {
  using Scalar = typename Product<MatrixReplacement<Op>, Rhs>::Scalar;
  template <class Dest>
  static void scaleAndAddTo(Dest& dst, const MatrixReplacement<Op>& lhs, const Rhs& rhs,
                            const Scalar& alpha) {
    const ift::Vector<Scalar> x = rhs;
    ift::Vector<Scalar> y(x.size());
    lhs.op().apply(x, y);
    dst += alpha * y;
  }
};
}  // namespace Eigen::internal

namespace {

// ---- a shallow-copy vector type: proves the solvers use only VectorSpace ----------------------

/// Storage shared on copy, like torch::Tensor: a solver that relied on `V a = b` for a value
/// copy, or used an Eigen member, would fail to compile or give wrong answers here.
struct SharedVec {
  std::shared_ptr<std::vector<double>> data;
};

}  // namespace

template <>
struct ift::VectorSpace<SharedVec> {
  using VectorType = SharedVec;
  using Scalar = double;
  static SharedVec zeros_like(const SharedVec& x) {
    return {std::make_shared<std::vector<double>>(x.data->size(), 0.0)};
  }
  static double dot(const SharedVec& x, const SharedVec& y) {
    double s = 0;
    for (std::size_t i = 0; i < x.data->size(); ++i) s += (*x.data)[i] * (*y.data)[i];
    return s;
  }
  static double norm(const SharedVec& x) { return std::sqrt(dot(x, x)); }
  static void axpy(double a, const SharedVec& x, SharedVec& y) {
    for (std::size_t i = 0; i < x.data->size(); ++i) (*y.data)[i] += a * (*x.data)[i];
  }
  static void axpby(double a, const SharedVec& x, double b, SharedVec& y) {
    for (std::size_t i = 0; i < x.data->size(); ++i) (*y.data)[i] = a * (*x.data)[i] + b * (*y.data)[i];
  }
  static void scale(double a, SharedVec& x) {
    for (double& v : *x.data) v *= a;
  }
  static void assign(SharedVec& dst, const SharedVec& src) { *dst.data = *src.data; }
  static void set_zero(SharedVec& x) { std::fill(x.data->begin(), x.data->end(), 0.0); }
  static bool all_finite(const SharedVec& x) {
    for (double v : *x.data)
      if (!std::isfinite(v)) return false;
    return true;
  }
  static ift::Index size(const SharedVec& x) { return static_cast<ift::Index>(x.data->size()); }
  static void fill_random(SharedVec& x, std::uint64_t seed) {
    ift::detail::SplitMix64 rng(seed);
    for (double& v : *x.data) v = rng.uniform_symmetric();
  }
};

namespace {

SharedVec to_shared(const Vec<double>& v) {
  return {std::make_shared<std::vector<double>>(v.data(), v.data() + v.size())};
}
Vec<double> from_shared(const SharedVec& v) {
  return Eigen::Map<const Vec<double>>(v.data->data(), static_cast<Index>(v.data->size()));
}

template <class S>
class Solvers : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Solvers, Scalars);

const Index kSizes[] = {1, 7, 40};

// ---- operators against their dense twins -----------------------------------------------------

TYPED_TEST(Solvers, OperatorsMatchDenseTwins) {
  using S = TypeParam;
  static_assert(ift::LinearOperator<ift::DenseOperator<S>>);
  static_assert(ift::LinearOperator<ift::FunctionOperator<Vec<S>>>);
  static_assert(ift::LinearOperator<ift::DampedOperator<ift::DenseOperator<S>>>);
  static_assert(ift::LinearOperator<ift::KfacInverseOperator<S>>);
  for (Index n : kSizes) {
    const Mat<S> H = random_spd<S>(n, 20.0, 11 + n);
    const Vec<S> x = random_vector<S>(n, 5 + n);
    const S delta = S(0.3);
    Vec<S> y(n);

    ift::DenseOperator<S> dense(H);
    dense.apply(x, y);
    EXPECT_LT(rel_error<S>(y, H * x), tight<S>()) << n;

    ift::DampedOperator damped(dense, delta);
    damped.apply(x, y);
    const Mat<S> Hd = H + delta * Mat<S>::Identity(n, n);
    EXPECT_LT(rel_error<S>(y, Hd * x), tight<S>()) << n;

    ift::ScaledShiftedOperator shifted(dense, S(-2), S(5));
    shifted.apply(x, y);
    const Mat<S> Hs = S(-2) * H + S(5) * Mat<S>::Identity(n, n);
    EXPECT_LT(rel_error<S>(y, Hs * x), tight<S>()) << n;

    ift::FunctionOperator<Vec<S>> f(n, [&H](const Vec<S>& u, Vec<S>& v) { v.noalias() = H * u; });
    f.apply(x, y);
    EXPECT_LT(rel_error<S>(y, H * x), tight<S>()) << n;
    const auto erased = ift::FunctionOperator<Vec<S>>::from(damped);
    erased.apply(x, y);
    EXPECT_LT(rel_error<S>(y, Hd * x), tight<S>()) << n;

    ift::SpectraAdapter<ift::DampedOperator<ift::DenseOperator<S>>> adapter(damped);
    Vec<S> z(n);
    adapter.perform_op(x.data(), z.data());
    adapter.perform_op(x.data(), z.data());
    EXPECT_LT(rel_error<S>(z, Hd * x), tight<S>()) << n;
    EXPECT_EQ(adapter.applications(), 2);
    EXPECT_EQ(adapter.rows(), n);
  }
}

TEST(Solvers, ParamsChecksNameTheField) {
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of([] { ift::CgParams p; p.max_iterations = -1; p.check(); }).find("max_iterations"), std::string::npos);
  EXPECT_NE(message_of([] { ift::CgParams p; p.tolerance = -1; p.check(); }).find("tolerance"), std::string::npos);
  EXPECT_NE(message_of([] { ift::NeumannParams p; p.alpha = -1; p.check(); }).find("alpha"), std::string::npos);
  EXPECT_NE(message_of([] { ift::NeumannParams p; p.safety = 2; p.check(); }).find("safety"), std::string::npos);
  EXPECT_NE(message_of([] { ift::NeumannParams p; p.steps = -2; p.check(); }).find("steps"), std::string::npos);
  EXPECT_NE(message_of([] { ift::PowerIterationParams p; p.max_iterations = 0; p.check(); }).find("max_iterations"), std::string::npos);
  EXPECT_NE(message_of([] { ift::SpectraParams p; p.ncv = 1; p.check(); }).find("ncv"), std::string::npos);
  // Dimension mismatch is misuse too.
  const Mat<double> H = Mat<double>::Identity(3, 3);
  const Vec<double> b = Vec<double>::Ones(4);
  EXPECT_THROW(ift::conjugate_gradient(ift::DenseOperator<double>(H), b), std::invalid_argument);
  EXPECT_THROW(ift::neumann(ift::DenseOperator<double>(H), b), std::invalid_argument);
}

TEST(Solvers, StatusNames) {
  EXPECT_STREQ(ift::to_string(ift::SolverStatus::Converged), "converged");
  EXPECT_STREQ(ift::to_string(ift::SolverStatus::MaxIterations), "max-iterations");
  EXPECT_STREQ(ift::to_string(ift::SolverStatus::Diverged), "diverged");
  EXPECT_STREQ(ift::to_string(ift::SolverStatus::NegativeCurvature), "negative-curvature");
  EXPECT_STREQ(ift::to_string(ift::SolverStatus::NotPositiveDefinite), "not-positive-definite");
  EXPECT_STREQ(ift::to_string(ift::SolverStatus::NumericalIssue), "numerical-issue");
}

// ---- conjugate gradient ----------------------------------------------------------------------

TYPED_TEST(Solvers, CgReachesExactSolutionWithinDIterations) {
  using S = TypeParam;
  for (Index n : {5, 20, 50}) {
    for (bool reorth : {false, true}) {
      const Mat<S> H = random_spd<S>(n, 10.0, 21 + n);
      const Vec<S> b = random_vector<S>(n, 3 + n);
      const Vec<S> exact = H.llt().solve(b);
      Index count = 0;
      const auto op = counting<S>(H, &count);
      ift::CgParams p;
      p.max_iterations = n;
      p.tolerance = std::is_same_v<S, float> ? 1e-5 : 1e-12;
      p.record_history = true;
      p.reorthogonalize = reorth;
      const auto r = ift::conjugate_gradient(op, b, p);
      EXPECT_EQ(r.status, ift::SolverStatus::Converged) << n << r.message;
      EXPECT_LE(r.iterations, n);
      EXPECT_EQ(r.hvps, count);
      EXPECT_EQ(r.hvps, r.iterations);
      EXPECT_LT(rel_error<S>(r.x, exact), 10 * tight<S>()) << n;
      ASSERT_EQ(static_cast<Index>(r.residual_history.size()), r.iterations + 1);
      EXPECT_NEAR(r.residual_history.front(), 1.0, tight<S>());
      EXPECT_LE(r.residual_history.back(), p.tolerance);
      ASSERT_TRUE(r.relative_residual.has_value());
      EXPECT_LE(*r.relative_residual, p.tolerance);
      // Monotone-ish: κ = 10 keeps every step within a small factor of the previous one, and
      // the residual falls by 10x at least every 5 iterations.
      for (std::size_t k = 1; k < r.residual_history.size(); ++k)
        EXPECT_LE(r.residual_history[k], 3 * r.residual_history[k - 1]);
      for (std::size_t k = 5; k < r.residual_history.size(); ++k)
        EXPECT_LE(r.residual_history[k], 0.1 * r.residual_history[k - 5]);
    }
  }
}

TYPED_TEST(Solvers, CgAgreesWithEigenConjugateGradient) {
  using S = TypeParam;
  for (Index n : {8, 30}) {
    const Mat<S> H = random_spd<S>(n, 50.0, 31 + n);
    const Vec<S> b = random_vector<S>(n, 7 + n);
    const ift::DenseOperator<S> op(H);
    MatrixReplacement<ift::DenseOperator<S>> A(op);
    for (Index k : {1, 3, 6}) {
      Eigen::ConjugateGradient<MatrixReplacement<ift::DenseOperator<S>>, Eigen::Lower | Eigen::Upper,
                               Eigen::IdentityPreconditioner>
          eigen_cg;
      eigen_cg.setMaxIterations(k);
      eigen_cg.setTolerance(S(0));
      eigen_cg.compute(A);
      const Vec<S> reference = eigen_cg.solve(b);
      ift::CgParams p;
      p.max_iterations = k;
      p.tolerance = 0;
      p.reorthogonalize = false;
      const auto r = ift::conjugate_gradient(op, b, p);
      EXPECT_EQ(r.status, ift::SolverStatus::MaxIterations);
      EXPECT_EQ(r.iterations, k);
      EXPECT_LT(rel_error<S>(r.x, reference), tight<S>()) << n << " " << k;
      EXPECT_NEAR(*r.relative_residual, static_cast<double>(eigen_cg.error()),
                  100 * tight<S>() * static_cast<double>(eigen_cg.error()));
    }
  }
}

TYPED_TEST(Solvers, CgWarmStartFromSolutionTakesNoIterations) {
  using S = TypeParam;
  const Index n = 25;
  const Mat<S> H = random_spd<S>(n, 10.0, 41);
  const Vec<S> b = random_vector<S>(n, 42);
  const Vec<S> exact = H.template cast<double>().llt().solve(b.template cast<double>()).template cast<S>();
  for (bool reorth : {false, true}) {
    ift::CgParams p;
    p.tolerance = std::is_same_v<S, float> ? 1e-5 : 1e-12;
    p.reorthogonalize = reorth;
    const auto r = ift::conjugate_gradient(ift::DenseOperator<S>(H), b, p, &exact);
    EXPECT_EQ(r.status, ift::SolverStatus::Converged);
    EXPECT_EQ(r.iterations, 0);
    EXPECT_EQ(r.hvps, 1);  // the initial residual
    EXPECT_EQ(r.x, exact);
    // A warm start elsewhere still converges to the solution.
    const Vec<S> x0 = random_vector<S>(n, 43);
    const auto w = ift::conjugate_gradient(ift::DenseOperator<S>(H), b, p, &x0);
    EXPECT_EQ(w.status, ift::SolverStatus::Converged);
    EXPECT_EQ(w.hvps, w.iterations + 1);
    EXPECT_LT(rel_error<S>(w.x, exact), 10 * tight<S>());
  }
}

TYPED_TEST(Solvers, ReorthogonalisedCgEqualsPlainCgWhenWellConditioned) {
  using S = TypeParam;
  for (Index n : {10, 60}) {
    const Mat<S> H = random_spd<S>(n, 10.0, 51 + n);
    const Vec<S> b = random_vector<S>(n, 52 + n);
    for (Index k : {1, 4, 9}) {
      ift::CgParams p;
      p.max_iterations = k;
      p.tolerance = 0;
      p.record_history = true;
      p.reorthogonalize = false;
      const auto plain = ift::conjugate_gradient(ift::DenseOperator<S>(H), b, p);
      p.reorthogonalize = true;
      const auto lanczos = ift::conjugate_gradient(ift::DenseOperator<S>(H), b, p);
      EXPECT_EQ(plain.status, ift::SolverStatus::MaxIterations);
      EXPECT_EQ(lanczos.status, ift::SolverStatus::MaxIterations);
      EXPECT_EQ(lanczos.hvps, k);
      EXPECT_LT(rel_error<S>(lanczos.x, plain.x), tight<S>()) << n << " " << k;
      for (std::size_t i = 0; i < plain.residual_history.size(); ++i)
        EXPECT_NEAR(lanczos.residual_history[i], plain.residual_history[i],
                    1e3 * tight<S>() * plain.residual_history[i]);
    }
  }
}

TEST(Solvers, ReorthogonalisedCgIsMoreAccurateWhenIllConditioned) {
  // κ = 1e4..1e6 with eigenvalues spread geometrically: plain CG loses orthogonality of its
  // residuals and lags; the reorthogonalised Lanczos form keeps the finite-termination property
  // (same k = n for both).
  for (Index n : {100, 200}) for (double kappa : {1e4, 1e6}) {
    const Mat<double> H = random_spd<double>(n, kappa, 61 + n);
    const Vec<double> b = random_vector<double>(n, 62 + n);
    const Vec<double> exact = H.llt().solve(b);
    ift::CgParams p;
    p.max_iterations = n;
    p.tolerance = 0;
    p.reorthogonalize = false;
    const auto plain = ift::conjugate_gradient(ift::DenseOperator<double>(H), b, p);
    p.reorthogonalize = true;
    p.true_residual = true;
    const auto lanczos = ift::conjugate_gradient(ift::DenseOperator<double>(H), b, p);
    const double plain_error = rel_error<double>(plain.x, exact);
    const double lanczos_error = rel_error<double>(lanczos.x, exact);
    EXPECT_LT(lanczos_error, 1e-6) << n << " " << kappa;
    EXPECT_LT(1e4 * lanczos_error, plain_error) << n << " " << kappa << " plain " << plain_error;
    EXPECT_LT(*lanczos.relative_residual, 1e-9);
    EXPECT_EQ(lanczos.hvps, lanczos.iterations + 1);
  }
}

TYPED_TEST(Solvers, CgReportsNegativeCurvatureMaxIterationsAndNumericalIssue) {
  using S = TypeParam;
  const Index n = 30;
  const Vec<S> b = random_vector<S>(n, 71);
  for (bool reorth : {false, true}) {
    ift::CgParams p;
    p.reorthogonalize = reorth;
    p.tolerance = 1e-10;
    // Negative definite: the first pᵀAp is negative, nothing is clamped, x is the start.
    const Mat<S> negative = -random_spd<S>(n, 10.0, 72);
    const auto neg = ift::conjugate_gradient(ift::DenseOperator<S>(negative), b, p);
    EXPECT_EQ(neg.status, ift::SolverStatus::NegativeCurvature);
    EXPECT_FALSE(neg.message.empty());
    EXPECT_TRUE(neg.x.allFinite());
    EXPECT_EQ(neg.hvps, 1);
    EXPECT_NEAR(*neg.relative_residual, 1.0, tight<S>());
    // Indefinite with one strongly negative direction: stops at some pᵀAp <= 0 and returns the
    // lowest-residual iterate.
    Vec<double> d = geometric_spectrum(n, 1.0, 10.0);
    d[0] = -50;
    const Mat<S> indefinite = symmetric_with_spectrum<S>(d, 73);
    p.record_history = true;
    const auto ind = ift::conjugate_gradient(ift::DenseOperator<S>(indefinite), b, p);
    EXPECT_EQ(ind.status, ift::SolverStatus::NegativeCurvature) << ind.message;
    EXPECT_TRUE(ind.x.allFinite());
    const double lowest = *std::min_element(ind.residual_history.begin(), ind.residual_history.end());
    EXPECT_DOUBLE_EQ(*ind.relative_residual, lowest);
    const Vec<S> rr = b - indefinite * ind.x;
    EXPECT_NEAR(static_cast<double>(rr.norm() / b.norm()), lowest, 1e3 * tight<S>());
    p.record_history = false;

    // Too few iterations: never looks like success.
    p.max_iterations = 3;
    const Mat<S> H = random_spd<S>(n, 1e3, 74);
    const auto few = ift::conjugate_gradient(ift::DenseOperator<S>(H), b, p);
    EXPECT_EQ(few.status, ift::SolverStatus::MaxIterations);
    EXPECT_EQ(few.iterations, 3);
    EXPECT_EQ(few.hvps, 3);
    EXPECT_GT(*few.relative_residual, p.tolerance);
    EXPECT_FALSE(few.message.empty());

    // An operator that produces NaN after two applications.
    p.max_iterations = 20;
    Index count = 0;
    ift::FunctionOperator<Vec<S>> poisoned(n, [&](const Vec<S>& x, Vec<S>& y) {
      y.noalias() = H * x;
      if (++count > 2) y[0] = std::numeric_limits<S>::quiet_NaN();
    });
    const auto nan = ift::conjugate_gradient(poisoned, b, p);
    EXPECT_EQ(nan.status, ift::SolverStatus::NumericalIssue);
    EXPECT_TRUE(nan.x.allFinite());
    EXPECT_EQ(nan.hvps, count);
    EXPECT_EQ(nan.iterations, 2);

    // Zero right-hand side: x = 0 without any HVP.
    const auto zero = ift::conjugate_gradient(ift::DenseOperator<S>(H), Vec<S>::Zero(n), p);
    EXPECT_EQ(zero.status, ift::SolverStatus::Converged);
    EXPECT_EQ(zero.hvps, 0);
    EXPECT_EQ(zero.x, Vec<S>::Zero(n));
  }
}

// ---- Neumann series, identity, zero ---------------------------------------------------------

TYPED_TEST(Solvers, NeumannMatchesItsDefinitionAndConvergesToExact) {
  using S = TypeParam;
  for (Index n : {1, 12, 40}) {
    const Mat<S> H = random_spd<S>(n, 8.0, 81 + n);  // λ_max = 8
    const Vec<S> g = random_vector<S>(n, 82 + n);
    const Vec<S> exact = H.template cast<double>().llt().solve(g.template cast<double>()).template cast<S>();
    const double alpha = 1.5 / 8.0;
    // The definition v = α Σ_{j=0..k} (I − αH)^j g, term by term in dense form.
    const Index k = 6;
    const Mat<double> M = Mat<double>::Identity(n, n) - alpha * H.template cast<double>();
    Vec<double> term = g.template cast<double>(), sum = term;
    for (Index j = 1; j <= k; ++j) {
      term = M * term;
      sum += term;
    }
    ift::NeumannParams p;
    p.alpha = alpha;
    p.steps = k;
    Index count = 0;
    auto r = ift::neumann(counting<S>(H, &count), g, p);
    EXPECT_EQ(r.hvps, k);
    EXPECT_EQ(count, k);
    EXPECT_EQ(r.iterations, k);
    EXPECT_DOUBLE_EQ(r.alpha, alpha);
    EXPECT_LT(rel_error<double>(r.x.template cast<double>(), alpha * sum), tight<S>());
    if (n > 1) {
      EXPECT_EQ(r.status, ift::SolverStatus::MaxIterations);
    }

    // Error falls as k grows and reaches the exact solution.
    p.tolerance = std::is_same_v<S, float> ? 1e-5 : 1e-12;
    p.compute_residual = true;
    double previous = std::numeric_limits<double>::infinity();
    for (Index steps : {2, 10, 40, 400}) {
      p.steps = steps;
      count = 0;
      r = ift::neumann(counting<S>(H, &count), g, p);
      EXPECT_EQ(r.hvps, steps + 1);  // + the residual
      EXPECT_EQ(count, steps + 1);
      const double err = rel_error<S>(r.x, exact);
      EXPECT_LE(err, previous * (1 + 1e-3)) << n << " " << steps;
      previous = err;
      ASSERT_TRUE(r.relative_residual.has_value());
    }
    EXPECT_EQ(r.status, ift::SolverStatus::Converged) << r.message;
    EXPECT_LT(previous, 10 * tight<S>());
    EXPECT_LT(*r.relative_residual, 10 * tight<S>());
  }
}

TYPED_TEST(Solvers, NeumannZeroStepsIsAlphaTimesIdentity) {
  using S = TypeParam;
  const Index n = 9;
  const Mat<S> H = random_spd<S>(n, 5.0, 91);
  const Vec<S> g = random_vector<S>(n, 92);
  ift::NeumannParams p;
  p.steps = 0;
  p.alpha = 0.25;
  const auto r = ift::neumann(ift::DenseOperator<S>(H), g, p);
  EXPECT_EQ(r.hvps, 0);
  EXPECT_EQ(r.iterations, 0);
  EXPECT_EQ(r.status, ift::SolverStatus::MaxIterations);  // honest: a truncation
  const auto id = ift::identity_solve(g);
  EXPECT_EQ(id.status, ift::SolverStatus::Converged);
  EXPECT_EQ(id.hvps, 0);
  EXPECT_EQ(id.x, g);
  EXPECT_LT(rel_error<S>(r.x, S(0.25) * id.x), tight<S>());
  const auto zero = ift::zero_solve(g);
  EXPECT_EQ(zero.x, Vec<S>::Zero(n));
  EXPECT_EQ(zero.hvps, 0);
  EXPECT_DOUBLE_EQ(*zero.relative_residual, 1.0);
}

TYPED_TEST(Solvers, NeumannAutomaticAlphaAndDivergence) {
  using S = TypeParam;
  for (Index n : {6, 30}) {
    const double lambda_max = 4.0;
    const Mat<S> H = symmetric_with_spectrum<S>(
        [&] { Vec<double> d = geometric_spectrum(n, 0.5, 2.0); d[n - 1] = lambda_max; return d; }(), 101 + n);
    const Vec<S> g = random_vector<S>(n, 102 + n);

    // Automatic α = safety / λ_max; power-iteration HVPs are counted.
    ift::NeumannParams p;
    p.steps = 10;
    p.power_iterations = 100;
    Index count = 0;
    const auto automatic = ift::neumann(counting<S>(H, &count), g, p);
    EXPECT_NEAR(automatic.alpha, 1.0 / lambda_max, 1e-3 / lambda_max);
    EXPECT_EQ(automatic.hvps, count);
    EXPECT_GT(automatic.hvps, 10);

    // α > 2/λ_max: the top component grows by |1 − αλ_max| = 2 per term.
    p.alpha = 3.0 / lambda_max;
    p.steps = 200;
    count = 0;
    const auto diverged = ift::neumann(counting<S>(H, &count), g, p);
    EXPECT_EQ(diverged.status, ift::SolverStatus::Diverged) << diverged.message;
    EXPECT_TRUE(diverged.x.allFinite());
    EXPECT_FALSE(diverged.message.empty());
    ASSERT_TRUE(diverged.suggested_alpha.has_value());
    EXPECT_NEAR(*diverged.suggested_alpha, 1.0 / lambda_max, 1e-3 / lambda_max);
    EXPECT_EQ(diverged.hvps, count);
    EXPECT_LT(diverged.iterations, 200);
    // x is α times the partial sum of the accepted terms: recompute it from the definition.
    const Mat<double> M = Mat<double>::Identity(n, n) - p.alpha * H.template cast<double>();
    Vec<double> term = g.template cast<double>(), sum = term;
    for (Index j = 1; j <= diverged.iterations; ++j) {
      term = M * term;
      sum += term;
    }
    EXPECT_LT(rel_error<double>(diverged.x.template cast<double>(), p.alpha * sum), 1e2 * tight<S>());

    // Indefinite H with a positive dominant eigenvalue: α = 1/λ_max, but the negative direction
    // grows (1 + α|λ|) per term.
    Vec<double> d = geometric_spectrum(n, 0.5, 2.0);
    d[0] = -1.0;
    d[n - 1] = lambda_max;
    const Mat<S> indefinite = symmetric_with_spectrum<S>(d, 103 + n);
    ift::NeumannParams q;
    q.steps = 500;
    q.power_iterations = 100;
    const auto ind = ift::neumann(ift::DenseOperator<S>(indefinite), g, q);
    EXPECT_EQ(ind.status, ift::SolverStatus::Diverged) << ind.message;
    EXPECT_TRUE(ind.x.allFinite());

    // Negative definite: no automatic α exists.
    const Mat<S> negative = -H;
    const auto none = ift::neumann(ift::DenseOperator<S>(negative), g, q);
    EXPECT_EQ(none.status, ift::SolverStatus::NotPositiveDefinite);
    EXPECT_EQ(none.x, Vec<S>::Zero(n));

    // Non-finite products: Diverged, last finite partial sum.
    ift::FunctionOperator<Vec<S>> poisoned(n, [&](const Vec<S>& x, Vec<S>& y) {
      y.noalias() = H * x;
      y[0] = std::numeric_limits<S>::infinity();
    });
    ift::NeumannParams r;
    r.alpha = 0.1;
    r.steps = 5;
    r.power_iterations = 100;
    const auto inf = ift::neumann(poisoned, g, r);
    EXPECT_EQ(inf.status, ift::SolverStatus::Diverged);
    EXPECT_EQ(inf.iterations, 0);
    EXPECT_LT(rel_error<S>(inf.x, S(0.1) * g), tight<S>());
  }
}

// ---- eigenvalues: power iteration and Spectra against Eigen ----------------------------------

TYPED_TEST(Solvers, PowerIterationAndSpectraAgreeWithEigen) {
  using S = TypeParam;
  for (Index n : {2, 9, 30, 60}) {
    // Isolated extreme eigenvalues so that power iteration converges within its budget.
    Vec<double> d = geometric_spectrum(n, 2.0, 5.0);
    d[0] = 0.5;
    d[n - 1] = 10.0;
    const Mat<S> H = symmetric_with_spectrum<S>(d, 111 + n);
    Eigen::SelfAdjointEigenSolver<Mat<double>> reference(H.template cast<double>());
    const double lmax = reference.eigenvalues()[n - 1], lmin = reference.eigenvalues()[0];
    const double tol = std::is_same_v<S, float> ? 1e-4 : 1e-8;

    Index count = 0;
    const auto op = counting<S>(H, &count);
    ift::PowerIterationParams pp;
    pp.max_iterations = 500;
    pp.tolerance = std::is_same_v<S, float> ? 1e-7 : 1e-12;
    const auto top = ift::power_iteration(op, pp);
    EXPECT_EQ(top.status, ift::SolverStatus::Converged);
    EXPECT_NEAR(top.eigenvalue, lmax, tol * lmax);
    EXPECT_EQ(top.hvps, count);

    count = 0;
    const auto pow_spectrum = ift::extreme_eigenvalues_power(op, pp);
    EXPECT_EQ(pow_spectrum.status, ift::SolverStatus::Converged) << pow_spectrum.message;
    EXPECT_NEAR(pow_spectrum.lambda_max, lmax, tol * lmax);
    EXPECT_NEAR(pow_spectrum.lambda_min, lmin, 10 * tol * lmax);
    EXPECT_NEAR(pow_spectrum.condition_number, lmax / lmin, 100 * tol * lmax / lmin);
    EXPECT_EQ(pow_spectrum.hvps, count);

    count = 0;
    const auto spectrum = ift::extreme_eigenvalues(op);
    EXPECT_EQ(spectrum.status, ift::SolverStatus::Converged) << spectrum.message;
    EXPECT_NEAR(spectrum.lambda_max, lmax, tol * lmax);
    EXPECT_NEAR(spectrum.lambda_min, lmin, 10 * tol * lmax);
    EXPECT_NEAR(spectrum.condition_number, lmax / lmin, 100 * tol * lmax / lmin);
    EXPECT_EQ(spectrum.hvps, count);
  }
}

TYPED_TEST(Solvers, SpectraOnClusteredAndIndefiniteSpectra) {
  using S = TypeParam;
  const Index n = 80;
  // A random spectrum in [0.1, 10] (no gap): Lanczos still finds both ends.
  Vec<double> d(n);
  ift::detail::SplitMix64 rng(121);
  for (Index i = 0; i < n; ++i) d[i] = 5.05 + 4.95 * rng.uniform_symmetric();
  const Mat<S> H = symmetric_with_spectrum<S>(d, 122);
  Eigen::SelfAdjointEigenSolver<Mat<double>> reference(H.template cast<double>());
  const double tol = std::is_same_v<S, float> ? 1e-4 : 1e-8;
  const auto s = ift::extreme_eigenvalues(ift::DenseOperator<S>(H));
  EXPECT_EQ(s.status, ift::SolverStatus::Converged);
  EXPECT_NEAR(s.lambda_max, reference.eigenvalues()[n - 1], 10 * tol);
  EXPECT_NEAR(s.lambda_min, reference.eigenvalues()[0], 100 * tol);

  // Indefinite: κ = ∞, reported in the message.
  const Mat<S> shifted = H - S(3) * Mat<S>::Identity(n, n);
  const auto ind = ift::extreme_eigenvalues(ift::DenseOperator<S>(shifted));
  EXPECT_EQ(ind.status, ift::SolverStatus::Converged);
  EXPECT_LT(ind.lambda_min, 0);
  EXPECT_TRUE(std::isinf(ind.condition_number));
  EXPECT_FALSE(ind.message.empty());

  // Starved of restarts: NotConverging becomes a status, not an exception.
  ift::SpectraParams starved;
  starved.ncv = 2;
  starved.max_restarts = 1;
  const auto bad = ift::extreme_eigenvalues(ift::DenseOperator<S>(H), starved);
  EXPECT_EQ(bad.status, ift::SolverStatus::MaxIterations);
  EXPECT_FALSE(bad.message.empty());
}

// ---- exact method --------------------------------------------------------------------------

// The blocked, multithreaded Cholesky against Eigen's LLT: every panel/tile shape (block widths
// that divide n, that do not, of 1, and wider than n), and the first failing pivot reported.
TYPED_TEST(Solvers, BlockedCholeskyMatchesEigenLltAndReportsTheFailingPivot) {
  using S = TypeParam;
  for (Index n : {1, 7, 64, 203}) {
    const Mat<S> H = random_spd<S>(n, 50.0, 151 + n);
    const Mat<S> reference = H.llt().matrixL();
    for (Index block : {1, 16, 64, 512}) {
      Mat<S> A = H;
      A.template triangularView<Eigen::StrictlyUpper>().setConstant(S(7));  // must stay unread
      ASSERT_EQ(ift::cholesky_in_place(A, block), -1) << "n = " << n << ", block = " << block;
      const Mat<S> L = A.template triangularView<Eigen::Lower>();
      EXPECT_LT(static_cast<double>((L - reference).norm() / reference.norm()), tight<S>())
          << "n = " << n << ", block = " << block;
      EXPECT_LT(static_cast<double>((L * L.transpose() - H).norm() / H.norm()), tight<S>());
      Mat<S> upper = A.template triangularView<Eigen::StrictlyUpper>();
      EXPECT_TRUE((upper.array() == S(7) || upper.array() == S(0)).all());
    }
  }
  // A negative eigenvalue: the leading 40 × 40 block is positive definite, column 40 is not.
  Mat<S> H = random_spd<S>(60, 10.0, 161);
  H.row(40).setZero();
  H.col(40).setZero();
  H(40, 40) = S(-1);
  for (Index block : {8, 16, 64}) {
    Mat<S> A = H;
    EXPECT_EQ(ift::cholesky_in_place(A, block), 40) << "block = " << block;
  }
  // The default block (256): the factor, the untouched upper triangle, and the failing column.
  for (Index n : {1, 203}) {
    const Mat<S> P = random_spd<S>(n, 50.0, 181 + n);
    Mat<S> A = P;
    A.template triangularView<Eigen::StrictlyUpper>().setConstant(S(7));
    ASSERT_EQ(ift::cholesky_in_place(A), -1);
    const Mat<S> L = A.template triangularView<Eigen::Lower>();
    EXPECT_LT(static_cast<double>((L * L.transpose() - P).norm() / P.norm()), tight<S>());
    Mat<S> upper = A.template triangularView<Eigen::StrictlyUpper>();
    EXPECT_TRUE((upper.array() == S(7) || upper.array() == S(0)).all());
  }
  Mat<S> A = H;
  EXPECT_EQ(ift::cholesky_in_place(A), 40);
}

// Hager's estimate of ‖H⁻¹‖₁ is a lower bound, and on these matrices within a factor 3 of it.
TYPED_TEST(Solvers, CholeskyRcondEstimatesTheConditionNumber) {
  using S = TypeParam;
  for (double kappa : {10.0, 1e3, 1e5}) {
    const Index n = 80;
    const Mat<S> H = random_spd<S>(n, kappa, 171);
    Mat<S> L = H;
    ASSERT_EQ(ift::cholesky_in_place(L, 32), -1);
    const Mat<double> Hd = H.template cast<double>();
    const double true_rcond =
        1.0 / (Hd.cwiseAbs().colwise().sum().maxCoeff() *
               Hd.inverse().cwiseAbs().colwise().sum().maxCoeff());
    const double estimate = ift::cholesky_rcond(L, ift::symmetric_l1_norm(H));
    const double slack = std::is_same_v<S, float> ? 1e-2 : 1e-8;
    EXPECT_GE(estimate, true_rcond * (1 - slack)) << "κ = " << kappa;
    EXPECT_LE(estimate, 3 * true_rcond) << "κ = " << kappa;
    EXPECT_NEAR(ift::symmetric_l1_norm(H), Hd.cwiseAbs().colwise().sum().maxCoeff(),
                1e-5 * Hd.cwiseAbs().colwise().sum().maxCoeff());
  }
}

TYPED_TEST(Solvers, DenseSolverSpdReusesTheFactorisation) {
  using S = TypeParam;
  for (Index n : {1, 10, 50}) {
    const Mat<S> H = random_spd<S>(n, 100.0, 131 + n);
    ift::DenseSolver<S> solver(H);
    EXPECT_EQ(solver.factorization(), ift::DenseFactorization::Cholesky);
    EXPECT_EQ(solver.status(), ift::SolverStatus::Converged);
    for (std::uint64_t seed : {1, 2, 3}) {
      const Vec<S> g = random_vector<S>(n, 132 + seed);
      const auto r = solver.solve(g);
      EXPECT_EQ(r.status, ift::SolverStatus::Converged) << r.message;
      EXPECT_EQ(r.hvps, 0);
      ASSERT_TRUE(r.relative_residual.has_value());
      EXPECT_LT(*r.relative_residual, tight<S>());
      const Vec<S> direct = H.llt().solve(g);
      EXPECT_LT(rel_error<S>(r.x, direct), tight<S>());
    }
  }
}

TYPED_TEST(Solvers, DenseSolverIndefiniteAndSingular) {
  using S = TypeParam;
  const Index n = 12;
  const Vec<S> g = random_vector<S>(n, 141);
  // Indefinite, well conditioned: LDLT solve returned with NotPositiveDefinite.
  Vec<double> d = geometric_spectrum(n, 1.0, 10.0);
  d[0] = -2.0;
  d[3] = -0.5;
  const Mat<S> indefinite = symmetric_with_spectrum<S>(d, 142);
  ift::DenseSolver<S> solver(indefinite);
  EXPECT_EQ(solver.factorization(), ift::DenseFactorization::LDLT);
  const auto r = solver.solve(g);
  EXPECT_EQ(r.status, ift::SolverStatus::NotPositiveDefinite);
  EXPECT_NE(r.message.find("indefinite"), std::string::npos);
  EXPECT_LT(*r.relative_residual, 10 * tight<S>());

  // Exactly singular (a zero row and column): NumericalIssue, x finite, message says singular.
  Mat<S> singular = random_spd<S>(n, 10.0, 143);
  singular.row(4).setZero();
  singular.col(4).setZero();
  solver.compute(singular);
  const auto s = solver.solve(g);
  EXPECT_EQ(s.status, ift::SolverStatus::NumericalIssue);
  EXPECT_NE(s.message.find("singular"), std::string::npos);
  EXPECT_TRUE(s.x.allFinite());

  // Rank-deficient PSD through rounding: Cholesky may "succeed" with a tiny pivot; either way
  // the exact method reports NumericalIssue rather than a silent garbage solve.
  Vec<double> e = geometric_spectrum(n, 1.0, 10.0);
  e[0] = 0.0;
  e[1] = 0.0;
  const Mat<S> psd = symmetric_with_spectrum<S>(e, 144);
  solver.compute(psd);
  const auto p = solver.solve(g);
  EXPECT_EQ(p.status, ift::SolverStatus::NumericalIssue) << p.message;
  EXPECT_TRUE(p.x.allFinite());

  // Non-finite H.
  Mat<S> bad = random_spd<S>(n, 10.0, 145);
  bad(2, 2) = std::numeric_limits<S>::quiet_NaN();
  solver.compute(bad);
  const auto q = solver.solve(g);
  EXPECT_EQ(q.status, ift::SolverStatus::NumericalIssue);
  EXPECT_TRUE(q.x.allFinite());

  ift::DenseSolver<S> empty;
  EXPECT_THROW(empty.solve(g), std::invalid_argument);
}

// ---- KFAC -----------------------------------------------------------------------------------

/// E[a aᵀ] of `samples` random inputs with a bias 1 appended: (in+1)×(in+1) PSD.
template <class S>
Mat<S> input_factor(Index in, Index samples, std::uint64_t seed) {
  Mat<double> X(samples, in + 1);
  for (Index i = 0; i < samples; ++i) {
    X.row(i).head(in) = random_vector<double>(in, seed * 100 + i).transpose();
    X(i, in) = 1.0;
  }
  return (X.transpose() * X / static_cast<double>(samples)).cast<S>();
}

template <class S>
Mat<S> kronecker(const Mat<S>& G, const Mat<S>& A) {
  Mat<S> K(G.rows() * A.rows(), G.cols() * A.cols());
  for (Index i = 0; i < G.rows(); ++i)
    for (Index j = 0; j < G.cols(); ++j) K.block(i * A.rows(), j * A.cols(), A.rows(), A.cols()) = G(i, j) * A;
  return K;
}

/// Two blocks with uncovered parameters before, between and after them.
template <class S>
std::vector<ift::KroneckerBlock<S>> two_blocks() {
  std::vector<ift::KroneckerBlock<S>> blocks(2);
  blocks[0].offset = 2;
  blocks[0].A = input_factor<S>(3, 50, 151);              // 4×4
  blocks[0].G = random_spd<S>(2, 5.0, 152) * S(0.5);      // 2×2
  blocks[1].offset = 12;
  blocks[1].A = input_factor<S>(2, 40, 153);              // 3×3
  blocks[1].G = random_spd<S>(4, 20.0, 154) * S(0.1);     // 4×4
  return blocks;
}

TYPED_TEST(Solvers, KfacForwardMatchesDenseKronecker) {
  using S = TypeParam;
  const Index dim = 27;
  const auto blocks = two_blocks<S>();
  const double delta = 0.05;
  Mat<S> dense = S(delta) * Mat<S>::Identity(dim, dim);
  for (const auto& b : blocks) dense.block(b.offset, b.offset, b.size(), b.size()) += kronecker<S>(b.G, b.A);
  const ift::KfacCurvatureOperator<S> forward(dim, blocks, delta);
  const Vec<S> x = random_vector<S>(dim, 155);
  Vec<S> y(dim);
  forward.apply(x, y);
  EXPECT_LT(rel_error<S>(y, dense * x), tight<S>());
  // Layout: parameter offset + j + (in+1)·o is M(j, o), and the block acts as vec(A M G).
  const auto& b = blocks[0];
  const Mat<S> M = Eigen::Map<const Mat<S>>(x.data() + b.offset, 4, 2);
  const Mat<S> AMG = b.A * M * b.G + S(delta) * M;
  EXPECT_LT(rel_error<S>(y.segment(b.offset, 8), Eigen::Map<const Vec<S>>(AMG.data(), 8)), tight<S>());
}

TYPED_TEST(Solvers, KfacInverseTimesForwardIsIdentity) {
  using S = TypeParam;
  const Index dim = 27;
  const auto blocks = two_blocks<S>();
  for (double delta : {1e-2, 1.0}) {
    const ift::KfacCurvatureOperator<S> forward(dim, blocks, delta);
    const ift::KfacInverseOperator<S> inverse(dim, blocks, delta, ift::KfacDampingMode::Exact);
    ASSERT_EQ(inverse.status(), ift::SolverStatus::Converged) << inverse.message();
    const Vec<S> x = random_vector<S>(dim, 161);
    Vec<S> y(dim), z(dim);
    forward.apply(x, y);
    inverse.apply(y, z);
    EXPECT_LT(rel_error<S>(z, x), (std::is_same_v<S, float> ? 1e2 : 1.0) * tight<S>()) << delta;
    inverse.apply(x, y);
    forward.apply(y, z);
    EXPECT_LT(rel_error<S>(z, x), (std::is_same_v<S, float> ? 1e2 : 1.0) * tight<S>()) << delta;

    // Factored damping against its definition (A + √δ I)⁻¹ M (G + √δ I)⁻¹, and x/δ outside.
    const ift::KfacInverseOperator<S> factored(dim, blocks, delta, ift::KfacDampingMode::Factored);
    ASSERT_EQ(factored.status(), ift::SolverStatus::Converged);
    factored.apply(x, y);
    Vec<S> expected = x / S(delta);
    const S root = static_cast<S>(std::sqrt(delta));
    for (const auto& b : blocks) {
      const Mat<S> M = Eigen::Map<const Mat<S>>(x.data() + b.offset, b.inputs(), b.outputs());
      const Mat<S> Ad = b.A + root * Mat<S>::Identity(b.inputs(), b.inputs());
      const Mat<S> Gd = b.G + root * Mat<S>::Identity(b.outputs(), b.outputs());
      const Mat<S> left = Ad.llt().solve(M);
      const Mat<S> Y = Gd.llt().solve(left.transpose()).transpose();  // G symmetric
      expected.segment(b.offset, b.size()) = Eigen::Map<const Vec<S>>(Y.data(), b.size());
    }
    EXPECT_LT(rel_error<S>(y, expected), 10 * tight<S>()) << delta;
  }
}

TYPED_TEST(Solvers, KfacSolveEqualsDenseSolveOnAKroneckerCurvature) {
  using S = TypeParam;
  ift::KroneckerBlock<S> block;
  block.offset = 0;
  block.A = input_factor<S>(4, 30, 171);  // 5×5
  block.G = random_spd<S>(3, 4.0, 172);   // 3×3
  const Index dim = block.size();
  const double delta = 1e-3;
  const Mat<S> H = kronecker<S>(block.G, block.A) + S(delta) * Mat<S>::Identity(dim, dim);
  const Vec<S> g = random_vector<S>(dim, 173);
  const ift::KfacInverseOperator<S> inverse(dim, {block}, delta);
  const auto r = ift::kfac_solve(inverse, g, ift::DenseOperator<S>(H));
  EXPECT_EQ(r.status, ift::SolverStatus::Converged) << r.message;
  EXPECT_EQ(r.hvps, 1);
  EXPECT_NE(r.message.find("damping"), std::string::npos);
  const auto exact = ift::DenseSolver<S>(H).solve(g);
  const double tol = std::is_same_v<S, float> ? 5e-3 : 1e-9;  // κ(H) ~ 1e4
  EXPECT_LT(rel_error<S>(r.x, exact.x), tol);
  EXPECT_LT(*r.relative_residual, tol);
}

TYPED_TEST(Solvers, KfacReportsUndefinedInverses) {
  using S = TypeParam;
  ift::KroneckerBlock<S> block;
  block.A = Mat<S>::Zero(3, 3);
  block.A(0, 0) = 1;  // singular factor
  block.G = Mat<S>::Identity(2, 2);
  const Vec<S> g = random_vector<S>(6, 181);
  const ift::KfacInverseOperator<S> singular(6, {block}, 0.0);
  EXPECT_EQ(singular.status(), ift::SolverStatus::NumericalIssue);
  const auto r = ift::kfac_solve(singular, g);
  EXPECT_EQ(r.status, ift::SolverStatus::NumericalIssue);
  EXPECT_EQ(r.x, Vec<S>::Zero(6));
  EXPECT_FALSE(r.message.empty());
  // The same factor with damping is fine.
  EXPECT_EQ(ift::kfac_solve(ift::KfacInverseOperator<S>(6, {block}, 0.1), g).status,
            ift::SolverStatus::Converged);
  // Uncovered parameters need δ > 0.
  block.A = Mat<S>::Identity(3, 3);
  EXPECT_EQ(ift::KfacInverseOperator<S>(8, {block}, 0.0).status(), ift::SolverStatus::NumericalIssue);
  EXPECT_EQ(ift::KfacInverseOperator<S>(6, {block}, 0.0).status(), ift::SolverStatus::Converged);
  // Misuse throws: overlapping blocks, negative damping, out-of-range offsets.
  std::vector<ift::KroneckerBlock<S>> overlap{block, block};
  overlap[1].offset = 3;
  EXPECT_THROW(ift::KfacInverseOperator<S>(20, overlap, 1.0), std::invalid_argument);
  EXPECT_THROW(ift::KfacInverseOperator<S>(6, {block}, -1.0), std::invalid_argument);
  block.offset = 1;
  EXPECT_THROW(ift::KfacInverseOperator<S>(6, {block}, 1.0), std::invalid_argument);
}

// ---- the seam: solvers on a non-Eigen, shallow-copy vector type ------------------------------

TEST(Solvers, SolversRunOnAnyVectorSpace) {
  static_assert(ift::HasVectorSpace<SharedVec>);
  const Index n = 20;
  const Mat<double> H = random_spd<double>(n, 10.0, 191);
  const Vec<double> g = random_vector<double>(n, 192);
  const Vec<double> exact = H.llt().solve(g);
  const ift::FunctionOperator<SharedVec> op(n, [&H](const SharedVec& x, SharedVec& y) {
    Eigen::Map<Vec<double>>(y.data->data(), H.rows()).noalias() =
        H * Eigen::Map<const Vec<double>>(x.data->data(), H.rows());
  });
  const SharedVec gs = to_shared(g);
  for (bool reorth : {false, true}) {
    ift::CgParams p;
    p.reorthogonalize = reorth;
    p.tolerance = 1e-12;
    const auto cg = ift::conjugate_gradient(op, gs, p);
    EXPECT_EQ(cg.status, ift::SolverStatus::Converged);
    EXPECT_LT(rel_error<double>(from_shared(cg.x), exact), 1e-10);
    EXPECT_NE(cg.x.data.get(), gs.data.get());
    const auto eigen_cg = ift::conjugate_gradient(ift::DenseOperator<double>(H), g, p);
    EXPECT_NEAR(static_cast<double>(cg.iterations), static_cast<double>(eigen_cg.iterations), 1.0);
  }
  ift::NeumannParams np;
  np.steps = 300;
  np.tolerance = 1e-12;
  np.power_iterations = 100;
  const auto ns = ift::neumann(op, gs, np);
  EXPECT_EQ(ns.status, ift::SolverStatus::Converged);
  EXPECT_LT(rel_error<double>(from_shared(ns.x), exact), 1e-10);
  EXPECT_EQ(from_shared(gs), g);  // the input was not written through a shared copy
  const auto pi = ift::power_iteration(op, gs);
  EXPECT_NEAR(pi.eigenvalue, 10.0, 1e-4);
  EXPECT_EQ(from_shared(ift::identity_solve(gs).x), g);
}

// ---- every status is reachable (summary of the above, in one place) -------------------------

TEST(Solvers, EveryStatusIsProduced) {
  std::set<ift::SolverStatus> seen;
  const Index n = 10;
  const Mat<double> H = random_spd<double>(n, 100.0, 201);
  const Vec<double> g = random_vector<double>(n, 202);
  ift::CgParams cg;
  cg.tolerance = 1e-10;
  cg.reorthogonalize = false;
  seen.insert(ift::conjugate_gradient(ift::DenseOperator<double>(H), g, cg).status);
  cg.max_iterations = 2;
  seen.insert(ift::conjugate_gradient(ift::DenseOperator<double>(H), g, cg).status);
  const Mat<double> negative = -H;
  seen.insert(ift::conjugate_gradient(ift::DenseOperator<double>(negative), g).status);
  ift::NeumannParams np;
  np.alpha = 3.0 / 100.0;
  np.power_iterations = 100;
  seen.insert(ift::neumann(ift::DenseOperator<double>(H), g, np).status);
  Vec<double> d = geometric_spectrum(n, 1.0, 10.0);
  d[0] = -1;
  const Mat<double> indefinite = symmetric_with_spectrum<double>(d, 203);
  seen.insert(ift::DenseSolver<double>(indefinite).solve(g).status);
  Mat<double> singular = H;
  singular.row(0).setZero();
  singular.col(0).setZero();
  seen.insert(ift::DenseSolver<double>(singular).solve(g).status);
  EXPECT_EQ(seen.size(), 6u);
}

}  // namespace
