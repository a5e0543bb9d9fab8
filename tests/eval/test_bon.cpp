// Best-of-N evaluation: curves on constructed candidate sets whose values are
// derived by hand (in the comments), AUROC and ECE on hand-computed cases,
// subsampling against exhaustive enumeration, the input parser, and the reports.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stepverify/eval/bon.h"
#include "test_support.h"
#include "stepverify/errors.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {

BonCandidate cand(const std::string& answer, std::optional<double> score, std::vector<double> steps = {},
                  std::vector<int> labels = {}) {
  BonCandidate c;
  c.candidate.answer = answer;
  c.candidate.score = score;
  c.candidate.step_scores = std::move(steps);
  c.step_labels = std::move(labels);
  return c;
}

const BonCurve& curve(const BonResult& r, const std::string& method) {
  for (const auto& c : r.curves)
    if (c.method == method) return c;
  FAIL("no curve " << method);
  throw;
}

std::vector<std::string> methods_of(const BonResult& r) {
  std::vector<std::string> out;
  for (const auto& c : r.curves) out.push_back(c.method);
  return out;
}

void check_curve(const BonResult& r, const std::string& method, const std::vector<double>& expected) {
  INFO("method " << method);
  const auto& got = curve(r, method).accuracy;
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("N = " << r.n[i]);
    CHECK(got[i] == Approx(expected[i]).margin(1e-12));  // exact enumeration: only rounding
  }
}

// Problem A: gold 8/2; answers 4 (0.2), 5 (0.9), 4.0 (0.8), 6 (0.4); correct: c0, c2.
BonProblem problem_a() {
  BonProblem p;
  p.id = "a";
  p.gold = "\\frac{8}{2}";
  p.candidates = {cand("4", 0.2), cand("5", 0.9), cand("4.0", 0.8), cand("6", 0.4)};
  return p;
}

// Problem B: gold 1; step scores, no solution score; only c0 is correct.
//   c0 "1" [0.9, 0.7] labels [1, 1]: min .7  prod .63  last .7   mean .8
//   c1 "2" [0.5, 0.6] labels [1, 0]: min .5  prod .30  last .6   mean .55
//   c2 "3" [0.3, 0.85] labels [0, 0]: min .3  prod .255 last .85  mean .575
BonProblem problem_b() {
  BonProblem p;
  p.id = "b";
  p.gold = "1";
  p.candidates = {cand("1", std::nullopt, {0.9, 0.7}, {1, 1}), cand("2", std::nullopt, {0.5, 0.6}, {1, 0}),
                  cand("3", std::nullopt, {0.3, 0.85}, {0, 0})};
  return p;
}

}  // namespace

TEST_CASE("bon: curves on four scored candidates", "[evaluation]") {
  const BonResult r = evaluate_bon({problem_a()});
  CHECK(r.n == std::vector<int>{1, 2, 4});
  CHECK(methods_of(r) == std::vector<std::string>{"majority", "weighted", "best"});
  CHECK(r.problems == 1);
  CHECK(r.candidates == 4);
  // N=1: the 4 singletons, each method picks its only candidate: 2/4.
  // N=2, subsets {01, 02, 03, 12, 13, 23} in input order:
  //   majority (ties -> first group): 4, 4, 4, 5, 5, 4      -> 4/6
  //   weighted: 01: 4 .2 < 5 .9; 02: 4 1.0; 03: .2 < 6 .4; 12: 5 .9 > .8; 13: 5; 23: 4 .8 > .4 -> 2/6
  //   best:     c1, c2, c3, c1, c1, c2                       -> 2/6
  // N=4: majority 4 (two votes); weighted 4: 1.0 > 5: .9; best c1 (.9) is wrong.
  check_curve(r, "majority", {0.5, 4.0 / 6, 1.0});
  check_curve(r, "weighted", {0.5, 2.0 / 6, 1.0});
  check_curve(r, "best", {0.5, 2.0 / 6, 0.0});
  CHECK_FALSE(r.step_auroc);
  CHECK_FALSE(r.first_error);
  CHECK_FALSE(r.reliability);
  CHECK(r.labeled_solutions == 0);
}

