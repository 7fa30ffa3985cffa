// NumPy .npy files (format version 1.0): hypergradients and parameters saved by the apps are
// loaded by the plot scripts with numpy.load. Only what the project needs: little-endian
// float64 ('<f8') and float32 ('<f4'), 1-D and 2-D arrays.
#pragma once

#include <string>
#include <vector>

#include "ift/core.hpp"

namespace ift::io {

/// A .npy array as read from disk, values widened to double, in C (row-major) order.
struct NpyArray {
  std::string dtype;         ///< "<f8" or "<f4", as stored in the file.
  std::vector<Index> shape;  ///< One or two dimensions.
  std::vector<double> data;  ///< Product of shape values, C order.

  Index rows() const { return shape.empty() ? 0 : shape[0]; }
  Index cols() const { return shape.size() < 2 ? 1 : shape[1]; }
};

/// Writes a 1-D array of length v.size() ('<f8' for double, '<f4' for float), atomically.
template <class S>
void save_npy(const std::string& path, const Vector<S>& v);

/// Writes a 2-D array of shape (rows, cols) in C order, atomically. (Eigen stores column-major,
/// numpy defaults to C order; writing C order keeps the file readable by every numpy tool.)
template <class S>
void save_npy(const std::string& path, const Matrix<S>& m);

/// Reads a version 1.0 or 2.0 .npy file with dtype '<f8' or '<f4' and 1 or 2 dimensions
/// (C or Fortran order). Throws std::runtime_error naming the file and the problem.
NpyArray read_npy(const std::string& path);

/// read_npy as a matrix; a 1-D array of length n becomes n × 1.
template <class S>
Matrix<S> load_npy_matrix(const std::string& path);

/// read_npy as a vector; accepts shape (n,), (n, 1) or (1, n).
template <class S>
Vector<S> load_npy_vector(const std::string& path);

}  // namespace ift::io
