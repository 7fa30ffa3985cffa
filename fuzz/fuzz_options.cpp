// libFuzzer target: the apps' command-line parsing. The input is argv (words separated by NUL
// bytes) for an app taking every option of the table (apps/options.hpp); it goes through both
// parsers (Boost.Program_options: parse_command_line; the LibTorch apps': parse_builtin), then
// into the library's parameters as the apps do (method_spec, apply_loop_options,
// apply_common_options). Refusals are UsageError / std::invalid_argument (exit code 2 in the
// apps); anything else escaping, a crash or a sanitizer report is a finding.
#include <cstdint>
#include <exception>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "app_common.hpp"

namespace {

const ift::app::OptionSet& every_option() {
  static const ift::app::OptionSet set = [] {
    ift::app::OptionSet s("ift-fuzz", "usage: ift-fuzz [options]");
    for (const auto& spec : ift::app::option_table()) s.use({spec.name});
    return s;
  }();
  return set;
}

void apply(const ift::app::OptionValues& v) {
  ift::BilevelParams params;
  ift::app::apply_loop_options(v, params);
  for (const auto& name : v.list("methods")) (void)ift::app::method_spec(v, name);
  (void)ift::app::method_spec(v, v.text("method"));
  (void)ift::app::apply_common_options(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::ostringstream sink;  // --help prints here, not on the fuzzer's console
  static const bool quiet = (std::cout.rdbuf(sink.rdbuf()), true);
  (void)quiet;
  sink.str("");
  std::vector<std::string> words = {"ift-fuzz"};
  std::string word;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      words.push_back(word);
      word.clear();
    } else {
      word += static_cast<char>(data[i]);
    }
  }
  if (!word.empty()) words.push_back(word);
  if (words.size() > 64) return 0;  // argv beyond a real command line adds nothing
  std::vector<const char*> argv;
  for (const auto& w : words) argv.push_back(w.c_str());
  argv.push_back(nullptr);
  const int argc = static_cast<int>(words.size());
  for (int parser = 0; parser < 2; ++parser) {
    try {
      const auto values = parser == 0 ? ift::app::parse_command_line(argc, argv.data(), every_option())
                                      : ift::app::parse_builtin(argc, argv.data(), every_option());
      if (values) apply(*values);
    } catch (const ift::app::UsageError&) {
    } catch (const std::invalid_argument&) {
    }
  }
  return 0;
}
