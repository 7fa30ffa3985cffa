#include "ift/io/atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace ift::io {

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& writer) {
  namespace fs = std::filesystem;
  if (path.empty()) throw std::runtime_error("write_file_atomically: empty path");
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec)
      throw std::runtime_error("cannot create directory " + target.parent_path().string() +
                               " for " + path + ": " + ec.message());
  }
  // The pid keeps concurrent writers (two processes, same output) from sharing a temp file.
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  auto remove_tmp = [&] {
    std::error_code ignored;
    fs::remove(tmp, ignored);
  };
  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw std::runtime_error("cannot open " + tmp + " for writing (target " + path +
                               "): " + std::strerror(errno));
    writer(out);
    out.flush();
    if (!out) throw std::runtime_error("write error on " + tmp + " (target " + path + ")");
    out.close();
    if (out.fail()) throw std::runtime_error("cannot close " + tmp + " (target " + path + ")");
  } catch (...) {
    remove_tmp();
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    remove_tmp();
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + why);
  }
}

}  // namespace ift::io
