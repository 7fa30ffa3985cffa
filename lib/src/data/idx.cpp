#include "ift/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "ift/io/atomic_file.hpp"

namespace ift {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("IDX file " + path + ": " + what);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// Whole file contents, decompressed if it starts with the gzip magic bytes 1f 8b.
std::vector<std::uint8_t> read_all_bytes(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "file not found");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  unsigned char head[2] = {0, 0};
  in.read(reinterpret_cast<char*>(head), 2);
  const bool gzipped = in.gcount() == 2 && head[0] == 0x1f && head[1] == 0x8b;
  std::vector<std::uint8_t> bytes;
  if (!gzipped) {
    in.clear();
    in.seekg(0, std::ios::end);
    bytes.resize(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!in) fail(path, "read error");
    return bytes;
  }
  in.close();
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) fail(path, "cannot open gzip stream");
  gzbuffer(gz, 1 << 17);
  constexpr unsigned kChunk = 1u << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + kChunk);
    const int got = gzread(gz, bytes.data() + old, kChunk);
    if (got < 0) {
      int code = 0;
      const std::string msg = gzerror(gz, &code);
      gzclose(gz);
      fail(path, "corrupt or truncated gzip stream (" + msg + ")");
    }
    bytes.resize(old + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  // A stream cut short ends without error from gzread on some zlib versions; gzerror tells.
  int code = Z_OK;
  const std::string msg = gzerror(gz, &code);
  gzclose(gz);
  if (code != Z_OK && code != Z_STREAM_END) fail(path, "corrupt or truncated gzip stream (" + msg + ")");
  return bytes;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_all_bytes(path);
  if (bytes.size() < 4) fail(path, "too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  const std::uint32_t magic = be32(bytes.data());
  const std::uint32_t ndims = magic & 0xff;
  if ((magic & 0xffffff00u) != 0x00000800u || ndims == 0 || ndims > 4)
    fail(path, "wrong magic number: expected 0x000008NN (unsigned bytes, NN = 1..4 dimensions), found " +
                   hex32(magic));
  const std::size_t header = 4 + 4 * ndims;
  if (bytes.size() < header)
    fail(path, "truncated header: expected " + std::to_string(header) + " bytes, found " +
                   std::to_string(bytes.size()));
  IdxArray out;
  std::size_t count = 1;
  for (std::uint32_t i = 0; i < ndims; ++i) {
    const std::uint32_t d = be32(bytes.data() + 4 + 4 * i);
    out.dims.push_back(static_cast<Index>(d));
    // A garbage header must not wrap the product around and pass the size check.
    if (d != 0 && count > std::numeric_limits<std::size_t>::max() / d)
      fail(path, "corrupt header: the product of the dimensions overflows");
    count *= d;
  }
  const std::size_t found = bytes.size() - header;
  if (found < count)
    fail(path, "truncated file: expected " + std::to_string(count) + " bytes of data, found " +
                   std::to_string(found));
  if (found > count)
    fail(path, "expected " + std::to_string(count) + " bytes of data, found " + std::to_string(found) +
                   " (" + std::to_string(found - count) + " trailing bytes)");
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

void write_idx(const std::string& path, const IdxArray& array) {
  require(!array.dims.empty() && array.dims.size() <= 4,
          "write_idx(" + path + "): 1 to 4 dimensions, got " + std::to_string(array.dims.size()));
  std::size_t count = 1;
  for (Index d : array.dims) {
    require(d >= 0 && d <= 0xffffffffLL, "write_idx(" + path + "): dimension out of range");
    count *= static_cast<std::size_t>(d);
  }
  require(count == array.data.size(), "write_idx(" + path + "): " + std::to_string(array.data.size()) +
                                          " bytes of data for dimensions whose product is " +
                                          std::to_string(count));
  std::vector<std::uint8_t> header;
  auto put = [&](std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<std::uint8_t>(v >> shift));
  };
  put(array.magic());
  for (Index d : array.dims) put(static_cast<std::uint32_t>(d));
  io::write_file_atomically(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
  });
}

template <class S>
Dataset<S> load_idx_pair(const std::string& images_path, const std::string& labels_path, Index max_rows,
                         Index first_row, const IdxExpect& expect) {
  const IdxArray images = read_idx(images_path);
  if (images.magic() != kIdxImagesMagic)
    fail(images_path, "wrong magic number for an images file: expected " + hex32(kIdxImagesMagic) +
                          " (unsigned bytes, 3 dimensions), found " + hex32(images.magic()));
  const IdxArray labels = read_idx(labels_path);
  if (labels.magic() != kIdxLabelsMagic)
    fail(labels_path, "wrong magic number for a labels file: expected " + hex32(kIdxLabelsMagic) +
                          " (unsigned bytes, 1 dimension), found " + hex32(labels.magic()));
  if ((expect.image_rows >= 0 && images.dims[1] != expect.image_rows) ||
      (expect.image_cols >= 0 && images.dims[2] != expect.image_cols))
    fail(images_path, "images of " + std::to_string(images.dims[1]) + " × " + std::to_string(images.dims[2]) +
                          " pixels, expected " +
                          (expect.image_rows >= 0 ? std::to_string(expect.image_rows) : std::string("any")) +
                          " × " +
                          (expect.image_cols >= 0 ? std::to_string(expect.image_cols) : std::string("any")));
  const Index n = images.dims[0];
  if (labels.dims[0] != n)
    throw std::runtime_error("IDX image count and label count disagree: " + images_path + " has " +
                             std::to_string(n) + " images, " + labels_path + " has " +
                             std::to_string(labels.dims[0]) + " labels");
  if (first_row < 0 || first_row > n)
    fail(images_path, "requested first row " + std::to_string(first_row) + " beyond the file's " +
                          std::to_string(n) + " rows");
  const Index count = max_rows < 0 ? n - first_row : max_rows;
  if (first_row + count > n)
    fail(images_path, "requested rows [" + std::to_string(first_row) + ", " + std::to_string(first_row + count) +
                          ") beyond the file's " + std::to_string(n) + " rows");

  const Index d = images.dims[1] * images.dims[2];
  Dataset<S> out;
  out.X.resize(count, d);
  out.labels.resize(count);
  int max_label = -1;
  for (Index i = 0; i < count; ++i) {
    const std::uint8_t* row = images.data.data() + (first_row + i) * d;
    for (Index j = 0; j < d; ++j) out.X(i, j) = static_cast<S>(row[j]) / S(255);  // Divide (not * 1/255): correctly rounded, as numpy's x / 255.
    const int label = labels.data[static_cast<std::size_t>(first_row + i)];
    if (expect.num_classes >= 0 && label >= expect.num_classes)
      fail(labels_path, "label " + std::to_string(label) + " at row " + std::to_string(first_row + i) +
                            " (0-based) outside [0, " + std::to_string(expect.num_classes) + ")");
    out.labels(i) = label;
    max_label = std::max(max_label, label);
  }
  out.num_classes = expect.num_classes >= 0 ? expect.num_classes : std::max<Index>(10, max_label + 1);
  return out;
}

template Dataset<float> load_idx_pair<float>(const std::string&, const std::string&, Index, Index,
                                             const IdxExpect&);
template Dataset<double> load_idx_pair<double>(const std::string&, const std::string&, Index, Index,
                                               const IdxExpect&);

}  // namespace ift
