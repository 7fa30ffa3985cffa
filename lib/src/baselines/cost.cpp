#include "ift/baselines/cost.hpp"

#include <Eigen/Cholesky>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <vector>

namespace ift::baselines {

std::string CostModel::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "gradient=1 forward=%.3g hvp=%.3g val=%.3g hessian=%.3g kfac=%.3g "
                "(minibatch rows / %.0f)",
                forward, hvp, val, hessian, kfac, train_rows);
  return buf;
}

namespace {
/// The fastest of `repeats` runs: on a shared machine other processes only ever add time, so
/// the minimum is the most stable estimate of an operation's own cost (the median of 5 moved
/// the validation/gradient ratio between 0.6 and 5 on a loaded 2-core machine).
template <class F>
double fastest_seconds(Index repeats, F&& f) {
  double best = std::numeric_limits<double>::infinity();
  for (Index r = 0; r < std::max<Index>(1, repeats); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}
}  // namespace

CostModel measure_cost_model(BilevelProblem<double>& problem, const Vector<double>& lambda,
                             const Vector<double>& w, Index repeats, bool time_hessian) {
  CostModel m;
  m.train_rows = static_cast<double>(std::max<Index>(1, problem.num_train_examples()));
  problem.set_point(lambda, w);
  (void)problem.train_gradient();  // warm caches and allocations
  const double forward = fastest_seconds(repeats, [&] { problem.set_point(lambda, w); });
  const double gradient = fastest_seconds(repeats, [&] {
    problem.set_point(lambda, w);
    (void)problem.train_gradient();
  });
  Vector<double> v = Vector<double>::Ones(w.size()), out(w.size());
  const double hvp = fastest_seconds(repeats, [&] { problem.hvp(v, out); });
  (void)problem.val_gradient();  // warm the validation caches too
  const double val = std::max(0.0, fastest_seconds(repeats, [&] {
                                     problem.set_point(lambda, w);
                                     (void)problem.val_gradient();
                                   }) - forward);
  problem.set_point(lambda, w);
  const double g = std::max(gradient, 1e-9);
  m.forward = std::clamp(forward / g, 0.0, 1.0);
  m.hvp = hvp / g;
  m.val = val / g;
  if (auto* k = dynamic_cast<capability::KroneckerFactorization<double>*>(&problem)) {
    std::vector<double> shift;
    m.kfac = fastest_seconds(1, [&] { (void)k->kfac_factors(shift); }) / g;
  }
  if (time_hessian) {
    if (auto* h = dynamic_cast<capability::DenseHessian<double>*>(&problem)) {
      Matrix<double> H;
      // What the exact method does per hyper-step: the dense Hessian and its Cholesky.
      m.hessian = fastest_seconds(1, [&] {
                    h->hessian(H);
                    Eigen::LLT<Matrix<double>> llt(H);
                    (void)llt.info();
                  }) / g;
    }
  }
  problem.set_point(lambda, w);
  return m;
}

}  // namespace ift::baselines
