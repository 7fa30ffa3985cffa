#include "ift/baselines/search.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ift/bilevel.hpp"

namespace ift::baselines {

const char* to_string(SearchKind k) {
  return k == SearchKind::Random ? "random-search" : "bayes-opt";
}
const char* to_string(TrialStart s) {
  switch (s) {
    case TrialStart::Reinitialize: return "reinit";
    case TrialStart::WarmBest: return "warm-best";
    case TrialStart::WarmLast: return "warm-last";
  }
  return "?";
}

void SearchParams::check() const {
  require(lower.size() >= 1 && lower.size() == upper.size(),
          "SearchParams: lower and upper must be non-empty and of the same size");
  require(lower.size() <= kMaxSearchDimension,
          "random search and Bayesian optimisation take at most " +
              std::to_string(kMaxSearchDimension) + " hyperparameters (got " +
              std::to_string(lower.size()) +
              "); use a gradient-based method (IFT, hypernetwork) for more");
  require(lower.allFinite() && upper.allFinite() && (lower.array() < upper.array()).all(),
          "SearchParams: the box needs finite lower < upper in every dimension");
  require(initial_trials >= 1, "SearchParams::initial_trials must be >= 1");
  require(gp_fit.restarts >= 1 && gp_fit.max_iterations >= 1,
          "SearchParams::gp_fit: restarts and max_iterations must be >= 1");
  require(ei.random_starts + ei.best_starts >= 1 && ei.max_iterations >= 1,
          "SearchParams::ei: needs at least one start and one iteration");
  inner.check();
}

Search::Search(BilevelProblem<double>& problem, SearchParams params, Vector<double> w_init)
    : problem_(problem), params_(std::move(params)), w_init_(std::move(w_init)), rng_(params_.seed) {
  params_.check();
  require(params_.lower.size() == problem_.num_hyper(),
          "Search: the box has " + std::to_string(params_.lower.size()) +
              " dimensions, the problem " + std::to_string(problem_.num_hyper()) +
              " hyperparameters");
  require(w_init_.size() == problem_.num_params(), "Search: w_init has the wrong size");
  if (params_.kind == SearchKind::BayesOpt)
    gp_ = std::make_unique<GaussianProcess>(params_.lower.size(), params_.ard);
}

Search::~Search() = default;

const Trial& Search::best() const {
  require(best_ >= 0, "Search::best: no trial yet");
  return trials_[static_cast<std::size_t>(best_)];
}

Trial Search::run_trial(const Vector<double>& lambda, Vector<double>& w) {
  // The loop's inner phase and nothing else: no hyper-step, one final evaluation (inner phase,
  // the zero method's hypergradient: ∇_w L_V only, metrics).
  BilevelParams p;
  p.hyper_steps = 0;
  p.evaluate_final = true;
  p.inner_steps = params_.inner.inner_steps;
  p.inner_solver = params_.inner.inner_solver;
  p.inner_tolerance = params_.inner.inner_tolerance;
  p.inner = params_.inner.inner;
  p.batch_size = params_.inner.batch_size;
  p.seed = params_.inner.seed + static_cast<std::uint64_t>(trials_.size());
  p.record_inner_gradient_norm = true;
  p.method.method = Method::Zero;
  BilevelLoop<double> loop(p);
  auto result = loop.run(problem_, w, lambda);
  require(!result.records.empty(), "Search: the trial's inner phase produced no record");
  const HyperStepRecord& r = result.records.back();
  w = std::move(result.w);
  Trial t;
  t.lambda = lambda;
  t.metrics = r.metrics;
  t.inner_iterations = r.inner_iterations;
  t.inner_status = r.inner_status;
  t.inner_gradient_norm = r.inner_gradient_norm;
  return t;
}

Vector<double> Search::propose(Trial& info) {
  const Index d = params_.lower.size();
  const Vector<double> width = params_.upper - params_.lower;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto uniform = [&] {
    Vector<double> u(d);
    for (Index i = 0; i < d; ++i) u(i) = unit(rng_);
    return u;
  };
  Vector<double> u;
  if (params_.kind == SearchKind::Random || trials() < params_.initial_trials) {
    u = uniform();
  } else {
    // The GP on (u, standardised L_V) of every trial with a finite L_V.
    std::vector<Index> ok;
    for (Index i = 0; i < trials(); ++i)
      if (std::isfinite(trials_[static_cast<std::size_t>(i)].metrics.val_loss)) ok.push_back(i);
    if (ok.empty()) return params_.lower + width.cwiseProduct(uniform());
    const Index n = static_cast<Index>(ok.size());
    Matrix<double> X(n, d);
    Vector<double> y(n);
    for (Index j = 0; j < n; ++j) {
      const Trial& t = trials_[static_cast<std::size_t>(ok[static_cast<std::size_t>(j)])];
      X.row(j) = (t.lambda - params_.lower).cwiseQuotient(width).transpose();
      y(j) = t.metrics.val_loss;
    }
    const double mean = y.mean();
    const double sd = n > 1 ? std::sqrt((y.array() - mean).square().sum() / static_cast<double>(n - 1)) : 0.0;
    y = (y.array() - mean) / (sd > 0 ? sd : 1.0);
    gp_->set_data(X, y);
    gp_->fit(params_.gp_fit, rng_);
    double ei = 0;
    u = gp_->maximize_expected_improvement(y.minCoeff(), params_.ei, rng_, &ei);
    info.gp_jitter = gp_->jitter();
    info.expected_improvement = ei;
    info.proposed_by_gp = true;
  }
  return params_.lower + width.cwiseProduct(u);
}

Trial Search::next() {
  Trial info;
  const Vector<double> lambda = propose(info);
  Vector<double> w = w_init_;
  if (params_.start == TrialStart::WarmBest && best_ >= 0) w = best_w_;
  if (params_.start == TrialStart::WarmLast && last_w_.size() > 0) w = last_w_;
  Trial t = run_trial(lambda, w);
  t.index = trials() + 1;
  t.gp_jitter = info.gp_jitter;
  t.expected_improvement = info.expected_improvement;
  t.proposed_by_gp = info.proposed_by_gp;
  const bool finite = std::isfinite(t.metrics.val_loss);
  // A trial whose inner phase diverged is never a warm start.
  if (finite) last_w_ = w;
  if (finite && (best_ < 0 || t.metrics.val_loss < best().metrics.val_loss)) {
    best_ = trials();
    best_w_ = w;
  }
  trials_.push_back(t);
  return t;
}

}  // namespace ift::baselines
