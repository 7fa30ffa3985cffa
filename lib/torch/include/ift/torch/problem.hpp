// A bilevel problem over any torch::nn::Module (DESIGN.md §1, P6): autograd supplies ∇_w L_T,
// Hessian-vector products by double backward and the mixed partial vᵀ ∂²L_T/∂w∂λᵀ by
// differentiating vᵀ∇_w L_T with respect to λ. Weights w and hyperparameters λ are flat 1-D
// tensors (the concatenation of the module's / family's parameters in registration order), so
// the generic hypergradient (ift/generic/hypergradient.hpp) and the linalg solvers run on them
// unchanged. KFAC (Martens & Grosse 2015; KFC for convolutions, Grosse & Martens 2016) covers
// the torch::nn::Linear, torch::nn::Conv2d and AffineLayer calls routed through tapped().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "ift/core.hpp"
#include "ift/hypergradient.hpp"
#include "ift/linalg/status.hpp"
#include "ift/models/kronecker_factors.hpp"
#include "ift/parallel/communicator.hpp"
#include "ift/problem.hpp"
#include "ift/torch/tensor_space.hpp"

namespace ift::deep {

using Tensor = ::torch::Tensor;

/// Examples on one device: inputs n × … (features, or images n × C × H × W), labels n (int64).
struct TensorData {
  Tensor inputs;
  Tensor labels;

  std::int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
  /// The listed rows (an int64 index tensor on any device).
  TensorData rows(const Tensor& index) const;
  /// Rows [begin, begin + count).
  TensorData slice(std::int64_t begin, std::int64_t count) const;
  /// Inputs converted to `options` (dtype and device), labels moved to its device.
  TensorData to(const ::torch::TensorOptions& options) const;
};

/// A module and how to call it: `forward` maps a batch of inputs to logits (n × classes).
struct Model {
  std::shared_ptr<::torch::nn::Module> module;
  std::function<Tensor(const Tensor&)> forward;

  template <class M>
  static Model of(std::shared_ptr<M> m) {
    return {m, [m](const Tensor& x) { return m->forward(x); }};
  }
  template <class M>
  static Model of(const ::torch::nn::ModuleHolder<M>& holder) {
    return of(holder.ptr());
  }
};

/// Mean loss of a batch: (logits, labels) → scalar. KFAC assumes the default (mean softmax
/// cross-entropy); the other methods take any twice-differentiable loss.
using Loss = std::function<Tensor(const Tensor&, const Tensor&)>;
Loss cross_entropy_loss();

// ---- KFAC taps ------------------------------------------------------------------------------

/// One layer call seen while a tape is recording: its input, its pre-activation output (in the
/// autograd graph) and its parameters. Conv2d calls keep their geometry for the patch expansion.
struct TapeEntry {
  enum class Kind { Linear, Conv2d } kind = Kind::Linear;
  Tensor weight;              ///< Linear out × in (AffineLayer: out × (in+1)); Conv2d out × C × kh × kw
  Tensor bias;                ///< undefined when the layer has none or it is merged
  bool bias_merged = false;   ///< AffineLayer: the last column of `weight` is the bias
  Tensor input;               ///< detached layer input
  Tensor output;              ///< layer output, in the graph
  std::vector<std::int64_t> kernel, stride, padding, dilation;
};

/// Records tapped layer calls while active (thread-local; RAII).
class KfacTape {
 public:
  KfacTape();
  ~KfacTape();
  KfacTape(const KfacTape&) = delete;
  KfacTape& operator=(const KfacTape&) = delete;
  std::vector<TapeEntry> entries;
  /// The tape recording on this thread, or null.
  static KfacTape* active();
  void record(TapeEntry entry) { entries.push_back(std::move(entry)); }

 private:
  KfacTape* previous_;
};

/// Calls the layer and, when a tape records, notes the call for KFAC. Models that want KFAC
/// route their Linear and Conv2d calls through these (LibTorch's C++ modules have no hooks).
Tensor tapped(::torch::nn::Linear& layer, const Tensor& x);
Tensor tapped(::torch::nn::Conv2d& layer, const Tensor& x);

// ---- Hyperparameter families ----------------------------------------------------------------

/// How λ enters the training objective L_T. λ is the flat concatenation of parameters().
class HyperFamily {
 public:
  virtual ~HyperFamily() = default;
  virtual std::string name() const = 0;
  /// Leaf tensors with requires_grad, in a fixed order.
  virtual std::vector<Tensor> parameters() const = 0;
  /// The inputs L_T trains on, given the selected rows' inputs and noise ε ~ N(0, I) of the
  /// same shape (when uses_noise()). `rows` lists the selected rows (undefined: all rows).
  virtual Tensor train_inputs(const Tensor& inputs, const Tensor& /*noise*/,
                              const Tensor& /*rows*/) const {
    return inputs;
  }
  virtual bool uses_noise() const { return false; }
  /// R(λ, w) added to L_T (undefined: none).
  virtual Tensor penalty(const std::vector<Tensor>& /*weights*/) const { return {}; }
  /// Diagonal of ∇²_w R as a flat tensor over w (undefined: zero); KFAC folds it into damping.
  virtual Tensor penalty_hessian_diagonal() const { return {}; }
};

/// Weight decay R = ½ Σ_i exp(λ_i) w_i² (per weight: one λ per weight, λ shaped like each
/// parameter) or ½ exp(λ) Σ w_i² (global), log-parametrised like ift::WeightDecay.
class WeightDecayFamily final : public HyperFamily {
 public:
  WeightDecayFamily(const std::vector<Tensor>& weights, DecayKind kind, double initial_log_lambda);
  std::string name() const override;
  std::vector<Tensor> parameters() const override { return lambda_; }
  Tensor penalty(const std::vector<Tensor>& weights) const override;
  Tensor penalty_hessian_diagonal() const override;
  DecayKind kind() const { return kind_; }

