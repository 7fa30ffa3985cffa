// Numeric CSV tables as data sets: every column is a feature except one, which holds the class
// label (classification) or the target (regression).
#pragma once

#include <string>

#include "ift/core.hpp"
#include "ift/dataset.hpp"

namespace ift {

struct CsvReadOptions {
  enum class Task { Classification, Regression };
  enum class Header { Auto, Yes, No };

  /// Classification: the chosen column holds integer labels >= 0 (num_classes = max + 1).
  /// Regression: it becomes targets (n × 1).
  Task task = Task::Classification;
  /// Auto: the first non-comment line is a header when any of its cells is not a number.
  Header header = Header::Auto;
  /// Column of the label/target, 0-based; negative counts from the end (-1: last column).
  Index target_column = -1;
  /// If non-empty, the header name of the label/target column (overrides target_column;
  /// requires a header line).
  std::string target_name;
  char delimiter = ',';
};

/// Reads a numeric CSV file. Blank lines and lines starting with '#' (the comments CsvWriter
/// writes) are skipped; cells may be surrounded by spaces or double quotes.
/// Throws std::runtime_error "<file>:<line>: column <c> ...": non-numeric cells, NaN or Inf
/// values, ragged rows, non-integer or negative labels, an empty file, no data rows.
template <class S>
Dataset<S> load_csv(const std::string& path, const CsvReadOptions& options = {});

}  // namespace ift
