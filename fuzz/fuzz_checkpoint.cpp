// libFuzzer target: checkpoints (load_checkpoint). A checksum guards the content, so mutated
// files would almost all stop there; the first byte's bit 0 therefore seals the rest with its
// correct checksum (checkpoint_checksum), so the parser behind the check is fuzzed as well, and
// bit 1 reads it as float instead of double.
#include <exception>
#include <string>

#include "fuzz_input.hpp"
#include "ift/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ift::fuzz::InputFile file("run.ckpt");
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 1) {
    const std::uint64_t sum = ift::checkpoint_checksum(bytes.data(), bytes.size());
    bytes.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  }
  const std::string& path = file.write(bytes);
  try {
    if (mode & 2)
      (void)ift::load_checkpoint<float>(path);
    else
      (void)ift::load_checkpoint<double>(path);
  } catch (const std::exception&) {
  }
  return 0;
}
