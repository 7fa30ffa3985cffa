// The bilevel loop (DESIGN.md §1, Algorithm 2 of Lorraine et al. 2020) on Eigen problems: the
// one generic loop of ift/generic/bilevel.hpp instantiated for BilevelProblem<S> (compiled once,
// in lib/src/bilevel.cpp). LibTorch problems use generic::BilevelLoop<deep::TorchProblem>.
#pragma once

#include "ift/bilevel_params.hpp"
#include "ift/generic/bilevel.hpp"
#include "ift/problem.hpp"

namespace ift {

template <class S>
using BilevelResult = generic::BilevelResult<Vector<S>>;
template <class S>
using BilevelLoop = generic::BilevelLoop<BilevelProblem<S>>;

}  // namespace ift

extern template class ift::generic::BilevelLoop<ift::BilevelProblem<float>>;
extern template class ift::generic::BilevelLoop<ift::BilevelProblem<double>>;
