// ProcessBench evaluation: the metric against oracle predictors on the real
// data (values derived by counting labels here, independently of the
// library), threshold calibration on constructed cases, the readers and the
// reports.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "stepverify/errors.h"
#include "stepverify/eval/evaluation.h"
#include "test_support.h"

using namespace stepverify;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kSplits = {"gsm8k", "math", "olympiadbench", "omnimath"};

// The ProcessBench directory, or nullopt (with a WARN) when absent.
std::optional<fs::path> processbench_dir() {
  auto dir = stepverify::test::data_dir() / "processbench";
  if (!fs::exists(dir / "gsm8k.json")) {
    stepverify::test::missing_input(dir.string() + " is absent");
    return std::nullopt;
  }
  return dir;
}

// Label counts of one split, read with nlohmann directly (not the library).
struct LabelCounts {
  int64_t n = 0, n_error = 0, n_correct = 0, n_label0 = 0;
};
LabelCounts count_labels(const fs::path& file) {
  std::ifstream in(file);
  REQUIRE(in.good());
  auto arr = nlohmann::json::parse(in);
  LabelCounts c;
  for (const auto& r : arr) {
    const int label = r.at("label").get<int>();
    ++c.n;
    if (label == -1)
      ++c.n_correct;
    else
      ++c.n_error;
    if (label == 0) ++c.n_label0;
  }
  return c;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/stepverify_eval_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

ProcessBenchRecord rec(const std::string& id, int label, std::vector<double> scores) {
  ProcessBenchRecord r;
  r.id = id;
  r.split = split_of_id(id);
  r.label = label;
  r.step_scores = std::move(scores);
  return r;
}

const SplitMetrics& split_named(const ProcessBenchResult& r, const std::string& name) {
  for (const auto& m : r.splits)
    if (m.split == name) return m;
  FAIL("no split " << name);
  throw;
}

// Tags balance in a simple XML document (no comments, CDATA or processing
// instructions, which our SVG does not use).
bool xml_tags_balanced(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0;
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return false;
    std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return false;
    if (tag.back() == '/') continue;  // self-closing
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) return false;
      stack.pop_back();
    } else {
      stack.push_back(tag.substr(0, tag.find_first_of(" \t\n")));
    }
  }
  return stack.empty();
}

}  // namespace

TEST_CASE("processbench: first-error prediction and F1 definitions", "[evaluation]") {
  CHECK(first_error_prediction({}, 0.5) == -1);
  CHECK(first_error_prediction({0.9, 0.8, 0.7}, 0.5) == -1);
  CHECK(first_error_prediction({0.9, 0.4, 0.1}, 0.5) == 1);
  CHECK(first_error_prediction({0.1, 0.9}, 0.5) == 0);
  CHECK(first_error_prediction({0.5, 0.5}, 0.5) == -1);  // strictly below
  CHECK(first_error_prediction({0.9, 0.6, 0.2}, 0.7) == 1);
  CHECK(processbench_f1(0, 0) == 0);
  CHECK(processbench_f1(1, 0) == 0);
  CHECK(processbench_f1(1, 1) == 1);
  CHECK(processbench_f1(0.5, 1) == Approx(2.0 / 3));  // 2 * 0.5 * 1 / 1.5
  CHECK(split_of_id("gsm8k-12") == "gsm8k");
  CHECK(split_of_id("my-set-3") == "my-set");
  CHECK_THROWS_AS(split_of_id("gsm8k"), FormatError);
  CHECK_THROWS_AS(split_of_id("-3"), FormatError);
}

