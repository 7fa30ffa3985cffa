// VectorSpace<torch::Tensor>: flat 1-D tensors (any floating dtype, any device) as the vectors
// of the linalg templates (cg, neumann, power iteration, identity, zero) and of the generic
// hypergradient (ift/generic/hypergradient.hpp). One implementation of each solver serves both
// backends; only these dozen primitives differ.
//
// Scalar is double whatever the tensor's dtype: dot and norm are reduced on the device in the
// tensor's precision and returned to the host as double, and step sizes arrive as double (ATen
// converts them to the tensor's dtype). Each dot/norm/all_finite synchronises with the device,
// which costs microseconds next to an HVP.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "ift/core.hpp"
#include "ift/generic/backend.hpp"
#include "ift/linalg/matrix_space.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

template <>
struct VectorSpace<::torch::Tensor> {
  using VectorType = ::torch::Tensor;
  using Scalar = double;

  static VectorType zeros_like(const VectorType& x) { return ::torch::zeros_like(x); }
  static Scalar dot(const VectorType& x, const VectorType& y) {
    return ::torch::dot(x, y).item<double>();
  }
  static Scalar norm(const VectorType& x) { return x.norm().item<double>(); }
  static void axpy(Scalar a, const VectorType& x, VectorType& y) { y.add_(x, a); }
  static void axpby(Scalar a, const VectorType& x, Scalar b, VectorType& y) {
    y.mul_(b).add_(x, a);
  }
  static void scale(Scalar a, VectorType& x) { x.mul_(a); }
  /// A value copy into dst's storage (tensor copies are shallow, see vector_space.hpp); dst is
  /// reallocated only when it is undefined or its shape, dtype or device differ.
  static void assign(VectorType& dst, const VectorType& src) {
    if (dst.defined() && dst.sizes() == src.sizes() && dst.dtype() == src.dtype() &&
        dst.device() == src.device()) {
      dst.copy_(src);
    } else {
      dst = src.clone();
    }
  }
  static void set_zero(VectorType& x) { x.zero_(); }
  static bool all_finite(const VectorType& x) { return ::torch::isfinite(x).all().item<bool>(); }
  static Index size(const VectorType& x) { return static_cast<Index>(x.numel()); }
  /// The same SplitMix64 stream as the Eigen specialisation, generated on the host in double
  /// and copied to x's device and dtype: power iteration starts from the same vector on every
  /// backend, so the automatic Neumann α agrees between them.
  static void fill_random(VectorType& x, std::uint64_t seed) {
    const auto n = x.numel();
    std::vector<double> values(static_cast<std::size_t>(n));
    detail::SplitMix64 rng(seed);
    for (auto& v : values) v = rng.uniform_symmetric();
    x.copy_(::torch::from_blob(values.data(), {n}, ::torch::kDouble).view(x.sizes()));
  }
};

static_assert(HasVectorSpace<::torch::Tensor>);

/// The bilevel loop's optimiser kernels and checkpoint copies on tensors (generic/backend.hpp).
/// Host copies are double whatever the dtype: float values round-trip exactly.
template <>
struct VectorBackend<::torch::Tensor> {
  using HostScalar = double;
  using Tensor = ::torch::Tensor;

  static Vector<double> to_host(const Tensor& x) {
    const Tensor host = x.detach().to(::torch::kCPU, ::torch::kDouble).contiguous().view({-1});
    Vector<double> v(host.numel());
    std::copy_n(host.data_ptr<double>(), host.numel(), v.data());
    return v;
  }
  static Tensor from_host(const Vector<double>& h, const Tensor& like) {
    return ::torch::from_blob(const_cast<double*>(h.data()), {static_cast<std::int64_t>(h.size())},
                              ::torch::TensorOptions().dtype(::torch::kDouble))
        .to(like.options(), /*non_blocking=*/false, /*copy=*/true);
  }
  static void momentum_step(Tensor& x, Tensor& m, const Tensor& g, double mu, double lr) {
    ::torch::NoGradGuard no_grad;
    m.mul_(mu).add_(g);
    x.add_(m, -lr);
  }
  static void adam_step(Tensor& x, Tensor& m, Tensor& v, const Tensor& g, double b1, double b2,
                        double c1, double c2, double eps, double lr) {
    ::torch::NoGradGuard no_grad;
    m.mul_(b1).add_(g, 1 - b1);
    v.mul_(b2).addcmul_(g, g, 1 - b2);
    x.addcdiv_(m, (v / c2).sqrt_().add_(eps), -lr / c1);
  }
};

