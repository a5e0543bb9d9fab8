#include "cli/flags.h"

#include <chrono>
#include <iostream>
#include <map>
#include <string>

#include <fmt/format.h>

#include "stepverify/errors.h"

namespace stepverify::cli {

const std::map<std::string, c10::ScalarType>& dtype_flags() {
  static const std::map<std::string, c10::ScalarType> kDtypes = {
      {"fp32", c10::kFloat}, {"bf16", c10::kBFloat16}, {"fp16", c10::kHalf}};
  return kDtypes;
}

c10::ScalarType dtype_from_flag(const std::string& name) {
  auto it = dtype_flags().find(name);
  if (it == dtype_flags().end()) throw ConfigError("--dtype " + name + ": expected fp32, bf16 or fp16");
  return it->second;
}

void add_load_flags(CLI::App& app, LoadOptions& options) {
  app.add_option("--dtype", options.dtype,
                 "compute dtype of the model: fp32 (default), bf16 (half the memory, about fp32's speed on CPU), "
                 "fp16 (CUDA only)")
      ->transform(CLI::CheckedTransformer(dtype_flags()));
  struct State {
    std::chrono::steady_clock::time_point start;
    int64_t last = -1;
    bool shown = false;
  };
  const auto state = std::make_shared<State>();
  options.progress = [state](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done <= state->last || state->last < 0) *state = {now, -1, false};  // a new load
    state->last = done;
    if (!state->shown && std::chrono::duration<double>(now - state->start).count() < 2.0) return;
    state->shown = true;
    std::cerr << fmt::format("\rloading weights {:3.0f}% ({:.2f} of {:.2f} GB)",
                             100.0 * done / std::max<int64_t>(total, 1), done / 1e9, total / 1e9)
              << (done >= total ? "\n" : "") << std::flush;
  };
}

CLI::Option* add_aggregate_flag(CLI::App& app, const std::string& name, Aggregate& target, const std::string& help) {
  auto* opt = app.add_option_function<std::string>(
      name, [&target](const std::string& v) { target = parse_aggregate(v); },
      fmt::format("{} (min, max, prod, mean, last, geomean, sum; default {})", help, aggregate_name(target)));
  opt->check(CLI::Validator(
      [](std::string& v) {
        try {
          parse_aggregate(v);
          return std::string();
        } catch (const Error& e) {
          return std::string(e.what());
        }
      },
      "AGGREGATE"));
  return opt;
}

void add_jsonl_flags(CLI::App& app, JsonlFiles& files, const std::string& input_help, const std::string& output_help) {
  app.add_option("--input", files.input, input_help)->required();
  app.add_option("--output", files.output, output_help + " (written when complete)")->required();
  app.add_flag("--strict", files.strict, "a bad input line is fatal (exit 1, no output) instead of skipped");
}

std::ifstream open_input(const JsonlFiles& files) {
  std::ifstream in(files.input);
  if (!in) throw IoError(files.input + ": cannot open");
  return in;
}

detail::AtomicFile open_output(const JsonlFiles& files) {
  detail::check_output_not_input(files.output, {files.input});
  return detail::AtomicFile(files.output);
}

detail::BadLine bad_lines(const JsonlFiles& files) {
  return files.strict ? detail::BadLine::Throw : detail::BadLine::Skip;
}

int jsonl_status(const detail::JsonlCounts& counts, const std::string& what) {
  if (counts.bad)
    std::cerr << counts.bad << " of " << counts.bad + counts.good << " lines could not be " << what << " (see above)\n";
  return counts.good == 0 && counts.bad > 0 ? 1 : 0;  // every line failed: not a success
}

}  // namespace stepverify::cli
