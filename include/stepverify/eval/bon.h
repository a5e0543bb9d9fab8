// stepverify/eval/bon.h: accuracy against the number of samples N for majority
// vote, weighted self-consistency and best-of-N, step-level AUROC, the
// first-error metric and a reliability table of step scores, with reports in
// JSON, Markdown and SVG.
//
//   auto problems = stepverify::read_bon_problems("candidates.jsonl");
//   stepverify::BonOptions opt;                      // samples = 32, seed = 0, ...
//   auto result = stepverify::evaluate_bon(problems, opt);
//   // result.n = {1, 2, 4, 8}; result.curves[k].method = "majority", result.curves[k].accuracy[i] at n[i]
//   std::cout << stepverify::bon_markdown(result);
//
// Input (one JSON object per line, the `stepverify vote` format plus labels):
//   {"id": any, "gold": str, "candidates": [{"text"?: str, "answer"?: str, "score"?: float,
//     "step_scores"?: [float], "step_labels"?: [0/1 or bool], "correct"?: bool}]}
// "gold" may be a number (read as its JSON text) or a gold solution (a text
// with \boxed or ####, whose final answer is extracted, as `vote` does). A
// candidate needs "text" or "answer"; "step_labels" (1 or true = the step is
// right) must have as many entries as "step_scores" when both are present.
// Unknown fields are ignored.
//
// Correctness of a candidate: its "correct" field when given; otherwise its
// answer (given, or extracted from "text") equals the gold answer under the
// equivalence (MathEquivalence by default); a candidate with no answer, or a
// problem with no gold, is wrong. evaluate_bon throws InputError when a
// problem has no gold and some candidate no "correct".
//
// Methods (a curve each, in this order, present when the data allow):
//  * "majority": select_answer's majority (always);
//  * "weighted": weighted self-consistency, candidate score = "score", else
//    the aggregate of step_scores under BonOptions::aggregate (when some
//    candidate has a score or step scores);
//  * "best": best-of-N with the same candidate score (when some candidate has
//    "score");
//  * "best_min", "best_prod", "best_last", "best_mean": best-of-N with the
//    candidate score = that aggregate of step_scores, "score" ignored (when
//    some candidate has step scores; candidates without step scores then have
//    no score).
// Selection and tie-breaking are select_answer's (see Selection in
// answer.h): majority ties -> the group whose first member comes first;
// weighted ties -> the first such group; best ties -> the first candidate;
// non-finite scores count as missing. A subset keeps the input order of its
// candidates, so "first" always means earliest in the input. A chosen group
// is judged by its first member in the subset (with gold-based correctness
// every member of a group is equally right). Nothing to choose from is wrong.
//
// Subsampling: the N values are 1, 2, 4, ... below the largest candidate
// count K, then K (or BonOptions::n_values). For a problem with k candidates
// and a given N: N >= k uses the full set once; otherwise, when the number of
// N-subsets C(k, N) is at most `samples`, every N-subset is enumerated once
// (exact; in particular N = 1 averages over all singletons whenever k <=
// samples); else `samples` subsets are drawn, each N distinct candidates
// chosen uniformly (partial Fisher-Yates on std::mt19937_64 seeded from
// (seed, problem index, N); bounded integers by rejection, so the draws are
// the same on every platform). A problem's accuracy at N is the mean over its
// subsets; the curve value is the unweighted mean over problems.
//
// Step metrics, over the candidates with both step_scores and step_labels:
//  * step AUROC: the probability that a right step (label 1) scores above a
//    wrong one (label 0), ties counting 1/2 (Mann-Whitney), pooled over all
//    labeled steps;
//  * first-error metric: ProcessBench's (evaluation.h), each labeled solution
//    a record whose label is the index of its first step labeled 0 (-1 when
//    none), predictions at BonOptions::threshold;
//  * reliability: equal-width bins of step scores over [0, 1] (bin i =
//    [i/B, (i+1)/B), the last closed; a score s falls in min(B-1, floor(s*B)))
//    with each bin's mean score and fraction of right steps; expected
//    calibration error ECE = sum_b (n_b / n) |accuracy_b - mean_score_b|.
//    Computed only when every labeled step score lies in [0, 1].
//
// Thread safety: every function here is a pure function of its arguments;
// the structs are plain values. An extractor or equivalence passed in the
// options must be safe to call from the calling thread.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <optional>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "stepverify/answer.h"
#include "stepverify/eval/evaluation.h"