static_assert(HasVectorBackend<::torch::Tensor>);
/// MatrixSpace<torch::Tensor>: 2-D tensors with the flat vectors' dtype and device. The
/// eigendecompositions (torch::linalg_eigh) and products (mm) run on that device; no operation
/// records an autograd graph (KFAC is never differentiated). min, max_abs and all_finite
/// synchronise with the device.
template <>
struct MatrixSpace<::torch::Tensor> {
  using VectorType = ::torch::Tensor;
  using MatrixType = ::torch::Tensor;
  using Scalar = double;

  static Index rows(const MatrixType& m) { return static_cast<Index>(m.size(0)); }
  static Index cols(const MatrixType& m) { return static_cast<Index>(m.size(1)); }
  static MatrixType zeros(const MatrixType& like, Index rows, Index cols) {
    return ::torch::zeros({rows, cols}, like.options());
  }
  static bool all_finite(const MatrixType& m) { return ::torch::isfinite(m).all().item<bool>(); }
  static double epsilon(const MatrixType& m) {
    return m.scalar_type() == ::torch::kDouble ? std::numeric_limits<double>::epsilon()
                                               : std::numeric_limits<float>::epsilon();
  }
  static bool symmetric_eigen(const MatrixType& A, VectorType& values, MatrixType& vectors) {
    ::torch::NoGradGuard no_grad;
    try {
      std::tie(values, vectors) = ::torch::linalg_eigh(A, "L");
    } catch (const c10::Error&) {  // LAPACK / cuSOLVER did not converge
      return false;
    }
    return true;
  }
  static MatrixType outer(const VectorType& a, const VectorType& b) {
    ::torch::NoGradGuard no_grad;
    return ::torch::outer(a, b);
  }
  static void add_constant(VectorType& x, double c) {
    ::torch::NoGradGuard no_grad;
    x.add_(c);
  }
  static double min(const MatrixType& m) { return m.min().item<double>(); }
  static double max_abs(const MatrixType& m) { return m.abs().max().item<double>(); }
  static void reciprocal(MatrixType& m) {
    ::torch::NoGradGuard no_grad;
    m.reciprocal_();
  }
  static void power(MatrixType& m, double p) {
    ::torch::NoGradGuard no_grad;
    m.pow_(p);
  }
  static void multiply_elements(MatrixType& m, const MatrixType& by) {
    ::torch::NoGradGuard no_grad;
    m.mul_(by);
  }
  static void add(MatrixType& m, const MatrixType& other) {
    ::torch::NoGradGuard no_grad;
    m.add_(other);
  }
  static MatrixType copy(const MatrixType& m) {
    ::torch::NoGradGuard no_grad;
    return m.clone();
  }
  static void product(const MatrixType& a, bool transpose_a, const MatrixType& b,
                      bool transpose_b, MatrixType& out) {
    ::torch::NoGradGuard no_grad;
    ::torch::mm_out(out, transpose_a ? a.t() : a, transpose_b ? b.t() : b);
  }
  /// The block as rows × cols: the flat weights hold it row-major as cols × rows (LibTorch's
  /// out × in), so it is read through a transpose; a bias kept apart is the last row.
  static void read_block(const VectorType& x, const BlockLayout& l, MatrixType& m) {
    ::torch::NoGradGuard no_grad;
    if (!m.defined() || rows(m) != l.rows || cols(m) != l.cols)
      m = ::torch::empty({l.rows, l.cols}, x.options());
    const Index leading = l.last_row_apart() ? l.rows - 1 : l.rows;
    if (leading > 0)
      m.narrow(0, 0, leading).copy_(x.narrow(0, l.offset, leading * l.cols).reshape({l.cols, leading}).t());
    if (l.last_row_apart()) m.select(0, l.rows - 1).copy_(x.narrow(0, l.last_row_offset, l.cols));
  }
  static void write_block(const MatrixType& m, const BlockLayout& l, VectorType& y, bool accumulate) {
    ::torch::NoGradGuard no_grad;
    const Index leading = l.last_row_apart() ? l.rows - 1 : l.rows;
    auto put = [accumulate](::torch::Tensor target, const ::torch::Tensor& source) {
      if (accumulate) {
        target.add_(source);
      } else {
        target.copy_(source);
      }
    };
    if (leading > 0)
      put(y.narrow(0, l.offset, leading * l.cols).view({l.cols, leading}), m.narrow(0, 0, leading).t());
    if (l.last_row_apart()) put(y.narrow(0, l.last_row_offset, l.cols), m.select(0, l.rows - 1));
  }
};

