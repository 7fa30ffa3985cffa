// Fashion-MNIST (DESIGN.md §2 P1, §3) and the 10,000 MNIST digits converted by
// data/get-mnist.sh, split into train / validation / test.
#pragma once

#include <string>

#include "ift/core.hpp"
#include "ift/dataset.hpp"

namespace ift {

template <class S>
struct Splits {
  Dataset<S> train, val, test;
};

/// $IFT_FASHION_MNIST_DIR if set and non-empty, else /usr/share/datasets/fashion-mnist
/// (Debian package dataset-fashion-mnist).
std::string default_fashion_mnist_dir();

/// $IFT_MNIST_DIR if set and non-empty, else data/cache/mnist (relative to the working
/// directory; written by data/get-mnist.sh).
std::string default_mnist_dir();

/// DESIGN.md P1: train = rows [0, n_train) of the train file, val = rows [n_train, n_train +
/// n_val) of the train file, test = rows [0, n_test) of the t10k file; x = pixel / 255; with
/// append_bias a constant-1 column is appended (785 features). Reads
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from `dir`. Throws std::runtime_error for a
/// missing file ("... not found; install it with: apt-get install dataset-fashion-mnist"),
/// any IDX problem, or more rows than the files hold; std::invalid_argument for negative sizes.
template <class S>
Splits<S> load_fashion_mnist(Index n_train, Index n_val, Index n_test, bool append_bias,
                             const std::string& dir = default_fashion_mnist_dir());

/// Rows [begin, begin + count) of a split.
struct RowRange {
  Index begin = 0, count = 0;
};

/// The part of load_fashion_mnist(n_train, n_val, n_test, …) that one process of a data-parallel
/// run holds: rows `train` of the n_train training rows, `val` of the validation rows, `test`
/// of the test rows (each range inside its split). Only those rows are kept in memory (the
/// files are still read, or decompressed, from their start).
template <class S>
Splits<S> load_fashion_mnist_part(Index n_train, Index n_val, Index n_test, RowRange train,
                                  RowRange val, RowRange test, bool append_bias,
                                  const std::string& dir = default_fashion_mnist_dir());

/// The MNIST digits from data/get-mnist.sh (images-idx3-ubyte, labels-idx1-ubyte in `dir`,
/// 10,000 digits in a fixed shuffled order): train = rows [0, n_train), val = rows
/// [n_train, n_train + n_val), test = the LAST n_test rows (so the test set does not move when
/// n_train changes); the three must not overlap. Same scaling and bias as load_fashion_mnist.
/// A missing file says to run data/get-mnist.sh.
template <class S>
Splits<S> load_mnist_digits(Index n_train, Index n_val, Index n_test, bool append_bias,
                            const std::string& dir = default_mnist_dir());

}  // namespace ift
