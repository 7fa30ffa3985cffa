#include "ift/problems/regularized.hpp"
#include "ift/torch/cross_check.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "ift/bilevel.hpp"
#include "ift/data/synthetic.hpp"
#include "ift/generic/bilevel.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problem.hpp"
#include "ift/torch/models.hpp"
#include "ift/torch/problem.hpp"

namespace ift::deep {

namespace {

double tolerance_of(const CrossCheckOptions& o) {
  if (o.tolerance > 0) return o.tolerance;
  return o.dtype == ::torch::kDouble ? 1e-10 : 1e-4;
}

double relative_error(const Vector<double>& torch_value, const Vector<double>& eigen_value) {
  if (torch_value.size() != eigen_value.size()) return std::numeric_limits<double>::infinity();
  const double scale = eigen_value.norm();
  const double diff = (torch_value - eigen_value).norm();
  return scale > 0 ? diff / scale : diff;
}

/// A deterministic per-weight log λ around log(0.02): different for every weight, so a
/// permuted layout cannot pass.
Vector<double> spread_lambda(Index n) {
  Vector<double> lambda(n);
  for (Index i = 0; i < n; ++i) lambda(i) = std::log(0.02) + 0.5 * std::sin(0.7 * double(i));
  return lambda;
}

TensorData tensors_of(const Dataset<double>& data, const ::torch::TensorOptions& options) {
  Tensor y = ::torch::empty({data.size()}, ::torch::kLong);
  for (Index i = 0; i < data.size(); ++i) y[i] = static_cast<std::int64_t>(data.labels(i));
  return TensorData{to_tensor(data.X, options), y}.to(options);
}

/// The method specs compared between the backends.
std::vector<MethodSpec> specs() {
  std::vector<MethodSpec> out;
  MethodSpec s;
  s.method = Method::Cg;
  s.steps = 15;
  s.cg.reorthogonalize = true;
  out.push_back(s);
  s.cg.reorthogonalize = false;
  s.steps = 6;
  out.push_back(s);
  s = MethodSpec{};
  s.method = Method::Neumann;
  s.steps = 10;
  s.neumann.power_iterations = 50;
  out.push_back(s);
  s = MethodSpec{};
  s.method = Method::Identity;
  out.push_back(s);
  s.method = Method::Zero;
  out.push_back(s);
  s = MethodSpec{};
  s.method = Method::Unrolled;
  s.steps = 4;
  s.neumann.power_iterations = 50;
  out.push_back(s);
  s = MethodSpec{};
  s.method = Method::Kfac;
  s.damping = 1e-3;
  out.push_back(s);
  return out;
}

std::string spec_label(const MethodSpec& s) {
  std::string label = s.name();
  if (s.method == Method::Cg) label += std::string(s.cg.reorthogonalize ? "-lanczos" : "-plain");
  return label;
}

/// Compares one Eigen problem with its LibTorch twin at (λ, w).
template <class EigenProblem>
std::vector<CheckResult> compare(const std::string& prefix, EigenProblem& eigen, TorchProblem& deep,
                                 const Vector<double>& lambda, const Vector<double>& w,
                                 const CrossCheckOptions& o) {
  const double tol = tolerance_of(o);
  const auto options = deep.options();
  std::vector<CheckResult> results;
  auto add = [&](const std::string& name, double error, double t, std::string detail = {}) {
    results.push_back({prefix + "/" + name, error, t, std::move(detail)});
  };
  // Derivatives away from w* (at w* the gradient is ~1e-10 and its relative error says
  // nothing), then every hypergradient method at w itself.
  Vector<double> shift(w.size());
  VectorSpace<Vector<double>>::fill_random(shift, o.seed + 3);
  const Vector<double> moved = w + 0.1 * shift;
  eigen.set_point(lambda, moved);
  deep.set_point(to_tensor(lambda, options), to_tensor(moved, options));
  add("train-loss", std::abs(deep.train_loss() - eigen.train_loss()) / std::abs(eigen.train_loss()), tol);
  add("gradient", relative_error(to_vector<double>(deep.train_gradient()), eigen.train_gradient()), tol);
  add("val-loss", std::abs(deep.val_loss() - eigen.val_loss()) / std::abs(eigen.val_loss()), tol);
  add("val-gradient", relative_error(to_vector<double>(deep.val_gradient()), eigen.val_gradient()), tol);

  Vector<double> v(w.size());
  VectorSpace<Vector<double>>::fill_random(v, o.seed + 5);
  Vector<double> eigen_out;
  Tensor deep_out;
  const Tensor tv = to_tensor(v, options);
  eigen.hvp(v, eigen_out);
  deep.hvp(tv, deep_out);
  add("hvp", relative_error(to_vector<double>(deep_out), eigen_out), tol);
  eigen.mixed_product(v, eigen_out);
  deep.mixed_product(tv, deep_out);
  add("mixed-partial", relative_error(to_vector<double>(deep_out), eigen_out), tol);

  eigen.set_point(lambda, w);
  deep.set_point(to_tensor(lambda, options), to_tensor(w, options));
  for (const MethodSpec& spec : specs()) {
    const HypergradientResult<double> reference = ift::hypergradient(eigen, spec);
    const auto mine = generic::hypergradient(deep, spec);
    // KFAC diagonalises its factors with different eigensolvers (LAPACK through ATen vs
    // Eigen's): agreement to rounding of the damped inverse, a little looser.
    const double t = spec.method == Method::Kfac ? std::max(tol, 1e-8) : tol;
    std::string detail = std::string("eigen ") + to_string(reference.status) + ", torch " +
                         to_string(mine.status) + ", hvps " + std::to_string(reference.hvps) + "/" +
                         std::to_string(mine.hvps);
    if (reference.alpha != 0)
      detail += ", α " + std::to_string(reference.alpha) + "/" + std::to_string(mine.alpha);
    double error = relative_error(to_vector<double>(mine.hypergradient), reference.hypergradient);
    if (reference.status != mine.status || reference.hvps != mine.hvps)
      error = std::numeric_limits<double>::infinity();  // same method, same diagnostics
    add("hypergradient/" + spec_label(spec), error, t, detail);
  }
  // The inner solver newton_cg_solve is one template for both backends: three Newton-CG
  // iterations from the moved point give the same iterate on each (and the same HVP count).
  {
    NewtonCgParams p;
    p.max_iterations = 3;
    Vector<double> we = moved;
    const InnerResult re = newton_cg_solve(eigen, lambda, we, p);
    Tensor wt = to_tensor(moved, options);
    const InnerResult rt = newton_cg_solve(deep, to_tensor(lambda, options), wt, p);
    double error = relative_error(to_vector<double>(wt), we);
    if (re.iterations != rt.iterations) error = std::numeric_limits<double>::infinity();
    add("inner/newton-cg", error, tol,
        "eigen " + std::to_string(re.hvps) + " HVPs, ||g|| " + std::to_string(re.gradient_norm) +
            "; torch " + std::to_string(rt.hvps) + " HVPs, ||g|| " +
            std::to_string(rt.gradient_norm));
    eigen.set_point(lambda, w);
    deep.set_point(to_tensor(lambda, options), to_tensor(w, options));
  }

  // Algorithm 2 through the one generic loop on both backends: three hyper-steps from (λ, w)
  // with full-batch SGD on w and on λ (no Adam: its normalisation would magnify rounding in
  // near-zero entries) and a plain cg(6) hypergradient, then w and the change of λ compared.
  BilevelParams bp;
  bp.hyper_steps = 3;
  bp.inner_steps = 4;
  bp.inner = {OptimizerKind::Sgd, 0.1};
  bp.outer = {OptimizerKind::Sgd, 1.0};
  bp.method.method = Method::Cg;
  bp.method.steps = 6;
  bp.method.cg.reorthogonalize = false;
  BilevelLoop<double> eigen_loop(bp);
  const auto er = eigen_loop.run(static_cast<BilevelProblem<double>&>(eigen), w, lambda);
  generic::BilevelLoop<TorchProblem> torch_loop(bp);
  const auto tr = torch_loop.run(deep, to_tensor(w, options), to_tensor(lambda, options));
  const bool same_statuses =
      er.records.size() == tr.records.size() &&
      std::equal(er.records.begin(), er.records.end(), tr.records.begin(),
                 [](const HyperStepRecord& a, const HyperStepRecord& b) {
                   return a.status == b.status && a.hvps == b.hvps;
                 });
  const double w_error = relative_error(to_vector<double>(tr.w), er.w);
  const double lambda_error =
      relative_error(to_vector<double>(tr.lambda) - lambda, er.lambda - lambda);
  add("loop/w", same_statuses ? w_error : std::numeric_limits<double>::infinity(), tol,
      std::to_string(er.records.size()) + " hyper-steps");
  // λ must have moved, or the comparison of its change would be vacuous.
  const double lambda_moved = (er.lambda - lambda).norm();
  add("loop/lambda-change",
      same_statuses && lambda_moved > 0 ? lambda_error : std::numeric_limits<double>::infinity(), tol,
      "||Δλ|| = " + std::to_string(lambda_moved));
  return results;
}

Dataset<double> with_bias(Dataset<double> d) {
  d.append_bias_column();
  return d;
}

}  // namespace

std::vector<CheckResult> cross_check_logistic(const CrossCheckOptions& o) {
  ::torch::manual_seed(static_cast<std::uint64_t>(o.seed));
  const auto options = ::torch::TensorOptions().dtype(o.dtype).device(o.device);
  const Dataset<double> all =
      with_bias(make_blobs<double>(o.n_train + o.n_val, o.features, o.classes, 1.5, o.seed));
  auto train = std::make_shared<Dataset<double>>(all.slice(0, o.n_train));
  auto val = std::make_shared<Dataset<double>>(all.slice(o.n_train, o.n_val));
  const Index F = all.num_features();
  SoftmaxRegression<double> model(F, o.classes);
  RegularizedProblem<SoftmaxRegression<double>> eigen(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), train, val);
  const Vector<double> lambda = spread_lambda(model.num_params());
  Vector<double> w = Vector<double>::Zero(model.num_params());
  newton_solve<double>(eigen, lambda, w);

