#include "ift/data/csv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "ift/format.hpp"

namespace ift {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  std::string t = s.substr(b, e - b + 1);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> split(const std::string& line, char delimiter) {
  std::vector<std::string> cells;
  std::size_t start = 0;
  for (;;) {
    const std::size_t pos = line.find(delimiter, start);
    cells.push_back(trim(line.substr(start, pos == std::string::npos ? std::string::npos : pos - start)));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return cells;
}

// std::from_chars: locale-independent and strict (the whole cell must be a number).
bool parse_double(const std::string& s, double& value) {
  if (s.empty()) return false;
  const char* first = s.data();
  if (*first == '+') ++first;  // from_chars rejects a leading '+', which people do write.
  const auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), value);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

template <class S>
Dataset<S> load_csv(const std::string& path, const CsvReadOptions& options) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("CSV file " + path + ": file not found or unreadable");
  auto where = [&](long line) { return path + ":" + std::to_string(line) + ": "; };

  std::vector<std::string> names;
  std::vector<std::vector<double>> rows;
  std::vector<long> row_lines;
  std::size_t width = 0;
  long line_no = 0, width_line = 0;
  bool first = true;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty() || line.front() == '#') continue;
    std::vector<std::string> cells = split(line, options.delimiter);
    if (first) {
      first = false;
      bool header = options.header == CsvReadOptions::Header::Yes;
      if (options.header == CsvReadOptions::Header::Auto) {
        double ignored;
        for (const auto& c : cells) header = header || !parse_double(c, ignored);
      }
      width = cells.size();
      width_line = line_no;
      if (header) {
        names = cells;
        continue;
      }
    }
    if (cells.size() != width)
      throw std::runtime_error(where(line_no) + "ragged row: " + std::to_string(cells.size()) +
                               " columns, expected " + std::to_string(width) + " (as on line " +
                               std::to_string(width_line) + ")");
    std::vector<double> values(cells.size());
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string col = "column " + std::to_string(c + 1) +
                              (names.empty() ? std::string() : " (\"" + names[c] + "\")") + ": ";
      if (!parse_double(cells[c], values[c]))
        throw std::runtime_error(where(line_no) + col + "non-numeric value \"" + cells[c] + "\"");
      if (std::isnan(values[c])) throw std::runtime_error(where(line_no) + col + "NaN value");
      if (std::isinf(values[c])) throw std::runtime_error(where(line_no) + col + "infinite value (Inf)");
    }
    rows.push_back(std::move(values));
    row_lines.push_back(line_no);
  }
  if (in.bad()) throw std::runtime_error("CSV file " + path + ": read error");
  if (first) throw std::runtime_error("CSV file " + path + ": empty file");
  if (rows.empty()) throw std::runtime_error("CSV file " + path + ": no data rows after the header");
  if (width < 2)
    throw std::runtime_error("CSV file " + path + ": needs at least two columns (features and a label/target), found " +
                             std::to_string(width));

  Index target = options.target_column;
  if (!options.target_name.empty()) {
    if (names.empty())
      throw std::runtime_error("CSV file " + path + ": target column \"" + options.target_name +
                               "\" requested by name but the file has no header line");
    target = -1;
    for (std::size_t c = 0; c < names.size(); ++c)
      if (names[c] == options.target_name) target = static_cast<Index>(c);
    if (target < 0)
      throw std::runtime_error("CSV file " + path + ": no column named \"" + options.target_name + "\" in the header");
  } else {
    if (target < 0) target += static_cast<Index>(width);
    if (target < 0 || target >= static_cast<Index>(width))
      throw std::runtime_error("CSV file " + path + ": target column " + std::to_string(options.target_column) +
                               " outside the " + std::to_string(width) + " columns");
  }

  const Index n = static_cast<Index>(rows.size());
  const Index d = static_cast<Index>(width) - 1;
  Dataset<S> out;
  out.X.resize(n, d);
  const bool classification = options.task == CsvReadOptions::Task::Classification;
  if (classification) out.labels.resize(n);
  else out.targets.resize(n, 1);
  Index max_label = -1;
  for (Index i = 0; i < n; ++i) {
    const std::vector<double>& r = rows[static_cast<std::size_t>(i)];
    for (Index c = 0, j = 0; c < static_cast<Index>(width); ++c) {
      const double v = r[static_cast<std::size_t>(c)];
      if (c != target) {
        out.X(i, j++) = static_cast<S>(v);
        continue;
      }
      if (!classification) {
        out.targets(i, 0) = static_cast<S>(v);
        continue;
      }
      if (v != std::floor(v) || v < 0 || v > 1e9)
        throw std::runtime_error(where(row_lines[static_cast<std::size_t>(i)]) + "column " + std::to_string(c + 1) +
                                 ": label must be a non-negative integer, found " + format_number(v));
      out.labels(i) = static_cast<std::int32_t>(v);
      max_label = std::max<Index>(max_label, out.labels(i));
    }
  }
  out.num_classes = classification ? max_label + 1 : 0;
  return out;
}

template Dataset<float> load_csv<float>(const std::string&, const CsvReadOptions&);
template Dataset<double> load_csv<double>(const std::string&, const CsvReadOptions&);

}  // namespace ift