TEST_CASE("bon: best-of-N under each aggregate, step metrics", "[evaluation]") {
  const BonResult r = evaluate_bon({problem_b()});
  CHECK(r.n == std::vector<int>{1, 2, 3});
  CHECK(methods_of(r) ==
        std::vector<std::string>{"majority", "weighted", "best_min", "best_prod", "best_last", "best_mean"});
  // N=2 subsets {01, 02, 12}; {12} never holds c0.
  //   majority (all singletons, ties -> first): c0, c0, c1 -> 2/3; N=3: c0.
  //   weighted (aggregate last): .7>.6 right, .7<.85 wrong -> 1/3; N=3: c2 (.85) wrong.
  //   best_min: .7>.5, .7>.3 -> 2/3, N=3 c0; best_prod likewise; best_mean .8 > .55, .575 likewise.
  //   best_last as weighted.
  check_curve(r, "majority", {1.0 / 3, 2.0 / 3, 1.0});
  check_curve(r, "weighted", {1.0 / 3, 1.0 / 3, 0.0});
  check_curve(r, "best_min", {1.0 / 3, 2.0 / 3, 1.0});
  check_curve(r, "best_prod", {1.0 / 3, 2.0 / 3, 1.0});
  check_curve(r, "best_last", {1.0 / 3, 1.0 / 3, 0.0});
  check_curve(r, "best_mean", {1.0 / 3, 2.0 / 3, 1.0});

  CHECK(r.labeled_solutions == 3);
  CHECK(r.labeled_steps == 6);
  // Right steps .9 .7 .5, wrong .6 .3 .85: pairs won 3 + 2 + 1 of 9.
  REQUIRE(r.step_auroc);
  CHECK(*r.step_auroc == Approx(6.0 / 9).margin(1e-12));
  // First error at 0.5: c0 label -1 pred -1 (match); c1 label 1, pred -1 (0.5 is not
  // below 0.5); c2 label 0, pred 0. error acc 1/2, correct acc 1, F1 2/3.
  REQUIRE(r.first_error);
  CHECK(r.first_error->n_error == 2);
  CHECK(r.first_error->n_correct == 1);
  CHECK(r.first_error->error_accuracy == Approx(0.5));
  CHECK(r.first_error->correct_accuracy == Approx(1.0));
  CHECK(r.first_error->f1 == Approx(2.0 / 3).margin(1e-12));
  // Ten bins, one step in each occupied bin (9, 7, 5, 6, 3, 8): ECE = mean
  // |label - score| = (.1 + .3 + .5 + .6 + .3 + .85) / 6 = 2.65 / 6.
  REQUIRE(r.reliability);
  CHECK(r.reliability->bins.size() == 10);
  CHECK(r.reliability->total == 6);
  CHECK(r.reliability->ece == Approx(2.65 / 6).margin(1e-12));
}

TEST_CASE("bon: problems average, N beyond a problem's candidates uses them all", "[evaluation]") {
  const BonResult r = evaluate_bon({problem_a(), problem_b()});
  CHECK(r.n == std::vector<int>{1, 2, 4});
  CHECK(methods_of(r) ==
        std::vector<std::string>{"majority", "weighted", "best", "best_min", "best_prod", "best_last", "best_mean"});
  // majority: A {1/2, 4/6, 1}, B {1/3, 2/3, 1 (N=4 -> all 3)}.
  check_curve(r, "majority", {(0.5 + 1.0 / 3) / 2, (4.0 / 6 + 2.0 / 3) / 2, 1.0});
  // best: B has no solution score, so its candidate score is the aggregate
  // (last) of its steps, as select_answer does: B {1/3, 1/3, 0} like best_last.
  check_curve(r, "best", {(0.5 + 1.0 / 3) / 2, (2.0 / 6 + 1.0 / 3) / 2, 0.0});
  // best_min: A has no step scores (wrong), B {1/3, 2/3, 1}.
  check_curve(r, "best_min", {1.0 / 6, 1.0 / 3, 0.5});
}

