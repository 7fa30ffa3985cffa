// Eigen's own kernels against OpenBLAS in one binary, at the shapes the library runs: the issue
// asks whether linking Eigen to OpenBLAS (EIGEN_USE_BLAS) is faster here, to be chosen by the
// numbers. Built only when CMake finds libopenblas (bench/CMakeLists.txt).
//   BM_Gemm_{Eigen,OpenBlas}<S>/<shape>   C = A B for
//       square:  2000 × 2000 × 2000 (the yardstick shape),
//       mlp:     1000 × 1000 by 1000 × 1000 (one hidden layer of the deep MLP, n = 1,000 rows),
//       logreg:  X V and Xᵀ R with X 1000 × 785, V 785 × 10 (one logistic-regression HVP);
//   BM_Cholesky_{Eigen,IftBlocked,OpenBlas}/n:7850   Eigen::LLT, ift::cholesky_in_place, dpotrf.
// Counters: GFLOPs, allocs_per_call (malloc calls per product: Eigen allocates its packing buffers
// per product beyond 128 KB, OpenBLAS keeps a buffer pool). This binary does not link the library
// (whose EIGEN_USE_BLAS would turn the Eigen side into OpenBLAS too): the Eigen side here is
// always Eigen's own kernels, and gemm_fraction is relative to them.
#include "bench_meter.hpp"

#include <Eigen/Cholesky>

#include "ift/linalg/cholesky.hpp"

extern "C" {
void openblas_set_num_threads(int);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*);
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*, const int*);
void dpotrf_(const char*, const int*, double*, const int*, int*);
}

namespace ift::bench {
namespace {

template <class S>
void blas_gemm(bool trans_a, const Matrix<S>& A, const Matrix<S>& B, Matrix<S>& C) {
  const char ta = trans_a ? 'T' : 'N', tb = 'N';
  const int m = static_cast<int>(C.rows()), n = static_cast<int>(C.cols());
  const int k = static_cast<int>(trans_a ? A.rows() : A.cols());
  const int lda = static_cast<int>(A.rows()), ldb = static_cast<int>(B.rows());
  const int ldc = static_cast<int>(C.rows());
  const S one = 1, zero = 0;
  if constexpr (sizeof(S) == 8)
    dgemm_(&ta, &tb, &m, &n, &k, &one, A.data(), &lda, B.data(), &ldb, &zero, C.data(), &ldc);
  else
    sgemm_(&ta, &tb, &m, &n, &k, &one, A.data(), &lda, B.data(), &ldb, &zero, C.data(), &ldc);
}

void set_all_threads(int threads) {
  set_threads(threads);
  openblas_set_num_threads(threads);
}

enum class Shape { Square, Mlp, LogReg };

/// A (m × k), B (k × n) and C = A B; for the HVP shape also C2 = Aᵀ C (k × n).
template <class S>
struct Operands {
  Matrix<S> A, B, C, C2;
  bool second = false;
  double flops = 0;
  explicit Operands(Shape shape) {
    const Index m = shape == Shape::Square ? 2000 : 1000;
    const Index k = shape == Shape::Square ? 2000 : shape == Shape::Mlp ? 1000 : 785;
    const Index n = shape == Shape::Square ? 2000 : shape == Shape::Mlp ? 1000 : 10;
    A = Matrix<S>::Random(m, k);
    B = Matrix<S>::Random(k, n);
    C.resize(m, n);
    second = shape == Shape::LogReg;
    if (second) C2.resize(k, n);
    flops = 2.0 * double(m) * double(k) * double(n) * (second ? 2 : 1);
  }
};

template <class S>
void BM_GemmShape(benchmark::State& state, Shape shape, int threads, bool openblas) {
  Operands<S> op(shape);
  set_all_threads(threads);
  const CallMeter m = measure(state, [&] {
    if (openblas) {
      blas_gemm(false, op.A, op.B, op.C);
      if (op.second) blas_gemm(true, op.A, op.C, op.C2);
    } else {
      op.C.noalias() = op.A * op.B;
      if (op.second) op.C2.noalias() = op.A.transpose() * op.C;
    }
    benchmark::DoNotOptimize(op.C.data());
  });
  m.report(state, op.flops, 0, gemm_gflops<S>(threads));
}

constexpr Index kCholeskyN = 7850;  // D of P1

enum class CholeskyKind { EigenLlt, IftBlocked, OpenBlas };

void BM_Cholesky(benchmark::State& state, CholeskyKind kind, int threads) {
  static const Matrix<double> H = [] {
    const Matrix<double> R = Matrix<double>::Random(kCholeskyN, kCholeskyN);
    Matrix<double> spd(kCholeskyN, kCholeskyN);
    spd.setZero();
    spd.selfadjointView<Eigen::Lower>().rankUpdate(R.transpose());
    spd.diagonal().array() += double(kCholeskyN);
    return spd;
  }();
  set_all_threads(threads);
  Matrix<double> A(kCholeskyN, kCholeskyN);
  CallMeter m;
  bool ok = true;
  for (auto _ : state) {
    state.PauseTiming();
    A.triangularView<Eigen::Lower>() = H;
    state.ResumeTiming();
    m.start();
    switch (kind) {
      case CholeskyKind::EigenLlt: {
        Eigen::LLT<Eigen::Ref<Matrix<double>>> llt(A);  // in place, like the other two
        ok = ok && llt.info() == Eigen::Success;
        break;
      }
      case CholeskyKind::IftBlocked:
        ok = ok && cholesky_in_place(A) < 0;
        break;
      case CholeskyKind::OpenBlas: {
        const char lower = 'L';
        const int n = static_cast<int>(kCholeskyN);
        int info = 0;
        dpotrf_(&lower, &n, A.data(), &n, &info);
        ok = ok && info == 0;
        break;
      }
    }
    benchmark::ClobberMemory();
    m.stop();
  }
  m.report(state, std::pow(double(kCholeskyN), 3) / 3.0, 0, gemm_gflops<double>(threads));
  if (!ok) state.SkipWithError("factorisation failed");
}

void register_all() {
  const std::pair<Shape, const char*> shapes[] = {
      {Shape::Square, "square2000"}, {Shape::Mlp, "mlp1000"}, {Shape::LogReg, "logreg_hvp"}};
  for (int t : {1, 2}) {
    const std::string th = "/threads:" + std::to_string(t);
    for (const auto& [shape, name] : shapes)
      for (bool openblas : {false, true}) {
        const std::string lib = openblas ? "OpenBlas" : "Eigen";
        add("BM_Gemm_" + lib + "<double>/" + name + th,
            [=](benchmark::State& s) { BM_GemmShape<double>(s, shape, t, openblas); });
        add("BM_Gemm_" + lib + "<float>/" + name + th,
            [=](benchmark::State& s) { BM_GemmShape<float>(s, shape, t, openblas); });
      }
    add("BM_Cholesky_EigenLlt/n:7850" + th,
        [=](benchmark::State& s) { BM_Cholesky(s, CholeskyKind::EigenLlt, t); });
    add("BM_Cholesky_IftBlocked/n:7850" + th,
        [=](benchmark::State& s) { BM_Cholesky(s, CholeskyKind::IftBlocked, t); });
    add("BM_Cholesky_OpenBlas/n:7850" + th,
        [=](benchmark::State& s) { BM_Cholesky(s, CholeskyKind::OpenBlas, t); });
  }
}

}  // namespace
}  // namespace ift::bench

int main(int argc, char** argv) {
  ift::bench::register_all();
  return ift::bench::run_main(argc, argv);
}
