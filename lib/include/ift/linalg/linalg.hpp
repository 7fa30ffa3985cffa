// Everything in ift/linalg: operators, vector-space seam, solvers and their diagnostics.
#pragma once

#include "ift/linalg/vector_space.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/neumann.hpp"
#include "ift/linalg/simple_solvers.hpp"
#include "ift/linalg/spectrum.hpp"
#include "ift/linalg/cholesky.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/kfac.hpp"
