#include "ift/torch/problem.hpp"

#include <cmath>
#include <limits>
#include <unordered_map>

namespace ift::deep {

namespace F = ::torch::nn::functional;
namespace autograd = ::torch::autograd;

// ---- Data, loss, flattening -----------------------------------------------------------------

TensorData TensorData::rows(const Tensor& index) const {
  return {inputs.index_select(0, index.to(inputs.device())),
          labels.index_select(0, index.to(labels.device()))};
}

TensorData TensorData::slice(std::int64_t begin, std::int64_t count) const {
  require(begin >= 0 && count >= 0 && begin + count <= size(),
          "TensorData::slice: rows [" + std::to_string(begin) + ", " +
              std::to_string(begin + count) + ") outside " + std::to_string(size()) + " rows");
  return {inputs.narrow(0, begin, count), labels.narrow(0, begin, count)};
}

TensorData TensorData::to(const ::torch::TensorOptions& options) const {
  return {inputs.to(options), labels.to(options.device(), ::torch::kLong)};
}

Loss cross_entropy_loss() {
  return [](const Tensor& logits, const Tensor& labels) { return F::cross_entropy(logits, labels); };
}

Tensor flatten(const std::vector<Tensor>& tensors, const std::vector<Tensor>& like) {
  require(tensors.size() == like.size(), "flatten: list sizes differ");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i)
    parts.push_back(tensors[i].defined() ? tensors[i].reshape({-1})
                                         : ::torch::zeros({like[i].numel()}, like[i].options()));
  if (parts.empty()) return ::torch::zeros({0});
  return ::torch::cat(parts);
}