TEST_CASE("bon: N=1 enumerates every singleton, random subsets approach the exact mean", "[evaluation]") {
  // 8 candidates, answers 0 0 1 1 0 2 1 0 (gold 0) with distinct scores.
  BonProblem p;
  p.gold = "0";
  const std::vector<std::string> answers = {"0", "0", "1", "1", "0", "2", "1", "0"};
  const std::vector<double> scores = {0.1, 0.7, 0.9, 0.3, 0.5, 0.8, 0.2, 0.4};
  for (size_t i = 0; i < answers.size(); ++i) p.candidates.push_back(cand(answers[i], scores[i]));
  // Exact mean over all 70 subsets of 4, by select_answer directly.
  double exact_majority = 0, exact_best = 0;
  int subsets = 0;
  for (int mask = 0; mask < 256; ++mask) {
    if (__builtin_popcount(static_cast<unsigned>(mask)) != 4) continue;
    std::vector<Candidate> sub;
    for (int i = 0; i < 8; ++i)
      if (mask & (1 << i)) sub.push_back(p.candidates[static_cast<size_t>(i)].candidate);
    const Selection sel = select_answer(sub);
    exact_majority += sel.majority && answers_equal(*sel.majority, "0");
    exact_best += sel.best && answers_equal(*sel.best, "0");
    ++subsets;
  }
  REQUIRE(subsets == 70);
  exact_majority /= subsets;
  exact_best /= subsets;

  BonOptions opt;
  opt.n_values = {1, 4};
  opt.samples = 32;  // C(8,1) = 8 <= 32: exact; C(8,4) = 70 > 32: random
  const BonResult r32 = evaluate_bon({p}, opt);
  CHECK(curve(r32, "majority").accuracy[0] == Approx(4.0 / 8).margin(1e-12));
  CHECK(curve(r32, "best").accuracy[0] == Approx(4.0 / 8).margin(1e-12));
  // Deterministic for a seed.
  CHECK(evaluate_bon({p}, opt).curves[0].accuracy == r32.curves[0].accuracy);

  opt.samples = 100;  // >= 70: every subset once, exactly
  const BonResult all = evaluate_bon({p}, opt);
  CHECK(curve(all, "majority").accuracy[1] == Approx(exact_majority).margin(1e-12));
  CHECK(curve(all, "best").accuracy[1] == Approx(exact_best).margin(1e-12));

  opt.samples = 4000;  // random: a mean of 4000 0/1 outcomes, sd <= 0.5/sqrt(4000) = 0.0079; 5 sd = 0.04
  opt.seed = 12345;
  const BonResult rnd = evaluate_bon({p}, opt);
  CHECK(curve(rnd, "majority").accuracy[1] == Approx(exact_majority).margin(0.04));
  CHECK(curve(rnd, "best").accuracy[1] == Approx(exact_best).margin(0.04));
}

TEST_CASE("bon: correctness from 'correct', errors", "[evaluation]") {
  BonProblem p;  // no gold: every candidate must say
  p.candidates = {cand("x", 0.9), cand("y", 0.1)};
  p.candidates[0].correct = false;
  p.candidates[1].correct = true;
  const BonResult r = evaluate_bon({p});
  check_curve(r, "best", {0.5, 0.0});
  check_curve(r, "majority", {0.5, 0.0});  // tie -> x first

  p.candidates[1].correct.reset();
  CHECK_THROWS_AS(evaluate_bon({p}), InputError);
  CHECK_THROWS_AS(evaluate_bon({BonProblem{}}), InputError);  // no candidate
  BonProblem bad = problem_b();
  bad.candidates[0].step_labels = {1};
  CHECK_THROWS_AS(evaluate_bon({bad}), InputError);
  bad = problem_b();
  bad.candidates[0].step_labels = {1, 2};
  CHECK_THROWS_AS(evaluate_bon({bad}), InputError);
  BonOptions opt;
  opt.samples = 0;
  CHECK_THROWS_AS(evaluate_bon({problem_a()}, opt), InputError);
  opt = {};
  opt.n_values = {2, 1};
  CHECK_THROWS_AS(evaluate_bon({problem_a()}, opt), InputError);
}

TEST_CASE("bon: auroc on hand-computed cases", "[evaluation]") {
  // Negatives .1 .4, positives .35 .8: pairs won (.35>.1) (.8>.1) (.8>.4) = 3/4.
  CHECK(*auroc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}) == Approx(0.75));
  // Ties count 1/2: positives .5 .9, negatives .2 .5: 1 + 1/2 + 1 + 1 = 3.5/4.
  CHECK(*auroc({0.2, 0.5, 0.5, 0.9}, {0, 1, 0, 1}) == Approx(0.875));
  CHECK(*auroc({0.5, 0.5}, {1, 0}) == Approx(0.5));
  CHECK(*auroc({0.9, 0.1}, {0, 1}) == Approx(0.0));
  CHECK(*auroc({3.0, -1.0, 7.0}, {1, 0, 1}) == Approx(1.0));  // any real scores
  CHECK_FALSE(auroc({0.1, 0.2}, {1, 1}));
  CHECK_FALSE(auroc({}, {}));
  CHECK_THROWS_AS(auroc({0.1}, {1, 0}), InputError);
  CHECK_THROWS_AS(auroc({0.1, 0.2}, {1, 2}), InputError);
  CHECK_THROWS_AS(auroc({NAN, 0.2}, {1, 0}), InputError);
}

