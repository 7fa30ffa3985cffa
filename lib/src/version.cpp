#include "ift/version.hpp"
namespace ift {
const char* version() { return "0.1.0"; }
}  // namespace ift
