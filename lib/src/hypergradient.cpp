#include "ift/hypergradient.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ift {

Method parse_method(const std::string& name) {
  if (name == "exact") return Method::Exact;
  if (name == "cg") return Method::Cg;
  if (name == "neumann") return Method::Neumann;
  if (name == "identity") return Method::Identity;
  if (name == "zero") return Method::Zero;
  if (name == "kfac") return Method::Kfac;
  if (name == "unrolled") return Method::Unrolled;
  if (name == "nystrom") return Method::Nystrom;
  throw std::invalid_argument(
      "unknown method '" + name +
      "' (expected exact, cg, neumann, identity, zero, kfac, unrolled or nystrom)");
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
    case Method::Nystrom: return "nystrom";
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
      method == Method::Exact || method == Method::Cg || method == Method::Neumann ||
      method == Method::Nystrom;
  if (!uses_curvature || curvature == Curvature::Hessian) return to_string(method);
  return std::string(to_string(curvature)) + "/" + to_string(method);
}

namespace {

/// A solver struct's own check, its message prefixed with the MethodSpec field it sits in.
template <class Params>
void check_part(const Params& params, const char* field) {
  try {
    params.check();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("MethodSpec::") + field + ": " + e.what());
  }
}

/// A solver field that MethodSpec sets from its method-level field must be left alone (or
/// already hold that value): otherwise the spec would say two things.
template <class T>
void require_mapped(const T& value, const T& default_value, const T& mapped, const char* field,
                    const char* from) {
  require(value == default_value || value == mapped,
          std::string("MethodSpec::") + field + " is set from MethodSpec::" + from +
              " at solve time: set " + from + " instead");
}

}  // namespace

void MethodSpec::check() const {
  require(steps >= 0, "MethodSpec::steps must be >= 0 (got " + std::to_string(steps) + ")");
  require(std::isfinite(damping) && damping >= 0, "MethodSpec::damping must be finite and >= 0");
  require_mapped(cg.max_iterations, CgParams{}.max_iterations, steps, "cg.max_iterations", "steps");
  require_mapped(cg.true_residual, CgParams{}.true_residual, compute_residual, "cg.true_residual",
                 "compute_residual");
  require_mapped(neumann.steps, NeumannParams{}.steps, steps, "neumann.steps", "steps");
  require_mapped(neumann.compute_residual, NeumannParams{}.compute_residual, compute_residual,
                 "neumann.compute_residual", "compute_residual");
  check_part(cg_params(), "cg");
  check_part(neumann_params(), "neumann");
  check_part(kfac, "kfac");
  check_part(nystrom, "nystrom");
  const bool rank_deficient =
      curvature == Curvature::OuterProduct || curvature == Curvature::Fisher;
  require(!(rank_deficient && method != Method::Neumann),
          std::string("curvature ") + to_string(curvature) +
              " is defined for neumann only (DESIGN.md §1), not for " + to_string(method));
  require(!(curvature != Curvature::Hessian &&
            (method == Method::Kfac || method == Method::Unrolled)),
          std::string(to_string(method)) + " takes no --curvature (it defines its own)");
}

CgParams MethodSpec::cg_params() const {
  CgParams p = cg;
  p.max_iterations = steps;
  p.true_residual = compute_residual;
  return p;
}

NeumannParams MethodSpec::neumann_params() const {
  NeumannParams p = neumann;
  p.steps = steps;
  p.compute_residual = compute_residual;
  return p;
}

PowerIterationParams MethodSpec::power_params() const {
  PowerIterationParams p;
  p.max_iterations = neumann.power_iterations;
  p.tolerance = neumann.power_tolerance;
  p.seed = neumann.seed;
  return p;
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