TEST_CASE("bon: reliability and ECE on a constructed case", "[evaluation]") {
  // Two bins. [0, .5): .1 .2 .3, labels 0 0 1: mean .2, accuracy 1/3.
  //           [.5, 1]: .8 .9 .6, labels 1 1 0: mean 2.3/3, accuracy 2/3.
  // ECE = 1/2 |1/3 - .2| + 1/2 |2/3 - 2.3/3| = 1/2 (2/15) + 1/2 (1/10) = 7/60.
  const auto t = reliability({0.1, 0.2, 0.3, 0.8, 0.9, 0.6}, {0, 0, 1, 1, 1, 0}, 2);
  REQUIRE(t.bins.size() == 2);
  CHECK(t.total == 6);
  CHECK(t.bins[0].lo == 0.0);
  CHECK(t.bins[0].hi == 0.5);
  CHECK(t.bins[1].hi == 1.0);
  CHECK(t.bins[0].count == 3);
  CHECK(t.bins[0].mean_score == Approx(0.2));
  CHECK(t.bins[0].accuracy == Approx(1.0 / 3));
  CHECK(t.bins[1].mean_score == Approx(2.3 / 3));
  CHECK(t.bins[1].accuracy == Approx(2.0 / 3));
  CHECK(t.ece == Approx(7.0 / 60).margin(1e-12));

  // Edges: 0.5 opens the upper bin, 1.0 closes it; empty bins are NaN.
  const auto e = reliability({0.5, 1.0, 0.0}, {1, 1, 0}, 4);
  CHECK(e.bins[0].count == 1);
  CHECK(e.bins[1].count == 0);
  CHECK(std::isnan(e.bins[1].accuracy));
  CHECK(e.bins[2].count == 1);
  CHECK(e.bins[3].count == 1);
  CHECK(e.ece == Approx(1.0 / 6).margin(1e-12));  // 1/3 (|0-0| + |1-.5| + |1-1|)
  CHECK(reliability({}, {}, 3).ece == 0.0);
  CHECK_THROWS_AS(reliability({1.5}, {1}, 2), InputError);
  CHECK_THROWS_AS(reliability({0.5}, {1}, 0), InputError);
  CHECK_THROWS_AS(reliability({0.5}, {}, 2), InputError);
}

TEST_CASE("bon: parse_bon_problem", "[evaluation]") {
  const BonProblem p = parse_bon_problem(
      R"({"id": 7, "gold": 4, "candidates": [{"text": "so \\boxed{4}", "score": 0.5},
          {"answer": "5", "step_scores": [0.2, 0.3], "step_labels": [true, 0], "correct": false}], "extra": 1})");
  CHECK(p.id == "7");
  REQUIRE(p.gold);
  CHECK(*p.gold == "4");
  REQUIRE(p.candidates.size() == 2);
  CHECK(p.candidates[0].candidate.text == "so \\boxed{4}");
  CHECK_FALSE(p.candidates[0].candidate.answer);
  CHECK(*p.candidates[0].candidate.score == 0.5);
  CHECK(p.candidates[1].candidate.step_scores == std::vector<double>{0.2, 0.3});
  CHECK(p.candidates[1].step_labels == std::vector<int>{1, 0});
  CHECK(*p.candidates[1].correct == false);
  CHECK(*parse_bon_problem(R"({"gold": "so #### 12", "candidates": []})").gold == "12");
  CHECK(parse_bon_problem(R"({"id": "q1", "candidates": [{"answer": "1"}]})").id == "q1");

  CHECK_THROWS_AS(parse_bon_problem("{not json"), FormatError);
  CHECK_THROWS_AS(parse_bon_problem("[1]"), InputError);
  CHECK_THROWS_AS(parse_bon_problem(R"({"gold": "1"})"), InputError);
  CHECK_THROWS_AS(parse_bon_problem(R"({"candidates": [{"score": 1}]})"), InputError);
  CHECK_THROWS_AS(parse_bon_problem(R"({"candidates": [{"answer": "1", "step_labels": [2]}]})"), InputError);
  CHECK_THROWS_AS(
      parse_bon_problem(R"({"candidates": [{"answer": "1", "step_scores": [0.1], "step_labels": [1, 0]}]})"),
      InputError);
  CHECK_THROWS_AS(parse_bon_problem(R"({"candidates": [{"answer": "1", "correct": 1}]})"), InputError);
}

TEST_CASE("bon: read_bon_problems reads JSONL, naming bad lines", "[evaluation]") {
  test::TempDir tmp;
  const auto path = tmp.path / "c.jsonl";
  {
    std::ofstream f(path);
    f << R"({"id": "a", "gold": "4", "candidates": [{"answer": "4"}]})"
      << "\n\n"     // line 1, blank line 2
      << "{oops\n"  // 3: not JSON
      << R"({"id": "b", "gold": "1", "candidates": []})"
      << "\n"  // 4: no candidate
      << R"({"id": "c", "candidates": [{"answer": "1", "correct": true}, {"answer": "2"}]})"
      << "\n"  // 5
      << R"({"id": "d", "candidates": [{"answer": "1", "correct": true}]})"
      << "\n";  // 6
  }
  std::ostringstream log;
  const auto problems = read_bon_problems(path, &log);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].id == "a");
  CHECK(problems[1].id == "d");
  const std::string where = path.string();
  CHECK_THAT(log.str(), Contains(where + ":3: not valid JSON"));
  CHECK_THAT(log.str(), Contains(where + ":4: no candidate (line skipped)"));
  CHECK_THAT(log.str(), Contains(where + ":5: no 'gold', and candidates[1] has no 'correct'"));
  CHECK_THAT(log.str(), !Contains(":2:") && !Contains(":6:"));
  CHECK_THROWS_WITH(read_bon_problems(path), Contains(where + ":3:"));
  CHECK_THROWS_AS(read_bon_problems(tmp.path / "absent.jsonl"), IoError);
}