namespace stepverify {
class ProcessGroup;  // stepverify/distributed.h
}  // namespace stepverify

namespace stepverify {

/// One sampled solution of a best-of-N problem.
struct STEPVERIFY_API BonCandidate {
  /// Text, answer, solution score and step scores (as in `stepverify vote`).
  Candidate candidate;
  /// Per step: 1 = right, 0 = wrong; empty when unlabeled. Same size as
  /// candidate.step_scores when both are present.
  std::vector<int> step_labels;
  /// Correctness given in the input; overrides the comparison with gold.
  std::optional<bool> correct;
};

/// One problem: a gold answer and its candidates.
struct STEPVERIFY_API BonProblem {
  /// The "id" field: a string as is, another value as its JSON text ("" when absent).
  std::string id;
  /// The gold final answer; nullopt when absent.
  std::optional<std::string> gold;
  /// The candidates, in input order.
  std::vector<BonCandidate> candidates;
};

/// Parses one input line (format in the header comment). Throws FormatError
/// for invalid JSON, InputError naming the field for a bad value.
STEPVERIFY_API BonProblem parse_bon_problem(std::string_view json_line);

/// Reads a JSONL file of problems (a parse_bon_problem line each; blank lines
/// skipped). A problem must have a candidate, and a gold answer or a
/// "correct" on every candidate. A bad line throws FormatError naming
/// PATH:LINE; when `skipped` is given it is written there instead, with
/// " (line skipped)", and left out. Throws IoError when the file cannot be read.
STEPVERIFY_API std::vector<BonProblem> read_bon_problems(const std::filesystem::path& path,
                                                         std::ostream* skipped = nullptr);

/// Call-time options of evaluate_bon.
struct STEPVERIFY_API BonOptions {
  /// S: subsets per problem and N when C(k, N) exceeds it (else all subsets). >= 1.
  int samples = 32;
  /// Seed of the subset draws.
  uint64_t seed = 0;
  /// The N values (positive, increasing); empty: 1, 2, 4, ... below the
  /// largest candidate count K, then K.
  std::vector<int> n_values;
  /// Aggregate of step_scores for "weighted" and "best" when a candidate has no "score".
  Aggregate aggregate = Aggregate::Last;
  /// First-error metric: a step is predicted wrong when its score is below this.
  double threshold = 0.5;
  /// Number of equal-width reliability bins over [0, 1]. >= 1.
  int reliability_bins = 10;
  /// Extractor for candidates without "answer"; null: DefaultExtractor.
  const AnswerExtractor* extractor = nullptr;
  /// Equivalence for grouping and for comparison with gold; null: MathEquivalence.
  const AnswerEquivalence* equivalence = nullptr;
  /// The problems' curves (the subset draws and selections, the bulk of the
  /// work) dealt round-robin over a process group, gathered bit-exact and
  /// summed in problem order: every rank returns the single process's result
  /// (null: this process alone). Not owned.
  ProcessGroup* group = nullptr;
};

/// Accuracy against N of one method.
struct STEPVERIFY_API BonCurve {
  /// "majority", "weighted", "best", "best_min", "best_prod", "best_last" or "best_mean".
  std::string method;
  /// One value per BonResult::n, a fraction in [0, 1].
  std::vector<double> accuracy;
};

/// One bin of a reliability table.
struct STEPVERIFY_API ReliabilityBin {
  /// The bin's score range [lo, hi) (the last bin includes hi = 1).
  double lo = 0, hi = 0;
  /// Scores in the bin.
  int64_t count = 0;
  /// Mean score and fraction of label 1 in the bin; NaN when count == 0.
  double mean_score = 0, accuracy = 0;
};

/// A reliability table and its expected calibration error.
struct STEPVERIFY_API ReliabilityTable {
  /// All bins, in increasing order of score (empty bins included).
  std::vector<ReliabilityBin> bins;
  /// sum_b (count_b / total) |accuracy_b - mean_score_b|; 0 when total == 0.
  double ece = 0;
  /// Number of scores.
  int64_t total = 0;
};

/// The result of evaluate_bon.
struct STEPVERIFY_API BonResult {
  /// The N values, increasing.
  std::vector<int> n;
  /// One curve per method present, in the order of the header comment.
  std::vector<BonCurve> curves;
  /// Problems and candidates evaluated.
  int64_t problems = 0, candidates = 0;
  /// The options that produced the result.
  int samples = 0;
  uint64_t seed = 0;
  /// Candidates with both step scores and step labels, and their steps.
  int64_t labeled_solutions = 0, labeled_steps = 0;
  /// Step AUROC; nullopt without labeled steps of both classes.
  std::optional<double> step_auroc;
  /// The first-error metric (split "bon"); nullopt without labeled solutions.
  std::optional<SplitMetrics> first_error;
  /// Reliability of step scores; nullopt without labeled steps, or when a
  /// labeled step score lies outside [0, 1].
  std::optional<ReliabilityTable> reliability;
};

/// Accuracy curves and step metrics (rules in the header comment). Throws
/// InputError naming the problem when it has no candidate, when its
/// correctness cannot be decided (no gold, a candidate without "correct"), when
/// step_labels and step_scores differ in size, a label is not 0/1, a labeled
/// candidate's step score is not finite, or for bad options.
STEPVERIFY_API BonResult evaluate_bon(const std::vector<BonProblem>& problems, const BonOptions& options = {});

/// Area under the ROC curve of `scores` for `labels` (1 positive, 0
/// negative): the fraction of (positive, negative) pairs where the positive
/// scores higher, ties counting 1/2. O(n log n). nullopt when either class is
/// empty. Throws InputError on a size mismatch, a label not 0/1, or a
/// non-finite score.
STEPVERIFY_API std::optional<double> auroc(const std::vector<double>& scores, const std::vector<int>& labels);

/// Reliability table of `scores` in [0, 1] against `labels` (0/1) with `bins`
/// equal-width bins. Throws InputError on a size mismatch, a label not 0/1, a
/// score outside [0, 1] (or NaN), or bins < 1.
STEPVERIFY_API ReliabilityTable reliability(const std::vector<double>& scores, const std::vector<int>& labels,
                                            int bins = 10);

/// The result as one JSON object, pretty-printed with 2 spaces, no trailing newline:
///   {"n": [1, 2, 4, ...], "methods": {NAME: [accuracy per n]}, "problems": int,
///    "candidates": int, "samples": int, "seed": int,
///    "step_auroc"?: float, "first_error_f1"?: float,
///    "first_error"?: {"error_accuracy", "correct_accuracy", "f1", "threshold", "n_error", "n_correct"},
///    "ece"?: float, "reliability"?: [{"bin_lo", "bin_hi", "count", "mean_score", "accuracy"}]}
/// (optional keys present when the result holds them; an empty bin's
/// mean_score and accuracy are null).
STEPVERIFY_API std::string bon_json(const BonResult& result);

/// Markdown: a table of accuracy (percent, one decimal) with a row per method
/// and a column per N, the step metrics, and the reliability table.
STEPVERIFY_API std::string bon_markdown(const BonResult& result);

/// A standalone SVG line chart of accuracy against N (log2 x axis), one
/// <polyline class="curve"> per method in result order, with a legend.
STEPVERIFY_API std::string bon_svg(const BonResult& result, const std::string& title = "Accuracy against N");

/// A standalone SVG reliability diagram: one <rect class="bin"> per non-empty
/// bin (height = accuracy), the diagonal of perfect calibration, and the ECE.
STEPVERIFY_API std::string reliability_svg(const ReliabilityTable& table,
                                           const std::string& title = "Reliability of step scores");

}  // namespace stepverify
