// Answer extraction, equivalence (a table, properties, adversarial inputs,
// MATH-500 and GSM8K data) and selection. Tags: [answer]; [data] also reads
// ../shared/data (skipped with a WARN when absent).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "stepverify/answer.h"
#include "stepverify/errors.h"
#include "test_support.h"

namespace {

using stepverify::answers_equal;
using stepverify::canonical_answer;
using stepverify::extract_answer;

// Reads a JSONL file, or returns false (with a WARN) when absent.
bool read_jsonl(const std::filesystem::path& p, std::vector<nlohmann::json>& out) {
  std::ifstream in(p);
  if (!in) {
    stepverify::test::missing_input(p.string() + " is absent");
    return false;
  }
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Pair {
  const char* a;
  const char* b;
  bool equal;
  const char* why;
};

// Written from the graders' documented behaviour (shared/notes/answer-equivalence.md);
// where the graders disagree the library's rule (answer.h) decides, noted in `why`.
const std::vector<Pair> kTable = {
    // Hendrycks MATH is_equiv unit tests
    {"\\tfrac{1}{2} +\\! \\frac1{72}", "\\\\dfrac{1}{2} +\\frac{1}{72}", true,
     "hendrycks: tfrac/dfrac, \\!, doubled backslash"},
    {"10\\text{ units}", "10 ", true, "hendrycks: unit text"},
    {"10\\text{ units}", "100 ", false, "hendrycks"},
    {"10", "\\$10", true, "hendrycks: dollar"},
    {"\\left(x-2\\right)\\left(x+2\\right)", "(x-2)(x+2)", true, "hendrycks: left/right"},
    {"0.1", ".1", true, "hendrycks: leading dot"},
    {"10\\%", "10", true, "hendrycks/prm800k/qwen: percent sign is a marker"},
    {"10\\sqrt{3} + \\sqrt4", "10\\sqrt3 + \\sqrt{4}", true, "hendrycks: sqrt shorthand"},
    {"\\frac34i", "\\frac{3}{4}i", true, "hendrycks: frac shorthand"},
    {"\\tfrac83", "\\frac{8}{3}", true, "hendrycks"},
    {"1/2", "\\frac{1}{2}", true, "hendrycks: a/b"},
    {"10, 4, -2", "4, 10, -2", true, "a bare list is the set of solutions (hendrycks orders it; we do not)"},
    {"10, 4, 2", "4, 12, 2", false, "hendrycks"},
    {"0.1, 4, 2", "4, .1, 2", true, "unordered list, values compared (hendrycks says no)"},
    {"5x - 7y + 11z + 4 = 0", "x + y - z + 2 = 0", false, "hendrycks: different planes"},
    {"\\tfrac{1}{2} + \\frac1{72}", "\\\\frac{1}{2} + 2/3", false, "hendrycks"},
    // numbers
    {"0.5", "\\frac{1}{2}", true, "exact rational"},
    {"0.50", "0.5", true, "trailing zeros (hendrycks would say no)"},
    {"2/4", "1/2", true, "unreduced fraction (prm800k plain-fraction rule says no; we compare values)"},
    {"\\frac{2}{4}", "0.5", true, "exact rational"},
    {"1,000", "1000", true, "thousands separator"},
    {"1{,}000", "1000", true, "LaTeX thousands separator"},
    {"40,\\!000", "40000", true, "thin-space thousands separator"},
    {"1\\,000", "1000", true, "thin-space thousands separator"},
    {"11,\\! 111,\\! 111,\\! 100", "11111111100", true, "MATH-500 style"},
    {"58,500", "58500", true, "bare thousands separator, whole answer"},
    {"007", "7", true, "leading zeros"},
    {"+5", "5", true, "plus sign"},
    {"5.0", "5", true, "integral decimal"},
    {"18.00", "18", true, "qwen trailing zeros"},
    {"-\\frac{1}{2}", "\\frac{-1}{2}", true, "sign placement"},
    {"-\\frac12", "-0.5", true, "shorthand and decimal"},
    {"\\dfrac{33}{100}", "0.33", true, "dfrac vs decimal"},
    {".0000672", "6.72\\times10^{-5}", true, "scientific notation"},
    {"1.5e3", "1500", true, "scientific literal"},
    {"1e3", "3e", false, "scientific literal is not a product with e"},
    {"2^{10}", "1024", true, "powers evaluate (prm800k integer rule says no)"},
    {"10", "0.1", false, "qwen percentage leniency is not an equivalence"},
    {"10", "1000", false, "qwen percentage leniency"},
    {"0.1", "1000", false, "qwen percentage leniency"},
    {"100.01", "100", false, "no relative tolerance on exact numbers"},
    {"3.1416", "3.14159", false, "no tolerance (prm800k)"},
    {"0.3333", "\\frac{1}{3}", false, "decimal is exact (prm800k)"},
    {"3.14159", "\\pi", false, "pi is symbolic (prm800k)"},
    {"123", "1,2,3", false, "qwen comma deletion is not used"},
    {"50\\%", "0.5", false, "percent is a marker, not /100"},
    {"1.5", "1.50", true, "trailing zero after the point"},
    {"1.5", "15", false, "decimal point matters"},
    {"-3", "3", false, "sign"},
    {"1\\frac{4}{5}", "\\frac{9}{5}", true, "mixed number"},
    {"137 \\frac{1}{2}", "275/2", true, "mixed number with a space"},
    {"7 3/4", "\\frac{31}{4}", true, "prm800k mixed number"},
    {"1 1/2", "11/2", false, "qwen space deletion is not used"},
    {"\\frac{270}7\\text{ degrees}", "\\frac{270}{7}", true, "shorthand second argument and unit"},
    {"\\frac 59", "\\frac{5}{9}", true, "shorthand with a space"},
    {"\\frac9{19}", "\\frac{9}{19}", true, "shorthand first argument"},
    {"10^{50}", "100000000000000000000000000000000000000000000000000", true, "overflow: quantized float key"},
    {"10^{50}", "1.0000001\\times10^{50}", false, "quantization keeps 10 significant digits"},
    // degrees, units, money
    {"90^\\circ", "90", true, "degree sign"},
    {"90^{\\circ}", "90", true, "braced degree sign"},
    {"90", "\\frac{\\pi}{2}", false, "degrees are never converted"},
    {"5.4 \\text{ cents}", "5.4", true, "unit text"},
    {"864 \\mbox{ inches}^2", "864", true, "mbox unit with square"},
    {"15\\mbox{ cm}^2", "15", true, "mbox unit"},
    {"12 inches", "12", true, "unit word"},
    {"30 square units", "30", true, "two unit words"},
    {"\\$18.90", "18.9", true, "money"},
    {"\\$32,\\!348", "32348", true, "money with separator"},
    // radicals, pi, symbolic
    {"2\\sqrt{3}", "\\sqrt{12}", true, "radical simplification"},
    {"3\\sqrt{13}", "\\sqrt{117}", true, "radical simplification"},
    {"\\frac{1}{\\sqrt3}", "\\frac{\\sqrt{3}}{3}", true, "rationalised denominator"},
    {"\\sqrt{2}\\sqrt{3}", "\\sqrt6", true, "product of radicals"},
    {"\\sqrt[3]{8}", "2", true, "exact cube root"},
    {"2\\sqrt{3}", "3\\sqrt{2}", false, "different radicals"},
    {"\\sqrt{2}", "1.41421356", false, "no tolerance"},
    {"288 \\pi", "288\\pi", true, "space"},
    {"\\pi r^2", "r^2\\pi", true, "commutative product"},
    {"\\frac{20000}{\\pi}", "20000\\pi^{-1}", true, "division by pi"},
    {"2\\pi", "\\pi", false, "multiple of pi"},
    {"18+2\\pi", "2\\pi+18", true, "commutative sum"},
    {"p - q", "-q+p", true, "commutative sum"},
    {"(a+5)(b+2)", "ab+2a+5b+10", true, "expanded product"},
    {"2k+2", "2(k+1)", true, "distributivity"},
    {"2k+2", "2k+1", false, "different constant"},
    {"x^5 - x^4 + x^3 - x^2 + x - 1", "-1+x-x^2+x^3-x^4+x^5", true, "polynomial order"},
    {"6 - 5i", "6-5i", true, "complex number"},
    {"6 - 5i", "6+5i", false, "conjugate"},
    {"\\cot x", "\\cot(x)", true, "function argument forms"},
    {"\\sin^2 x", "(\\sin x)^2", true, "function power"},
    {"3!", "6", true, "factorial"},
    {"\\binom{5}{2}", "10", true, "binomial"},
    {"\\dbinom{5}{2}", "\\binom52", true, "binomial forms"},
    {"|-3|", "3", true, "absolute value"},
    {"52_8", "52_{8}", true, "base subscript"},
    {"52_8", "42", false, "base numerals are not converted"},
    {"1 \\pm \\sqrt{19}", "1\\pm\\sqrt{19}", true, "plus-minus"},
    {"1 \\pm \\sqrt{19}", "1 \\mp \\sqrt{19}", true, "plus-minus and minus-plus name the same two roots"},
    // equations and leading variables
    {"x=5", "5", true, "leading variable (hendrycks rule 11)"},
    {"k = 3", "3", true, "leading variable"},
    {"y = 2x + 3", "2x+3", false, "a line, not a value: y = 2x+3 is the equation 2x - y + 3 = 0"},
    {"x \\in [-2,7]", "[-2,7]", true, "leading membership"},
    {"5x - 7y + 11z + 4 = 0", "-10x+14y-22z-8=0", true, "equations up to a scale factor"},
    {"y-2x=1", "y-21", false, "qwen x= deletion is not used"},
    {"x+y=1", "x+y=2", false, "different equations"},
    // tuples, intervals, sets, matrices
    {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac\\pi2)", true, "tuple"},
    {"(1,2)", "(2,1)", false, "tuples are ordered"},
    {"(1,2)", "[1,2)", false, "bracket kinds matter (prm800k; qwen ignores them)"},
    {"(3,4]", "(3, 4]", true, "interval spacing"},
    {"(3,4]", "(3,4)", false, "closed vs open end"},
    {"(2,\\infty)", "(2, \\infty)", true, "infinite interval"},
    {"(-\\infty, 0]", "(-\\infty,0]", true, "infinite interval"},
    {"(-\\infty,\\infty)", "\\mathbb{R}", true, "all reals (qwen)"},
    {"(-\\infty, 2) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)", true, "union is unordered"},
    {"(0,9) \\cup (9,36)", "(0,9) \\cup (9,37)", false, "union elements"},
    {"\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]", "[\\pi^2/8, 5\\pi^2/4]", true, "closed interval"},
    {"\\{1,2\\}", "\\{2,1\\}", true, "sets are unordered"},
    {"\\{1,2\\}", "\\{1,2,2\\}", true, "sets drop duplicates"},
    {"\\{1,2\\}", "(1,2)", false, "set vs tuple"},
    {"\\{1\\pm\\sqrt{5},-2\\}", "\\{-2, 1\\pm\\sqrt5\\}", true, "set of plus-minus"},
    {"1,-2", "1, -2", true, "bare list"},
    {"1,-2", "-2,1", true, "bare lists are unordered (hendrycks would say no)"},
    {"(1,000)", "(1000)", false, "no bare thousands separator inside tuples"},
    {"\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
     "\\begin{pmatrix}-\\frac13\\\\\\frac23\\\\\\frac53\\end{pmatrix}", true, "column vector"},
    {"\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{bmatrix}-1&0\\\\0&-1\\end{bmatrix}", true,
     "pmatrix vs bmatrix"},
    {"\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & 1 \\end{pmatrix}", false,
     "matrix entry"},
    {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1,2)", false, "vector vs tuple"},
    // letters, words, text
    {"\\text{(C)}", "C", true, "multiple-choice letter"},
    {"(C)", "\\textbf{(C)}", true, "multiple-choice letter"},
    {"(C)", "(D)", false, "different letters"},
    {"\\text{Evelyn}", "Evelyn", true, "text wrapper"},
    {"\\text{east}", "East", true, "words compare case-insensitively"},
    {"\\text{east}", "west", false, "different words"},
    {"east", "seat", false, "words are not products of letters"},
    {"\\text{even}", "\\text{odd}", false, "different words"},
    {"x", "X", false, "letters in expressions are case-sensitive"},
    {"\\emptyset", "\\varnothing", true, "empty set"},
    {"\\emptyset", "\\{\\}", true, "empty set"},
    {"x \\le 3", "x\\leq 3", true, "inequality normalised text"},
    {"x < 3", "x \\le 3", false, "strict vs non-strict"},
    {"\\boxed{5}", "5", true, "a stray box"},
};

}  // namespace

TEST_CASE("answer equivalence table (graders' documented behaviour)", "[answer]") {
  REQUIRE(kTable.size() >= 100);
  size_t equal_rows = 0;
  for (const Pair& p : kTable) {
    INFO(p.a << "  vs  " << p.b << "  (" << p.why << ")\n  keys: " << canonical_answer(p.a) << "  |  "
             << canonical_answer(p.b));
    CHECK(answers_equal(p.a, p.b) == p.equal);
    CHECK(answers_equal(p.b, p.a) == p.equal);  // symmetry
    CHECK(answers_equal(p.a, p.a));             // reflexivity
    equal_rows += p.equal;
  }
  // Both kinds are well represented.
  CHECK(equal_rows >= 40);
  CHECK(kTable.size() - equal_rows >= 40);
}

TEST_CASE("equivalence is reflexive, symmetric and transitive on generated answers", "[answer]") {
  // Each generated answer knows its exact value (p/q), so the relation is also
  // checked for soundness and completeness on these forms.
  std::mt19937 rng(20240521);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Gen {
    std::string text;
    long p, q;  // value p/q (reduced, q > 0); q == 0: a non-rational form (pi multiple), value p*pi
  };
  auto reduce = [](long p, long q) {
    long a = std::labs(p), b = q;
    while (b) {
      const long t = a % b;
      a = b;
      b = t;
    }
    return std::pair<long, long>{p / (a ? a : 1), q / (a ? a : 1)};
  };
  std::vector<Gen> gens;
  for (int n = 0; n < 160; ++n) {
    const long q = std::vector<long>{1, 2, 4, 5, 10}[static_cast<size_t>(pick(0, 4))];
    const long p = pick(-12, 12);
    const auto [rp, rq] = reduce(p, q);
    const int form = pick(0, 9);
    std::string t;
    const std::string sp = std::to_string(p), sq = std::to_string(q);
    switch (form) {
      case 0:
        t = "\\frac{" + sp + "}{" + sq + "}";
        break;
      case 1:
        t = sp + "/" + sq;
        break;
      case 2:
        t = "\\dfrac{" + sp + "}{" + sq + "}";
        break;
      case 3: {  // decimal (all q divide 100)
        const double v = static_cast<double>(p) / static_cast<double>(q);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", v);
        t = buf;
        break;
      }
      case 4:
        t = "$" + std::string(p < 0 ? "-" : "") + "\\frac{" + std::to_string(std::labs(p)) + "}{" + sq + "}$";
        break;
      case 5:
        t = "x = " + sp + "/" + sq;
        break;
      case 6:
        t = "\\left(" + sp + "\\right)/" + sq;
        break;
      case 7:
        t = "\\frac{" + std::to_string(2 * p) + "}{" + std::to_string(2 * q) + "}";
        break;
      case 8:
        t = "\\frac{" + sp + "\\pi}{" + sq + "}";
        break;
      default:
        t = sp + " \\div " + sq;
        break;
    }
    if (form == 8) {
      gens.push_back({t, rp, rq == 1 && rp == 0 ? 1 : -rq});  // value (p/q) * pi, encoded with negative q
    } else {
      gens.push_back({t, rp, rq});
    }
  }
  const size_t n = gens.size();
  std::vector<std::vector<char>> eq(n, std::vector<char>(n));
  const stepverify::MathEquivalence equiv;
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      eq[i][j] = equiv.equal(gens[i].text, gens[j].text);
      const bool same_value = gens[i].p == gens[j].p && gens[i].q == gens[j].q;
      if (static_cast<bool>(eq[i][j]) != same_value) {
        ++mismatches;
        INFO(gens[i].text << " vs " << gens[j].text);
        CHECK(static_cast<bool>(eq[i][j]) == same_value);
      }
    }
  CHECK(mismatches == 0);
  size_t violations = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!eq[i][i]) ++violations;
    for (size_t j = 0; j < n; ++j) {
      if (eq[i][j] != eq[j][i]) ++violations;
      if (!eq[i][j]) continue;
      for (size_t k = 0; k < n; ++k)
        if (eq[j][k] && !eq[i][k]) ++violations;
    }
  }
  CHECK(violations == 0);
}