 private:
  DecayKind kind_;
  std::vector<Tensor> lambda_;
  std::int64_t num_weights_ = 0;
};

/// Dataset distillation (paper Fig. 6): the training inputs themselves are λ (e.g. one image
/// per class); the labels of the problem's training set stay fixed.
class DistillationFamily final : public HyperFamily {
 public:
  explicit DistillationFamily(Tensor initial_inputs);
  std::string name() const override { return "distillation"; }
  std::vector<Tensor> parameters() const override { return {inputs_}; }
  Tensor train_inputs(const Tensor& inputs, const Tensor& noise, const Tensor& rows) const override;

 private:
  Tensor inputs_;
};

/// Learned augmentation (paper Fig. 1): x' = U_λ(x, ε), ε ~ N(0, I), with λ the weights of the
/// network U; L_T is the training loss on augmented inputs, L_V on clean validation inputs.
class AugmentationFamily final : public HyperFamily {
 public:
  /// `augment(x, ε)` is U; `module` owns its parameters (λ).
  AugmentationFamily(std::shared_ptr<::torch::nn::Module> module,
                     std::function<Tensor(const Tensor&, const Tensor&)> augment);
  std::string name() const override { return "augmentation"; }
  std::vector<Tensor> parameters() const override { return module_->parameters(); }
  Tensor train_inputs(const Tensor& inputs, const Tensor& noise, const Tensor& rows) const override;
  bool uses_noise() const override { return true; }

 private:
  std::shared_ptr<::torch::nn::Module> module_;
  std::function<Tensor(const Tensor&, const Tensor&)> augment_;
};

// ---- Data-parallel groups --------------------------------------------------------------------

/// The communicator seam's tensor face: what a distributed TorchProblem needs besides the
/// host-side Communicator, the sum of a tensor over the ranks on its own device (rank order,
/// the same bits everywhere). Implemented by ProcessGroupCommunicator (ift/torch/distributed.hpp:
/// torch.distributed's Gloo and NCCL process groups).
class TensorCommunicator : public parallel::Communicator {
 public:
  using parallel::Communicator::sum;
  virtual void sum(Tensor& t) = 0;
};

// ---- The problem ----------------------------------------------------------------------------

/// L_T(λ, w) = mean loss(model(family inputs of train)) + R(λ, w); L_V = mean loss(model(val)).
/// Satisfies ift::generic::HypergradientProblem with V = torch::Tensor (flat, the module's
/// dtype and device). set_point keeps the graph of ∇_w L_T (create_graph) so each HVP and
/// mixed product is one extra backward pass.
class TorchProblem {
 public:
  using VectorType = Tensor;
  using Scalar = double;

  /// The model's and the family's parameters must already have the run's dtype and device;
  /// the data is moved there. `noise_seed` seeds ε for families that use noise.
  TorchProblem(Model model, std::shared_ptr<HyperFamily> family, TensorData train, TensorData val,
               std::optional<TensorData> test = std::nullopt, Loss loss = cross_entropy_loss(),
               std::uint64_t noise_seed = 1);

  /// Makes this problem one rank's part of a data-parallel problem: the data given to the
  /// constructor are this rank's rows `train`, `val`, `test` of the full sets. Each rank's L_T
  /// is then (count/total)·(mean loss over its rows) + R/N, so that gradients, HVPs, mixed
  /// products and losses summed over the N ranks are the single-process ones; validation terms,
  /// metrics and KFAC factors are weighted and summed likewise, and the fixed noise ε of the
  /// training rows is drawn for the full set and cut, so every family (weight decay,
  /// augmentation) sees the single-process numbers. Not for families whose training inputs
  /// are λ (distillation): their training set is not sharded. Every rank must then make the
  /// same calls in the same order.
  void distribute(std::shared_ptr<TensorCommunicator> comm, parallel::Shard train,
                  parallel::Shard val, parallel::Shard test = {});
  const std::shared_ptr<TensorCommunicator>& communicator() const { return comm_; }

  Index num_params() const { return num_params_; }
  Index num_hyper() const { return num_hyper_; }
  ::torch::TensorOptions options() const { return options_; }
  const Model& model() const { return model_; }
  HyperFamily& family() { return *family_; }
  const TensorData& train_data() const { return train_; }

