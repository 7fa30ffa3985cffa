// The communicator seam without a second process: the timing decorator (TimedCommunicator)
// forwards every call and counts what went through it, and a problem distributed over it shows
// the reductions the scaling cost model counts (bench/README.md "More than one process": one
// sum of D scalars per gradient or curvature product, one scalar per loss).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "fixtures.hpp"
#include "ift/hypergradient.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/parallel/communicator.hpp"
#include "ift/parallel/timed_communicator.hpp"
#include "ift/problems/regularized.hpp"

using namespace ift;

namespace {

/// `copies` ranks holding the same data: sum multiplies by their number, broadcast writes the
/// root's marker byte; every call sleeps `delay` so that the decorator's clock has time to see.
class MirrorCommunicator final : public parallel::Communicator {
 public:
  MirrorCommunicator(int copies, std::chrono::milliseconds delay) : copies_(copies), delay_(delay) {}
  int rank() const override { return 0; }
  int size() const override { return copies_; }
  void sum(double* x, std::size_t n) override { scale(x, n); }
  void sum(float* x, std::size_t n) override { scale(x, n); }
  void broadcast(void* data, std::size_t n, int root) override {
    std::this_thread::sleep_for(delay_);
    if (n > 0) static_cast<unsigned char*>(data)[0] = static_cast<unsigned char>(root + 100);
  }
  void barrier() override { std::this_thread::sleep_for(delay_); }
  std::string name() const override { return "mirror"; }

 private:
  template <class T>
  void scale(T* x, std::size_t n) {
    std::this_thread::sleep_for(delay_);
    for (std::size_t i = 0; i < n; ++i) x[i] *= static_cast<T>(copies_);
  }
  int copies_;
  std::chrono::milliseconds delay_;
};

}  // namespace

TEST(TimedCommunicator, ForwardsEveryCallAndCountsIt) {
  const auto delay = std::chrono::milliseconds(3);
  auto inner = std::make_shared<MirrorCommunicator>(3, delay);
  parallel::TimedCommunicator timed(inner);
  EXPECT_EQ(timed.size(), 3);
  EXPECT_EQ(timed.rank(), 0);
  EXPECT_EQ(timed.name(), "timed(mirror)");

  Vector<double> x = Vector<double>::LinSpaced(5, 1.0, 5.0);
  timed.sum(x.data(), static_cast<std::size_t>(x.size()));  // 3 copies: x ← 3x
  EXPECT_EQ(x, (Vector<double>::LinSpaced(5, 1.0, 5.0) * 3.0).eval());
  EXPECT_EQ(parallel::sum(timed, 2.0f), 6.0f);
  unsigned char bytes[7] = {};
  timed.broadcast(bytes, sizeof bytes, 2);
  EXPECT_EQ(bytes[0], 102);
  timed.barrier();

  const auto& t = timed.totals();
  EXPECT_EQ(t.sums, 2);
  EXPECT_EQ(t.summed_scalars, 6.0);
  EXPECT_EQ(t.summed_bytes, 5.0 * sizeof(double) + sizeof(float));
  EXPECT_EQ(t.broadcasts, 1);
  EXPECT_EQ(t.broadcast_bytes, 7.0);
  EXPECT_EQ(t.barriers, 1);
  // The time inside the wrapped calls (each sleeps `delay`) is counted, per kind of call.
  const double d = std::chrono::duration<double>(delay).count();
  EXPECT_GE(t.sum_seconds, 2 * d);
  EXPECT_GE(t.broadcast_seconds, d);
  EXPECT_GE(t.barrier_seconds, d);
  EXPECT_DOUBLE_EQ(t.seconds(), t.sum_seconds + t.broadcast_seconds + t.barrier_seconds);
  // Sleeping is waiting, not computing: the thread's CPU time inside the calls stays below it.
  EXPECT_GE(t.cpu_seconds, 0.0);
  EXPECT_LT(t.cpu_seconds, 4 * d);

  timed.reset();
  EXPECT_EQ(timed.totals().sums, 0);
  EXPECT_EQ(timed.totals().seconds(), 0.0);
}

TEST(TimedCommunicator, RejectsNoCommunicator) {
  EXPECT_THROW(parallel::TimedCommunicator(nullptr), std::invalid_argument);
}

// A problem distributed over one process (its shard is every row) through the decorator gives
// the undistributed problem's bits, and the decorator sees the reductions the cost model counts:
// one scalar per loss, D scalars per gradient or curvature product.
TEST(TimedCommunicator, CountsTheReductionsOfADistributedProblem) {
  const Index n = 80, d = 6, classes = 3;
  const auto train = ift::testing::shared(ift::testing::random_classification<double>(n, d, classes, 11));
  const auto val = ift::testing::shared(ift::testing::random_classification<double>(n / 2, d, classes, 12));
  SoftmaxRegression<double> model(d + 1, classes);
  const Index D = model.num_params();
  const WeightDecay<double> decay(DecayKind::PerWeight, D);
  RegularizedProblem plain(model, decay, train, val);
  RegularizedProblem part(model, decay, train, val);
  auto timed = std::make_shared<parallel::TimedCommunicator>(std::make_shared<parallel::SelfCommunicator>());
  part.distribute(timed, parallel::contiguous_shard(n, 0, 1), parallel::contiguous_shard(n / 2, 0, 1));

  const Vector<double> lambda = Vector<double>::Constant(D, -3.0);
  const Vector<double> w = ift::testing::random_vector<double>(D, 13, 0.3);
  plain.set_point(lambda, w);
  part.set_point(lambda, w);
  EXPECT_EQ(timed->totals().sums, 1);  // the training loss
  EXPECT_EQ(timed->totals().summed_scalars, 1.0);
  EXPECT_EQ(part.train_loss(), plain.train_loss());

  timed->reset();
  EXPECT_EQ(part.train_gradient(), plain.train_gradient());
  EXPECT_EQ(timed->totals().sums, 1);
  EXPECT_EQ(timed->totals().summed_scalars, double(D));

  timed->reset();
  const Vector<double> v = ift::testing::random_vector<double>(D, 14);
  Vector<double> hv_part, hv_plain;
  part.hvp(v, hv_part);
  plain.hvp(v, hv_plain);
  EXPECT_EQ(hv_part, hv_plain);
  EXPECT_EQ(timed->totals().sums, 1);
  EXPECT_EQ(timed->totals().summed_scalars, double(D));
  EXPECT_EQ(timed->totals().summed_bytes, double(D) * sizeof(double));

  // A cg(k) hypergradient: the validation loss and gradient (1 + D), then one sum of D per HVP.
  MethodSpec spec;
  spec.method = Method::Cg;
  spec.steps = 7;
  spec.cg.tolerance = 0;  // all k iterations
  part.set_point(lambda, w);
  plain.set_point(lambda, w);
  timed->reset();
  const auto h_part = hypergradient(part, spec);
  const auto h_plain = hypergradient(plain, spec);
  EXPECT_EQ(h_part.hypergradient, h_plain.hypergradient);
  ASSERT_EQ(h_part.hvps, 7);
  EXPECT_EQ(timed->totals().sums, 2 + h_part.hvps);
  EXPECT_EQ(timed->totals().summed_scalars, 1.0 + double(D) * double(1 + h_part.hvps));
  EXPECT_EQ(timed->totals().broadcasts, 0);
  EXPECT_GE(timed->totals().sum_seconds, 0.0);
}
