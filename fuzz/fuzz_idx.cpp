// libFuzzer target: IDX files (read_idx, load_idx_pair), raw and gzip-compressed.
// The last byte chooses (FuzzedDataProvider takes integers from the end): bit 0 gzip the rest
// before reading (so the decompressed path sees the mutated IDX bytes too; a gzip seed still
// reaches zlib's own parser through the raw path); bit 1 read an images/labels pair (the rest
// split by ConsumeRandomLengthString) with a row range from the input, as load_fashion_mnist
// does; bit 2 (pairs) as float instead of double.
#include <zlib.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <exception>

#include "fuzz_input.hpp"
#include "ift/data/idx.hpp"

namespace {

std::string gzipped(const std::string& raw, const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "wb");
  if (!gz) std::abort();
  if (!raw.empty() && gzwrite(gz, raw.data(), static_cast<unsigned>(raw.size())) <= 0) std::abort();
  gzclose(gz);
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ift::fuzz::InputFile images("images.idx"), labels("labels.idx");
  FuzzedDataProvider in(data, size);
  const std::uint8_t mode = in.ConsumeIntegral<std::uint8_t>();
  const bool gzip = mode & 1, pair = mode & 2;
  auto put = [&](ift::fuzz::InputFile& file, const std::string& bytes) {
    if (!gzip) return file.write(bytes);
    file.write(std::string());
    return gzipped(bytes, file.path());
  };
  try {
    if (!pair) {
      (void)ift::read_idx(put(images, in.ConsumeRemainingBytesAsString()));
      return 0;
    }
    const auto max_rows = in.ConsumeIntegralInRange<ift::Index>(-1, 64);
    const auto first_row = in.ConsumeIntegralInRange<ift::Index>(-1, 64);
    const std::string first = in.ConsumeRandomLengthString(size);
    const std::string& image_path = put(images, first);
    const std::string& label_path = put(labels, in.ConsumeRemainingBytesAsString());
    if (mode & 4)
      (void)ift::load_idx_pair<float>(image_path, label_path, max_rows, first_row);
    else
      (void)ift::load_idx_pair<double>(image_path, label_path, max_rows, first_row);
  } catch (const std::exception&) {
  }
  return 0;
}
