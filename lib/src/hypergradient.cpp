#include "ift/hypergradient.hpp"

#include <cmath>

namespace ift {

Method parse_method(const std::string& name) {
  if (name == "exact") return Method::Exact;
  if (name == "cg") return Method::Cg;
  if (name == "neumann") return Method::Neumann;
  if (name == "identity") return Method::Identity;
  if (name == "zero") return Method::Zero;
  if (name == "kfac") return Method::Kfac;
  if (name == "unrolled") return Method::Unrolled;
  throw std::invalid_argument("unknown method '" + name +
                              "' (expected exact, cg, neumann, identity, zero, kfac or unrolled)");
}

Curvature parse_curvature(const std::string& name) {
  if (name == "hessian") return Curvature::Hessian;
  if (name == "gauss-newton") return Curvature::GaussNewton;
  if (name == "outer-product") return Curvature::OuterProduct;
  if (name == "fisher") return Curvature::Fisher;
  throw std::invalid_argument("unknown curvature '" + name +
                              "' (expected hessian, gauss-newton, outer-product or fisher)");
}

const char* to_string(Method m) {
  switch (m) {
    case Method::Exact: return "exact";
    case Method::Cg: return "cg";
    case Method::Neumann: return "neumann";
    case Method::Identity: return "identity";
    case Method::Zero: return "zero";
    case Method::Kfac: return "kfac";
    case Method::Unrolled: return "unrolled";
  }
  return "?";
}

const char* to_string(Curvature c) {
  switch (c) {
    case Curvature::Hessian: return "hessian";
    case Curvature::GaussNewton: return "gauss-newton";
    case Curvature::OuterProduct: return "outer-product";
    case Curvature::Fisher: return "fisher";
  }
  return "?";
}

std::string MethodSpec::name() const {
  const bool uses_curvature =
      method == Method::Exact || method == Method::Cg || method == Method::Neumann;
  if (!uses_curvature || curvature == Curvature::Hessian) return to_string(method);
  return std::string(to_string(curvature)) + "/" + to_string(method);
}

void MethodSpec::check() const {
  require(steps >= 0, "MethodSpec::steps must be >= 0 (got " + std::to_string(steps) + ")");
  require(std::isfinite(alpha) && alpha >= 0,
          "MethodSpec::alpha must be > 0, or 0 to choose it from λ_max");
  require(safety > 0 && safety < 2, "MethodSpec::safety must lie in (0, 2)");
  require(std::isfinite(damping) && damping >= 0, "MethodSpec::damping must be finite and >= 0");
  require(tolerance >= 0, "MethodSpec::tolerance must be >= 0");
  require(power_iterations >= 1, "MethodSpec::power_iterations must be >= 1");
  const bool rank_deficient =
      curvature == Curvature::OuterProduct || curvature == Curvature::Fisher;
  require(!(rank_deficient && method != Method::Neumann),
          std::string("curvature ") + to_string(curvature) +
              " is defined for neumann only (DESIGN.md §1), not for " + to_string(method));
  require(!(curvature != Curvature::Hessian &&
            (method == Method::Kfac || method == Method::Unrolled)),
          std::string(to_string(method)) + " takes no --curvature (it defines its own)");
}

template <class S>
HypergradientEngine<S>::HypergradientEngine(MethodSpec spec) : spec_(spec) {
  spec_.check();
}

template <class S>
HypergradientResult<S> HypergradientEngine<S>::compute(BilevelProblem<S>& problem,
                                                       const Vector<S>* start,
                                                       generic::SolverState<Vector<S>>* state) {
  return generic::hypergradient(problem, spec_, start, &dense_, state);
}

template <class S>
std::vector<HypergradientResult<S>> HypergradientEngine<S>::sweep(BilevelProblem<S>& problem,
                                                                  const std::vector<Index>& ks,
                                                                  const Vector<S>* start) {
  return generic::hypergradient_sweep(problem, spec_, ks, start);
}

template class HypergradientEngine<float>;
template class HypergradientEngine<double>;

}  // namespace ift
