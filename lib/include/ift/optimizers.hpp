// First-order optimisers for the bilevel loop (DESIGN.md §1, Algorithm 2): the inner steps on w
// and the outer steps on λ. Their state is plain data so a checkpoint can store and restore it
// bit for bit (a resumed run must end exactly where an uninterrupted one does).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "ift/core.hpp"
#include "ift/format.hpp"
#include "ift/generic/backend.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// sgd: x ← x − η g.   momentum: m ← μ m + g, x ← x − η m (heavy ball, PyTorch's form).
/// adam: Kingma & Ba 2015 with bias correction.
enum class OptimizerKind { Sgd, Momentum, Adam };

inline OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::Sgd;
  if (name == "momentum") return OptimizerKind::Momentum;
  if (name == "adam") return OptimizerKind::Adam;
  throw std::invalid_argument("unknown optimiser '" + name + "' (expected sgd, momentum or adam)");
}

constexpr const char* to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Sgd: return "sgd";
    case OptimizerKind::Momentum: return "momentum";
    case OptimizerKind::Adam: return "adam";
  }
  return "?";
}

struct OptimizerParams {
  OptimizerKind kind = OptimizerKind::Adam;
  double learning_rate = 1e-3;  ///< η > 0
  double momentum = 0.9;        ///< μ in [0, 1) (momentum only)
  double beta1 = 0.9;           ///< Adam's first-moment decay in [0, 1)
  double beta2 = 0.999;         ///< Adam's second-moment decay in [0, 1)
  double epsilon = 1e-8;        ///< Adam's denominator guard, > 0

  /// Throws std::invalid_argument naming `who` (e.g. "inner optimiser") and the field.
  void check(const std::string& who) const {
    require(std::isfinite(learning_rate) && learning_rate > 0,
            who + ": learning_rate must be > 0 (got " + format_number(learning_rate) + ")");
    require(momentum >= 0 && momentum < 1, who + ": momentum must lie in [0, 1)");
    require(beta1 >= 0 && beta1 < 1, who + ": beta1 must lie in [0, 1)");
    require(beta2 >= 0 && beta2 < 1, who + ": beta2 must lie in [0, 1)");
    require(epsilon > 0, who + ": epsilon must be > 0");
  }

  /// One line naming every field, for parameter echoes and checkpoint fingerprints.
  std::string describe() const {
    std::string s = std::string(to_string(kind)) + " lr=" + format(learning_rate);
    if (kind == OptimizerKind::Momentum) s += " momentum=" + format(momentum);
    if (kind == OptimizerKind::Adam)
      s += " beta1=" + format(beta1) + " beta2=" + format(beta2) + " epsilon=" + format(epsilon);
    return s;
  }

 private:
  static std::string format(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
  }
};

/// Everything an optimiser carries between steps, as host vectors (checkpoints store it).
template <class S>
struct OptimizerState {
  Vector<S> first;          ///< momentum buffer or Adam's m (empty for sgd)
  Vector<S> second;         ///< Adam's v (empty otherwise)
  std::int64_t steps = 0;   ///< steps taken (Adam's bias correction)
};

namespace generic {

/// The optimisers on any vector type with a VectorBackend (Eigen vectors, LibTorch tensors):
/// the step counting, bias correction and state handling are written here once; only the fused
/// element-wise update is the backend's.
template <class V>
class Optimizer {
 public:
  using Backend = VectorBackend<V>;
  using HostScalar = typename Backend::HostScalar;

  /// `like` fixes the size (and a tensor's dtype and device) of the optimised vector.
  Optimizer(OptimizerParams params, const V& like)
      : params_(params), size_(VectorSpace<V>::size(like)), like_(VectorSpace<V>::zeros_like(like)) {
    params_.check("optimiser");
    reset();
  }

  const OptimizerParams& params() const { return params_; }
  std::int64_t steps() const { return steps_; }

  void reset() {
    steps_ = 0;
    if (params_.kind != OptimizerKind::Sgd) first_ = VectorSpace<V>::zeros_like(like_);
    if (params_.kind == OptimizerKind::Adam) second_ = VectorSpace<V>::zeros_like(like_);
  }

  /// x ← x − step(g). Allocates nothing on Eigen vectors.
  void step(V& x, const V& gradient) {
    require(VectorSpace<V>::size(x) == size_ && VectorSpace<V>::size(gradient) == size_,
            "Optimizer::step: vectors of size " + std::to_string(VectorSpace<V>::size(x)) + "/" +
                std::to_string(VectorSpace<V>::size(gradient)) + ", expected " +
                std::to_string(size_));
    ++steps_;
    switch (params_.kind) {
      case OptimizerKind::Sgd:
        VectorSpace<V>::axpy(static_cast<typename VectorSpace<V>::Scalar>(-params_.learning_rate),
                             gradient, x);
        break;
      case OptimizerKind::Momentum:
        Backend::momentum_step(x, first_, gradient, params_.momentum, params_.learning_rate);
        break;
      case OptimizerKind::Adam: {
        const double t = static_cast<double>(steps_);
        Backend::adam_step(x, first_, second_, gradient, params_.beta1, params_.beta2,
                           1.0 - std::pow(params_.beta1, t), 1.0 - std::pow(params_.beta2, t),
                           params_.epsilon, params_.learning_rate);
        break;
      }
    }
  }

  /// A host copy of the state (for checkpoints).
  OptimizerState<HostScalar> state() const {
    OptimizerState<HostScalar> s;
    if (params_.kind != OptimizerKind::Sgd) s.first = Backend::to_host(first_);
    if (params_.kind == OptimizerKind::Adam) s.second = Backend::to_host(second_);
    s.steps = steps_;
    return s;
  }
  void set_state(const OptimizerState<HostScalar>& state) {
    const Index first = params_.kind == OptimizerKind::Sgd ? 0 : size_;
    const Index second = params_.kind == OptimizerKind::Adam ? size_ : 0;
    require(state.first.size() == first && state.second.size() == second && state.steps >= 0,
            "Optimizer::set_state: the state does not fit a " +
                std::string(to_string(params_.kind)) + " optimiser of size " +
                std::to_string(size_));
    if (first) first_ = Backend::from_host(state.first, like_);
    if (second) second_ = Backend::from_host(state.second, like_);
    steps_ = state.steps;
  }

 private:
  OptimizerParams params_;
  Index size_;
  V like_, first_{}, second_{};
  std::int64_t steps_ = 0;
};

}  // namespace generic

/// The optimisers on Eigen vectors of size `size`.
template <class S>
class Optimizer : public generic::Optimizer<Vector<S>> {
 public:
  Optimizer(OptimizerParams params, Index size)
      : generic::Optimizer<Vector<S>>(params, Vector<S>::Zero(size)) {}
};

}  // namespace ift
