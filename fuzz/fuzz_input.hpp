// Shared by the libFuzzer targets: the readers under test take paths, so each input is written to
// a file of this process first (under $TMPDIR or /tmp, one name per process and role, removed at
// exit) and the reader is called on it. Expected refusals are std::exceptions; anything else (a
// crash, a sanitizer report, a leak, an allocation past -rss_limit_mb) is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace ift::fuzz {

/// A file of this process named after `role` ("images", "labels", …), rewritten per input.
class InputFile {
 public:
  explicit InputFile(const std::string& role) {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/ift-fuzz-" + std::to_string(::getpid()) +
            "-" + role;
  }
  ~InputFile() { std::remove(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// Writes the bytes and returns the path.
  const std::string& write(const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) std::abort();  // the harness, not the reader: stop loudly
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path_;
  }
  const std::string& write(const std::string& bytes) {
    return write(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ift::fuzz
