// Minibatch rows drawn from the loop's and the solvers' RNGs: the inner optimiser's minibatches
// (generic/bilevel.hpp) and the stochastic curvature products (generic/hypergradient.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "ift/core.hpp"

namespace ift::generic::detail {

/// k distinct rows of [0, n) by Floyd's algorithm, sorted. Draws only from the engine, so its
/// state is the whole RNG state a checkpoint needs (std::uniform_int_distribution may buffer);
/// the modulo bias of a 64-bit draw is below n / 2⁶⁴, negligible.
inline std::vector<Index> sample_rows(std::mt19937_64& engine, Index n, Index k) {
  std::vector<Index> rows;
  rows.reserve(static_cast<std::size_t>(k));
  for (Index j = n - k; j < n; ++j) {
    const Index t = static_cast<Index>(engine() % static_cast<std::uint64_t>(j + 1));
    if (std::find(rows.begin(), rows.end(), t) == rows.end())
      rows.push_back(t);
    else
      rows.push_back(j);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

/// An engine seeded from (seed, stream) through std::seed_seq (the same sequence on every
/// platform): stream u gives hypergradient number u of a run its own reproducible draws.
inline std::mt19937_64 seeded_engine(std::uint64_t seed, std::uint64_t stream) {
  std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)};
  return std::mt19937_64(seq);
}

}  // namespace ift::generic::detail
