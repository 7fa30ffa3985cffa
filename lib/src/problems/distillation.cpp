#include "ift/problems/distillation.hpp"

#include <string>

namespace ift {

template <class S>
DistillationProblem<S>::DistillationProblem(Index num_classes, Index num_pixels,
                                            std::shared_ptr<const Dataset<S>> val,
                                            std::shared_ptr<const Dataset<S>> test,
                                            S weight_decay)
    : num_classes_(num_classes), num_pixels_(num_pixels),
      model_(num_pixels + 1, num_classes), val_(std::move(val)), test_(std::move(test)),
      weight_decay_(weight_decay) {
  require(num_pixels > 0, "DistillationProblem: num_pixels must be positive");
  require(val_ != nullptr, "DistillationProblem: a validation set is required");
  require(weight_decay > 0,
          "DistillationProblem: weight_decay must be > 0 (it makes the inner minimiser unique)");
  for (const Dataset<S>* d : {val_.get(), test_.get()}) {
    if (d == nullptr) continue;
    require(d->num_features() == num_pixels + 1,
            "DistillationProblem: real data must have num_pixels + 1 = " +
                std::to_string(num_pixels + 1) + " features (bias column last), got " +
                std::to_string(d->num_features()));
    require(d->labels.size() == d->size() && d->size() > 0,
            "DistillationProblem: real data needs one label per row");
  }
  // One example per class, labels 0..C−1; the pixels are filled by set_point.
  synthetic_.X = Matrix<S>::Zero(num_classes, num_pixels + 1);
  synthetic_.X.col(num_pixels).setOnes();
  synthetic_.labels = LabelVector::LinSpaced(num_classes, 0, static_cast<int>(num_classes) - 1);
  synthetic_.num_classes = num_classes;
}

template <class S>
void DistillationProblem<S>::distribute(std::shared_ptr<parallel::Communicator> comm,
                                        parallel::Shard val, parallel::Shard test) {
  require(comm != nullptr, "DistillationProblem::distribute: no communicator");
  parallel::require_shard("DistillationProblem::distribute", "validation", val, val_->size());
  if (test_) parallel::require_shard("DistillationProblem::distribute", "test", test, test_->size());
  comm_ = std::move(comm);
  val_shard_ = val;
  test_shard_ = test;
  val_valid_ = false;
}

template <class S>
Matrix<S> DistillationProblem<S>::images(const Vector<S>& lambda) const {
  require(lambda.size() == num_hyper(), "DistillationProblem::images: λ has the wrong size");
  // λ[n·P + j] is pixel j of image n: the row-major vec of the m × P image matrix.
  return Eigen::Map<const Matrix<S>>(lambda.data(), num_pixels_, num_classes_).transpose();
}

template <class S>
Vector<S> DistillationProblem<S>::class_means(const Dataset<S>& data) const {
  require(data.num_features() == num_pixels_ || data.num_features() == num_pixels_ + 1,
          "DistillationProblem::class_means: data must have num_pixels (+ 1 bias) features");
  require(data.labels.size() == data.size(),
          "DistillationProblem::class_means: data needs one label per row");
  Matrix<S> sums = Matrix<S>::Zero(num_pixels_, num_classes_);
  Vector<S> counts = Vector<S>::Zero(num_classes_);
  for (Index i = 0; i < data.size(); ++i) {
    const Index c = data.labels(i);
    require(c >= 0 && c < num_classes_, "DistillationProblem::class_means: label out of range");
    sums.col(c) += data.X.row(i).head(num_pixels_).transpose();
    counts(c) += S(1);
  }
  for (Index c = 0; c < num_classes_; ++c) {
    require(counts(c) > 0, "DistillationProblem::class_means: class " + std::to_string(c) +
                               " has no example");
    sums.col(c) /= counts(c);
  }
  return Eigen::Map<const Vector<S>>(sums.data(), sums.size());
}

template <class S>
void DistillationProblem<S>::set_point(const Vector<S>& lambda, const Vector<S>& w) {
  require(lambda.size() == num_hyper(), "DistillationProblem::set_point: λ has " +
                                            std::to_string(lambda.size()) + " entries, expected " +
                                            std::to_string(num_hyper()));
  require(w.size() == num_params(), "DistillationProblem::set_point: w has " +
                                        std::to_string(w.size()) + " entries, expected " +
                                        std::to_string(num_params()));
  lambda_ = lambda;
  w_ = w;
  synthetic_.X.leftCols(num_pixels_) = images(lambda_);
  train_loss_ = model_.evaluate(synthetic_, w_, train_cache_, &train_gradient_) +
                S(0.5) * weight_decay_ * w_.squaredNorm();
  train_gradient_.noalias() += weight_decay_ * w_;
  val_valid_ = false;
}

template <class S>
void DistillationProblem<S>::evaluate_val() {
  require(w_.size() == num_params(), "DistillationProblem: call set_point first");
  if (val_valid_) return;
  val_loss_ = parallel::sum_shares(comm_.get(), model_.evaluate(*val_, w_, val_cache_, &val_gradient_),
                                   val_shard_);
  parallel::sum_shares(comm_.get(), val_gradient_, val_shard_);
  val_valid_ = true;
}

template <class S>
S DistillationProblem<S>::val_loss() {
  evaluate_val();
  return val_loss_;
}

template <class S>
const Vector<S>& DistillationProblem<S>::val_gradient() {
  evaluate_val();
  return val_gradient_;
}

template <class S>
void DistillationProblem<S>::hvp(const Vector<S>& v, Vector<S>& out) {
  model_.hvp(synthetic_, w_, train_cache_, v, out);
  out.noalias() += weight_decay_ * v;
}

template <class S>
void DistillationProblem<S>::gauss_newton_product(const Vector<S>& v, Vector<S>& out) {
  model_.gauss_newton_product(synthetic_, w_, train_cache_, v, out);
  out.noalias() += weight_decay_ * v;
}

template <class S>
void DistillationProblem<S>::fisher_product(const Vector<S>& v, Vector<S>& out) {
  model_.fisher_product(synthetic_, w_, train_cache_, v, out);
  out.noalias() += weight_decay_ * v;
}

template <class S>
void DistillationProblem<S>::hessian(Matrix<S>& H) {
  model_.hessian(synthetic_, w_, train_cache_, H);
  H.diagonal().array() += weight_decay_;
}

template <class S>
void DistillationProblem<S>::gauss_newton_matrix(Matrix<S>& G) {
  hessian(G);  // the logits are linear in w: Gauss-Newton = Hessian
}

template <class S>
std::vector<KroneckerFactors<S>> DistillationProblem<S>::kfac_factors(std::vector<S>& shift) {
  auto factors = model_.kfac_factors(synthetic_, w_, train_cache_);
  shift.assign(factors.size(), weight_decay_);
  return factors;
}

template <class S>
void DistillationProblem<S>::mixed_product(const Vector<S>& v, Vector<S>& out) {
  require(v.size() == num_params(), "DistillationProblem::mixed_product: v has the wrong size");
  // With V the C × F matrix of v, residuals r_n = (p_n − y_n)/m and p_n = softmax(W x_n):
  //   vᵀ ∇_w L_T = Σ_n r_nᵀ V x_n + μ vᵀw   (the L2 term does not depend on λ), so
  //   ∂/∂x_n (vᵀ ∇_w L_T) = Vᵀ r_n + Wᵀ S_n (V x_n) / m,   S_n = diag(p_n) − p_n p_nᵀ,
  // using ∂r_n/∂x_n = S_n W / m. Only the P pixel columns of x_n are hyperparameters.
  // In matrix form (the F × C maps Vt = Vᵀ, Wt = Wᵀ of the class-major layout):
  //   U = X Vt (rows u_n = V x_n),  Q_n = S_n u_n / m,  D = R Vtᵀ + Q Wtᵀ  (m × F).
  const Index m = synthetic_.size(), C = num_classes_, F = num_pixels_ + 1;
  Eigen::Map<const Matrix<S>> Vt(v.data(), F, C);
  Eigen::Map<const Matrix<S>> Wt(w_.data(), F, C);
  const Matrix<S>& P = train_cache_.probs;
  work_u_.resize(m, C);
  work_u_.noalias() = synthetic_.X * Vt;
  const S inv_m = S(1) / S(m);
  for (Index n = 0; n < m; ++n) {
    const S mean = P.row(n).dot(work_u_.row(n));  // p_nᵀ u_n
    for (Index c = 0; c < C; ++c) work_u_(n, c) = P(n, c) * (work_u_(n, c) - mean) * inv_m;
  }
  work_d_.resize(m, F);
  work_d_.noalias() = train_cache_.residual * Vt.transpose();
  work_d_.noalias() += work_u_ * Wt.transpose();
  // λ[n·P + j] = x_n[j]: the row-major vec of D's pixel columns.
  out.resize(num_hyper());
  Eigen::Map<Matrix<S>>(out.data(), num_pixels_, m) = work_d_.leftCols(num_pixels_).transpose();
}

template <class S>
void DistillationProblem<S>::penalty_hvp(const Vector<S>& v, Vector<S>& out) {
  out = weight_decay_ * v;
}

template <class S>
Metrics DistillationProblem<S>::metrics() {
  Metrics m;
  m.train_loss = static_cast<double>(model_.evaluate(synthetic_, w_, scratch_cache_, nullptr));
  m.train_accuracy = model_.accuracy(synthetic_, scratch_cache_);
  m.val_loss = static_cast<double>(val_loss());
  m.val_accuracy = parallel::sum_shares(comm_.get(), model_.accuracy(*val_, val_cache_), val_shard_);
  m.has_accuracy = true;
  if (test_) {
    m.has_test = true;
    m.test_loss = static_cast<double>(parallel::sum_shares(
        comm_.get(), model_.evaluate(*test_, w_, scratch_cache_, nullptr), test_shard_));
    m.test_accuracy =
        parallel::sum_shares(comm_.get(), model_.accuracy(*test_, scratch_cache_), test_shard_);
  }
  return m;
}

template class DistillationProblem<float>;
template class DistillationProblem<double>;

}  // namespace ift
