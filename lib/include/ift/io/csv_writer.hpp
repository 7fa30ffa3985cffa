// A small CSV table writer for the apps (STYLE.md item 8): a fixed header given up front,
// optional '#' comment lines echoing the run's parameters, and an atomic save so a reader
// never sees a half-written table.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace ift::io {

/// One CSV cell, rendered to text when constructed.
/// - Strings are quoted (RFC 4180) when they contain a comma, quote, or line break.
/// - Integers are written exactly; bool as 0 or 1.
/// - double with %.17g and float with %.9g, enough digits to round-trip.
/// - A non-finite number (NaN, ±Inf) is written as an EMPTY cell, never as "nan": a table
///   must not silently carry NaN. Explaining why a value is missing (for example a "status"
///   column saying "NumericalIssue") is the caller's job.
class CsvCell {
 public:
  CsvCell(const std::string& s);
  CsvCell(const char* s);
  CsvCell(double v);
  CsvCell(float v);
  CsvCell(bool v);
  template <std::integral T>
    requires(!std::is_same_v<T, bool>)
  CsvCell(T v) : text_(std::to_string(v)) {}

  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

class CsvWriter {
 public:
  /// `header` fixes the columns; every row must have exactly as many cells.
  CsvWriter(std::string path, std::vector<std::string> header);

  /// Adds comment lines written before the header, each prefixed by "# ". A text with line
  /// breaks becomes several comment lines. Use it to echo the run's parameters.
  void add_comment(const std::string& text);

  /// Appends a row. Throws std::invalid_argument when the cell count differs from the header.
  void add_row(const std::vector<CsvCell>& cells);

  /// add_row then save(): for long runs that want the file current after every row.
  void add_row_and_save(const std::vector<CsvCell>& cells);

  /// Renders comments, header and all rows and writes them atomically to path().
  void save() const;

  /// The whole table as it would be saved.
  std::string render() const;

  const std::string& path() const { return path_; }
  std::size_t num_rows() const { return rows_.size(); }
  std::size_t num_columns() const { return header_.size(); }

 private:
  std::string path_;
  std::vector<std::string> header_;
  std::vector<std::string> comments_;
  std::vector<std::string> rows_;  // Rendered lines without the trailing newline.
};

}  // namespace ift::io
