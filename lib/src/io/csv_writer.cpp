#include "ift/io/csv_writer.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "ift/io/atomic_file.hpp"

namespace ift::io {

namespace {

std::string quote_if_needed(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';  // RFC 4180: a quote inside a quoted field is doubled.
    out += c;
  }
  return out + "\"";
}

std::string format_number(double v, int digits) {
  if (!std::isfinite(v)) return "";  // See CsvCell: never print "nan" silently.
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string join(const std::vector<std::string>& cells) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i) line += ',';
    line += cells[i];
  }
  return line;
}

}  // namespace

CsvCell::CsvCell(const std::string& s) : text_(quote_if_needed(s)) {}
CsvCell::CsvCell(const char* s) : text_(quote_if_needed(s)) {}
CsvCell::CsvCell(double v) : text_(format_number(v, 17)) {}
CsvCell::CsvCell(float v) : text_(format_number(v, 9)) {}
CsvCell::CsvCell(bool v) : text_(v ? "1" : "0") {}

CsvWriter::CsvWriter(std::string path, std::vector<std::string> header)
    : path_(std::move(path)), header_(std::move(header)) {
  if (header_.empty()) throw std::invalid_argument("CsvWriter(" + path_ + "): empty header");
}

void CsvWriter::add_comment(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  bool any = false;
  while (std::getline(lines, line)) {
    comments_.push_back("# " + line);
    any = true;
  }
  if (!any) comments_.push_back("#");
}

void CsvWriter::add_row(const std::vector<CsvCell>& cells) {
  if (cells.size() != header_.size())
    throw std::invalid_argument("CsvWriter(" + path_ + "): row " + std::to_string(rows_.size() + 1) +
                                " has " + std::to_string(cells.size()) + " cells, the header has " +
                                std::to_string(header_.size()) + " columns");
  std::vector<std::string> text;
  text.reserve(cells.size());
  for (const CsvCell& c : cells) text.push_back(c.text());
  rows_.push_back(join(text));
}

void CsvWriter::add_row_and_save(const std::vector<CsvCell>& cells) {
  add_row(cells);
  save();
}

std::string CsvWriter::render() const {
  std::string out;
  for (const std::string& c : comments_) out += c + "\n";
  std::vector<std::string> header;
  for (const std::string& h : header_) header.push_back(quote_if_needed(h));
  out += join(header) + "\n";
  for (const std::string& r : rows_) out += r + "\n";
  return out;
}

void CsvWriter::save() const {
  const std::string text = render();
  write_file_atomically(path_, [&](std::ostream& out) {
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  });
}

}  // namespace ift::io
