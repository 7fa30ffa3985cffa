// IDX files, the MNIST / Fashion-MNIST format (http://yann.lecun.com/exdb/mnist/): a big-endian
// magic number 0x000008NN (unsigned bytes, NN dimensions), NN big-endian 32-bit sizes, then the
// data. Files may be gzip-compressed (detected by the gzip magic bytes, not by the name).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"

namespace ift {

/// Magic numbers of the two IDX layouts the loaders expect.
inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  ///< ubyte, 3 dims: n × rows × cols.
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  ///< ubyte, 1 dim: n.

/// An unsigned-byte IDX array: sizes and data in C order.
struct IdxArray {
  std::vector<Index> dims;
  std::vector<std::uint8_t> data;

  std::uint32_t magic() const { return 0x00000800u | static_cast<std::uint32_t>(dims.size()); }
};

/// Reads an unsigned-byte IDX file, raw or gzipped. Throws std::runtime_error naming the file:
/// missing file, wrong magic number (expected vs found), truncated data (expected N bytes of
/// data, found M), trailing bytes, corrupt gzip stream.
IdxArray read_idx(const std::string& path);

/// Writes `array` as a raw (uncompressed) unsigned-byte IDX file, atomically.
/// Throws std::invalid_argument if data.size() is not the product of dims.
void write_idx(const std::string& path, const IdxArray& array);

/// What a caller expects of an images/labels pair beyond the IDX layout; -1: anything.
struct IdxExpect {
  Index image_rows = -1, image_cols = -1;  ///< pixels per image, e.g. 28 × 28 for (Fashion-)MNIST
  Index num_classes = -1;                  ///< labels in [0, num_classes)
};

/// Reads an images file (magic 0x00000803, n × rows × cols) and a labels file (0x00000801)
/// and returns rows [first_row, first_row + max_rows) (max_rows < 0: to the end) as a data set:
/// X is count × (rows·cols) with pixel / 255, labels as int, num_classes = expect.num_classes
/// when given, else max(10, max label + 1).
/// Throws std::runtime_error naming the file for any problem read_idx reports, a wrong layout,
/// images of another size than `expect` says ("images of 27 × 29 pixels, expected 28 × 28": the
/// header's dimensions are checked, so a file whose byte count happens to match is refused too),
/// a label outside [0, expect.num_classes) (naming the 0-based row in the file and the range),
/// image and label counts that disagree, or rows requested beyond the end of the file.
template <class S>
Dataset<S> load_idx_pair(const std::string& images_path, const std::string& labels_path,
                         Index max_rows = -1, Index first_row = 0, const IdxExpect& expect = {});

}  // namespace ift
