// Core types shared by the whole library.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ift {

using Index = Eigen::Index;

/// Column vector of scalars: parameters w, hyperparameters λ, and every solver iterate.
template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

/// Column-major dense matrix. Data sets are n × d (one example per row).
template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;

using LabelVector = Eigen::Matrix<std::int32_t, Eigen::Dynamic, 1>;

/// The widest SIMD packet of S the build targets (Eigen's packet primitives: AVX-512, AVX2, SSE,
/// NEON), and its lanes: the unit of ift's own microkernels (row_block.hpp, gemm_kernel.hpp).
template <class S>
using Packet = typename Eigen::internal::packet_traits<S>::type;
template <class S>
inline constexpr Index kPacket = Eigen::internal::packet_traits<S>::size;

/// Thrown for misuse: bad parameters, dimension mismatches. The message names the field.
inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}
/// Same for a literal message: no string is built unless the check fails.
inline void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}
/// Same with the message built by `message()` only on failure: for checks on hot paths (every
/// HVP checks its sizes), which must not allocate.
template <class F>
  requires std::is_invocable_r_v<std::string, F>
inline void require(bool ok, F&& message) {
  if (!ok) throw std::invalid_argument(message());
}

}  // namespace ift