  SoftmaxRegressionNet net(F, o.classes);
  net->to(o.device, o.dtype);
  auto family = std::make_shared<WeightDecayFamily>(net->parameters(), DecayKind::PerWeight, 0.0);
  TorchProblem deep(Model::of(net), family, tensors_of(*train, options), tensors_of(*val, options));
  return compare("logreg", eigen, deep, lambda, w, o);
}

std::vector<CheckResult> cross_check_mlp(const CrossCheckOptions& o) {
  ::torch::manual_seed(static_cast<std::uint64_t>(o.seed));
  const auto options = ::torch::TensorOptions().dtype(o.dtype).device(o.device);
  // ift::Mlp appends the bias itself: the data has no bias column.
  const Dataset<double> all =
      make_blobs<double>(o.n_train + o.n_val, o.features, o.classes, 1.5, o.seed + 1);
  auto train = std::make_shared<Dataset<double>>(all.slice(0, o.n_train));
  auto val = std::make_shared<Dataset<double>>(all.slice(o.n_train, o.n_val));
  const std::vector<Index> widths{o.features, o.hidden, o.classes};
  Mlp<double> model(widths, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  RegularizedProblem<Mlp<double>> eigen(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), train, val);
  const Vector<double> lambda = spread_lambda(model.num_params());
  Vector<double> w = model.initial_weights(o.seed);
  NewtonParams newton;
  newton.max_iterations = 30;  // a nearby point is enough to compare; w* is not required
  newton_solve<double>(eigen, lambda, w, newton);

  AffineMlp net(std::vector<std::int64_t>{o.features, o.hidden, o.classes}, Activation::Tanh);
  net->to(o.device, o.dtype);
  auto family = std::make_shared<WeightDecayFamily>(net->parameters(), DecayKind::PerWeight, 0.0);
  TorchProblem deep(Model::of(net), family, tensors_of(*train, options), tensors_of(*val, options));
  return compare("mlp", eigen, deep, lambda, w, o);
}

