// Atomic file output: a reader never sees a half-written CSV, .npy or PNG, even if the run is
// killed mid-write (STYLE.md item 8).
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace ift::io {

/// Calls `writer` on a binary stream to `path + ".tmp.<pid>"`, flushes and checks the stream,
/// then renames the temporary file onto `path` (atomic on POSIX within one file system).
/// Creates the parent directory if it is missing. On any failure, including an exception thrown
/// by `writer`, the temporary file is removed and std::runtime_error naming `path` is thrown
/// (the writer's own exception is rethrown unchanged).
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& writer);

}  // namespace ift::io
