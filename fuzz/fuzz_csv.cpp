// libFuzzer target: numeric CSV tables (load_csv), with the read options taken from the input's
// last two bytes (task, header, delimiter, float; target column) and the rest as the file.
#include <fuzzer/FuzzedDataProvider.h>

#include <exception>

#include "fuzz_input.hpp"
#include "ift/data/csv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ift::fuzz::InputFile file("table.csv");
  FuzzedDataProvider in(data, size);
  ift::CsvReadOptions options;
  const std::uint8_t mode = in.ConsumeIntegral<std::uint8_t>();
  options.task = mode & 1 ? ift::CsvReadOptions::Task::Regression
                          : ift::CsvReadOptions::Task::Classification;
  options.header = (mode >> 1) % 3 == 0   ? ift::CsvReadOptions::Header::Auto
                   : (mode >> 1) % 3 == 1 ? ift::CsvReadOptions::Header::Yes
                                          : ift::CsvReadOptions::Header::No;
  constexpr char kDelimiters[] = {',', ';', '\t', ' '};
  options.delimiter = kDelimiters[(mode >> 3) & 3];
  options.target_column = in.ConsumeIntegralInRange<ift::Index>(-4, 4);
  if (mode & 0x20) options.target_name = in.ConsumeRandomLengthString(16);
  const std::string& path = file.write(in.ConsumeRemainingBytesAsString());
  try {
    if (mode & 0x40)
      (void)ift::load_csv<float>(path, options);
    else
      (void)ift::load_csv<double>(path, options);
  } catch (const std::exception&) {
  }
  return 0;
}