TEST_CASE("extraction rules", "[answer]") {
  CHECK(extract_answer("so $x = \\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}");
  CHECK(extract_answer("first \\boxed{1} then \\boxed{\\{1, 2\\}}") == "\\{1, 2\\}");
  CHECK(extract_answer("nested \\boxed{\\frac{\\sqrt{3}}{2}} end") == "\\frac{\\sqrt{3}}{2}");
  CHECK(extract_answer("the result is $\\boxed 5$") == "5");
  CHECK(extract_answer("\\fbox{42}") == "42");
  CHECK(extract_answer("\\boxed{7} and later \\boxed{8") == "7");  // an unclosed last box is skipped
  CHECK(!extract_answer("\\boxed{} \\boxed{ }").has_value());      // empty boxes are skipped
  CHECK(extract_answer("\\boxed{\\text{(C)}}") == "(C)");
  CHECK(extract_answer("Total 9 + 9 = 18\n#### 18") == "18");
  CHECK(extract_answer("#### 1,000") == "1,000");
  CHECK(extract_answer("Final Answer: The final answer is $7$. I hope it is correct.") == "7");
  CHECK(extract_answer("Thus the answer is 42.") == "42");
  CHECK(extract_answer("The answer is $\\frac{3}{4}$. It follows that 5 > 3.") == "\\frac{3}{4}");
  CHECK(extract_answer("The answer is: 12") == "12");
  CHECK(extract_answer("She makes 9 * 2 = $18\nA: 18") == "18");
  CHECK(extract_answer("step one\n\n# Answer\n\n5") == "5");
  CHECK(extract_answer("we get -3.5 in the end") == "-3.5");
  CHECK(extract_answer("costs 1,234,567 dollars") == "1234567");
  CHECK(extract_answer("value .5") == ".5");
  CHECK(extract_answer("no numbers here") == std::nullopt);
  CHECK(extract_answer("") == std::nullopt);
  CHECK(extract_answer("\\boxed{5}\xD0\xBA\xD0\xB8") == "5");  // PRM step tag
  CHECK(extract_answer("answer is \\text{Evelyn}.") == "Evelyn");

  // Options switch rules off.
  stepverify::ExtractOptions o;
  o.last_number = false;
  CHECK(stepverify::DefaultExtractor(o).extract("we get 5") == std::nullopt);
  o.boxed = false;
  CHECK(stepverify::DefaultExtractor(o).extract("\\boxed{5}\n#### 6") == "6");
}

TEST_CASE("adversarial inputs finish fast", "[answer]") {
  const stepverify::MathEquivalence eq;
  const stepverify::DefaultExtractor ex;
  std::vector<std::string> inputs = {
      std::string(1 << 20, '{'),
      std::string(1 << 20, '}'),
      std::string(1 << 20, '('),
      std::string(1 << 20, '9'),
      std::string(2000, '('),
      std::string(2000, '-') + "1",
      std::string(2000, '{') + "1" + std::string(2000, '}'),
      "(a+b+c+d+e+f+g+h)^{64}",
      "(a+b+c+d+e+f+g+h)^{16}(a+b+c+d+e+f+g+h)^{16}",
      "2^{2^{2^{2^{2^{2}}}}}",
      "10^{10^{10}}",
      "\\sqrt{99999999999999999999999999}",
      "\\sqrt{9999999967}",
      "33!+34!",
      "\\binom{1000000}{500000}",
      std::string(2000, '!').insert(0, "x"),  // a left-deep chain of factorials
      "\\sqrt{9999999967}+\\sqrt{9999999967}+\\sqrt{9999999967}+\\sqrt{9999999967}+\\sqrt{9999999967}",
  };
  {
    std::string pm = "1";  // 60 correlated signs: two variants, not 2^60
    for (int i = 0; i < 60; ++i) pm += i % 2 ? "\\mp 1" : "\\pm 1";
    inputs.push_back(pm);
    std::string nest = "x";  // opaque names nesting their arguments' keys
    for (int i = 0; i < 8; ++i) nest = "(\\sin(" + nest + ")+1)^{16}";
    inputs.push_back(nest);
    std::string opens;  // openers without closers: each searched once
    for (int i = 0; i < 100000; ++i) opens += "\\(";
    inputs.push_back(opens);
    std::string lines;  // inline openers whose only closer is far away, lines apart
    for (int i = 0; i < 50000; ++i) lines += "\\(a\n";
    inputs.push_back(lines + "\\)");
  }
  std::string nested_sqrt;
  for (int i = 0; i < 300; ++i) nested_sqrt += "\\sqrt{";
  nested_sqrt += "2" + std::string(300, '}');
  inputs.push_back(nested_sqrt);
  std::string boxes;
  for (int i = 0; i < 100000; ++i) boxes += "\\boxed{";
  inputs.push_back(boxes);
  std::string sums;
  while (sums.size() < (1 << 20)) sums += "1+\\frac{1}{2}";
  inputs.push_back(sums);
  inputs.push_back(sums.substr(0, 2000));
  std::string frac_chain;
  for (int i = 0; i < 200; ++i) frac_chain += "\\frac{1}{1+";
  frac_chain += "x" + std::string(200, '}') + std::string(200, '}');
  inputs.push_back(frac_chain);
  std::string long_text(1 << 20, 'a');
  long_text += " the answer is ";
  long_text += std::string(1 << 19, '7');
  inputs.push_back(long_text);

  for (const std::string& s : inputs) {
    INFO("input of " << s.size() << " bytes starting " << s.substr(0, 40));
    const auto t0 = std::chrono::steady_clock::now();
    const std::string key = eq.canonical(s);
    const auto got = ex.extract(s);
    CHECK(eq.equal(s, s));
    const double secs = seconds_since(t0);
    CHECK(secs < 2.0);  // generous for -O0 and sanitizers; typically a few ms
    (void)key;
    (void)got;
  }
}

TEST_CASE("selection: majority, weighted, best-of-N and tie-breaking", "[answer]") {
  using stepverify::Candidate;
  using stepverify::select_answer;

  SECTION("weighted differs from majority and from best") {
    std::vector<Candidate> c = {{"... \\boxed{4}", {}, 0.3, {}},
                                {"... \\boxed{4.0}", {}, 0.3, {}},
                                {"... \\boxed{5}", {}, 0.55, {}},
                                {"... \\boxed{\\frac{10}{2}}", {}, 0.2, {}},
                                {"... \\boxed{4}", {}, 0.1, {}}};
    auto s = select_answer(c);
    CHECK(s.majority == "4");  // 3 votes
    CHECK(s.weighted == "5");  // 0.75 > 0.7
    CHECK(s.best == "5");
    CHECK(s.best_index == 2);
    REQUIRE(s.groups.size() == 2);
    CHECK(s.groups[0].members == std::vector<size_t>{0, 1, 4});
    CHECK(s.groups[1].answer == "5");  // the first member's answer
    CHECK(s.groups[1].weight == Approx(0.75).epsilon(1e-12));
  }
  SECTION("ties go to the first occurrence") {
    std::vector<Candidate> c = {{"", "7", 0.5, {}}, {"", "8", 0.5, {}}, {"", "8", 0.0, {}}, {"", "7", 0.0, {}}};
    auto s = select_answer(c);
    CHECK(s.majority == "7");  // 2 vs 2: group of "7" starts first
    CHECK(s.weighted == "7");  // 0.5 vs 0.5
    CHECK(s.best == "7");      // 0.5 twice: candidate 0
    CHECK(s.best_index == 0);
  }
  SECTION("step scores are aggregated") {
    std::vector<Candidate> c = {{"", "1", {}, {0.9, 0.2}}, {"", "2", {}, {0.5, 0.6}}, {"", "3", {}, {0.3, 0.9}}};
    stepverify::SelectionOptions o;
    o.aggregate = stepverify::Aggregate::Last;
    CHECK(select_answer(c, o).best == "3");
    o.aggregate = stepverify::Aggregate::Min;
    CHECK(select_answer(c, o).best == "2");
    o.aggregate = stepverify::Aggregate::Product;
    CHECK(select_answer(c, o).best == "2");  // 0.18, 0.30, 0.27
    o.aggregate = stepverify::Aggregate::Mean;
    CHECK(select_answer(c, o).best == "3");                             // 0.55, 0.55, 0.6
    CHECK(select_answer({{"", "1", 0.1, {0.9}}}, o).scores[0] == 0.1);  // score wins over step scores
  }
  SECTION("missing answers and scores") {
    std::vector<Candidate> c = {{"no number", {}, 0.99, {}}, {"", "3", {}, {}}, {"", "3", {}, {}}, {"", "4", 0.1, {}}};
    auto s = select_answer(c);
    CHECK(s.majority == "3");
    CHECK(s.weighted == "4");       // the only class with a score
    CHECK(s.best == std::nullopt);  // the top-scored candidate has no answer
    CHECK(s.best_index == 0);
    CHECK(std::isnan(s.scores[1]));
    auto empty = select_answer({});
    CHECK(!empty.majority);
    CHECK(!empty.weighted);
    CHECK(!empty.best);
    CHECK(empty.majority_group == -1);
  }
  SECTION("pluggable extractor and equivalence") {
    struct LastWord : stepverify::AnswerExtractor {
      std::optional<std::string> extract(std::string_view t) const override {
        const size_t p = t.rfind(' ');
        return std::string(p == std::string_view::npos ? t : t.substr(p + 1));
      }
    };
    const LastWord lw;
    const stepverify::StringEquivalence str;
    stepverify::SelectionOptions o;
    o.extractor = &lw;
    o.equivalence = &str;
    std::vector<Candidate> c = {{"is 0.5", {}, 1.0, {}}, {"is 1/2", {}, 1.0, {}}, {"is 1/2", {}, 1.0, {}}};
    auto s = select_answer(c, o);
    CHECK(s.groups.size() == 2);  // string equality: 0.5 and 1/2 differ
    CHECK(s.majority == "1/2");
    o.equivalence = nullptr;  // math equivalence: one class
    CHECK(select_answer(c, o).groups.size() == 1);
  }
  SECTION("aggregate names") {
    CHECK(stepverify::parse_aggregate("prod") == stepverify::Aggregate::Product);
    CHECK(stepverify::parse_aggregate("product") == stepverify::Aggregate::Product);
    CHECK_THROWS_AS(stepverify::parse_aggregate("maximum"), stepverify::ConfigError);
    CHECK(std::isnan(stepverify::aggregate({}, stepverify::Aggregate::Min)));
    for (const char* name : {"min", "max", "prod", "mean", "last", "geomean"})
      CHECK(std::string(stepverify::aggregate_name(stepverify::parse_aggregate(name))) == name);
    // By hand: 0.9, 0.5, 0.8 -> max 0.9, mean 2.2/3, product 0.36, geometric mean 0.36^(1/3).
    const std::vector<double> s = {0.9, 0.5, 0.8};
    CHECK(stepverify::aggregate(s, stepverify::Aggregate::Max) == Approx(0.9));
    CHECK(stepverify::aggregate(s, stepverify::Aggregate::Mean) == Approx(2.2 / 3));
    CHECK(stepverify::aggregate(s, stepverify::Aggregate::Product) == Approx(0.36));
    CHECK(stepverify::aggregate(s, stepverify::Aggregate::GeometricMean) == Approx(0.7113786608980126));
  }
}

TEST_CASE("MATH-500: the answer extracted from each reference solution equals its answer", "[answer][data]") {
  std::vector<nlohmann::json> rows;
  if (!read_jsonl(stepverify::test::data_dir() / "math500" / "test500.jsonl", rows)) return;
  REQUIRE(rows.size() == 500);
  size_t ok = 0;
  for (const auto& r : rows) {
    const auto got = extract_answer(r["solution"].get<std::string>());
    const std::string gold = r["answer"].get<std::string>();
    if (got && answers_equal(*got, gold))
      ++ok;
    else
      WARN("MATH-500 " << r.value("unique_id", "") << ": gold " << gold << ", extracted " << got.value_or("<none>"));
  }
  const double rate = static_cast<double>(ok) / static_cast<double>(rows.size());
  WARN("MATH-500 extraction+equivalence rate: " << ok << "/" << rows.size() << " = " << rate);
  CHECK(rate >= 0.99);
}

TEST_CASE("GSM8K: every test answer yields its #### N", "[answer][data]") {
  std::vector<nlohmann::json> rows;
  if (!read_jsonl(stepverify::test::data_dir() / "gsm8k" / "test.jsonl", rows)) return;
  REQUIRE(rows.size() == 1319);
  size_t ok = 0;
  for (const auto& r : rows) {
    const std::string text = r["answer"].get<std::string>();
    std::string want = text.substr(text.rfind("####") + 4);
    want = want.substr(want.find_first_not_of(' '));
    const auto got = extract_answer(text);
    if (got == want)
      ++ok;
    else
      FAIL_CHECK("GSM8K: want " << want << ", extracted " << got.value_or("<none>"));
  }
  INFO("GSM8K #### extraction: " << ok << "/" << rows.size());
  CHECK(ok == rows.size());
}

TEST_CASE("GSM8K example model solutions: our grading agrees with is_correct", "[answer][data]") {
  std::vector<nlohmann::json> tests, sols;
  if (!read_jsonl(stepverify::test::data_dir() / "gsm8k" / "test.jsonl", tests)) return;
  if (!read_jsonl(stepverify::test::data_dir() / "gsm8k" / "example_model_solutions.jsonl", sols)) return;
  REQUIRE(tests.size() == sols.size());
  size_t agree = 0, total = 0, gt_ok = 0;
  for (size_t i = 0; i < sols.size(); ++i) {
    const std::string t = tests[i]["answer"].get<std::string>();
    const std::string gold = t.substr(t.rfind("####") + 4);
    const auto gt = extract_answer(sols[i]["ground_truth"].get<std::string>());  // ends "A: <answer>"
    gt_ok += gt && answers_equal(*gt, gold);
    for (const char* model : {"6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"}) {
      const auto& m = sols[i][model];
      const auto got = extract_answer(m["solution"].get<std::string>());
      const bool ours = got && answers_equal(*got, gold);
      agree += ours == m["is_correct"].get<bool>();
      ++total;
    }
  }
  CHECK(gt_ok == sols.size());
  const double rate = static_cast<double>(agree) / static_cast<double>(total);
  WARN("GSM8K example solutions: agreement with is_correct " << agree << "/" << total << " = " << rate);
  CHECK(rate >= 0.99);
}
