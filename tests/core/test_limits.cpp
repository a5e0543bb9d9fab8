// stepverify/limits.h: each limit holds at its value and refuses one past it.
#include <filesystem>
#include <sstream>

#include "test_support.h"

#include "stepverify/checkpoint.h"
#include "stepverify/config.h"
#include "stepverify/errors.h"
#include "stepverify/eval/bon.h"
#include "stepverify/limits.h"
#include "stepverify/verifier_spec.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {

std::string nested(int levels) {
  return std::string(static_cast<size_t>(levels), '[') + std::string(static_cast<size_t>(levels), ']');
}

}  // namespace

TEST_CASE("limits: JSON nesting", "[errors]") {
  // The spec object is one level; "extra" (ignored) nests the rest.
  const std::string heads = R"("heads": [{"name": "orm", "read": "last"}])";
  auto spec_with = [&](int total) { return "{" + heads + R"(, "extra": )" + nested(total - 1) + "}"; };
  CHECK_NOTHROW(VerifierSpec::from_json(spec_with(limits::kMaxJsonDepth)));
  CHECK_THROWS_WITH(VerifierSpec::from_json(spec_with(limits::kMaxJsonDepth + 1), "deep.json"),
                    Contains("deep.json") && Contains("nested deeper than 512"));
  // Brackets inside strings do not count.
  CHECK_NOTHROW(VerifierSpec::from_json("{" + heads + R"(, "name": ")" + std::string(2000, '[') + "\"}"));

  // A JSONL line past the limit is one bad line, reported with its number.
  test::TempDir tmp;
  const std::string ok =
      R"({"gold": "1", "candidates": [{"answer": "1", "x": )" + nested(limits::kMaxJsonDepth - 3) + "}]}";
  const std::string deep =
      R"({"gold": "1", "candidates": [{"answer": "1", "x": )" + nested(limits::kMaxJsonDepth - 2) + "}]}";
  test::write_text(tmp.path / "c.jsonl", ok + "\n" + deep + "\n");
  std::ostringstream log;
  CHECK(read_bon_problems(tmp.path / "c.jsonl", &log).size() == 1);
  CHECK_THAT(log.str(), Contains("c.jsonl:2: JSON nested deeper than 512"));
}

TEST_CASE("limits: safetensors header length", "[errors]") {
  const uint64_t n = limits::kMaxSafetensorsHeaderBytes;
  // At the limit: "{}" padded with spaces to exactly n bytes parses (no tensors).
  std::string header = "{}";
  header.resize(n, ' ');
  const auto at = SafetensorsFile::parse(memory_source(test::le64(n) + header, "at.safetensors"));
  CHECK(at->names().empty());
  header.push_back(' ');
  CHECK_THROWS_WITH(SafetensorsFile::parse(memory_source(test::le64(n + 1) + header, "past.safetensors")),
                    Contains("past.safetensors") && Contains("exceeds the limit of 100000000"));
}

TEST_CASE("limits: configuration and tokenizer files", "[errors]") {
  test::TempDir tmp;
  const auto file = tmp.path / "config.json";
  // Sparse files: "{" then zeros, to exactly the limit and one byte past it.
  test::write_text(file, "{");
  std::filesystem::resize_file(file, limits::kMaxConfigFileBytes);
  try {
    ModelConfig::from_file(file);
    FAIL("a config of NUL bytes parsed");
  } catch (const ConfigError& e) {
    CHECK_THAT(std::string(e.what()), Contains("not valid JSON") && !Contains("limits.h"));  // read, then refused
  }
  std::filesystem::resize_file(file, limits::kMaxConfigFileBytes + 1);
  CHECK_THROWS_WITH(ModelConfig::from_file(file),
                    Contains("config.json") && Contains("268435457 bytes") && Contains("limits.h"));
  const auto spec = tmp.path / "stepverify.json";
  std::filesystem::copy_file(file, spec);
  CHECK_THROWS_WITH(VerifierSpec::from_file(spec), Contains("limits.h"));
}