TEST_CASE("processbench: metrics on a small constructed set", "[evaluation]") {
  // Split a: 2 error records (one right), 2 correct records (one right).
  std::vector<ProcessBenchRecord> rs = {
      rec("a-0", 1, {0.9, 0.2, 0.1}),  // predicted 1 = label
      rec("a-1", 0, {0.8, 0.3}),       // predicted 1 != 0
      rec("a-2", -1, {0.9, 0.7}),      // predicted -1
      rec("a-3", -1, {0.9, 0.4}),      // predicted 1
      rec("b-0", 2, {0.6, 0.6, 0.1}),  // predicted 2 = label
      rec("b-1", -1, {0.2}),           // predicted 0
  };
  auto r = evaluate_processbench(rs);
  REQUIRE(r.splits.size() == 2);
  CHECK(r.splits[0].split == "a");
  CHECK(r.splits[1].split == "b");
  CHECK(r.predictions == std::vector<int>{1, 1, -1, 1, 2, 0});
  const auto& a = r.splits[0];
  CHECK(a.error_accuracy == 0.5);
  CHECK(a.correct_accuracy == 0.5);
  CHECK(a.f1 == Approx(0.5));
  CHECK(a.n_error == 2);
  CHECK(a.n_correct == 2);
  CHECK(a.threshold == 0.5);
  const auto& b = r.splits[1];
  CHECK(b.error_accuracy == 1);
  CHECK(b.correct_accuracy == 0);
  CHECK(b.f1 == 0);
  CHECK(r.average_f1 == Approx(0.25));
  CHECK(r.calibrated_on.empty());

  // A bad record is named.
  std::vector<ProcessBenchRecord> bad = {rec("a-9", 3, {0.9, 0.2})};
  CHECK_THROWS_AS(evaluate_processbench(bad), InputError);
  bad = {rec("a-9", -2, {0.9})};
  CHECK_THROWS_AS(evaluate_processbench(bad), InputError);
  bad = {rec("a-9", -1, {0.9, std::nan("")})};
  CHECK_THROWS_AS(evaluate_processbench(bad), InputError);
  bad = {rec("a-9", -1, {0.9})};
  bad[0].steps = {"x", "y"};
  CHECK_THROWS_WITH(evaluate_processbench(bad), Catch::Contains("a-9"));
}

