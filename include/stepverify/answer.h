// stepverify/answer.h: final-answer extraction, answer equivalence, and
// selection (majority vote, weighted self-consistency, best-of-N).
//
//   stepverify::DefaultExtractor extract;                 // \boxed{}, ####, "answer is", ...
//   stepverify::MathEquivalence equiv;                    // canonical keys
//   auto a = extract.extract("... so the total is $\\boxed{\\dfrac{1}{2}}$.");  // "\\dfrac{1}{2}"
//   bool same = equiv.equal(*a, "0.5");                   // true: both are the rational 1/2
//   std::string key = equiv.canonical("x = 2\\sqrt{3}");   // "n:3.464101615e+00"
//   equiv.equal("x < 1", "-x > -1");                       // true: the half-line (-inf, 1)
//
//   std::vector<stepverify::Candidate> cands = {{"... \\boxed{4}", {}, 0.9, {}},
//                                               {"... \\boxed{4.0}", {}, 0.2, {}},
//                                               {"... \\boxed{5}", {}, 0.95, {}}};
//   auto sel = stepverify::select_answer(cands);          // majority "4", weighted "4" (1.1), best "5"
//
// Extraction and equivalence are extension points: implement AnswerExtractor
// or AnswerEquivalence (or give CustomEquivalence a rule) and pass a pointer
// in SelectionOptions, SearchOptions or BonOptions. Extraction rules, in
// order: ExtractOptions.
//
// Equivalence is an equivalence relation by construction: an
// AnswerEquivalence maps each answer to a canonical key (a pure function of
// the answer) and two answers are equal iff their keys are equal; `equal` is
// not overridable. Reflexivity, symmetry and transitivity follow from string
// equality, so grouping for votes never depends on candidate order.
//
// MathEquivalence key rules (see canonical()), in the order they apply:
//  * text: whitespace, \left/\right, \! \, \; \: \quad, ~, a doubled
//    backslash before a command (\\frac), \dfrac/\tfrac/\cfrac -> \frac,
//    shorthand arguments (\frac13, \frac3{3}, \frac94\pi, \sqrt2, \sqrt 2),
//    $ and \$, currency signs, % and \% and the words percent, percentage,
//    pct (a marker: 28% == 28, never 0.28), degrees (^\circ, ^{\circ},
//    \degree, the degree sign), \text{}/\mbox{}/\mathrm{}/\textbf{} wrappers,
//    a trailing unit (\text{ cm}^2, "miles", "dollars"; a short list of unit
//    words, never single letters), Unicode relation signs and the ASCII
//    <=, >=, !=, \lt, \gt, \leq, \geq, \neq;
//  * numbers: thousands separators 1,000 / 1{,}000 / 1\,000 / 40,\!000 and
//    spaced groups "1 000" (the first group 1 to 3 digits, the others exactly
//    3); "32, 349" is a list. A decimal comma when the whole answer is one
//    number D,D with two digits after the comma (2,74), or 0 before it
//    (0,111), or four or more digits before it (1000,99); the ambiguous
//    1,234 is one thousand two hundred thirty-four and 1,5 is the list 1, 5;
//  * values: an expression is parsed (fractions, roots \sqrt[n]{}, powers,
//    implicit multiplication, \cdot \times \div, !, \binom, |x|, \sin ...
//    \arctan, \ln, \log (natural), \log_b, \exp; \pi, e = 2.718..., i with
//    i^2 = -1; mixed numbers 1\frac{4}{5} and "7 3/4"; scientific 1.5e3) and
//    evaluated. A number's key is its value to 10 significant digits
//    (relative difference below about 5e-11, with the rounding boundary
//    between: 1/12 == 0.0833333333333333, \sqrt{17} == 4.123105625617661,
//    but 0.3333 != 1/3, 3.14 != \pi and 16386.16 != 16386.20 — a coarser
//    tolerance would merge distinct exact answers and a key must be one
//    value); an integer of more than 10 digits is compared exactly.
//    Complex values compare both parts. An expression with variables
//    (letters, Greek letters, subscripted names) is compared as a function:
//    its values at 4 fixed points, each variable taking a value in
//    [0.35, 1.65) hashed from its name, to 10 significant digits, so
//    (x^2-1)/(x-1) == x+1, \tan^2 y + 1 == \sec^2 y, and an expression
//    constant at the points is that constant. Letters are case-sensitive;
//    an expression holding a base numeral (204_5) is keyed by its exact form
//    (numerals are never converted to decimal); without
//    numbers (\infty, gcd, an opaque function) the exact polynomial form is
//    the key (polynomials with rational coefficients over symbols and square
//    roots, as before);
//  * relations (=, <, >, \le, \ge, \ne, \approx, \in), in this order:
//    trailing "\approx v" parts are dropped ("x = 1/3 \approx 0.33" is
//    x = 1/3); "v \in S" is S; "f(x) = E" is E; "v = c" or a chain
//    "a = b = c" ending in a number or a structure is that value; a
//    one-variable linear relation is its interval (x < 1 == -x > -1 ==
//    (-\infty, 1); x \ne 3 is a union); "a < x \le b" with constant ends is
//    (a, b]; any other relation L op R is keyed by the values of L - R at the
//    points, scaled by |L - R| at the first point, so an equation is the same
//    up to a non-zero factor (2x+4y-3=0 == y = -x/2 + 3/4) and an inequality
//    up to a positive one, its direction kept (x^2 < 4 != x^2 > 4);
//  * structures: tuples and intervals (a, b), [a, b), ... element by
//    element, order and bracket kinds significant, (-\infty, \infty) ==
//    \mathbb{R}; sets \{...\} and bare lists "1, -2" are unordered (a list of
//    solutions; Hendrycks and Qwen order lists), duplicates dropped, a
//    one-element set is its element; "a \pm b" is the set {a+b, a-b}, also
//    inside a set, with several signs correlated ("1 \pm 2 \mp 3" is
//    {1+2-3, 1-2+3}); " and " / " or " between values separate a list;
//    unions \cup unordered; matrices (pmatrix/bmatrix/array, also inside
//    brackets) cell by cell; "1, 2, 3, ..." keeps its ellipsis;
//  * multiple-choice letters: A..E, (C), \text{(C)}, \textbf{C} -> "c:C";
//  * word answers (only letters and spaces) compare case-insensitively;
//    so are no, yes, on, off, up, ok (which would otherwise read as products
//    of letters); anything else is keyed by its normalised text (its length
//    first, so no text can mimic a structured key).
//
// Bounded work: answers longer than kMaxStructuredAnswerBytes are keyed by
// their whitespace-normalised text only (linear time); expression nesting is
// capped at kMaxNesting, polynomials at kMaxTerms terms, integer powers of
// polynomials at |exponent| <= kMaxExponent (of numbers: 4096, within 128
// bits), expression trees at depth 4 * kMaxNesting, opaque symbol names at
// 4 KiB, square-root factoring at radicands <= 1e8, and each key
// computation at kMaxWork monomial products; numeric evaluation is linear in
// the expression per point. Extraction scans are linear and try at most 8
// \boxed occurrences and 8 math spans. Keys do not depend on the C locale.
// No regular expressions.
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
  /// When a "final answer is" / "final answer:" phrase (4) comes after the
  /// last box, the phrase wins ("our answer is correct" after a box does not).
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
