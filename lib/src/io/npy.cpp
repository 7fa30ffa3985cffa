#include "ift/io/npy.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "ift/io/atomic_file.hpp"

namespace ift::io {

// The files are little-endian by declaration; we copy bytes as they are in memory.
static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes + terminating zero.

template <class S>
constexpr const char* dtype_of() {
  if constexpr (std::is_same_v<S, double>) return "<f8";
  else return "<f4";
}

// Header for format 1.0: magic, version, 2-byte length, then the dict padded with spaces and
// ended by '\n' so that magic + length + dict is a multiple of 64 (numpy's alignment).
std::string make_header(const char* dtype, const std::vector<Index>& shape) {
  std::string dict = std::string("{'descr': '") + dtype + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";  // (n,) is a 1-tuple.
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  const std::size_t prefix = 6 + 2 + 2;
  std::size_t total = prefix + dict.size() + 1;
  const std::size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  if (dict.size() > 65535) throw std::runtime_error("npy header too long");
  std::string header(kMagic, 6);
  header += static_cast<char>(1);
  header += static_cast<char>(0);
  header += static_cast<char>(dict.size() & 0xff);
  header += static_cast<char>((dict.size() >> 8) & 0xff);
  return header + dict;
}

template <class S>
void write_npy(const std::string& path, const std::vector<Index>& shape, const S* data,
               std::size_t count) {
  const std::string header = make_header(dtype_of<S>(), shape);
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(S)));
  });
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("npy file " + path + ": " + what);
}

// Value of `key` in the header dict text, as the raw text following "'key':".
std::string dict_value(const std::string& path, const std::string& dict, const std::string& key) {
  const std::string quoted = "'" + key + "'";
  std::size_t pos = dict.find(quoted);
  if (pos == std::string::npos) fail(path, "header has no " + quoted + " entry");
  pos = dict.find(':', pos + quoted.size());
  if (pos == std::string::npos) fail(path, "malformed header entry " + quoted);
  ++pos;
  while (pos < dict.size() && dict[pos] == ' ') ++pos;
  std::size_t end;
  if (dict[pos] == '(') {
    end = dict.find(')', pos);
    if (end == std::string::npos) fail(path, "unterminated shape tuple in header");
    return dict.substr(pos, end - pos + 1);
  }
  end = dict.find_first_of(",}", pos);
  if (end == std::string::npos) fail(path, "malformed header entry " + quoted);
  std::string value = dict.substr(pos, end - pos);
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}

}  // namespace

template <class S>
void save_npy(const std::string& path, const Vector<S>& v) {
  write_npy(path, {v.size()}, v.data(), static_cast<std::size_t>(v.size()));
}

template <class S>
void save_npy(const std::string& path, const Matrix<S>& m) {
  // Row-major copy: numpy's C order.
  const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> c = m;
  write_npy(path, {m.rows(), m.cols()}, c.data(), static_cast<std::size_t>(c.size()));
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open (missing or unreadable)");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    fail(path, "not a .npy file (bad magic string)");
  const auto u8 = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(bytes[i])); };
  const int major = static_cast<int>(u8(6));
  std::size_t header_len, offset;
  if (major == 1) {
    header_len = u8(8) | (u8(9) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, "truncated header");
    header_len = u8(8) | (u8(9) << 8) | (u8(10) << 16) | (u8(11) << 24);
    offset = 12;
  } else {
    fail(path, "unsupported format version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) fail(path, "truncated header");
  const std::string dict = bytes.substr(offset, header_len);
  offset += header_len;

  NpyArray out;
  std::string descr = dict_value(path, dict, "descr");
  if (descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"')) descr = descr.substr(1, descr.size() - 2);
  if (descr != "<f8" && descr != "<f4")
    fail(path, "unsupported dtype '" + descr + "' (expected '<f8' or '<f4')");
  out.dtype = descr;
  const std::string order = dict_value(path, dict, "fortran_order");
  if (order != "False" && order != "True") fail(path, "bad fortran_order value '" + order + "'");
  const bool fortran = order == "True";

  const std::string shape_text = dict_value(path, dict, "shape");
  std::size_t count = 1;
  {
    std::size_t i = 1;  // past '('
    while (i < shape_text.size()) {
      while (i < shape_text.size() && (shape_text[i] == ' ' || shape_text[i] == ',')) ++i;
      if (i >= shape_text.size() || shape_text[i] == ')') break;
      std::size_t j = i;
      while (j < shape_text.size() && shape_text[j] >= '0' && shape_text[j] <= '9') ++j;
      if (j == i) fail(path, "malformed shape " + shape_text);
      const Index dim = std::stoll(shape_text.substr(i, j - i));
      out.shape.push_back(dim);
      count *= static_cast<std::size_t>(dim);
      i = j;
    }
  }
  if (out.shape.empty() || out.shape.size() > 2)
    fail(path, "shape " + shape_text + " has " + std::to_string(out.shape.size()) +
                   " dimensions (only 1-D and 2-D arrays are supported)");

  const std::size_t item = descr == "<f8" ? 8 : 4;
  if (bytes.size() - offset != count * item)
    fail(path, "expected " + std::to_string(count * item) + " bytes of data for shape " + shape_text +
                   ", found " + std::to_string(bytes.size() - offset));
  out.data.resize(count);
  const char* p = bytes.data() + offset;
  for (std::size_t k = 0; k < count; ++k) {
    if (item == 8) {
      double v;
      std::memcpy(&v, p + 8 * k, 8);
      out.data[k] = v;
    } else {
      float v;
      std::memcpy(&v, p + 4 * k, 4);
      out.data[k] = v;
    }
  }
  if (fortran && out.shape.size() == 2) {  // Reorder to C order so callers see one layout.
    const Index r = out.shape[0], c = out.shape[1];
    std::vector<double> c_order(count);
    for (Index i = 0; i < r; ++i)
      for (Index j = 0; j < c; ++j)
        c_order[static_cast<std::size_t>(i * c + j)] = out.data[static_cast<std::size_t>(j * r + i)];
    out.data.swap(c_order);
  }
  return out;
}

template <class S>
Matrix<S> load_npy_matrix(const std::string& path) {
  const NpyArray a = read_npy(path);
  Matrix<S> m(a.rows(), a.cols());
  for (Index i = 0; i < m.rows(); ++i)
    for (Index j = 0; j < m.cols(); ++j)
      m(i, j) = static_cast<S>(a.data[static_cast<std::size_t>(i * m.cols() + j)]);
  return m;
}

template <class S>
Vector<S> load_npy_vector(const std::string& path) {
  const NpyArray a = read_npy(path);
  if (a.shape.size() == 2 && a.shape[0] != 1 && a.shape[1] != 1)
    fail(path, "expected a vector, found shape (" + std::to_string(a.shape[0]) + ", " +
                   std::to_string(a.shape[1]) + ")");
  Vector<S> v(static_cast<Index>(a.data.size()));
  for (Index i = 0; i < v.size(); ++i) v(i) = static_cast<S>(a.data[static_cast<std::size_t>(i)]);
  return v;
}

template void save_npy<float>(const std::string&, const Vector<float>&);
template void save_npy<double>(const std::string&, const Vector<double>&);
template void save_npy<float>(const std::string&, const Matrix<float>&);
template void save_npy<double>(const std::string&, const Matrix<double>&);
template Matrix<float> load_npy_matrix<float>(const std::string&);
template Matrix<double> load_npy_matrix<double>(const std::string&);
template Vector<float> load_npy_vector<float>(const std::string&);
template Vector<double> load_npy_vector<double>(const std::string&);

}  // namespace ift::io