TEST_CASE("processbench: oracle predictors on the real data", "[evaluation][data]") {
  auto dir = processbench_dir();
  if (!dir) return;
  auto records = read_processbench_records(*dir);
  REQUIRE(records.size() == 3400);

  std::map<std::string, LabelCounts> counts;
  for (const auto& s : kSplits) counts[s] = count_labels(*dir / (s + ".json"));
  // Sanity of the independent count against the numbers of ProcessBench's
  // own script (code/run_eval_prm_trl.py: error / correct per split) and the
  // label-0 counts of the files.
  CHECK(counts["gsm8k"].n_error == 207);
  CHECK(counts["gsm8k"].n_correct == 193);
  CHECK(counts["math"].n_error == 594);
  CHECK(counts["math"].n_correct == 406);
  CHECK(counts["olympiadbench"].n_error == 661);
  CHECK(counts["olympiadbench"].n_correct == 339);
  CHECK(counts["omnimath"].n_error == 759);
  CHECK(counts["omnimath"].n_correct == 241);
  CHECK(counts["gsm8k"].n_label0 == 37);
  CHECK(counts["math"].n_label0 == 114);
  CHECK(counts["olympiadbench"].n_label0 == 48);
  CHECK(counts["omnimath"].n_label0 == 72);

  SECTION("perfect: 1 before the label step, 0 at it and after -> F1 1 everywhere") {
    for (auto& r : records) {
      r.step_scores.assign(r.steps.size(), 1.0);
      if (r.label >= 0)
        for (size_t i = r.label; i < r.steps.size(); ++i) r.step_scores[i] = i == size_t(r.label) ? 0.0 : 0.3;
    }
    auto res = evaluate_processbench(records);
    REQUIRE(res.splits.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
      const auto& m = res.splits[i];
      CHECK(m.split == kSplits[i]);
      CHECK(m.n_error == counts[m.split].n_error);
      CHECK(m.n_correct == counts[m.split].n_correct);
      CHECK(m.error_accuracy == 1.0);
      CHECK(m.correct_accuracy == 1.0);
      CHECK(m.f1 == 1.0);
    }
    CHECK(res.average_f1 == 1.0);
    for (size_t k = 0; k < records.size(); ++k) CHECK(res.predictions[k] == records[k].label);
    // Calibrating on gsm8k keeps it perfect: the optimum is the lowest
    // threshold separating 0 from the rest, the midpoint 0.15 of 0 and 0.3.
    ProcessBenchOptions opt;
    opt.calibrate_on = "gsm8k";
    auto cal = evaluate_processbench(records, opt);
    CHECK(cal.calibrated_on == "gsm8k");
    CHECK(cal.average_f1 == 1.0);
    for (const auto& m : cal.splits) CHECK(m.threshold == Approx(0.15));
  }
  SECTION("always -1: error accuracy 0, correct accuracy 1, F1 0") {
    for (auto& r : records) r.step_scores.assign(r.steps.size(), 1.0);
    auto res = evaluate_processbench(records);
    for (const auto& m : res.splits) {
      CHECK(m.error_accuracy == 0.0);
      CHECK(m.correct_accuracy == 1.0);
      CHECK(m.f1 == 0.0);
    }
    CHECK(res.average_f1 == 0.0);
  }
  SECTION("always step 0: error accuracy = share of label 0, correct accuracy 0, F1 0") {
    for (auto& r : records) r.step_scores.assign(r.steps.size(), 0.0);
    auto res = evaluate_processbench(records);
    for (const auto& m : res.splits) {
      const auto& c = counts[m.split];
      CHECK(m.error_accuracy == Approx(double(c.n_label0) / double(c.n_error)).epsilon(1e-12));
      CHECK(m.correct_accuracy == 0.0);
      CHECK(m.f1 == 0.0);
    }
    CHECK(split_named(res, "gsm8k").error_accuracy == Approx(37.0 / 207));
    CHECK(split_named(res, "omnimath").error_accuracy == Approx(72.0 / 759));
    CHECK(res.average_f1 == 0.0);
  }
  SECTION("random scores: equal to the metric recomputed here from the raw files") {
    std::mt19937 rng(1234);
    std::uniform_real_distribution<double> u(0, 1);
    for (auto& r : records) {
      r.step_scores.clear();
      for (size_t i = 0; i < r.steps.size(); ++i) r.step_scores.push_back(u(rng));
    }
    const double t = 0.3;
    ProcessBenchOptions opt;
    opt.threshold = t;
    auto res = evaluate_processbench(records, opt);
    std::map<std::string, std::array<int64_t, 4>> acc;  // err hit, err n, cor hit, cor n
    for (const auto& r : records) {
      int pred = -1;
      for (size_t i = 0; i < r.step_scores.size() && pred < 0; ++i)
        if (r.step_scores[i] < t) pred = int(i);
      auto& a = acc[r.id.substr(0, r.id.rfind('-'))];
      if (r.label == -1) {
        a[3]++;
        a[2] += pred == -1;
      } else {
        a[1]++;
        a[0] += pred == r.label;
      }
    }
    double sum = 0;
    for (auto& [split, a] : acc) {
      const double e = double(a[0]) / a[1], c = double(a[2]) / a[3];
      const double f1 = e + c > 0 ? 2 * e * c / (e + c) : 0;
      sum += f1;
      const auto& m = split_named(res, split);
      CHECK(m.error_accuracy == Approx(e).epsilon(1e-12));
      CHECK(m.correct_accuracy == Approx(c).epsilon(1e-12));
      CHECK(m.f1 == Approx(f1).epsilon(1e-12));
    }
    CHECK(res.average_f1 == Approx(sum / 4).epsilon(1e-12));
  }
}

