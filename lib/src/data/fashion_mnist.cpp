#include "ift/data/fashion_mnist.hpp"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "ift/data/idx.hpp"

namespace ift {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// `dir/name.gz` if present, else `dir/name` (someone may have unpacked the files, and
// get-mnist.sh writes them raw). The error names the form the source normally provides.
std::string find_file(const std::string& dir, const std::string& name, const std::string& hint,
                      bool normally_gzipped) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  if (fs::is_regular_file(gz, ec)) return gz.string();
  const fs::path raw = fs::path(dir) / name;
  if (fs::is_regular_file(raw, ec)) return raw.string();
  throw std::runtime_error((normally_gzipped ? gz : raw).string() + " not found; " + hint);
}

template <class S>
void finish(Dataset<S>& d, bool append_bias) {
  if (append_bias) d.append_bias_column();
}

/// 28 × 28 pixels, labels 0..9: both data sets.
constexpr IdxExpect kMnistLayout{28, 28, 10};

void check_sizes(const char* who, Index n_train, Index n_val, Index n_test) {
  require(n_train >= 0 && n_val >= 0 && n_test >= 0,
          std::string(who) + ": n_train, n_val and n_test must be >= 0 (got " + std::to_string(n_train) + ", " +
              std::to_string(n_val) + ", " + std::to_string(n_test) + ")");
}

}  // namespace

std::string default_fashion_mnist_dir() {
  return env_or("IFT_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist");
}

std::string default_mnist_dir() { return env_or("IFT_MNIST_DIR", "data/cache/mnist"); }

template <class S>
Splits<S> load_fashion_mnist(Index n_train, Index n_val, Index n_test, bool append_bias, const std::string& dir) {
  check_sizes("load_fashion_mnist", n_train, n_val, n_test);
  const std::string hint = "install it with: apt-get install dataset-fashion-mnist";
  const std::string train_images = find_file(dir, "train-images-idx3-ubyte", hint, true);
  const std::string train_labels = find_file(dir, "train-labels-idx1-ubyte", hint, true);
  const std::string test_images = find_file(dir, "t10k-images-idx3-ubyte", hint, true);
  const std::string test_labels = find_file(dir, "t10k-labels-idx1-ubyte", hint, true);
  // One read of the train file for both train and val rows.
  const Dataset<S> head = load_idx_pair<S>(train_images, train_labels, n_train + n_val, 0, kMnistLayout);
  Splits<S> out;
  out.train = head.slice(0, n_train);
  out.val = head.slice(n_train, n_val);
  out.test = load_idx_pair<S>(test_images, test_labels, n_test, 0, kMnistLayout);
  finish(out.train, append_bias);
  finish(out.val, append_bias);
  finish(out.test, append_bias);
  return out;
}

template <class S>
Splits<S> load_fashion_mnist_part(Index n_train, Index n_val, Index n_test, RowRange train,
                                  RowRange val, RowRange test, bool append_bias,
                                  const std::string& dir) {
  check_sizes("load_fashion_mnist_part", n_train, n_val, n_test);
  auto check_range = [](const char* split, RowRange r, Index n) {
    if (r.begin < 0 || r.count < 0 || r.begin > n || r.count > n - r.begin)
      throw std::invalid_argument("load_fashion_mnist_part: " + std::string(split) + " rows [" +
                                  std::to_string(r.begin) + ", " + std::to_string(r.begin + r.count) +
                                  ") outside the " + std::to_string(n) + " rows of the split");
  };
  check_range("training", train, n_train);
  check_range("validation", val, n_val);
  check_range("test", test, n_test);
  const std::string hint = "install it with: apt-get install dataset-fashion-mnist";
  const std::string train_images = find_file(dir, "train-images-idx3-ubyte", hint, true);
  const std::string train_labels = find_file(dir, "train-labels-idx1-ubyte", hint, true);
  const std::string test_images = find_file(dir, "t10k-images-idx3-ubyte", hint, true);
  const std::string test_labels = find_file(dir, "t10k-labels-idx1-ubyte", hint, true);
  Splits<S> out;
  out.train = load_idx_pair<S>(train_images, train_labels, train.count, train.begin);
  out.val = load_idx_pair<S>(train_images, train_labels, val.count, n_train + val.begin);
  out.test = load_idx_pair<S>(test_images, test_labels, test.count, test.begin);
  finish(out.train, append_bias);
  finish(out.val, append_bias);
  finish(out.test, append_bias);
  return out;
}

template <class S>
Splits<S> load_mnist_digits(Index n_train, Index n_val, Index n_test, bool append_bias, const std::string& dir) {
  check_sizes("load_mnist_digits", n_train, n_val, n_test);
  const std::string hint = "run data/get-mnist.sh (or set IFT_MNIST_DIR to its output directory)";
  const std::string images = find_file(dir, "images-idx3-ubyte", hint, false);
  const std::string labels = find_file(dir, "labels-idx1-ubyte", hint, false);
  const Dataset<S> all = load_idx_pair<S>(images, labels, -1, 0, kMnistLayout);
  if (n_train + n_val + n_test > all.size())
    throw std::runtime_error("load_mnist_digits: " + std::to_string(n_train) + " + " + std::to_string(n_val) +
                             " + " + std::to_string(n_test) + " rows requested, " + images + " has " +
                             std::to_string(all.size()));
  Splits<S> out;
  out.train = all.slice(0, n_train);
  out.val = all.slice(n_train, n_val);
  out.test = all.slice(all.size() - n_test, n_test);
  finish(out.train, append_bias);
  finish(out.val, append_bias);
  finish(out.test, append_bias);
  return out;
}

template Splits<float> load_fashion_mnist<float>(Index, Index, Index, bool, const std::string&);
template Splits<double> load_fashion_mnist<double>(Index, Index, Index, bool, const std::string&);
template Splits<float> load_fashion_mnist_part<float>(Index, Index, Index, RowRange, RowRange, RowRange, bool,
                                                     const std::string&);
template Splits<double> load_fashion_mnist_part<double>(Index, Index, Index, RowRange, RowRange, RowRange,
                                                       bool, const std::string&);
template Splits<float> load_mnist_digits<float>(Index, Index, Index, bool, const std::string&);
template Splits<double> load_mnist_digits<double>(Index, Index, Index, bool, const std::string&);

}  // namespace ift
