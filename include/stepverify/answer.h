// stepverify/answer.h: final-answer extraction, answer equivalence, and
// selection (majority vote, weighted self-consistency, best-of-N).
//
//   stepverify::DefaultExtractor extract;                 // \boxed{}, ####, "answer is", ...
//   stepverify::MathEquivalence equiv;                    // canonical keys
//   auto a = extract.extract("... so the total is $\\boxed{\\dfrac{1}{2}}$.");  // "\\dfrac{1}{2}"
//   bool same = equiv.equal(*a, "0.5");                   // true: both are the rational 1/2
//   std::string key = equiv.canonical("x = 2\\sqrt{3}");   // "e:2*r3"
//
//   std::vector<stepverify::Candidate> cands = {{"... \\boxed{4}", {}, 0.9, {}},
//                                               {"... \\boxed{4.0}", {}, 0.2, {}},
//                                               {"... \\boxed{5}", {}, 0.95, {}}};
//   auto sel = stepverify::select_answer(cands);          // majority "4", weighted "4" (1.1), best "5"
//
// Extraction and equivalence are extension points: implement AnswerExtractor
// or AnswerEquivalence and pass a pointer in SelectionOptions.
//
// Equivalence is an equivalence relation by construction: an
// AnswerEquivalence maps each answer to a canonical key (a pure function of
// the answer) and two answers are equal iff their keys are equal; `equal` is
// not overridable. Reflexivity, symmetry and transitivity follow from string
// equality, so grouping for votes never depends on candidate order.
//
// MathEquivalence key rules (see canonical()):
//  * text normalisation: whitespace, \left/\right, \! \, \; \: \quad, ~,
//    \dfrac/\tfrac/\cfrac -> \frac, \frac12 -> \frac{1}{2}, \sqrt2 -> \sqrt{2},
//    $ and \$, % and \% (a marker only: 10% == 10, never 0.1), degrees
//    (^\circ, ^{\circ}, \degree, °), \text{}/\mbox{}/\mathrm{}/\textbf{}
//    wrappers, a trailing unit (\text{ cm}^2, "inches", "dollars", ...; a short
//    list of unit words, never single letters), thousands separators (1,000,
//    1{,}000, 1\,000, 10,\!080; a bare-comma form only when it is the whole
//    answer), a leading "x =" / "x \in" with a one-letter variable;
//  * numbers and simple symbolic forms are evaluated exactly to a polynomial
//    with rational coefficients over symbols (letters, \pi, greek letters,
//    opaque functions such as \cot(x)) and square roots of square-free
//    integers: 0.5 == 1/2 == \frac{2}{4} == 50/100, 2\sqrt{3} == \sqrt{12},
//    \frac{1}{\sqrt3} == \frac{\sqrt3}{3}, 288\pi == \pi 288, 2^{10} == 1024,
//    mixed numbers 1\frac{4}{5} == \frac95 == 1 4/5, scientific 1.5e3 == 1500;
//    letters are plain commuting symbols (i^2 is not -1; base numerals such as
//    52_8 are symbols, not converted). Decimals are exact rationals, so
//    0.3333 != 1/3 and 3.14159 != \pi. Rationals are 128-bit; when a value
//    overflows, a purely numeric expression is evaluated in long double and
//    quantized to 10 significant digits (relative tolerance about 5e-10;
//    values on either side of a rounding boundary differ); otherwise the
//    normalised text is the key;
//  * tuples and intervals (a, b), [a, b), ... element by element, order and
//    bracket kinds significant; bare lists "1, 2" ordered; sets \{...\}
//    unordered (sorted, duplicates removed); unions \cup unordered;
//    matrices (pmatrix/bmatrix/array) cell by cell; equations "lhs = rhs"
//    as lhs - rhs scaled to leading coefficient 1; a \pm b as a pair;
//  * multiple-choice letters: A..E, (C), \text{(C)}, \textbf{C} -> "c:C";
//  * word answers (only letters and spaces) compare case-insensitively.
//
// Bounded work: answers longer than kMaxStructuredAnswerBytes are keyed by
// their whitespace-normalised text only (linear time); expression nesting is
// capped at kMaxNesting, polynomials at kMaxTerms terms, integer powers at
// |exponent| <= kMaxExponent, square-root factoring at radicands <= 1e10, and
// each key computation at kMaxWork monomial products. Extraction scans are
// linear and try at most 8 \boxed occurrences. No regular expressions.
//
// Thread safety: DefaultExtractor, MathEquivalence and StringEquivalence are
// stateless const objects and may be shared by threads. select_answer is
// thread-safe for distinct outputs. A user AnswerExtractor or AnswerEquivalence
// shared by threads must allow concurrent const calls.
#pragma once