TEST_CASE("processbench: threshold calibration on constructed cases", "[evaluation]") {
  // Intervals of thresholds t at which each record is predicted right:
  //   cal-0 label 0 [0.2, 0.9]:   t in (0.2, inf)
  //   cal-1 label 1 [0.7, 0.4]:   t in (0.4, 0.7]
  //   cal-2 label -1 [0.9, 0.5]:  t <= 0.5
  //   cal-3 label -1 [0.8, 0.35]: t <= 0.35
  // F1: t <= 0.2: 0; (0.2, 0.35]: e 1/2, c 1 -> 2/3; (0.35, 0.4]: 1/2;
  // (0.4, 0.5]: e 1, c 1/2 -> 2/3; above 0.5: 0. The tie goes to the lowest
  // candidate, the midpoint of 0.2 and 0.35.
  std::vector<ProcessBenchRecord> rs = {rec("cal-0", 0, {0.2, 0.9}), rec("cal-1", 1, {0.7, 0.4}),
                                        rec("cal-2", -1, {0.9, 0.5}), rec("cal-3", -1, {0.8, 0.35})};
  CHECK(calibrate_threshold(rs) == Approx(0.275));
  CHECK(processbench_metrics(rs, calibrate_threshold(rs)).f1 == Approx(2.0 / 3));

  // cal-4 label 1 [0.45, 0.42]: t in (0.42, 0.45]. Now (0.42, 0.45] has
  // e 1, c 1/2 -> 2/3, better than (0.2, 0.35] (e 1/3, c 1 -> 1/2) and
  // (0.4, 0.42] (e 2/3, c 1/2 -> 4/7): the unique optimum, midpoint 0.435.
  rs.push_back(rec("cal-4", 1, {0.45, 0.42}));
  const double t = calibrate_threshold(rs);
  CHECK(t == Approx(0.435));
  auto m = processbench_metrics(rs, t);
  CHECK(m.error_accuracy == 1.0);
  CHECK(m.correct_accuracy == 0.5);

  // Applied to every split; the other split's values at t = 0.435:
  //   other-0 label 0 [0.43]: predicted 0 (right); other-1 label -1 [0.44]: right;
  //   other-2 label -1 [0.9, 0.1]: predicted 1 (wrong) -> e 1, c 1/2.
  rs.push_back(rec("other-0", 0, {0.43}));
  rs.push_back(rec("other-1", -1, {0.44}));
  rs.push_back(rec("other-2", -1, {0.9, 0.1}));
  ProcessBenchOptions opt;
  opt.calibrate_on = "cal";
  opt.threshold = 0.99;  // ignored when calibrating
  auto res = evaluate_processbench(rs, opt);
  REQUIRE(res.splits.size() == 2);
  CHECK(res.splits[0].threshold == Approx(0.435));
  CHECK(res.splits[1].threshold == res.splits[0].threshold);
  CHECK(res.splits[1].error_accuracy == 1.0);
  CHECK(res.splits[1].correct_accuracy == 0.5);
  CHECK(res.average_f1 == Approx(2.0 / 3));

  opt.calibrate_on = "nosuch";
  CHECK_THROWS_AS(evaluate_processbench(rs, opt), InputError);
  CHECK_THROWS_AS(calibrate_threshold({rec("e-0", -1, {})}), InputError);

  // Everything flagged can be optimal: candidates go above the highest score.
  std::vector<ProcessBenchRecord> all_zero = {rec("z-0", 0, {0.9}), rec("z-1", 0, {0.8}), rec("z-2", -1, {0.7, 0.7})};
  // t <= 0.7: e 0, c 1; above 0.7: c 0. Every F1 is 0, so the lowest
  // candidate, the lowest score, wins.
  CHECK(calibrate_threshold(all_zero) == 0.7);
  std::vector<ProcessBenchRecord> needs_top = {rec("y-0", 0, {0.9}), rec("y-1", -1, {})};
  // y-1 (no steps) is always right; y-0 only when t > 0.9: the candidate 1.9.
  CHECK(calibrate_threshold(needs_top) == Approx(1.9));
}

TEST_CASE("processbench: calibration equals a brute-force search", "[evaluation]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<ProcessBenchRecord> rs;
    std::uniform_int_distribution<int> nsteps(1, 6), grid(0, 20);
    for (int k = 0; k < 40; ++k) {
      const int n = nsteps(rng);
      std::vector<double> s;
      for (int i = 0; i < n; ++i) s.push_back(grid(rng) / 20.0);  // coarse: many ties
      const int label = std::uniform_int_distribution<int>(-1, n - 1)(rng);
      rs.push_back(rec("r-" + std::to_string(k), label, s));
    }
    const double t = calibrate_threshold(rs);
    const double best = processbench_metrics(rs, t).f1;
    // Every threshold the grid allows: each score, between two scores, outside.
    double brute = -1, lowest_best = 1e9;
    for (int g = -1; g <= 42; ++g) {
      const double cand = g / 40.0;
      const double f1 = processbench_metrics(rs, cand).f1;
      if (f1 > brute + 1e-12) {
        brute = f1;
        lowest_best = cand;
      }
    }
    CHECK(best == Approx(brute).epsilon(1e-12));
    // The chosen threshold predicts as the lowest optimal grid threshold does.
    std::vector<int> at_t, at_lowest;
    processbench_metrics(rs, t, "", &at_t);
    processbench_metrics(rs, lowest_best, "", &at_lowest);
    CHECK(at_t == at_lowest);
  }
}

