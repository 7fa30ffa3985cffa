#include "ift/io/png.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ift/io/atomic_file.hpp"

namespace ift::io {

namespace {

void put_u32(std::string& out, std::uint32_t v) {  // PNG integers are big-endian.
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

// A chunk: length, type, data, CRC-32 over type and data (PNG spec §5.3).
void put_chunk(std::string& out, const char type[4], const std::string& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  const uLong crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(body.data()),
                          static_cast<uInt>(body.size()));
  put_u32(out, static_cast<std::uint32_t>(crc));
}

}  // namespace

void write_png_gray8(const std::string& path, const std::vector<std::uint8_t>& pixels, Index width,
                     Index height) {
  require(width > 0 && height > 0 && width <= 0x7fffffff && height <= 0x7fffffff,
          "write_png_gray8(" + path + "): width and height must be positive");
  require(static_cast<Index>(pixels.size()) == width * height,
          "write_png_gray8(" + path + "): " + std::to_string(pixels.size()) + " pixels for a " +
              std::to_string(width) + "x" + std::to_string(height) + " image");

  // Each scanline starts with its filter type; 0 (None) keeps the writer simple.
  std::string raw;
  raw.reserve(static_cast<std::size_t>((width + 1) * height));
  for (Index y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(pixels.data() + y * width), static_cast<std::size_t>(width));
  }
  uLongf compressed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string compressed(compressed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(compressed.data()), &compressed_size,
                reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()),
                Z_BEST_COMPRESSION) != Z_OK)
    throw std::runtime_error("write_png_gray8(" + path + "): zlib compression failed");
  compressed.resize(compressed_size);

  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put_u32(ihdr, static_cast<std::uint32_t>(width));
  put_u32(ihdr, static_cast<std::uint32_t>(height));
  ihdr += static_cast<char>(8);  // bit depth
  ihdr += static_cast<char>(0);  // colour type 0: grayscale
  ihdr += static_cast<char>(0);  // compression method: deflate
  ihdr += static_cast<char>(0);  // filter method 0
  ihdr += static_cast<char>(0);  // no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", compressed);
  put_chunk(png, "IEND", "");
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(png.data(), static_cast<std::streamsize>(png.size()));
  });
}

template <class S>
void write_image_grid_png(const std::string& path, const Matrix<S>& images, Index height, Index width,
                          Index grid_cols, PngScaling scaling, Index padding, Index scale) {
  const Index k = images.rows();
  require(k > 0, "write_image_grid_png(" + path + "): no images");
  require(height > 0 && width > 0 && images.cols() == height * width,
          "write_image_grid_png(" + path + "): images have " + std::to_string(images.cols()) +
              " values each, expected height*width = " + std::to_string(height * width));
  require(grid_cols >= 0 && padding >= 0 && scale >= 1,
          "write_image_grid_png(" + path + "): grid_cols and padding must be >= 0, scale >= 1");
  if (grid_cols == 0) grid_cols = static_cast<Index>(std::ceil(std::sqrt(static_cast<double>(k))));
  const Index grid_rows = (k + grid_cols - 1) / grid_cols;
  const Index tile_h = height * scale, tile_w = width * scale;
  const Index out_h = grid_rows * tile_h + (grid_rows + 1) * padding;
  const Index out_w = grid_cols * tile_w + (grid_cols + 1) * padding;
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(out_h * out_w), 0);

  // Range over finite values only, so one NaN does not blacken the whole picture.
  auto finite_range = [&](Index first, Index count) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (Index i = first; i < first + count; ++i)
      for (Index j = 0; j < images.cols(); ++j) {
        const double v = static_cast<double>(images(i, j));
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      }
    return std::pair<double, double>(lo, hi);
  };
  std::pair<double, double> range{0.0, 1.0};
  if (scaling == PngScaling::MinMaxGlobal) range = finite_range(0, k);

  for (Index img = 0; img < k; ++img) {
    if (scaling == PngScaling::MinMaxPerImage) range = finite_range(img, 1);
    const double lo = range.first, span = range.second - range.first;
    const Index top = padding + (img / grid_cols) * (tile_h + padding);
    const Index left = padding + (img % grid_cols) * (tile_w + padding);
    for (Index y = 0; y < height; ++y)
      for (Index x = 0; x < width; ++x) {
        const double v = static_cast<double>(images(img, y * width + x));
        double unit = 0.0;
        if (std::isfinite(v)) {
          if (scaling == PngScaling::Clip) unit = std::clamp(v, 0.0, 1.0);
          else unit = span > 0 ? (v - lo) / span : 0.0;
        }
        const auto byte = static_cast<std::uint8_t>(std::lround(std::clamp(unit, 0.0, 1.0) * 255.0));
        for (Index dy = 0; dy < scale; ++dy)
          for (Index dx = 0; dx < scale; ++dx)
            pixels[static_cast<std::size_t>((top + y * scale + dy) * out_w + left + x * scale + dx)] = byte;
      }
  }
  write_png_gray8(path, pixels, out_w, out_h);
}

template void write_image_grid_png<float>(const std::string&, const Matrix<float>&, Index, Index, Index,
                                          PngScaling, Index, Index);
template void write_image_grid_png<double>(const std::string&, const Matrix<double>&, Index, Index, Index,
                                           PngScaling, Index, Index);

}  // namespace ift::io