#include "stepverify/export.h"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stepverify/aggregate.h"

namespace stepverify {

/// Turns a solution text into its final answer.
class STEPVERIFY_API AnswerExtractor {
 public:
  virtual ~AnswerExtractor() = default;
  /// The final answer in `text`, or nullopt when none is found.
  virtual std::optional<std::string> extract(std::string_view text) const = 0;
};

/// Which rules the default extractor tries, in this order (first hit wins).
/// "Reads as an answer" below means: once cleaned, MathEquivalence keys it
/// as a number, expression, relation or structure (not as plain text), or it
/// is at most three words.
struct STEPVERIFY_API ExtractOptions {
  /// 1. A text that is itself an answer (a gold string such as
  /// "$\frac{14}{3}$", "x > 5", "28 percent", "1 000") is taken whole, so
  /// it is never cut down to its last number. Texts over 512 bytes never are.
  bool whole = true;
  /// 2. The last \boxed{...} (brace-balanced), "\boxed x" without braces
  /// (up to the next $ or line end), else the last \fbox{...}; boxes just
  /// before it with only separators between ("\boxed{-2} and \boxed{1}",
  /// \quad, commas, $) join it as a list "-2, 1". Empty boxes are skipped.
  /// When an answer phrase (4) comes after the last box, the phrase wins.
  bool boxed = true;
  /// 3. GSM8K: the rest of the line after the last "####".
  bool gsm8k_hashes = true;
  /// 4. The sentence after the last "final answer is" / "final answer:"
  /// (case-insensitive, to the first ". " outside $...$ or the line end):
  /// whole when it reads as an answer, else its last math span or number
  /// (as in 6 and 7): "Final Answer: The largest $n$ is 34." -> "34".
  bool final_answer_is = true;
  /// 4. The same for "answer is" / "answer:" ("The answer is X").
  bool answer_is = true;
  /// 5. A final line "A: X" (GSM8K model solutions) or a PRM800K "# Answer" step.
  bool answer_line = true;
  /// 6. The last LaTeX math span ($$..$$, \[..\], and $..$ or \(..\) on
  /// one line) that reads as an answer, parsed whole ("$x \in [-2,7]$"),
  /// trying at most 8 from the end; a plain number after it wins (7).
  bool math_span = true;
  /// 7. The last number not glued to a word ("AZYUK2A" has none): thousands
  /// separators (1,000,000), a decimal comma (2,74: see MathEquivalence), a
  /// fraction 2/3, a sign.
  bool last_number = true;
};

/// The default chain of ExtractOptions. The result is cleaned: surrounding
/// whitespace, one leading ':', surrounding $...$, \(...\), \[...\], a whole
/// \text{...} wrapper, and trailing punctuation (. , ; ! /) are removed; an
/// answer that cleans to "" counts as not found.
class STEPVERIFY_API DefaultExtractor : public AnswerExtractor {
 public:
  explicit DefaultExtractor(ExtractOptions options = {}) : options_(options) {}
  std::optional<std::string> extract(std::string_view text) const override;
  const ExtractOptions& options() const { return options_; }

 private:
  ExtractOptions options_;
};

/// Groups answers. Implementations define `canonical`; two answers are equal
/// iff their canonical keys are equal, which makes `equal` an equivalence
/// relation whatever the key function is.
class STEPVERIFY_API AnswerEquivalence {
 public:
  virtual ~AnswerEquivalence() = default;
  /// A deterministic key of `answer`; equal keys mean equivalent answers.
  virtual std::string canonical(std::string_view answer) const = 0;
  /// canonical(a) == canonical(b).
  bool equal(std::string_view a, std::string_view b) const { return canonical(a) == canonical(b); }
};

/// Answers longer than this are keyed by normalised text only.
inline constexpr std::size_t kMaxStructuredAnswerBytes = 2048;
/// Deepest recursion of the expression parser (each bracket level costs about 3).
inline constexpr int kMaxNesting = 96;
/// Most terms of a polynomial key.
inline constexpr std::size_t kMaxTerms = 128;
/// Largest |integer exponent| expanded exactly.
inline constexpr int kMaxExponent = 64;
/// Most monomial products per key computation.
inline constexpr long kMaxWork = 200000;

/// The math-aware default equivalence (rules in the header comment).
class STEPVERIFY_API MathEquivalence : public AnswerEquivalence {
 public:
  std::string canonical(std::string_view answer) const override;
};

/// A user's rule for answers the built-in rules do not know (chemical
/// formulas, dates, code, a domain's units): `rule` maps an answer to its key,
/// or to nullopt to leave it to `fallback` (null: MathEquivalence). Keys
/// from the rule and from the fallback never collide ("u:" / "m:" prefixes),
/// so the relation stays an equivalence relation. Pass it wherever an
/// AnswerEquivalence is taken: SelectionOptions (voting, weighted
/// self-consistency, best-of-N), SearchOptions (search's final pick) and
/// BonOptions (evaluation). Thread-safe when `rule` may be called
/// concurrently.
class STEPVERIFY_API CustomEquivalence : public AnswerEquivalence {
 public:
  using Rule = std::function<std::optional<std::string>(std::string_view answer)>;
  explicit CustomEquivalence(Rule rule, const AnswerEquivalence* fallback = nullptr);
  std::string canonical(std::string_view answer) const override;