TEST_CASE("processbench: reading scored JSONL and ProcessBench files", "[evaluation]") {
  TempDir tmp;
  const auto file = tmp.path / "scored.jsonl";
  write_text(
      file,
      R"({"id": "gsm8k-0", "problem": "p", "steps": ["a", "b"], "label": 1, "step_scores": [0.9, 0.1], "extra": 3})"
      "\n\n"
      R"({"id": "math-3", "label": -1, "step_scores": [0.8]})"
      "\n"
      R"({"id": "my-set-1", "question": "q", "label": 0, "step_scores": [0, 1]})"
      "\n");
  ProcessBenchReadOptions ro;
  ro.require_step_scores = true;
  auto rs = read_processbench_records(file, ro);
  REQUIRE(rs.size() == 3);
  CHECK(rs[0].id == "gsm8k-0");
  CHECK(rs[0].split == "gsm8k");
  CHECK(rs[0].label == 1);
  CHECK(rs[0].problem == "p");
  CHECK(rs[0].steps == std::vector<std::string>{"a", "b"});
  CHECK(rs[0].step_scores == std::vector<double>{0.9, 0.1});
  CHECK(rs[1].split == "math");
  CHECK(rs[1].steps.empty());
  CHECK(rs[2].split == "my-set");
  CHECK(rs[2].problem == "q");
  CHECK(rs[2].step_scores == std::vector<double>{0, 1});
  auto res = evaluate_processbench(rs);
  CHECK(res.predictions == std::vector<int>{1, -1, 0});
  CHECK(res.average_f1 == 0.0);  // every split lacks one kind of record

  // Errors name the file and line.
  auto expect_format_error = [&](const std::string& text, const std::string& needle) {
    write_text(file, text);
    CHECK_THROWS_AS(read_processbench_records(file, ro), FormatError);
    CHECK_THROWS_WITH(read_processbench_records(file, ro), Catch::Contains(needle));
  };
  expect_format_error("{\"id\": \"a-1\", \"label\": -1, \"step_scores\": [1]}\n{\"id\": \"a-2\", \"label\": -1}\n",
                      "scored.jsonl:2: record 'a-2': field 'step_scores' is missing");
  expect_format_error("{\"id\": \"a-1\", \"label\": -1, \"step_scores\": [1]\n", "scored.jsonl:1: not valid JSON");
  expect_format_error("{\"id\": \"a1\", \"label\": -1, \"step_scores\": [1]}\n", "a1");
  expect_format_error("{\"id\": \"a-1\", \"label\": 2, \"step_scores\": [1, 0]}\n", "label 2 but only 2 step scores");
  expect_format_error("{\"id\": \"a-1\", \"label\": \"2\", \"step_scores\": [1]}\n", "'label' must be an integer");
  expect_format_error("{\"id\": \"a-1\", \"label\": -1, \"step_scores\": [1, null]}\n", "step_scores[1]");
  expect_format_error("{\"id\": \"a-1\", \"label\": -1, \"steps\": [\"x\"], \"step_scores\": [1, 1]}\n",
                      "1 steps but 2 step scores");
  CHECK_THROWS_AS(read_processbench_records(tmp.path / "missing.jsonl"), IoError);
  // Without require_step_scores a plain ProcessBench record is fine.
  write_text(file, "[{\"id\": \"x-0\", \"problem\": \"p\", \"steps\": [\"s\"], \"label\": 0}]");
  auto plain = read_processbench_records(file);
  REQUIRE(plain.size() == 1);
  CHECK(plain[0].step_scores.empty());
  CHECK_THROWS_WITH(read_processbench_records(file, ro), Catch::Contains("[0]: record 'x-0'"));
}

