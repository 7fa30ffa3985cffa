#include "ift/baselines/cost.hpp"

#include <Eigen/Cholesky>

#include <algorithm>
#include <chrono>
#include <cstdio>
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
template <class F>
double median_seconds(Index repeats, F&& f) {
  std::vector<double> t;
  for (Index r = 0; r < std::max<Index>(1, repeats); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
  return t[t.size() / 2];
}
}  // namespace

CostModel measure_cost_model(BilevelProblem<double>& problem, const Vector<double>& lambda,
                             const Vector<double>& w, Index repeats, bool time_hessian) {
  CostModel m;
  m.train_rows = static_cast<double>(std::max<Index>(1, problem.num_train_examples()));
  problem.set_point(lambda, w);
  (void)problem.train_gradient();  // warm caches and allocations
  const double forward = median_seconds(repeats, [&] { problem.set_point(lambda, w); });
  const double gradient = median_seconds(repeats, [&] {
    problem.set_point(lambda, w);
    (void)problem.train_gradient();
  });
  Vector<double> v = Vector<double>::Ones(w.size()), out(w.size());
  const double hvp = median_seconds(repeats, [&] { problem.hvp(v, out); });
  (void)problem.val_gradient();  // warm the validation caches too
  const double val = std::max(0.0, median_seconds(repeats, [&] {
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
    m.kfac = median_seconds(1, [&] { (void)k->kfac_factors(shift); }) / g;
  }
  if (time_hessian) {
    if (auto* h = dynamic_cast<capability::DenseHessian<double>*>(&problem)) {
      Matrix<double> H;
      // What the exact method does per hyper-step: the dense Hessian and its Cholesky.
      m.hessian = median_seconds(1, [&] {
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
