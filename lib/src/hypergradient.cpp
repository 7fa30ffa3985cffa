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
  if (name == "shine") return Method::Shine;
  if (name == "nystrom") return Method::Nystrom;
  throw std::invalid_argument(
      "unknown method '" + name +
      "' (expected exact, cg, neumann, identity, zero, kfac, unrolled, shine or nystrom)");
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
    case Method::Shine: return "shine";
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

CurvatureSampling parse_curvature_sampling(const std::string& name) {
  if (name == "full") return CurvatureSampling::Full;
  if (name == "fresh") return CurvatureSampling::Fresh;
  if (name == "fixed") return CurvatureSampling::Fixed;
  throw std::invalid_argument("unknown curvature sampling '" + name +
                              "' (expected full, fresh or fixed)");
}

const char* to_string(CurvatureSampling s) {
  switch (s) {
    case CurvatureSampling::Full: return "full";
    case CurvatureSampling::Fresh: return "fresh";
    case CurvatureSampling::Fixed: return "fixed";
  }
  return "?";
}

bool supports_warm_start(Method m) { return m == Method::Cg || m == Method::Neumann; }
bool supports_curvature_sampling(Method m) { return m == Method::Cg || m == Method::Neumann; }
bool supports_preconditioner(Method m) { return m == Method::Cg; }

const char* to_string(Preconditioner p) {
  switch (p) {
    case Preconditioner::None: return "none";
    case Preconditioner::Kfac: return "kfac";
    case Preconditioner::Ritz: return "ritz";
    case Preconditioner::KfacRitz: return "kfac+ritz";
  }
  return "?";
}

std::string MethodSpec::name() const {
  const bool uses_curvature =
      method == Method::Exact || method == Method::Cg || method == Method::Neumann ||
      method == Method::Nystrom;
  std::string n = to_string(method);
  if (uses_curvature && curvature != Curvature::Hessian)
    n = std::string(to_string(curvature)) + "/" + n;
  if (preconditioner != Preconditioner::None) n += std::string("+") + to_string(preconditioner);
  if (sampling != CurvatureSampling::Full) n += std::string("+") + to_string(sampling);
  if (warm_start) n += "+warm";
  return n;
}

MethodSpec parse_method_spec(const std::string& name) {
  MethodSpec spec;
  const auto plus = name.find('+');
  spec.method = parse_method(name.substr(0, plus));
  std::string rest = plus == std::string::npos ? std::string() : name.substr(plus + 1);
  while (plus != std::string::npos) {
    const auto next = rest.find('+');
    const std::string suffix = rest.substr(0, next);
    if (suffix == "warm") {
      require(supports_warm_start(spec.method),
              "'" + name + "': " + to_string(spec.method) +
                  " cannot warm start (only cg and neumann carry v across hyper-steps)");
      spec.warm_start = true;
    } else if (suffix == "fresh" || suffix == "fixed") {
      require(supports_curvature_sampling(spec.method),
              "'" + name + "': " + to_string(spec.method) +
                  " has no minibatch curvature (only cg and neumann)");
      spec.sampling = parse_curvature_sampling(suffix);
    } else if (suffix == "kfac" || suffix == "ritz") {
      require(supports_preconditioner(spec.method),
              "'" + name + "': " + to_string(spec.method) +
                  " takes no preconditioner (only cg: cg+kfac, cg+ritz)");
      const bool after_kfac = suffix == "ritz" && spec.preconditioner == Preconditioner::Kfac;
      require(spec.preconditioner == Preconditioner::None || after_kfac,
              "'" + name + "': the preconditioners are +kfac, +ritz or +kfac+ritz (in that order)");
      spec.preconditioner = after_kfac         ? Preconditioner::KfacRitz
                            : suffix == "kfac" ? Preconditioner::Kfac
                                               : Preconditioner::Ritz;
    } else {
      throw std::invalid_argument("'" + name + "': unknown suffix '+" + suffix +
                                  "' (expected +warm, +fresh, +fixed, +kfac or +ritz)");
    }
    if (next == std::string::npos) break;
    rest = rest.substr(next + 1);
  }
  return spec;
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
  require(value == default_value || value == mapped, [&] {
    return std::string("MethodSpec::") + field + " is set from MethodSpec::" + from +
           " at solve time: set " + from + " instead";
  });
}

}  // namespace

void MethodSpec::check() const {
  // Messages are built only on failure (check() runs once per hypergradient: no allocation).
  require(steps >= 0, [&] {
    return std::string("MethodSpec::steps must be >= 0 (got ") + std::to_string(steps) + ")";
  });
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
  check_part(ritz, "ritz");
  check_part(exact, "exact");
  const bool rank_deficient =
      curvature == Curvature::OuterProduct || curvature == Curvature::Fisher;
  require(!(rank_deficient && method != Method::Neumann), [&] {
    return std::string("curvature ") + to_string(curvature) +
           " is defined for neumann only (DESIGN.md §1), not for " + to_string(method);
  });
  require(!(curvature != Curvature::Hessian &&
            (method == Method::Kfac || method == Method::Unrolled || method == Method::Shine)),
          [&] { return std::string(to_string(method)) + " takes no --curvature (it defines its own)"; });
  require(!warm_start || supports_warm_start(method), [&] {
    return std::string("MethodSpec::warm_start: ") + to_string(method) +
           " cannot warm start (only cg and neumann carry v across hyper-steps)";
  });
  require(curvature_batch >= 0, "MethodSpec::curvature_batch must be >= 0");
  if (preconditioner != Preconditioner::None) {
    require(supports_preconditioner(method), [&] {
      return std::string("MethodSpec::preconditioner: ") + to_string(method) +
             " takes no preconditioner (only cg)";
    });
    require(curvature == Curvature::Hessian || curvature == Curvature::GaussNewton,
            "MethodSpec::preconditioner: needs the Hessian or Gauss-Newton curvature");
    require(!uses_ritz(preconditioner) || cg.reorthogonalize,
            "MethodSpec::preconditioner ritz: needs the Lanczos form of CG "
            "(cg.reorthogonalize = true), whose Lanczos relation gives the Ritz pairs");
  }
  if (sampling != CurvatureSampling::Full) {
    require(supports_curvature_sampling(method), [&] {
      return std::string("MethodSpec::sampling ") + to_string(sampling) + ": " +
             to_string(method) + " has no minibatch curvature (only cg and neumann)";
    });
    require(curvature == Curvature::Hessian, [&] {
      return std::string("MethodSpec::sampling ") + to_string(sampling) +
             " needs the Hessian curvature (minibatch Hessian-vector products)";
    });
    require(curvature_batch >= 1, [&] {
      return std::string("MethodSpec::curvature_batch must be >= 1 with sampling ") +
             to_string(sampling);
    });
  }
  require(!(method == Method::Shine && damping != 0),
          "shine takes no --damping (its estimate is L-BFGS's of the undamped L_T; use cg)");
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
                                                                  const Vector<S>* start,
                                                                  const generic::SolverState<Vector<S>>* state) {
  return generic::hypergradient_sweep(problem, spec_, ks, start, state);
}

template class HypergradientEngine<float>;
template class HypergradientEngine<double>;

}  // namespace ift