TEST_CASE("processbench: reading the output of stepverify judge", "[evaluation]") {
  // `judge` writes the record back with "judge": {"step_scores", ...}; a null
  // is a step no chain gave a verdict (read as 1: not flagged), an "error" a
  // record none of whose chains could be read (every step 1).
  const std::string text =
      R"({"id": "gsm8k-0", "label": 1, "steps": ["a", "b", "c"], "judge": {"score": 0.2, "step_scores": [1, 0.25, null]}})"
      "\n"
      R"({"id": "gsm8k-1", "label": -1, "steps": ["a", "b"], "judge": {"score": 1, "step_scores": [0.75, null]}})"
      "\n"
      R"({"id": "math-0", "label": 0, "steps": ["a", "b"], "judge": {"error": "the chain ran past the context"}})"
      "\n"
      R"({"id": "math-1", "label": -1, "steps": ["a"], "step_scores": [0.1], "judge": {"step_scores": [0.9]}})"
      "\n";
  ProcessBenchReadOptions ro;
  ro.require_step_scores = true;
  const auto rs = parse_processbench_records(text, "judged.jsonl", ro);
  REQUIRE(rs.size() == 4);
  CHECK(rs[0].step_scores == std::vector<double>{1, 0.25, 1});
  CHECK(rs[1].step_scores == std::vector<double>{0.75, 1});
  CHECK(rs[2].step_scores == std::vector<double>{1, 1});
  CHECK(rs[3].step_scores == std::vector<double>{0.1});  // a top-level "step_scores" wins
  // At threshold 0.5: record 0's first flagged step is 1 (its label), record
  // 1 flags none (correct), record 2 none (label 0: missed), record 3 step 0.
  const auto res = evaluate_processbench(rs);
  CHECK(res.predictions == std::vector<int>{1, -1, -1, 0});

  auto expect_format_error = [&](const std::string& line, const std::string& needle) {
    CHECK_THROWS_AS(parse_processbench_records(line, "judged.jsonl", ro), FormatError);
    CHECK_THROWS_WITH(parse_processbench_records(line, "judged.jsonl", ro), Catch::Contains(needle));
  };
  expect_format_error(R"({"id": "a-1", "label": -1, "steps": ["x"], "judge": {"step_scores": ["y"]}})",
                      "judged.jsonl:1: record 'a-1': judge.step_scores[0] is not a finite number");
  expect_format_error(R"({"id": "a-1", "label": -1, "steps": ["x"], "judge": {"step_scores": [1, 1]}})",
                      "1 steps but 2 step scores");
  expect_format_error(R"({"id": "a-1", "label": -1, "judge": {"error": "e"}})", "the record has no 'steps'");
  expect_format_error(R"({"id": "a-1", "label": -1, "steps": ["x"], "judge": {"score": 1}})",
                      "neither 'step_scores' nor 'error'");
  expect_format_error(R"({"id": "a-1", "label": -1, "steps": ["x"], "judge": 3})", "'judge' must be an object");
  // Top-level nulls stay errors: only a judge's null means "no verdict".
  expect_format_error(R"({"id": "a-1", "label": -1, "step_scores": [null]})", "step_scores[0]");
}

TEST_CASE("processbench: reading the real directory", "[evaluation][data]") {
  auto dir = processbench_dir();
  if (!dir) return;
  auto rs = read_processbench_records(*dir);
  REQUIRE(rs.size() == 3400);
  std::vector<std::string> order;
  for (const auto& r : rs)
    if (order.empty() || order.back() != r.split) order.push_back(r.split);
  CHECK(order == kSplits);
  CHECK(rs[0].id == "gsm8k-0");
  CHECK(!rs[0].problem.empty());
  CHECK(rs[0].steps.size() >= 2);
  auto one = read_processbench_records(*dir / "math.json");
  CHECK(one.size() == 1000);
}

