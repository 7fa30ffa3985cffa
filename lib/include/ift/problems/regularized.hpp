// RegularizedProblem: L_T = mean loss(train) + weight-decay penalty, L_V = mean loss(val), an
// optional test set for metrics; for any model satisfying FullModel (ift/models/model.hpp).
// Implements BilevelProblem<S> and every capability of ift/problem.hpp.
//
// Data-parallel (distribute()): each process holds a shard of the training, validation and test
// rows; every data term (losses, gradients, curvature products and matrices, Kronecker factors,
// accuracies) is the model's mean over the local rows weighted by count/total and summed over
// the ranks (parallel::Communicator: rank order, the same bits on every rank), and the penalty
// is added once, after the sum. The result is the single-process problem's to rounding.
#pragma once

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/hyper/weight_decay.hpp"
#include "ift/models/model.hpp"
#include "ift/parallel/communicator.hpp"
#include "ift/problem.hpp"

namespace ift {

/// Whether RegularizedProblem<Model> forms its curvature in float (capability::FloatCurvature):
/// a model with hessian_float and no Gauss-Newton matrix of its own (linear logits: the
/// Gauss-Newton matrix is the Hessian, as gauss_newton_matrix() uses).
template <class Model>
inline constexpr bool kFloatCurvature =
    ModelWithFloatHessian<Model> && !ModelWithGaussNewtonMatrix<Model>;

/// L_T = mean loss(train) + weight-decay penalty; L_V = mean loss(val); optional test set for
/// metrics. Works for any model with the evaluate/hvp/... interface of SoftmaxRegression.
template <class Model>
class RegularizedProblem final
    : public BilevelProblem<typename Model::Scalar>,
      public capability::All<typename Model::Scalar>,
      public capability::BlockHvp<typename Model::Scalar>,
      public std::conditional_t<kFloatCurvature<Model>,
                                capability::FloatCurvature<typename Model::Scalar>,
                                capability::Nothing<typename Model::Scalar>> {
  static_assert(FullModel<Model>,
                "RegularizedProblem needs a model with every capability of ift/models/model.hpp "
                "(evaluate, gradient_from_cache, hvp, Gauss-Newton and Fisher products, dense "
                "Hessian, Kronecker factors, accuracy)");

 public:
  using S = typename Model::Scalar;

  RegularizedProblem(Model model, WeightDecay<S> decay, std::shared_ptr<const Dataset<S>> train,
                     std::shared_ptr<const Dataset<S>> val,
                     std::shared_ptr<const Dataset<S>> test = nullptr)
      : model_(std::move(model)), decay_(decay), train_(std::move(train)), val_(std::move(val)),
        test_(std::move(test)) {
    require(train_ && val_, "RegularizedProblem: train and validation sets are required");
    require(decay_.num_params() == model_.num_params(),
            "RegularizedProblem: the weight-decay family does not match the model's size");
    // The validation rows are read once per hyper-step, after the inner phase's passes over
    // the training rows (as large at P1: 6.3 MB each) have pushed them out of cache: stream
    // them in block by block (row_block::Workspace::stream; P1 n = 1,000: the validation pass
    // 0.56-0.63 -> 0.47-0.53 ms on one thread, bench/README.md). Same results, bitwise.
    if constexpr (requires { val_cache_.blocks.stream = true; }) val_cache_.blocks.stream = true;
  }

  /// Makes this problem one rank's part of a data-parallel problem: the data sets given to the
  /// constructor are this rank's rows `train`, `val` and `test` (shards of the full sets, the
  /// same on every rank in total), and every data term is summed over `comm`'s ranks. Every rank
  /// must then make the same calls in the same order (they are collective).
  void distribute(std::shared_ptr<parallel::Communicator> comm, parallel::Shard train,
                  parallel::Shard val, parallel::Shard test = {}) {
    require(comm != nullptr, "RegularizedProblem::distribute: no communicator");
    const std::string who = "RegularizedProblem::distribute";
    parallel::require_shard(who, "training", train, train_->size());
    parallel::require_shard(who, "validation", val, val_->size());
    if (test_) parallel::require_shard(who, "test", test, test_->size());
    comm_ = std::move(comm);
    train_shard_ = train;
    val_shard_ = val;
    test_shard_ = test;
    drop_data_terms();  // they are now sums over the ranks
  }
  /// The communicator of a distributed problem; null for a single process.
  const std::shared_ptr<parallel::Communicator>& communicator() const { return comm_; }

  const Model& model() const { return model_; }
  const Dataset<S>& train_data() const { return *train_; }
  const Dataset<S>& val_data() const { return *val_; }
  const WeightDecay<S>& decay() const { return decay_; }

  Index num_params() const override { return model_.num_params(); }
  Index num_hyper() const override { return decay_.num_hyper(); }

  /// Moves to (λ, w). The data terms depend on w only, so when w is bitwise the point already
  /// set (the loop's next inner step after a hypergradient, which only moved λ) the training
  /// forward pass, the data gradient and the validation terms are kept and only the penalty's
  /// terms are formed for the new λ: the values are those of a fresh evaluation, bitwise (the
  /// passes are deterministic), without the pass over the data.
  void set_point(const Vector<S>& lambda, const Vector<S>& w) override {
    move_to(lambda, w, false);
  }
  /// set_point with the data gradient formed in the forward's own pass (the model's evaluate
  /// with a gradient: for the linear models one read of X per row block instead of one for the
  /// forward and one for train_gradient()'s backward; the same bits, ProblemPoint tests). Where
  /// X is read from memory (P2's 3,500 rows and beyond) an inner step costs one pass, not two.
  void set_point_with_gradient(const Vector<S>& lambda, const Vector<S>& w) override {
    move_to(lambda, w, true);
    train_gradient();
  }
  /// set_point_with_gradient and hvp(v) in the forward's own pass where the model has the fused
  /// pass (ModelWithEvaluateAndHvp: forward X [W, V], backward Xᵀ [residual, R{∂L/∂Z}]): at a new
  /// point one read of X instead of two. The same bits (ProblemPoint tests).
  void set_point_with_gradient_and_hvp(const Vector<S>& lambda, const Vector<S>& w,
                                       const Vector<S>& v, Vector<S>& hv) override {
    require(v.size() == num_params(),
            "RegularizedProblem::set_point_with_gradient_and_hvp: v has the wrong size");
    const bool formed = move_to(lambda, w, true, &v, &hv);
    train_gradient();
    if (!formed) {  // the same point (or no fused pass): hvp() as a separate call
      hvp(v, hv);
      return;
    }
    reduce(hv, train_shard_);  // then as hvp() finishes its product
    add_penalty_hvp(v, hv);
  }
  const Vector<S>& lambda() const override { return lambda_; }
  const Vector<S>& w() const override { return w_; }

  S train_loss() const override { return train_loss_; }
  const Vector<S>& train_gradient() const override {
    if (!train_gradient_valid_) {
      if (!data_gradient_valid_) {
        model_.gradient_from_cache(*train_, train_cache_, data_gradient_);
        reduce(data_gradient_, train_shard_);
        data_gradient_valid_ = true;
      }
      // ∇R = exp(λ) ⊙ w
      train_gradient_.array() = data_gradient_.array() + penalty_curvature_.array() * w_.array();
      train_gradient_valid_ = true;
    }
    return train_gradient_;
  }
  S val_loss() override {
    evaluate_val();
    return val_loss_;
  }
  const Vector<S>& val_gradient() override {
    evaluate_val();
    return val_gradient_;
  }
  void val_direct_gradient(Vector<S>& out) override { out.setZero(num_hyper()); }

  /// The first product at a point whose data gradient is not formed yet also forms it, in the
  /// same pass over the training rows (ModelWithHvpAndGradient: bitwise what train_gradient()
  /// would compute): the loop's next inner step starts at this point and needs it, so a
  /// hypergradient costs that step its pass over X (issue 11, the hyper-step's cost).
  void hvp(const Vector<S>& v, Vector<S>& out) override {
    if constexpr (ModelWithHvpAndGradient<Model>) {
      if (point_valid_ && !data_gradient_valid_) {
        model_.hvp_and_gradient(*train_, w_, train_cache_, v, out, data_gradient_);
        reduce(out, train_shard_);
        reduce(data_gradient_, train_shard_);
        data_gradient_valid_ = true;
        add_penalty_hvp(v, out);
        return;
      }
    }
    model_.hvp(*train_, w_, train_cache_, v, out);
    reduce(out, train_shard_);
    add_penalty_hvp(v, out);
  }
  /// The model's block product when it has one (ModelWithBlockHvp), else one hvp per column.
  void hvp_block(const Matrix<S>& V, Matrix<S>& out) override {
    require(V.rows() == penalty_curvature_.size(),
            "RegularizedProblem::hvp_block: block of the wrong height (call set_point first)");
    if constexpr (ModelWithBlockHvp<Model>) {
      model_.hvp_block(*train_, w_, train_cache_, V, out);
    } else {
      out.resize(V.rows(), V.cols());
      Vector<S> column, product;
      for (Index j = 0; j < V.cols(); ++j) {
        column = V.col(j);
        model_.hvp(*train_, w_, train_cache_, column, product);
        out.col(j) = product;
      }
    }
    reduce(out, train_shard_);
    out.array() += V.array().colwise() * penalty_curvature_.array();  // + ∇²R V = exp(λ) ⊙ V
  }
  void gauss_newton_product(const Vector<S>& v, Vector<S>& out) override {
    model_.gauss_newton_product(*train_, w_, train_cache_, v, out);
    reduce(out, train_shard_);
    add_penalty_hvp(v, out);
  }
  void fisher_product(const Vector<S>& v, Vector<S>& out) override {
    model_.fisher_product(*train_, w_, train_cache_, v, out);
    reduce(out, train_shard_);
    add_penalty_hvp(v, out);
  }
  void hessian(Matrix<S>& H) override {
    model_.hessian(*train_, w_, train_cache_, H);
    reduce(H, train_shard_);
    decay_.add_hessian(lambda_, H);
  }
  void gauss_newton_matrix(Matrix<S>& G) override {
    if constexpr (requires { model_.gauss_newton_matrix(*train_, w_, train_cache_, G); })
      model_.gauss_newton_matrix(*train_, w_, train_cache_, G);
    else
      model_.hessian(*train_, w_, train_cache_, G);  // linear logits: Gauss-Newton = Hessian
    reduce(G, train_shard_);
    decay_.add_hessian(lambda_, G);
  }
  /// capability::FloatCurvature when kFloatCurvature<Model> (else it throws; the problem does not
  /// offer the capability then): the data term from a float copy of the training X (made on the
  /// first call and kept: the training rows never change), the penalty's diagonal exp(λ) added
  /// in float. Equal to hessian() to float rounding.
  void hessian_float(Matrix<float>& H) {
    if constexpr (kFloatCurvature<Model>) {
      if (train_x_float_.rows() != train_->X.rows() || train_x_float_.cols() != train_->X.cols())
        train_x_float_ = train_->X.template cast<float>();
      model_.hessian_float(*train_, train_x_float_, w_, train_cache_, H);
      reduce(H, train_shard_);
      H.diagonal().array() += penalty_curvature_.array().template cast<float>();
    } else {
      (void)H;
      throw std::invalid_argument("RegularizedProblem: this model forms no float Hessian");
    }
  }
  /// The Gauss-Newton matrix in float: the Hessian (linear logits; see kFloatCurvature).
  void gauss_newton_matrix_float(Matrix<float>& G) { hessian_float(G); }
  std::vector<KroneckerFactors<S>> kfac_factors(std::vector<S>& shift) override {
    auto factors = model_.kfac_factors(*train_, w_, train_cache_);
    for (auto& f : factors) {  // each factor is a mean over the rows
      reduce(f.A, train_shard_);
      reduce(f.G, train_shard_);
    }
    const Vector<S> diag = decay_.hessian_diagonal(lambda_);
    shift.clear();
    for (const auto& f : factors) {
      const Index size = f.A.rows() * f.G.rows();
      shift.push_back(diag.segment(f.offset, size).mean());
    }
    return factors;
  }
  bool kfac_corrected_eigenvalues(std::size_t block, const Matrix<S>& Ua, const Matrix<S>& Ug,
                                  Matrix<S>& out) override {
    if constexpr (ModelWithKfacEigenvalues<Model>) {
      model_.kfac_corrected_eigenvalues(*train_, w_, train_cache_, block, Ua, Ug, out);
      reduce(out, train_shard_);  // a mean over the rows, as the factors
      return true;
    } else {
      (void)block, (void)Ua, (void)Ug, (void)out;
      return false;
    }
  }
  void mixed_product(const Vector<S>& v, Vector<S>& out) override {
    decay_.mixed_product(lambda_, w_, v, out);
  }
  void penalty_hvp(const Vector<S>& v, Vector<S>& out) override {
    out.setZero(v.size());
    add_penalty_hvp(v, out);
  }

  Index num_train_examples() const override { return comm_ ? train_shard_.total : train_->size(); }
  /// `rows` index the whole training set; a distributed problem evaluates the rows it holds and
  /// weights them by their share of the batch.
  S batch_train_gradient(const Vector<S>& lambda, const Vector<S>& w,
                         const std::vector<Index>& rows, Vector<S>& gradient) override {
    require(!rows.empty(), "RegularizedProblem::batch_train_gradient: empty batch");
    const parallel::Shard share = local_rows(rows, "batch_train_gradient", batch_rows_);
    S data_loss = 0;
    if (share.count == 0) {
      gradient.setZero(num_params());
    } else {
      train_->gather(batch_rows_, batch_);
      data_loss = model_.evaluate(batch_, w, batch_cache_, &gradient);
    }
    data_loss = reduced(data_loss, share);
    reduce(gradient, share);
    const S loss = data_loss + decay_.penalty(lambda, w);
    decay_.add_gradient(lambda, w, gradient);
    return loss;
  }

  /// `rows` index the whole training set; a distributed problem multiplies by the rows it holds
  /// and weights them by their share of the batch.
  void batch_hvp(const std::vector<Index>& rows, const Vector<S>& v, Vector<S>& out) override {
    require(!rows.empty(), "RegularizedProblem::batch_hvp: empty batch");
    if (rows != hvp_rows_) {  // a new batch: its cache once (fixed sampling reuses it)
      hvp_share_ = local_rows(rows, "batch_hvp", batch_rows_);
      if (hvp_share_.count > 0) {
        train_->gather(batch_rows_, hvp_batch_);
        bool from_point = false;
        if constexpr (ModelWithCacheRows<Model>) {
          // The point's forward pass over every training row is in train_cache_ (at w_): the
          // batch's rows of it, without a forward pass over the batch.
          if (point_valid_) {
            model_.cache_rows(hvp_batch_, train_cache_, batch_rows_, hvp_batch_cache_);
            from_point = true;
          }
        }
        if (!from_point) model_.evaluate(hvp_batch_, w_, hvp_batch_cache_, nullptr);
      }
      hvp_rows_ = rows;
    }
    if (hvp_share_.count > 0)
      model_.hvp(hvp_batch_, w_, hvp_batch_cache_, v, out);
    else
      out.setZero(v.size());
    reduce(out, hvp_share_);
    add_penalty_hvp(v, out);
  }

  Metrics metrics() override {
    require(point_valid_, "RegularizedProblem::metrics: no point set (call set_point first)");
    Metrics m;
    // The training data term and its forward pass are set_point's (no second pass over the
    // training rows).
    m.train_loss = static_cast<double>(data_loss_);
    m.val_loss = static_cast<double>(val_loss());
    m.has_accuracy = train_->labels.size() > 0;
    if (m.has_accuracy) {
      m.train_accuracy = reduced(model_.accuracy(*train_, train_cache_), train_shard_);
      m.val_accuracy = reduced(model_.accuracy(*val_, val_cache_), val_shard_);
    }
    if (test_) {
      m.has_test = true;
      m.test_loss = static_cast<double>(
          reduced(model_.evaluate(*test_, w_, scratch_cache_, nullptr), test_shard_));
      if (m.has_accuracy) m.test_accuracy = reduced(model_.accuracy(*test_, scratch_cache_), test_shard_);
    }
    return m;
  }

 private:
  /// out += ∇²_w R v = exp(λ) ⊙ v, from the diagonal formed at set_point.
  void add_penalty_hvp(const Vector<S>& v, Vector<S>& out) const {
    require(v.size() == penalty_curvature_.size() && out.size() == v.size(),
            "RegularizedProblem: curvature product of the wrong size (call set_point first)");
    out.array() += penalty_curvature_.array() * v.array();
  }
  /// set_point's work; `with_gradient`: a new point's forward pass also forms the data gradient;
  /// with `v` too (and a model with the fused pass, ModelWithEvaluateAndHvp) also the data term's
  /// H v into *hv, before the sum over ranks and the penalty. Returns whether *hv was formed.
  bool move_to(const Vector<S>& lambda, const Vector<S>& w, bool with_gradient,
               const Vector<S>* v = nullptr, Vector<S>* hv = nullptr) {
    require(lambda.size() == num_hyper(), "RegularizedProblem::set_point: λ has the wrong size");
    require(w.size() == num_params(), "RegularizedProblem::set_point: w has the wrong size");
    lambda_ = lambda;
    bool formed = false;
    if (!same_point(w)) {
      drop_data_terms();
      w_ = w;
      // The forward pass (and an MLP's backpropagated δ) that every curvature product reuses;
      // the weight gradient itself (half of a logistic-regression gradient's flops, 40% of a
      // deep MLP's) only with_gradient or when train_gradient() is called: a hypergradient by
      // cg/neumann/identity/kfac never needs it.
      S loss = S(0);
      if constexpr (ModelWithEvaluateAndHvp<Model>) {
        if (with_gradient && v != nullptr) {
          loss = model_.evaluate_with_hvp(*train_, w_, train_cache_, *v, data_gradient_, *hv);
          formed = true;
        }
      }
      if (!formed)
        loss = model_.evaluate(*train_, w_, train_cache_,
                               with_gradient ? &data_gradient_ : nullptr);
      data_loss_ = reduced(loss, train_shard_);
      if (with_gradient) {
        reduce(data_gradient_, train_shard_);
        data_gradient_valid_ = true;
      }
      point_valid_ = true;
    }
    train_loss_ = data_loss_ + decay_.penalty(lambda_, w_);
    decay_.hessian_diagonal(lambda_, penalty_curvature_);  // exp(λ) once, not in every product
    train_gradient_valid_ = false;
    return formed;
  }
  /// Forgets every term computed from the data at w_ (a new point, or a new distribution).
  void drop_data_terms() {
    point_valid_ = false;
    data_gradient_valid_ = false;
    train_gradient_valid_ = false;
    val_valid_ = false;
    hvp_rows_.clear();  // the minibatch forward pass belongs to the old point
  }
  /// The rows of a minibatch (indices into the whole training set, each checked) that this
  /// process holds, as indices into its own rows, in `local`; the returned share weights them:
  /// {0, local rows, batch size}. A single process holds every row (local = rows, bitwise the
  /// undistributed mean).
  parallel::Shard local_rows(const std::vector<Index>& rows, const char* who,
                             std::vector<Index>& local) const {
    local.clear();
    for (const Index r : rows) {
      require(r >= 0 && r < num_train_examples(), [r, who] {  // built only on failure
        return std::string("RegularizedProblem::") + who + ": row " + std::to_string(r) +
               " outside the training set";
      });
      if (!comm_)
        local.push_back(r);
      else if (r >= train_shard_.begin && r < train_shard_.begin + train_shard_.count)
        local.push_back(r - train_shard_.begin);
    }
    return {0, static_cast<Index>(local.size()), static_cast<Index>(rows.size())};
  }
  /// w is bitwise the point whose forward pass train_cache_ holds.
  bool same_point(const Vector<S>& w) const {
    return point_valid_ && w.size() == w_.size() &&
           std::memcmp(w.data(), w_.data(), sizeof(S) * static_cast<std::size_t>(w.size())) == 0;
  }
  void evaluate_val() {
    if (val_valid_) return;
    val_loss_ = reduced(model_.evaluate(*val_, w_, val_cache_, &val_gradient_), val_shard_);
    reduce(val_gradient_, val_shard_);
    val_valid_ = true;
  }
  /// A distributed problem's data term: this rank's mean weighted by its share, summed over the
  /// ranks. A single process leaves it as it is (bitwise).
  template <class Derived>
  void reduce(Eigen::PlainObjectBase<Derived>& x, const parallel::Shard& shard) const {
    parallel::sum_shares(comm_.get(), x, shard);
  }
  template <class T>
  T reduced(T x, const parallel::Shard& shard) const {
    return parallel::sum_shares(comm_.get(), x, shard);
  }

  Model model_;
  WeightDecay<S> decay_;
  std::shared_ptr<const Dataset<S>> train_, val_, test_;
  Vector<S> lambda_, w_, val_gradient_;
  std::vector<Index> batch_rows_;  // local_rows' output, kept to reuse its storage
  mutable Vector<S> train_gradient_;  // formed on demand from train_cache_ (see set_point)
  mutable Vector<S> data_gradient_;   // its data term, kept while w stays (a new λ only)
  Vector<S> penalty_curvature_;       // exp(λ) per weight, the penalty's Hessian diagonal
  S train_loss_ = 0, val_loss_ = 0;
  bool val_valid_ = false;
  mutable bool train_gradient_valid_ = false;
  mutable bool data_gradient_valid_ = false;
  bool point_valid_ = false;  // train_cache_ and data_loss_ hold the forward pass at w_
  S data_loss_ = 0;
  typename Model::Cache train_cache_, val_cache_, scratch_cache_, batch_cache_;
  Matrix<float> train_x_float_;  // the training X rounded to float (hessian_float), made once
  std::shared_ptr<parallel::Communicator> comm_;  // null: one process
  parallel::Shard train_shard_, val_shard_, test_shard_;
  Dataset<S> batch_;
  // batch_hvp's minibatch at the current point: its rows (empty: none), data and forward pass.
  std::vector<Index> hvp_rows_;
  Dataset<S> hvp_batch_;
  typename Model::Cache hvp_batch_cache_;
  parallel::Shard hvp_share_;  // this rank's share of the batch (distributed)
};

}  // namespace ift