void unflatten_into(const Tensor& flat, const std::vector<Tensor>& tensors) {
  ::torch::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const std::int64_t n = t.numel();
    require(offset + n <= flat.numel(), "unflatten_into: flat vector too short");
    // const_cast-free: Tensor is a handle; copy_ writes into the shared storage.
    Tensor target = t;
    target.copy_(flat.narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
  require(offset == flat.numel(), "unflatten_into: flat vector has " +
                                      std::to_string(flat.numel()) + " entries, expected " +
                                      std::to_string(offset));
}

// ---- Taps -----------------------------------------------------------------------------------

namespace {
thread_local KfacTape* g_active_tape = nullptr;
}

KfacTape::KfacTape() : previous_(g_active_tape) { g_active_tape = this; }
KfacTape::~KfacTape() { g_active_tape = previous_; }
KfacTape* KfacTape::active() { return g_active_tape; }

Tensor tapped(::torch::nn::Linear& layer, const Tensor& x) {
  Tensor y = layer->forward(x);
  if (KfacTape* tape = KfacTape::active()) {
    require(x.dim() == 2, "tapped(Linear): KFAC needs 2-D inputs (batch × features)");
    TapeEntry e;
    e.kind = TapeEntry::Kind::Linear;
    e.weight = layer->weight;
    e.bias = layer->bias;
    e.input = x.detach();
    e.output = y;
    tape->record(std::move(e));
  }
  return y;
}

Tensor tapped(::torch::nn::Conv2d& layer, const Tensor& x) {
  Tensor y = layer->forward(x);
  if (KfacTape* tape = KfacTape::active()) {
    const auto& o = layer->options;
    require(o.groups() == 1, "tapped(Conv2d): KFAC supports groups = 1 only");
    require(c10::holds_alternative<::torch::enumtype::kZeros>(o.padding_mode()),
            "tapped(Conv2d): KFAC supports zero padding only");
    TapeEntry e;
    e.kind = TapeEntry::Kind::Conv2d;
    e.weight = layer->weight;
    e.bias = layer->bias;
    e.input = x.detach();
    e.output = y;
    e.kernel = {(*o.kernel_size())[0], (*o.kernel_size())[1]};
    e.stride = {(*o.stride())[0], (*o.stride())[1]};
    e.dilation = {(*o.dilation())[0], (*o.dilation())[1]};
    if (const auto* p = c10::get_if<::torch::ExpandingArray<2>>(&o.padding())) {
      e.padding = {(**p)[0], (**p)[1]};
    } else if (c10::holds_alternative<::torch::enumtype::kValid>(o.padding())) {
      e.padding = {0, 0};
    } else {
      throw std::invalid_argument("tapped(Conv2d): KFAC needs explicit padding (not 'same')");
    }
    tape->record(std::move(e));
  }
  return y;
}

// ---- Families -------------------------------------------------------------------------------

WeightDecayFamily::WeightDecayFamily(const std::vector<Tensor>& weights, DecayKind kind,
                                     double initial_log_lambda)
    : kind_(kind) {
  require(!weights.empty(), "WeightDecayFamily: the model has no parameters");
  for (const Tensor& w : weights) num_weights_ += w.numel();
  if (kind_ == DecayKind::PerWeight) {
    for (const Tensor& w : weights)
      lambda_.push_back(::torch::full_like(w.detach(), initial_log_lambda).requires_grad_(true));
  } else {
    lambda_.push_back(
        ::torch::full({1}, initial_log_lambda, weights.front().options()).requires_grad_(true));
  }
}

std::string WeightDecayFamily::name() const {
  return kind_ == DecayKind::PerWeight ? "per-weight-decay" : "global-decay";
}

Tensor WeightDecayFamily::penalty(const std::vector<Tensor>& weights) const {
  Tensor total;
  if (kind_ == DecayKind::PerWeight) {
    require(weights.size() == lambda_.size(), "WeightDecayFamily: parameter count changed");
    for (std::size_t i = 0; i < weights.size(); ++i) {
      Tensor term = (lambda_[i].exp() * weights[i].square()).sum();
      total = total.defined() ? total + term : term;
    }
  } else {
    for (const Tensor& w : weights) {
      Tensor term = w.square().sum();
      total = total.defined() ? total + term : term;
    }
    total = lambda_.front().exp().squeeze() * total;
  }
  return 0.5 * total;
}

Tensor WeightDecayFamily::penalty_hessian_diagonal() const {
  ::torch::NoGradGuard no_grad;
  if (kind_ == DecayKind::PerWeight) {
    std::vector<Tensor> parts;
    for (const Tensor& l : lambda_) parts.push_back(l.exp().reshape({-1}));
    return ::torch::cat(parts);
  }
  return lambda_.front().exp() * ::torch::ones({num_weights_}, lambda_.front().options());
}

DistillationFamily::DistillationFamily(Tensor initial_inputs)
    : inputs_(initial_inputs.detach().clone().requires_grad_(true)) {}

Tensor DistillationFamily::train_inputs(const Tensor& inputs, const Tensor& /*noise*/,
                                        const Tensor& rows) const {
  Tensor all = inputs_;
  if (rows.defined()) return all.index_select(0, rows.to(all.device()));
  require(inputs.size(0) == all.size(0),
          "DistillationFamily: the training set must have one row per distilled input");
  return all;
}

AugmentationFamily::AugmentationFamily(std::shared_ptr<::torch::nn::Module> module,
                                       std::function<Tensor(const Tensor&, const Tensor&)> augment)
    : module_(std::move(module)), augment_(std::move(augment)) {
  require(module_ != nullptr && static_cast<bool>(augment_),
          "AugmentationFamily: module and augment function are required");
}

Tensor AugmentationFamily::train_inputs(const Tensor& inputs, const Tensor& noise,
                                        const Tensor& /*rows*/) const {
  return augment_(inputs, noise);
}

// ---- The problem ----------------------------------------------------------------------------

TorchProblem::TorchProblem(Model model, std::shared_ptr<HyperFamily> family, TensorData train,
                           TensorData val, std::optional<TensorData> test, Loss loss,
                           std::uint64_t noise_seed)
    : model_(std::move(model)), family_(std::move(family)), loss_(std::move(loss)) {
  require(model_.module && model_.forward, "TorchProblem: a module and its forward are required");
  require(family_ != nullptr, "TorchProblem: a hyperparameter family is required");
  require(train.size() > 0 && val.size() > 0, "TorchProblem: empty training or validation set");
  weights_ = model_.module->parameters();
  hyper_ = family_->parameters();
  require(!weights_.empty(), "TorchProblem: the module has no parameters");
  require(!hyper_.empty(), "TorchProblem: the family has no hyperparameters");
  options_ = weights_.front().options().requires_grad(false);
  for (const Tensor& t : weights_)
    require(t.dtype() == options_.dtype() && t.device() == options_.device(),
            "TorchProblem: every module parameter must share one dtype and device");
  for (const Tensor& t : hyper_)
    require(t.dtype() == options_.dtype() && t.device() == options_.device(),
            "TorchProblem: hyperparameters must have the module's dtype and device");
  for (const Tensor& t : weights_) num_params_ += t.numel();
  for (const Tensor& t : hyper_) num_hyper_ += t.numel();
  train_ = train.to(options_);
  val_ = val.to(options_);
  if (test) test_ = test->to(options_);
  resample_noise(noise_seed);
}

void TorchProblem::distribute(std::shared_ptr<TensorCommunicator> comm, parallel::Shard train,
                              parallel::Shard val, parallel::Shard test) {
  require(comm != nullptr, "TorchProblem::distribute: no communicator");
  auto check = [](const char* what, const parallel::Shard& s, std::int64_t local) {
    require(s.count == local && s.begin >= 0 && s.begin + s.count <= s.total,
            std::string("TorchProblem::distribute: the ") + what + " shard [" +
                std::to_string(s.begin) + ", " + std::to_string(s.begin + s.count) + ") of " +
                std::to_string(s.total) + " rows does not match the " + std::to_string(local) +
                " local rows");
  };
  check("training", train, train_.size());
  check("validation", val, val_.size());
  if (test_) check("test", test, test_->size());
  require(family_->name() != "distillation",
          "TorchProblem::distribute: a distillation problem's training inputs are λ; its "
          "training set cannot be sharded");
  comm_ = std::move(comm);
  train_shard_ = train;
  val_shard_ = val;
  test_shard_ = test;
  penalty_weight_ = 1.0 / static_cast<double>(comm_->size());
  resample_noise(noise_seed_);  // ε for the full set, cut to this rank's rows
}

void TorchProblem::reduce(Tensor& t) const {
  if (comm_) comm_->sum(t);
}

double TorchProblem::reduced(double x) const {
  if (!comm_) return x;
  comm_->sum(&x, 1);
  return x;
}

Tensor TorchProblem::noise_rows(const Tensor& inputs, std::int64_t total, std::int64_t begin,
                                std::uint64_t seed) const {
  if (!comm_ || (begin == 0 && total == inputs.size(0))) return noise_like(inputs, seed);
  std::vector<std::int64_t> shape = inputs.sizes().vec();
  shape[0] = total;
  return noise_like(::torch::empty(shape, ::torch::TensorOptions().dtype(::torch::kDouble)), seed)
      .narrow(0, begin, inputs.size(0));
}

Tensor TorchProblem::current_weights() const {
  ::torch::NoGradGuard no_grad;
  return flatten(weights_, weights_).clone();
}

Tensor TorchProblem::current_lambda() const {
  ::torch::NoGradGuard no_grad;
  return flatten(hyper_, hyper_).clone();
}

Tensor TorchProblem::noise_like(const Tensor& inputs, std::uint64_t seed) const {
  // Drawn on the host from a seeded generator, so ε is the same on every device and a resumed
  // run sees the noise an uninterrupted one did.
  auto generator = at::detail::createCPUGenerator(seed);
  return ::torch::randn(inputs.sizes(), generator, ::torch::TensorOptions().dtype(::torch::kDouble))
      .to(options_);
}

void TorchProblem::resample_noise(std::uint64_t seed) {
  noise_seed_ = seed;
  noise_ = family_->uses_noise()
               ? noise_rows(train_.inputs, comm_ ? train_shard_.total : train_.size(),
                            comm_ ? train_shard_.begin : 0, seed)
               : Tensor();
  graph_valid_ = false;
  val_valid_ = false;
  kfac_valid_ = false;
}

void TorchProblem::load(const Tensor& lambda, const Tensor& w) {
  unflatten_into(w, weights_);
  unflatten_into(lambda, hyper_);
  // Writing into the parameters bumps their version counters: the saved graph of ∇_w L_T is
  // no longer usable, and the loaded point may not be the problem's point.
  graph_valid_ = false;
  loaded_is_point_ = false;
}

Tensor TorchProblem::objective(const Tensor& inputs, const Tensor& labels, const Tensor& noise,
                               const Tensor& rows, double data_weight) {
  Tensor loss;
  if (inputs.size(0) > 0) {
    const Tensor x = family_->train_inputs(inputs, noise, rows);
    loss = loss_(model_.forward(x), labels);
    if (data_weight != 1.0) loss = loss * data_weight;
  }
  Tensor penalty = family_->penalty(weights_);
  if (penalty.defined() && penalty_weight_ != 1.0) penalty = penalty * penalty_weight_;
  if (!loss.defined()) loss = penalty.defined() ? penalty : ::torch::zeros({}, options_);
  else if (penalty.defined()) loss = loss + penalty;
  return loss;
}

void TorchProblem::set_point(const Tensor& lambda, const Tensor& w) {
  require(lambda.dim() == 1 && lambda.numel() == num_hyper_,
          "TorchProblem::set_point: λ must be a flat tensor of " + std::to_string(num_hyper_) +
              " entries");
  require(w.dim() == 1 && w.numel() == num_params_,
          "TorchProblem::set_point: w must be a flat tensor of " + std::to_string(num_params_) +
              " entries");
  // Own copies: the caller's tensors may be the solver's work vectors (or ours).
  lambda_ = lambda.detach().to(options_).clone();
  w_ = w.detach().to(options_).clone();
  have_point_ = true;
  graph_valid_ = false;
  val_valid_ = false;
  kfac_valid_ = false;
  ensure_graph();
}

void TorchProblem::ensure_graph() {
  require(have_point_, "TorchProblem: call set_point first");
  if (graph_valid_) return;
  load(lambda_, w_);
  loaded_is_point_ = true;
  // A distributed rank's rows, for the family's per-row inputs (augmentation: which ε).
  const Tensor rows =
      comm_ ? ::torch::arange(train_shard_.begin, train_shard_.begin + train_shard_.count,
                              ::torch::TensorOptions().dtype(::torch::kLong).device(options_.device()))
            : Tensor();
  const Tensor loss = objective(train_.inputs, train_.labels, noise_, rows,
                                comm_ ? train_shard_.weight() : 1.0);
  const auto grads = autograd::grad({loss}, weights_, {}, /*retain_graph=*/true,
                                    /*create_graph=*/true, /*allow_unused=*/true);
  gradient_graph_ = flatten(grads, weights_);
  train_gradient_ = gradient_graph_.detach().clone();
  reduce(train_gradient_);
  train_loss_ = reduced(loss.item<double>());
  graph_valid_ = true;
}

void TorchProblem::load_point() {
  require(have_point_, "TorchProblem: call set_point first");
  if (!loaded_is_point_) {
    load(lambda_, w_);
    loaded_is_point_ = true;
  }
}

void TorchProblem::hvp(const Tensor& v, Tensor& out) {
  ensure_graph();
  require(v.numel() == num_params_, "TorchProblem::hvp: v has the wrong size");
  if (!gradient_graph_.requires_grad()) {  // L_T is linear in w: H = 0
    VectorSpace<Tensor>::assign(out, ::torch::zeros_like(v));
    return;
  }
  const Tensor gv = ::torch::dot(gradient_graph_, v.detach());
  const auto h = autograd::grad({gv}, weights_, {}, true, false, true);
  Tensor hv = flatten(h, weights_);
  reduce(hv);
  VectorSpace<Tensor>::assign(out, hv);
}

void TorchProblem::penalty_hvp(const Tensor& v, Tensor& out) {
  require(v.numel() == num_params_, "TorchProblem::penalty_hvp: v has the wrong size");
  ::torch::NoGradGuard no_grad;
  const Tensor diagonal = family_->penalty_hessian_diagonal();
  VectorSpace<Tensor>::assign(out, diagonal.defined() ? diagonal * v : ::torch::zeros_like(v));
}

void TorchProblem::mixed_product(const Tensor& v, Tensor& out) {
  ensure_graph();
  require(v.numel() == num_params_, "TorchProblem::mixed_product: v has the wrong size");
  if (!gradient_graph_.requires_grad()) {
    VectorSpace<Tensor>::assign(out, ::torch::zeros({num_hyper_}, options_));
    return;
  }
  const Tensor gv = ::torch::dot(gradient_graph_, v.detach());
  const auto m = autograd::grad({gv}, hyper_, {}, true, false, true);
  Tensor mv = flatten(m, hyper_);
  reduce(mv);
  VectorSpace<Tensor>::assign(out, mv);
}

void TorchProblem::evaluate_val() {
  if (val_valid_) return;
  load_point();
  // Chunks keep the activation memory bounded; each chunk's mean is weighted by its share.
  std::vector<Tensor> all = weights_;
  all.insert(all.end(), hyper_.begin(), hyper_.end());
  const std::int64_t n = val_.size();
  Tensor grad_w = ::torch::zeros({num_params_}, options_);
  Tensor grad_l = ::torch::zeros({num_hyper_}, options_);
  double loss_sum = 0;
  for (std::int64_t begin = 0; begin < n; begin += eval_chunk) {
    const std::int64_t count = std::min(eval_chunk, n - begin);
    const TensorData chunk = val_.slice(begin, count);
    const Tensor loss = loss_(model_.forward(chunk.inputs), chunk.labels) *
                        (static_cast<double>(count) / static_cast<double>(n) *
                         (comm_ ? val_shard_.weight() : 1.0));
    const auto grads = autograd::grad({loss}, all, {}, false, false, true);
    const std::vector<Tensor> gw(grads.begin(), grads.begin() + static_cast<long>(weights_.size()));
    const std::vector<Tensor> gl(grads.begin() + static_cast<long>(weights_.size()), grads.end());
    grad_w.add_(flatten(gw, weights_));
    grad_l.add_(flatten(gl, hyper_));
    loss_sum += loss.item<double>();
  }
  reduce(grad_w);
  reduce(grad_l);
  val_gradient_ = grad_w;
  direct_ = grad_l;
  val_loss_ = reduced(loss_sum);
  val_valid_ = true;
}

double TorchProblem::val_loss() {
  evaluate_val();
  return val_loss_;
}

const Tensor& TorchProblem::val_gradient() {
  evaluate_val();
  return val_gradient_;
}

void TorchProblem::val_direct_gradient(Tensor& out) {
  evaluate_val();
  VectorSpace<Tensor>::assign(out, direct_);
}

double TorchProblem::batch_train_gradient(const Tensor& lambda, const Tensor& w, const Tensor& rows,
                                          Tensor& gradient, std::uint64_t noise_seed) {
  require(rows.numel() > 0, "TorchProblem::batch_train_gradient: empty batch");
  load(lambda.detach(), w.detach());
  Tensor index = rows.to(::torch::kCPU, ::torch::kLong).contiguous();
  const std::int64_t batch = index.numel();
  Tensor positions;  // which entries of the batch this rank holds (distributed)
  if (comm_) {
    const Tensor mine = index.ge(train_shard_.begin).logical_and(
        index.lt(train_shard_.begin + train_shard_.count));
    positions = mine.nonzero().flatten();
    index = index.index_select(0, positions) - train_shard_.begin;
  }
  const Tensor device_index = index.to(options_.device());
  const TensorData part = train_.rows(device_index);
  Tensor noise;
  if (family_->uses_noise()) {
    // ε for the whole batch from the seed, then this rank's entries: the single-process draw.
    std::vector<std::int64_t> shape = train_.inputs.sizes().vec();
    shape[0] = batch;
    noise = noise_like(::torch::empty(shape, ::torch::TensorOptions().dtype(::torch::kDouble)),
                       noise_seed);
    if (comm_) noise = noise.index_select(0, positions.to(noise.device()));
  }
  const Tensor global_rows = comm_ ? (index + train_shard_.begin).to(options_.device()) : device_index;
  const double weight = comm_ ? static_cast<double>(index.numel()) / static_cast<double>(batch) : 1.0;
  const Tensor loss = objective(part.inputs, part.labels, noise, global_rows, weight);
  Tensor g;
  if (loss.requires_grad()) {
    const auto grads = autograd::grad({loss}, weights_, {}, false, false, true);
    g = flatten(grads, weights_);
  } else {
    g = ::torch::zeros({num_params_}, options_);
  }
  reduce(g);
  VectorSpace<Tensor>::assign(gradient, g);
  return reduced(loss.item<double>());
}

double TorchProblem::batch_train_gradient(const Tensor& lambda, const Tensor& w,
                                          const std::vector<Index>& rows, Tensor& gradient,
                                          std::uint64_t noise_seed) {
  std::vector<std::int64_t> index(rows.begin(), rows.end());
  return batch_train_gradient(lambda, w, ::torch::tensor(index, ::torch::kLong), gradient,
                              noise_seed);
}

Metrics TorchProblem::metrics() {
  load_point();
  ::torch::NoGradGuard no_grad;
  // Mean loss and accuracy over a data set, in chunks; `train` selects the inputs L_T sees.
  auto measure = [&](const TensorData& data, bool train, double& loss, double& accuracy) {
    const std::int64_t n = data.size();
    double loss_sum = 0;
    std::int64_t correct = 0;
    for (std::int64_t begin = 0; begin < n; begin += eval_chunk) {
      const std::int64_t count = std::min(eval_chunk, n - begin);
      const TensorData chunk = data.slice(begin, count);
      Tensor x = chunk.inputs;
      if (train) {
        const std::int64_t first = begin + (comm_ ? train_shard_.begin : 0);  // global row
        const Tensor rows = ::torch::arange(first, first + count,
                                            ::torch::TensorOptions().dtype(::torch::kLong).device(options_.device()));
        const Tensor noise = noise_.defined() ? noise_.narrow(0, begin, count) : Tensor();
        x = family_->train_inputs(x, noise, rows);
      }
      const Tensor logits = model_.forward(x);
      loss_sum += loss_(logits, chunk.labels).item<double>() * static_cast<double>(count);
      correct += logits.argmax(1).eq(chunk.labels).sum().item<std::int64_t>();
    }
    loss = loss_sum / static_cast<double>(n);
    accuracy = static_cast<double>(correct) / static_cast<double>(n);
  };
  Metrics m;
  m.has_accuracy = true;
  measure(train_, true, m.train_loss, m.train_accuracy);
  measure(val_, false, m.val_loss, m.val_accuracy);
  if (test_) {
    m.has_test = true;
    measure(*test_, false, m.test_loss, m.test_accuracy);
  }
  if (comm_) {  // this rank's means, weighted by its share and summed
    double parts[6] = {m.train_loss * train_shard_.weight(), m.train_accuracy * train_shard_.weight(),
                       m.val_loss * val_shard_.weight(),     m.val_accuracy * val_shard_.weight(),
                       m.test_loss * test_shard_.weight(),   m.test_accuracy * test_shard_.weight()};
    comm_->sum(parts, 6);
    m.train_loss = parts[0];
    m.train_accuracy = parts[1];
    m.val_loss = parts[2];
    m.val_accuracy = parts[3];
    m.test_loss = parts[4];
    m.test_accuracy = parts[5];
  }
  return m;
}

// ---- KFAC -----------------------------------------------------------------------------------

const std::vector<TorchProblem::KfacFactor>& TorchProblem::kfac_factors() {
  if (kfac_valid_) return kfac_;
  load_point();
  std::unordered_map<const void*, std::int64_t> offsets;
  {
    std::int64_t offset = 0;
    for (const Tensor& t : weights_) {
      offsets[t.unsafeGetTensorImpl()] = offset;
      offset += t.numel();
    }
  }
  auto offset_of = [&](const Tensor& t) {
    const auto it = offsets.find(t.unsafeGetTensorImpl());
    require(it != offsets.end(), "KFAC: a tapped layer's parameter is not a parameter of the model");
    return it->second;
  };

  Tensor logits;
  std::vector<TapeEntry> entries;
  {
    KfacTape tape;
    logits = model_.forward(family_->train_inputs(train_.inputs, noise_, Tensor()));
    entries = std::move(tape.entries);
  }
  require(logits.dim() == 2, "KFAC: the model must return logits of shape batch × classes");
  const std::int64_t n = logits.size(0), classes = logits.size(1);
  kfac_.clear();
  std::vector<Tensor> outputs;
  std::vector<std::int64_t> locations;  // spatial positions T per layer (1 for Linear)
  {
    ::torch::NoGradGuard no_grad;
    for (const TapeEntry& e : entries) {
      KfacFactor f;
      f.kind = e.kind;
      f.weight_offset = offset_of(e.weight);
      f.bias_merged = e.bias_merged;
      f.outputs = e.weight.size(0);
      const bool has_bias = e.bias.defined() || e.bias_merged;
      if (e.bias.defined()) f.bias_offset = offset_of(e.bias);
      Tensor a;  // rows: examples (Linear) or example × location (Conv2d)
      if (e.kind == TapeEntry::Kind::Linear) {
        a = e.input;
        locations.push_back(1);
      } else {
        const Tensor patches =
            F::unfold(e.input, F::UnfoldFuncOptions({e.kernel[0], e.kernel[1]})
                                   .dilation({e.dilation[0], e.dilation[1]})
                                   .padding({e.padding[0], e.padding[1]})
                                   .stride({e.stride[0], e.stride[1]}));
        locations.push_back(patches.size(2));
        a = patches.transpose(1, 2).reshape({-1, patches.size(1)});
      }
      if (has_bias && !(e.bias_merged && a.size(1) == e.weight.size(1)))
        a = ::torch::cat({a, ::torch::ones({a.size(0), 1}, a.options())}, 1);
      f.inputs = a.size(1);
      require(f.inputs * f.outputs ==
                  e.weight.numel() + (e.bias.defined() ? e.bias.numel() : 0),
              "KFAC: layer input width does not match its weight");
      // KFC: Ω sums over locations and averages over examples.
      f.A = ::torch::mm(a.t(), a) / static_cast<double>(n);
      f.G = ::torch::zeros({f.outputs, f.outputs}, a.options());
      kfac_.push_back(std::move(f));
      outputs.push_back(e.output);
    }
  }
  if (!kfac_.empty()) {
    // G = E[Jᵀ H_out J] with H_out = diag(p) − p pᵀ = B Bᵀ, B = diag(√p) − p √pᵀ: backpropagate
    // each column of B like an output gradient (KFLR, as ift::Mlp::kfac_factors).
    const Tensor probs = ::torch::softmax(logits.detach(), 1);
    const Tensor root = probs.sqrt();
    for (std::int64_t c = 0; c < classes; ++c) {
      Tensor column = -root.narrow(1, c, 1) * probs;
      column.narrow(1, c, 1).add_(root.narrow(1, c, 1));
      const auto deltas = autograd::grad({logits}, outputs, {column}, true, false, true);
      ::torch::NoGradGuard no_grad;
      for (std::size_t l = 0; l < kfac_.size(); ++l) {
        if (!deltas[l].defined()) continue;
        Tensor d = deltas[l];
        if (d.dim() == 4) d = d.permute({0, 2, 3, 1}).reshape({-1, d.size(1)});
        // Γ averages over locations (KFC) and examples.
        kfac_[l].G.add_(::torch::mm(d.t(), d),
                        1.0 / static_cast<double>(n * locations[l]));
      }
    }
  }
  if (comm_) {  // each factor is a mean over this rank's rows: weight by its share and sum
    const double share = train_shard_.weight();
    for (KfacFactor& f : kfac_) {
      f.A.mul_(share);
      f.G.mul_(share);
      reduce(f.A);
      reduce(f.G);
    }
  }
  kfac_valid_ = true;
  return kfac_;
}

std::vector<KfacBlock<Tensor>> TorchProblem::kfac_factors(std::vector<double>& shift) {
  const auto& factors = kfac_factors();
  const Tensor diagonal = family_->penalty_hessian_diagonal();
  std::vector<KfacBlock<Tensor>> blocks;
  shift.clear();
  for (const KfacFactor& f : factors) {
    KfacBlock<Tensor> block;
    block.offset = f.weight_offset;
    block.bias_offset = f.bias_offset;
    block.A = f.A;
    block.G = f.G;
    double sum = 0;
    if (diagonal.defined()) {
      ::torch::NoGradGuard no_grad;
      const BlockLayout layout = block.layout();
      sum = diagonal.narrow(0, layout.offset, layout.leading_size()).sum().item<double>();
      if (layout.last_row_apart())
        sum += diagonal.narrow(0, layout.last_row_offset, layout.cols).sum().item<double>();
    }
    shift.push_back(sum / static_cast<double>(block.size()));
    blocks.push_back(std::move(block));
  }
  return blocks;
}

}  // namespace ift::deep
