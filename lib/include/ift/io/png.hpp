// 8-bit grayscale PNG output with zlib only (no libpng): pictures of learned images
// (dataset distillation, DESIGN.md P5) and of data samples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ift/core.hpp"

namespace ift::io {

/// Writes `pixels` (height × width bytes, row-major, 0 = black) as an 8-bit grayscale PNG,
/// atomically. Throws std::invalid_argument for a size mismatch or non-positive dimensions.
void write_png_gray8(const std::string& path, const std::vector<std::uint8_t>& pixels, Index width,
                     Index height);

/// How image values are mapped to [0, 1] before quantisation to 0..255.
enum class PngScaling {
  MinMaxGlobal,    ///< (v - min) / (max - min) over all images together (comparable brightness).
  MinMaxPerImage,  ///< Each image stretched to its own [min, max] (shows each image's detail).
  Clip,            ///< Values already in [0, 1] (pixels / 255); outside values are clipped.
};

/// Tiles the k images in the rows of `images` (k × (height·width), each row one image in
/// row-major pixel order, as in a Dataset's X without bias) into a grid PNG with `grid_cols`
/// columns (0: ceil(sqrt(k))), `padding` black pixels between and around tiles, and each pixel
/// repeated `scale` × `scale` times. A constant image (max = min) maps to 0; non-finite values
/// map to 0. Written atomically.
template <class S>
void write_image_grid_png(const std::string& path, const Matrix<S>& images, Index height, Index width,
                          Index grid_cols = 0, PngScaling scaling = PngScaling::MinMaxGlobal,
                          Index padding = 1, Index scale = 1);

}  // namespace ift::io