static_assert(HasMatrixSpace<::torch::Tensor>);

}  // namespace ift

namespace ift::deep {

/// Tensor options for a run: device (cpu, cuda, cuda:1) and floating dtype (float, double),
/// parsed from the command line. Throws std::invalid_argument naming the value.
inline ::torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return ::torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!::torch::cuda::is_available())
      throw std::invalid_argument("device '" + name +
                                  "' requested but this LibTorch has no usable CUDA device");
    return ::torch::Device(name);
  }
  throw std::invalid_argument("unknown device '" + name + "' (expected cpu or cuda[:N])");
}

inline ::torch::Dtype parse_dtype(const std::string& name) {
  if (name == "double" || name == "float64") return ::torch::kDouble;
  if (name == "float" || name == "float32") return ::torch::kFloat;
  throw std::invalid_argument("unknown dtype '" + name + "' (expected float or double)");
}

/// Eigen vector → 1-D tensor with the given options (copied).
template <class S>
::torch::Tensor to_tensor(const Vector<S>& v, const ::torch::TensorOptions& options) {
  constexpr auto source = std::is_same_v<S, double> ? ::torch::kDouble : ::torch::kFloat;
  return ::torch::from_blob(const_cast<S*>(v.data()), {static_cast<std::int64_t>(v.size())},
                            ::torch::TensorOptions().dtype(source))
      .to(options, /*non_blocking=*/false, /*copy=*/true);
}

/// Tensor (any shape) → Eigen vector of its values in row-major order.
template <class S>
Vector<S> to_vector(const ::torch::Tensor& t) {
  constexpr auto target = std::is_same_v<S, double> ? ::torch::kDouble : ::torch::kFloat;
  const ::torch::Tensor host = t.detach().to(::torch::kCPU, target).contiguous().view({-1});
  Vector<S> v(host.numel());
  std::copy_n(host.data_ptr<S>(), host.numel(), v.data());
  return v;
}

/// Eigen matrix (n × d, row per example) → 2-D tensor n × d.
template <class S>
::torch::Tensor to_tensor(const Matrix<S>& m, const ::torch::TensorOptions& options) {
  constexpr auto source = std::is_same_v<S, double> ? ::torch::kDouble : ::torch::kFloat;
  // Eigen is column-major: view it as d × n and transpose.
  return ::torch::from_blob(const_cast<S*>(m.data()),
                            {static_cast<std::int64_t>(m.cols()), static_cast<std::int64_t>(m.rows())},
                            ::torch::TensorOptions().dtype(source))
      .t()
      .to(options, false, true)
      .contiguous();
}

}  // namespace ift::deep
