// Every input of tests/fuzz/corpus/<target>/ (the seeds, and each input a
// fuzzer once failed on, kept as a regression case) run through its target in
// the normal suite: a stepverify::Error is a refusal, anything else fails.
#include <algorithm>

#include "fuzz_target.h"
#include "test_support.h"

namespace fs = std::filesystem;

TEST_CASE("fuzz corpora: every kept input runs through its target", "[fuzz]") {
  const fs::path root = fs::path(STEPVERIFY_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  auto& targets = stepverify::fuzz::registry();
  REQUIRE(targets.size() == 9);
  for (const auto& t : targets) {
    const std::string name = t.name;
    if (name == "tokenize" && !stepverify::test::fixture("qwen2_prm")) continue;  // needs ../shared's tokenizers
    const fs::path dir = root / name;
    REQUIRE(fs::is_directory(dir));
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    INFO("target " << name);
    CHECK(!files.empty());
    for (const auto& f : files) {
      INFO("input " << f.string());
      const std::string bytes = stepverify::detail::read_file(f);
      CHECK_NOTHROW(stepverify::fuzz::run(t.fn, bytes));
    }
  }
}
