// Numbers in messages, logs and CSV comments: one formatter, so a small value such as a
// tolerance of 1e-9 reads "1e-09" everywhere instead of std::to_string's "0.000000".
#pragma once

#include <cstdio>
#include <string>

namespace ift {

/// %.6g: six significant digits, scientific notation when the exponent is below -5 or above 5
/// (0.5, 1234.57, 3e-09, 1e+300); "nan", "inf" and "-inf" for non-finite values. For tables that
/// must round-trip use the CSV writer's cells (%.17g), not this.
inline std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

}  // namespace ift