TEST_CASE("bon: reports are well-formed", "[evaluation]") {
  const BonResult r = evaluate_bon({problem_a(), problem_b()});
  const auto j = nlohmann::json::parse(bon_json(r));
  CHECK(j.at("n") == nlohmann::json::array({1, 2, 4}));
  CHECK(j.at("problems") == 2);
  CHECK(j.at("methods").size() == r.curves.size());
  CHECK(j.at("methods").at("majority").size() == 3);
  CHECK(j.at("methods").at("best_min")[2].get<double>() == Approx(0.5));
  CHECK(j.at("step_auroc").get<double>() == Approx(6.0 / 9));
  CHECK(j.at("first_error_f1").get<double>() == Approx(2.0 / 3));
  CHECK(j.at("ece").get<double>() == Approx(2.65 / 6));
  REQUIRE(j.at("reliability").size() == 10);
  for (const auto& b : j.at("reliability")) {
    CHECK(b.contains("bin_lo"));
    CHECK(b.contains("bin_hi"));
    CHECK(b.contains("mean_score"));
    CHECK(b.contains("accuracy"));
    if (b.at("count") == 0) CHECK(b.at("accuracy").is_null());
  }
  // Without step labels the optional keys are absent.
  const auto ja = nlohmann::json::parse(bon_json(evaluate_bon({problem_a()})));
  CHECK_FALSE(ja.contains("step_auroc"));
  CHECK_FALSE(ja.contains("reliability"));

  const std::string md = bon_markdown(r);
  CHECK(md.find("| method | N=1 | N=2 | N=4 |") != std::string::npos);
  CHECK(md.find("| majority | 41.7 | 66.7 | 100.0 |") != std::string::npos);
  CHECK(stepverify::test::count_of(md, "\n| best") == 5);
  CHECK(md.find("expected calibration error") != std::string::npos);

  const std::string svg = bon_svg(r);
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(stepverify::test::count_of(svg, "<polyline") == r.curves.size());
  CHECK(stepverify::test::count_of(svg, "<polyline class=\"curve\"") == r.curves.size());
  CHECK(stepverify::test::count_of(svg, "<svg") == stepverify::test::count_of(svg, "</svg>"));
  CHECK(svg.find("nan") == std::string::npos);

  const std::string rel = reliability_svg(*r.reliability);
  CHECK(stepverify::test::count_of(rel, "<rect class=\"bin\"") == 6);  // six occupied bins
  CHECK(stepverify::test::count_of(rel, "class=\"diagonal\"") == 1);
  CHECK(rel.find("nan") == std::string::npos);
  CHECK(bon_svg(BonResult{}).find("</svg>") != std::string::npos);  // empty result still renders
}