  /// The module's / family's current parameters as flat vectors (copies).
  Tensor current_weights() const;
  Tensor current_lambda() const;

  void set_point(const Tensor& lambda, const Tensor& w);
  const Tensor& lambda() const { return lambda_; }
  const Tensor& w() const { return w_; }
  double train_loss() const { return train_loss_; }
  const Tensor& train_gradient() const { return train_gradient_; }
  double val_loss();
  const Tensor& val_gradient();
  void val_direct_gradient(Tensor& out);
  void hvp(const Tensor& v, Tensor& out);
  /// The penalty's curvature product ∇²R v (R's Hessian is diagonal: exp(λ) ⊙ v for weight
  /// decay; zero for a family without a penalty). The whole R on every rank.
  void penalty_hvp(const Tensor& v, Tensor& out);
  void mixed_product(const Tensor& v, Tensor& out);
  /// Kronecker factors at the current point, per tapped layer: (offset of weight, A, G). For
  /// tests and diagnostics.
  struct KfacFactor {
    TapeEntry::Kind kind;
    std::int64_t weight_offset = 0, bias_offset = -1, outputs = 0, inputs = 0;
    bool bias_merged = false;
    Tensor A, G;
  };
  const std::vector<KfacFactor>& kfac_factors();
  /// The same factors as the blocks of the one KFAC inverse (ift/linalg/kfac.hpp, run by the
  /// generic hypergradient on this problem's device), with `shift` = per block the mean of the
  /// penalty's Hessian diagonal over its parameters (folded into the damping there).
  std::vector<KfacBlock<Tensor>> kfac_factors(std::vector<double>& shift);

  /// Losses and accuracies (data terms only) on train (the inputs L_T sees, with the fixed ε),
  /// val and test at the current point, evaluated in chunks without a graph.
  Metrics metrics();

  Index num_train_examples() const { return comm_ ? train_shard_.total : train_.size(); }
  /// ∇_w L_T at (λ, w) on the listed training rows with fresh noise ε drawn from `noise_seed`;
  /// returns that L_T. Does not move the problem's point.
  double batch_train_gradient(const Tensor& lambda, const Tensor& w, const Tensor& rows,
                              Tensor& gradient, std::uint64_t noise_seed = 0);
  /// The same on rows given as indices (the bilevel loop's minibatches).
  double batch_train_gradient(const Tensor& lambda, const Tensor& w,
                              const std::vector<Index>& rows, Tensor& gradient,
                              std::uint64_t noise_seed = 0);
  /// Redraws the fixed ε of the full training set (Algorithm 2 calls it once per hyper-step).
  void resample_noise(std::uint64_t seed);

  /// Rows evaluated per chunk in metrics(). Default 1000.
  std::int64_t eval_chunk = 1000;

 private:
  void load(const Tensor& lambda, const Tensor& w);
  /// data_weight · mean loss(rows) + penalty_weight · R: (1, 1) for one process.
  Tensor objective(const Tensor& inputs, const Tensor& labels, const Tensor& noise,
                   const Tensor& rows, double data_weight = 1.0);
  /// Sums over the ranks (no-ops for one process).
  void reduce(Tensor& t) const;
  double reduced(double x) const;
  /// Noise for rows [begin, begin + count) of a `total`-row draw with this seed.
  Tensor noise_rows(const Tensor& inputs, std::int64_t total, std::int64_t begin,
                    std::uint64_t seed) const;
  /// Rebuilds the graph of ∇_w L_T at the point when a load() invalidated it.
  void ensure_graph();
  /// Makes the module's parameters hold the problem's point again.
  void load_point();
  void evaluate_val();
  Tensor noise_like(const Tensor& inputs, std::uint64_t seed) const;

  Model model_;
  std::shared_ptr<HyperFamily> family_;
  TensorData train_, val_;
  std::optional<TensorData> test_;
  Loss loss_;
  ::torch::TensorOptions options_;
  std::vector<Tensor> weights_, hyper_;
  Index num_params_ = 0, num_hyper_ = 0;
  Tensor noise_;
  Tensor lambda_, w_, train_gradient_, gradient_graph_, val_gradient_, direct_;
  double train_loss_ = 0, val_loss_ = 0;
  bool have_point_ = false, graph_valid_ = false, val_valid_ = false, kfac_valid_ = false;
  bool loaded_is_point_ = false;
  std::vector<KfacFactor> kfac_;
  std::shared_ptr<TensorCommunicator> comm_;  // null: one process
  parallel::Shard train_shard_, val_shard_, test_shard_;
  double penalty_weight_ = 1.0;  // 1/N: the ranks' penalties add up to R
  std::uint64_t noise_seed_ = 1;
};

/// The flat concatenation of `tensors` (undefined entries become zeros shaped like `like`).
Tensor flatten(const std::vector<Tensor>& tensors, const std::vector<Tensor>& like);
/// Copies the flat vector into the tensors (no graph).
void unflatten_into(const Tensor& flat, const std::vector<Tensor>& tensors);

}  // namespace ift::deep
