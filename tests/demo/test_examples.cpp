// The example programs, run on the shipped demo models with their output
// checked against facts derived here (the gold answer by hand).
#include <algorithm>
#include <regex>
#include <sstream>

#include "test_support.h"

namespace {

const std::string kModels = STEPVERIFY_SOURCE_DIR "/models";

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("example custom_decoding_loop: ranks by the PRM head, stops at the answer step, grades its answer",
          "[examples]") {
  // (19 + 4) * 3 + 19 = 88, by hand.
  const std::string q =
      "Dev has 19 shells. Hana has 4 marbles. Dev buys 4 more shells. He triples the shells. "
      "He finds 19 more shells. How many shells does Dev have now?";
  auto [rc, out] = stepverify::test::run_command(std::string(STEPVERIFY_EXAMPLE_LOOP) + " " + kModels + "/policy " +
                                                 kModels + "/verifier " + stepverify::test::shell_quote(q) + " 88");
  REQUIRE(rc == 0);
  const auto lines = lines_of(out);
  // The solution's steps, each with its PRM score in [0, 1].
  const std::regex step_line(R"(^  (.*)    \[prm ([0-9.e-]+)\]$)");
  std::vector<std::string> steps;
  for (const auto& l : lines) {
    std::smatch m;
    if (!std::regex_match(l, m, step_line)) continue;
    steps.push_back(m[1]);
    const double s = std::stod(m[2]);
    CHECK(s >= 0.0);
    CHECK(s <= 1.0);
  }
  REQUIRE_FALSE(steps.empty());
  // Only the last step states an answer ("The answer is N", as the policy
  // was trained to end): the loop stopped at the answer step.
  const std::string marker = "The answer is ";
  for (size_t i = 0; i + 1 < steps.size(); ++i) CHECK(steps[i].find(marker) == std::string::npos);
  const auto at = steps.back().find(marker);
  REQUIRE(at != std::string::npos);
  const std::string stated = steps.back().substr(at + marker.size());
  // The printed answer is that step's, and the verdict agrees with the hand-computed gold.
  CHECK(std::find(lines.begin(), lines.end(), "answer: " + stated) != lines.end());
  const bool right = stated == "88";
  CHECK(std::find(lines.begin(), lines.end(), std::string("correct: ") + (right ? "yes" : "no")) != lines.end());
}

TEST_CASE("example next_token: five most likely next tokens, probabilities descending", "[examples]") {
  auto [rc, out] = stepverify::test::run_command(std::string(STEPVERIFY_EXAMPLE_NEXT) + " " + kModels +
                                                 "/policy 'Ana has 23 apples. How many apples does Ana have now?'");
  REQUIRE(rc == 0);
  const auto lines = lines_of(out);
  REQUIRE(lines.size() == 5);
  double prev = 1.0, sum = 0.0;
  for (const auto& l : lines) {
    const auto tab = l.rfind('\t');
    REQUIRE(tab != std::string::npos);
    const double p = std::stod(l.substr(tab + 1));
    CHECK(p <= prev + 1e-7);
    prev = p;
    sum += p;
  }
  CHECK(sum <= 1.0 + 1e-5);
  CHECK(sum > 0.0);
}
