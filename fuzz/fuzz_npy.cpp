// libFuzzer target: NumPy .npy files (read_npy and the matrix / vector loaders).
#include <exception>

#include "fuzz_input.hpp"
#include "ift/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ift::fuzz::InputFile file("array.npy");
  const std::string& path = file.write(data, size);
  try {
    (void)ift::io::read_npy(path);
  } catch (const std::exception&) {
  }
  try {
    (void)ift::io::load_npy_matrix<float>(path);
  } catch (const std::exception&) {
  }
  try {
    (void)ift::io::load_npy_vector<double>(path);
  } catch (const std::exception&) {
  }
  return 0;
}
