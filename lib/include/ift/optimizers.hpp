// First-order optimisers for the bilevel loop (DESIGN.md §1, Algorithm 2): the inner steps on w
// and the outer steps on λ. Their state is plain data so a checkpoint can store and restore it
// bit for bit (a resumed run must end exactly where an uninterrupted one does).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "ift/core.hpp"

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
            who + ": learning_rate must be > 0 (got " + std::to_string(learning_rate) + ")");
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

/// Everything an optimiser carries between steps.
template <class S>
struct OptimizerState {
  Vector<S> first;          ///< momentum buffer or Adam's m (empty for sgd)
  Vector<S> second;         ///< Adam's v (empty otherwise)
  std::int64_t steps = 0;   ///< steps taken (Adam's bias correction)
};

template <class S>
class Optimizer {
 public:
  Optimizer(OptimizerParams params, Index size) : params_(params), size_(size) {
    params_.check("optimiser");
    reset();
  }

  const OptimizerParams& params() const { return params_; }
  const OptimizerState<S>& state() const { return state_; }
  void set_state(OptimizerState<S> state) {
    const Index first = params_.kind == OptimizerKind::Sgd ? 0 : size_;
    const Index second = params_.kind == OptimizerKind::Adam ? size_ : 0;
    require(state.first.size() == first && state.second.size() == second && state.steps >= 0,
            "Optimizer::set_state: the state does not fit a " +
                std::string(to_string(params_.kind)) + " optimiser of size " +
                std::to_string(size_));
    state_ = std::move(state);
  }
  void reset() {
    state_ = {};
    if (params_.kind != OptimizerKind::Sgd) state_.first.setZero(size_);
    if (params_.kind == OptimizerKind::Adam) state_.second.setZero(size_);
  }

  /// x ← x − step(g). Allocates nothing.
  void step(Vector<S>& x, const Vector<S>& gradient) {
    require(x.size() == size_ && gradient.size() == size_,
            "Optimizer::step: vectors of size " + std::to_string(x.size()) + "/" +
                std::to_string(gradient.size()) + ", expected " + std::to_string(size_));
    const S lr = static_cast<S>(params_.learning_rate);
    ++state_.steps;
    switch (params_.kind) {
      case OptimizerKind::Sgd: x.noalias() -= lr * gradient; break;
      case OptimizerKind::Momentum:
        state_.first = static_cast<S>(params_.momentum) * state_.first + gradient;
        x.noalias() -= lr * state_.first;
        break;
      case OptimizerKind::Adam: {
        const S b1 = static_cast<S>(params_.beta1), b2 = static_cast<S>(params_.beta2);
        state_.first = b1 * state_.first + (S(1) - b1) * gradient;
        state_.second = b2 * state_.second + (S(1) - b2) * gradient.cwiseAbs2();
        const double t = static_cast<double>(state_.steps);
        const S c1 = static_cast<S>(1.0 - std::pow(params_.beta1, t));
        const S c2 = static_cast<S>(1.0 - std::pow(params_.beta2, t));
        const S eps = static_cast<S>(params_.epsilon);
        x.array() -= lr * (state_.first.array() / c1) /
                     ((state_.second.array() / c2).sqrt() + eps);
        break;
      }
    }
  }

 private:
  OptimizerParams params_;
  Index size_;
  OptimizerState<S> state_;
};

}  // namespace ift