TEST_CASE("processbench: scoring through a ScoreFn", "[evaluation]") {
  std::vector<ProcessBenchRecord> rs = {rec("s-0", 1, {}), rec("s-1", -1, {})};
  rs[0].problem = "p0";
  rs[0].steps = {"a", "b", "c"};
  rs[1].problem = "p1";
  rs[1].steps = {"a"};
  size_t calls = 0;
  ScoreFn fn = [&](const std::vector<std::pair<std::string, std::vector<std::string>>>& ps) {
    ++calls;
    std::vector<std::vector<double>> out;
    for (const auto& [p, steps] : ps) {
      std::vector<double> s(steps.size(), 0.9);
      if (p == "p0") s[1] = 0.1;
      out.push_back(s);
    }
    return out;
  };
  score_processbench_records(rs, fn);
  CHECK(calls == 1);
  CHECK(rs[0].step_scores == std::vector<double>{0.9, 0.1, 0.9});
  auto res = evaluate_processbench(rs);
  CHECK(res.splits[0].f1 == 1.0);

  ScoreFn short_fn = [](const auto& ps) { return std::vector<std::vector<double>>(ps.size(), {0.5}); };
  CHECK_THROWS_WITH(score_processbench_records(rs, short_fn), Catch::Contains("s-0"));
  ScoreFn none = [](const auto&) { return std::vector<std::vector<double>>{}; };
  CHECK_THROWS_AS(score_processbench_records(rs, none), InputError);
  rs[1].steps.clear();
  CHECK_THROWS_AS(score_processbench_records(rs, fn), InputError);
}

TEST_CASE("processbench: reports are well formed", "[evaluation]") {
  std::vector<ProcessBenchRecord> rs = {rec("gsm8k-0", 1, {0.9, 0.2}), rec("gsm8k-1", -1, {0.9}),
                                        rec("math-0", 0, {0.9}),       rec("math-1", -1, {0.8}),
                                        rec("a<b&c-0", 0, {0.1}),      rec("a<b&c-1", -1, {0.1})};
  auto res = evaluate_processbench(rs);
  REQUIRE(res.splits.size() == 3);

  SECTION("JSON") {
    auto j = nlohmann::json::parse(processbench_json(res));
    REQUIRE(j.is_object());
    CHECK(j.size() == 2);
    REQUIRE(j["splits"].size() == 3);
    for (const char* s : {"gsm8k", "math", "a<b&c"}) {
      const auto& m = j["splits"][s];
      for (const char* k : {"error_accuracy", "correct_accuracy", "f1", "threshold"}) CHECK(m[k].is_number_float());
    }
    CHECK(j["splits"]["gsm8k"]["f1"].get<double>() == 1.0);
    CHECK(j["splits"]["math"]["error_accuracy"].get<double>() == 0.0);
    CHECK(j["splits"]["math"]["correct_accuracy"].get<double>() == 1.0);
    CHECK(j["splits"]["a<b&c"]["error_accuracy"].get<double>() == 1.0);
    CHECK(j["splits"]["gsm8k"]["threshold"].get<double>() == 0.5);
    CHECK(j["average_f1"].get<double>() == Approx(1.0 / 3));
  }
  SECTION("Markdown") {
    const auto md = processbench_markdown(res);
    CHECK(md.rfind("| split | error acc. (%) | correct acc. (%) | F1 (%) |", 0) == 0);
    CHECK(md.find("| gsm8k | 100.0 | 100.0 | 100.0 | 0.5 | 1 | 1 |") != std::string::npos);
    CHECK(md.find("| **average** |  |  | **33.3** |") != std::string::npos);
    size_t rows = 0;
    std::istringstream in(md);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("|", 0) == 0) {
        ++rows;
        CHECK(stepverify::test::count_of(line, "|") - stepverify::test::count_of(line, "\\|") == 8);
      }
    CHECK(rows == 2 + 3 + 1);
  }
  SECTION("text") {
    const auto t = processbench_text(res);
    CHECK(t.find("gsm8k") != std::string::npos);
    CHECK(t.find("average") != std::string::npos);
    CHECK(t.find("33.3") != std::string::npos);
  }
  SECTION("SVG") {
    const auto svg = processbench_svg(res);
    CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
    CHECK(svg.size() > 7);
    CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
    CHECK(stepverify::test::count_of(svg, "<svg") == 1);
    CHECK(stepverify::test::count_of(svg, "class=\"bar\"") == 3);
    CHECK(stepverify::test::count_of(svg, "class=\"average\"") == 1);
    CHECK(xml_tags_balanced(svg));
    CHECK(svg.find("a&lt;b&amp;c") != std::string::npos);
    CHECK(svg.find("a<b") == std::string::npos);
  }
  SECTION("predictions JSONL round-trips as --scores input") {
    const auto text = processbench_predictions_jsonl(rs, res);
    CHECK(stepverify::test::count_of(text, "\n") == rs.size());
    auto first = nlohmann::json::parse(text.substr(0, text.find('\n')));
    CHECK(first["id"] == "gsm8k-0");
    CHECK(first["prediction"] == 1);
    CHECK(first["match"] == true);
    ProcessBenchReadOptions ro;
    ro.require_step_scores = true;
    auto back = parse_processbench_records(text, "predictions", ro);
    auto again = evaluate_processbench(back);
    CHECK(again.predictions == res.predictions);
    CHECK(again.average_f1 == res.average_f1);
    ProcessBenchResult wrong;
    CHECK_THROWS_AS(processbench_predictions_jsonl(rs, wrong), InputError);
  }
  SECTION("no split") {
    ProcessBenchResult empty;
    CHECK(nlohmann::json::parse(processbench_json(empty))["average_f1"] == 0.0);
    CHECK(xml_tags_balanced(processbench_svg(empty)));
    CHECK(stepverify::test::count_of(processbench_svg(empty), "class=\"bar\"") == 0);
  }
}

