#pragma once
namespace ift {
/// Library version, "major.minor.patch".
const char* version();
}  // namespace ift