 private:
  Rule rule_;
  const AnswerEquivalence* fallback_;
};

/// Exact string equality after trimming surrounding whitespace.
class STEPVERIFY_API StringEquivalence : public AnswerEquivalence {
 public:
  std::string canonical(std::string_view answer) const override;
};

/// DefaultExtractor{}.extract(text).
STEPVERIFY_API std::optional<std::string> extract_answer(std::string_view text);
/// MathEquivalence{}.canonical(answer).
STEPVERIFY_API std::string canonical_answer(std::string_view answer);
/// MathEquivalence{}.equal(a, b).
STEPVERIFY_API bool answers_equal(std::string_view a, std::string_view b);

/// One sampled solution with its verifier score(s).
struct STEPVERIFY_API Candidate {
  /// The solution text; used when `answer` is not given.
  std::string text;
  /// The final answer, if already known (then `text` is not extracted).
  std::optional<std::string> answer;
  /// A solution-level score; takes precedence over `step_scores`.
  std::optional<double> score;
  /// Per-step scores, aggregated with SelectionOptions::aggregate.
  std::vector<double> step_scores;
};

/// Call-time options of select_answer.
struct STEPVERIFY_API SelectionOptions {
  /// Aggregate of step_scores when a candidate has no `score`.
  Aggregate aggregate = Aggregate::Last;
  /// Extractor for candidates without `answer`; null: DefaultExtractor.
  const AnswerExtractor* extractor = nullptr;
  /// Equivalence used for grouping; null: MathEquivalence.
  const AnswerEquivalence* equivalence = nullptr;
};

/// One equivalence class of answers.
struct STEPVERIFY_API AnswerGroup {
  /// The canonical key of the class.
  std::string key;
  /// The answer of the class's first member (as extracted or given).
  std::string answer;
  /// Indices of the member candidates, in input order.
  std::vector<std::size_t> members;
  /// Sum of the finite scores of the members.
  double weight = 0.0;
};

/// The three selections over one candidate list.
///
/// Rules (also the tie-breaking):
///  * a candidate whose answer is missing (not given, not extractable) joins
///    no group; a candidate score is `score`, else the aggregate of
///    `step_scores`, else missing (NaN); non-finite scores count as missing;
///  * groups are listed in order of their first member;
///  * majority: the group with the most members; ties -> the group whose
///    first member comes first;
///  * weighted: the group with the largest sum of finite member scores, among
///    groups with at least one finite score (sums in candidate order); ties ->
///    first group;
///  * best: the candidate with the highest finite score (ties -> the first);
///    its answer, which is nullopt when that candidate has none;
///  * a selection with nothing to choose from is nullopt (index -1).
struct STEPVERIFY_API Selection {
  std::optional<std::string> majority;
  std::optional<std::string> weighted;
  std::optional<std::string> best;
  /// Index into `groups` of the majority / weighted class (-1: none).
  long majority_group = -1;
  long weighted_group = -1;
  /// Index of the best candidate (-1: none).
  long best_index = -1;
  /// The classes, in order of first member.
  std::vector<AnswerGroup> groups;
  /// Per candidate: its answer (nullopt when missing) and score (NaN when missing).
  std::vector<std::optional<std::string>> answers;
  std::vector<double> scores;
};

/// Majority vote, weighted self-consistency and best-of-N over `candidates`.
STEPVERIFY_API Selection select_answer(const std::vector<Candidate>& candidates, const SelectionOptions& options = {});

}  // namespace stepverify
