// Answer extraction and equivalence on arbitrary text. The input is a model
// output, then "\t", then a second answer. Checked: the keys are
// deterministic, equivalence is reflexive and symmetric, and an extracted
// answer is a substring-sized value (no blow-up). Time and memory are bounded
// by answer.h's limits (kMaxStructuredAnswerBytes, kMaxNesting, kMaxTerms,
// kMaxExponent, kMaxWork); make fuzz runs with -timeout=10 -rss_limit_mb=2048.
#include "fuzz_target.h"
#include "stepverify/answer.h"

STEPVERIFY_FUZZ_TARGET(answer) {
  const auto [text, other] = stepverify::fuzz::split2(input, "\t");
  const auto extracted = stepverify::extract_answer(text);
  if (extracted && extracted->size() > text.size() + 16) std::abort();
  const std::string a = extracted ? *extracted : std::string(text.substr(0, 256));
  const std::string b(other);
  const std::string ka = stepverify::canonical_answer(a), kb = stepverify::canonical_answer(b);
  if (stepverify::canonical_answer(a) != ka) std::abort();  // deterministic
  if (stepverify::answers_equal(a, b) != stepverify::answers_equal(b, a)) std::abort();
  if (!stepverify::answers_equal(b, b)) std::abort();
  if ((ka == kb) != stepverify::answers_equal(a, b)) std::abort();
}
