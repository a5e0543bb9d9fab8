// The fuzz targets (tests/fuzz/fuzz_*.cpp). Each is a function of the input
// bytes for one parser that takes bytes from outside. Refusing an input with
// a stepverify::Error is the contract; any other exception, a crash, a
// sanitizer report, or a run past the time or memory bound is a finding.
//
// Built two ways:
//  * with STEPVERIFY_FUZZ_MAIN (make fuzz, clang): one libFuzzer program per
//    target, `fuzz_<name>`;
//  * into the test suite (group "fuzz"): every file of tests/fuzz/corpus/<name>/
//    (the seeds and every input a fuzzer once failed on) is run through its target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "stepverify/errors.h"

namespace stepverify::fuzz {

using Target = void (*)(std::string_view input);

struct Registered {
  const char* name;
  Target fn;
};

/// The targets compiled into this program.
inline std::vector<Registered>& registry() {
  static std::vector<Registered> r;
  return r;
}

struct Register {
  Register(const char* name, Target fn) { registry().push_back({name, fn}); }
};

/// Runs `fn` on `input`; a stepverify::Error is how a parser refuses input.
inline void run(Target fn, std::string_view input) {
  try {
    fn(input);
  } catch (const stepverify::Error&) {}
}

/// The shared fixtures ($STEPVERIFY_SHARED_DIR, else the build's default).
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("STEPVERIFY_SHARED_DIR"); env && *env) return env;
  return STEPVERIFY_DEFAULT_SHARED_DIR;
}

/// A scratch folder of this process for targets whose parser reads files.
inline std::filesystem::path scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("stepverify_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

/// Splits `input` at the first occurrence of `sep` (the second part empty when absent).
inline std::pair<std::string_view, std::string_view> split2(std::string_view input, std::string_view sep) {
  const auto at = input.find(sep);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + sep.size())};
}

}  // namespace stepverify::fuzz

#ifdef STEPVERIFY_FUZZ_MAIN
#define STEPVERIFY_FUZZ_ENTRY(name)                                                  \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {          \
    stepverify::fuzz::run(fuzz_##name, {reinterpret_cast<const char*>(data), size}); \
    return 0;                                                                        \
  }
#else
#define STEPVERIFY_FUZZ_ENTRY(name) static const stepverify::fuzz::Register register_##name(#name, fuzz_##name);
#endif

/// Defines the target `name`: STEPVERIFY_FUZZ_TARGET(config) { ... input ... }
#define STEPVERIFY_FUZZ_TARGET(name)               \
  static void fuzz_##name(std::string_view input); \
  STEPVERIFY_FUZZ_ENTRY(name)                      \
  static void fuzz_##name(std::string_view input)