std::vector<CheckResult> check_unification(const CrossCheckOptions& o) {
  ::torch::manual_seed(static_cast<std::uint64_t>(o.seed));
  const auto options = ::torch::TensorOptions().dtype(o.dtype).device(o.device);
  const Dataset<double> all =
      with_bias(make_blobs<double>(o.n_train + o.n_val, o.features, o.classes, 1.5, o.seed + 2));
  auto train = std::make_shared<Dataset<double>>(all.slice(0, o.n_train));
  auto val = std::make_shared<Dataset<double>>(all.slice(o.n_train, o.n_val));
  const Index F = all.num_features();
  SoftmaxRegression<double> model(F, o.classes);
  RegularizedProblem<SoftmaxRegression<double>> eigen(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), train, val);
  const Vector<double> lambda = spread_lambda(model.num_params());
  Vector<double> w = Vector<double>::Zero(model.num_params());
  NewtonParams newton;
  newton.gradient_tolerance = o.dtype == ::torch::kDouble ? 1e-13 : 1e-6;
  newton_solve<double>(eigen, lambda, w, newton);

  SoftmaxRegressionNet net(F, o.classes);
  net->to(o.device, o.dtype);
  auto family = std::make_shared<WeightDecayFamily>(net->parameters(), DecayKind::PerWeight, 0.0);
  TorchProblem deep(Model::of(net), family, tensors_of(*train, options), tensors_of(*val, options));
  deep.set_point(to_tensor(lambda, options), to_tensor(w, options));

  // A fixed α below 2/λ_max (found once) so both sides use the same step.
  MethodSpec probe;
  probe.method = Method::Neumann;
  probe.steps = 0;
  const double alpha = 0.8 * generic::hypergradient(deep, probe).alpha;
  std::vector<CheckResult> results;
  for (const Index i : {Index(1), Index(3), Index(8)}) {
    MethodSpec unrolled;
    unrolled.method = Method::Unrolled;
    unrolled.steps = i;
    unrolled.neumann.alpha = alpha;
    MethodSpec series;
    series.method = Method::Neumann;
    series.steps = i - 1;
    series.neumann.alpha = alpha;
    const auto a = generic::hypergradient(deep, unrolled);
    const auto b = generic::hypergradient(deep, series);
    const double error = relative_error(to_vector<double>(a.hypergradient), to_vector<double>(b.hypergradient));
    // The theorem is exact at a stationary point; ||∇L_T(w*)|| enters the error linearly.
    results.push_back({"unification/unrolled(" + std::to_string(i) + ")=neumann(" +
                           std::to_string(i - 1) + ")",
                       error, o.dtype == ::torch::kDouble ? 1e-9 : 1e-3,
                       "α " + std::to_string(alpha) + ", ||∇L_T(w*)|| " +
                           std::to_string(deep.train_gradient().norm().item<double>())});
  }
  return results;
}

}  // namespace ift::deep
