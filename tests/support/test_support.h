// Shared helpers of the tests: where ../shared is, reading references.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "stepverify/checkpoint.h"
#include "backbone/tensor_io.h"
#include "util/files.h"

namespace stepverify::test {

/// The shared directory: $STEPVERIFY_SHARED_DIR, else the CMake option.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("STEPVERIFY_SHARED_DIR"); env && *env) return env;
  return STEPVERIFY_DEFAULT_SHARED_DIR;
}

/// The shared data directory (GSM8K, MATH-500, ProcessBench).
inline std::filesystem::path data_dir() { return shared_dir() / "data"; }

/// `n` as 8 little-endian bytes (a safetensors header length).
inline std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (size_t i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

/// Occurrences of `what` in `s` (overlapping ones counted).
inline size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

/// Inputs reported missing by missing_input in this run. test_main.cpp exits
/// with kSkipExitCode when the run otherwise passed and this is non-zero, so
/// ctest reports the group as skipped (SKIP_RETURN_CODE), not passed.
inline int& missing_inputs() {
  static int n = 0;
  return n;
}
constexpr int kSkipExitCode = 77;

/// Reports an input the test needs and cannot find: under CI=true a failure
/// (CI has the shared files; a test must not pass by skipping), else a WARN
/// that the test is skipped, counted in missing_inputs().
inline void missing_input(const std::string& what) {
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") FAIL("missing under CI=true: " << what);
  ++missing_inputs();
  WARN("skipped: " << what << " (set STEPVERIFY_SHARED_DIR)");
}

/// A fixture checkpoint directory, or nullopt (with a WARN) when absent.
inline std::optional<std::filesystem::path> fixture(const std::string& name) {
  auto dir = shared_dir() / "fixtures" / "hf" / name;
  if (!std::filesystem::exists(dir / "reference.json")) {
    missing_input("fixture " + dir.string() + " is absent");
    return std::nullopt;
  }
  return dir;
}

/// Runs the shell command `cmd` (stderr dropped); returns its exit status and stdout.
inline std::pair<int, std::string> run_command(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WEXITSTATUS(status), out};
}

/// `s` quoted for the shell.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

/// A tensor of a reference.safetensors file, as a CPU torch tensor.
inline at::Tensor ref_tensor(const SafetensorsFile& f, const std::string& name) {
  REQUIRE(f.contains(name));
  return to_tensor(f.tensor(name));
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

/// A fresh temporary directory, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/stepverify_test_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

}  // namespace stepverify::test