#ifdef STEPVERIFY_CLI
#include <sys/wait.h>

#include <iterator>

TEST_CASE("cli eval processbench --scores: JSON on stdout and report files", "[evaluation]") {
  TempDir tmp;
  const auto scores = tmp.path / "scored.jsonl";
  // gsm8k: both right (F1 1); math: error record missed (e 0, c 1, F1 0).
  write_text(scores,
             "{\"id\": \"gsm8k-0\", \"label\": 1, \"step_scores\": [0.9, 0.2]}\n"
             "{\"id\": \"gsm8k-1\", \"label\": -1, \"step_scores\": [0.9, 0.8]}\n"
             "{\"id\": \"math-0\", \"label\": 0, \"step_scores\": [0.6]}\n"
             "{\"id\": \"math-1\", \"label\": -1, \"step_scores\": [0.7]}\n");
  auto run = [&](const std::string& args, std::string& out) {
    const std::string cmd = std::string(STEPVERIFY_CLI) + " eval processbench " + args + " 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p);
    out.clear();
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    return WEXITSTATUS(::pclose(p));
  };
  std::string out;
  const auto md = tmp.path / "r.md", svg = tmp.path / "r.svg", pred = tmp.path / "p.jsonl";
  REQUIRE(run("--scores " + scores.string() + " --json --markdown " + md.string() + " --svg " + svg.string() +
                  " --predictions " + pred.string(),
              out) == 0);
  auto j = nlohmann::json::parse(out);  // stdout is exactly one JSON object
  CHECK(j["splits"]["gsm8k"]["f1"].get<double>() == 1.0);
  CHECK(j["splits"]["math"]["error_accuracy"].get<double>() == 0.0);
  CHECK(j["splits"]["math"]["correct_accuracy"].get<double>() == 1.0);
  CHECK(j["splits"]["math"]["threshold"].get<double>() == 0.5);
  CHECK(j["average_f1"].get<double>() == 0.5);
  CHECK(fs::file_size(md) > 0);
  CHECK(fs::file_size(pred) > 0);
  std::ifstream s(svg);
  std::string svg_text((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  CHECK(stepverify::test::count_of(svg_text, "class=\"bar\"") == 2);

  // Calibrating on math: t in (0.6, 0.7] makes it perfect; the lowest
  // candidate is the midpoint 0.65, and gsm8k stays perfect there.
  REQUIRE(run("--scores " + scores.string() + " --json --calibrate-on math", out) == 0);
  j = nlohmann::json::parse(out);
  CHECK(j["splits"]["math"]["threshold"].get<double>() == Approx(0.65));
  CHECK(j["average_f1"].get<double>() == 1.0);

  CHECK(run("--scores " + scores.string() + " --threshold 0.3 --calibrate-on math", out) != 0);
  CHECK(run("--scores " + (tmp.path / "missing.jsonl").string(), out) == 1);
  CHECK(run("", out) != 0);
}
#endif
