// stepverify/eval/evaluation.h: measuring a verifier on ProcessBench (first-error
// identification), with reports in JSON, Markdown, plain text and SVG.
//
//   auto records = stepverify::read_processbench_records("scored.jsonl", {/*require_step_scores=*/true});
//   stepverify::ProcessBenchOptions opt;
//   opt.calibrate_on = "gsm8k";                       // or opt.threshold = 0.5 (the default)
//   auto result = stepverify::evaluate_processbench(records, opt);
//   std::cout << stepverify::processbench_markdown(result);
//   // result.splits[i].f1, result.average_f1, result.predictions[k] (one per record)
//
// The metric is ProcessBench's (Zheng et al. 2024, QwenLM/ProcessBench
// code/run_eval_prm_*.py): for each solution the prediction is the index of
// the first step whose score is strictly below the threshold, -1 when there is
// none. Per split, error_accuracy is the fraction of records with label != -1
// whose prediction equals the label exactly; correct_accuracy the fraction of
// records with label == -1 predicted -1; f1 = 2ab/(a+b) (0 when a+b == 0);
// average_f1 is the unweighted mean of f1 over the splits present. Values are
// fractions in [0, 1]; the paper prints them times 100.
//
// A split is named by the part of a record's id before its last '-'
// ("olympiadbench-7" -> "olympiadbench").
//
// Thread safety: every function here is a pure function of its arguments
// (no shared state) and may be called from several threads at once; the
// structs are plain values.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace stepverify {

/// One solution in ProcessBench's format, with the verifier's step scores.
struct STEPVERIFY_API ProcessBenchRecord {
  /// Record id, e.g. "gsm8k-12".
  std::string id;
  /// The split: `id` before its last '-' (see split_of_id).
  std::string split;
  /// 0-based index of the earliest wrong step; -1 when every step is right.
  int label = -1;
  /// One score per step (higher = more likely right); empty until scored.
  std::vector<double> step_scores;
  /// The problem text ("problem", or "question"); empty when the source has none.
  std::string problem;
  /// The steps; empty when the source has none (a scores-only file).
  std::vector<std::string> steps;
};

/// The split named by a record id: the part before the last '-'.
/// Throws FormatError when `id` has no '-' or nothing before it.
STEPVERIFY_API std::string split_of_id(const std::string& id);

/// Index of the first score strictly below `threshold`; -1 when none is.
STEPVERIFY_API int first_error_prediction(const std::vector<double>& scores, double threshold);

/// F1 of ProcessBench: 2ab/(a+b), and 0 when a + b == 0.
STEPVERIFY_API double processbench_f1(double error_accuracy, double correct_accuracy);

/// Call-time options of evaluate_processbench.
struct STEPVERIFY_API ProcessBenchOptions {
  /// Fixed threshold applied to every split; ignored when calibrate_on is set.
  double threshold = 0.5;
  /// When not empty: the threshold is chosen by calibrate_threshold on the
  /// records of this split, then applied to every split (as the ProcessBench
  /// authors did with GSM8K). The split must be present (else InputError).
  std::string calibrate_on;
};

/// Metrics of one split.
struct STEPVERIFY_API SplitMetrics {
  /// The split name.
  std::string split;
  /// Fraction of records with label != -1 whose prediction equals the label
  /// (0 when the split has no such record).
  double error_accuracy = 0;
  /// Fraction of records with label == -1 predicted -1 (0 when none).
  double correct_accuracy = 0;
  /// processbench_f1(error_accuracy, correct_accuracy).
  double f1 = 0;
  /// The threshold the predictions used.
  double threshold = 0.5;
  /// Records with label != -1, and how many of them were predicted exactly.
  int64_t n_error = 0, n_error_matched = 0;
  /// Records with label == -1, and how many of them were predicted -1.
  int64_t n_correct = 0, n_correct_matched = 0;
};

/// The result of evaluate_processbench.
struct STEPVERIFY_API ProcessBenchResult {
  /// One entry per split, in the order of each split's first record.
  std::vector<SplitMetrics> splits;
  /// Unweighted mean of splits[i].f1 (0 when there is no split).
  double average_f1 = 0;
  /// One prediction per input record, in input order.
  std::vector<int> predictions;
  /// The split the threshold was calibrated on; empty for a fixed threshold.
  std::string calibrated_on;
};

/// Predictions and metrics per split. Throws InputError naming the record when
/// a label is < -1, a label is not below the number of step scores, a score is
/// not finite, or `steps` is non-empty and its size differs from step_scores;
/// and when options.calibrate_on names a split with no record.
STEPVERIFY_API ProcessBenchResult evaluate_processbench(const std::vector<ProcessBenchRecord>& records,
                                                        const ProcessBenchOptions& options = {});

/// Metrics of `records` (treated as one split named `split`) at `threshold`;
/// predictions are appended to `predictions` when it is not null.
STEPVERIFY_API SplitMetrics processbench_metrics(const std::vector<ProcessBenchRecord>& records, double threshold,
                                                 const std::string& split = "",
                                                 std::vector<int>* predictions = nullptr);

/// The threshold maximising F1 over `records` (one split).
///
/// Candidates: every distinct step score s, every midpoint between two
/// consecutive distinct scores, and max(s) + 1 (which flags every step). These
/// reach every prediction pattern a threshold can produce. Among candidates of
/// maximal F1 (ties within 1e-12), the lowest wins: it flags the fewest steps,
/// and because a midpoint is lower than the score just above it, a midpoint is
/// preferred over the score bounding the same optimum, which leaves a margin.
/// Cost: O(S log S) for S step scores. Throws InputError when the records hold
/// no step score, or on the record errors of evaluate_processbench.
STEPVERIFY_API double calibrate_threshold(const std::vector<ProcessBenchRecord>& records);

/// Options of read_processbench_records.
struct STEPVERIFY_API ProcessBenchReadOptions {
  /// Every record must carry "step_scores" or a judge's scores (as `eval
  /// processbench --scores` needs).
  bool require_step_scores = false;
};

/// Reads records from a ProcessBench JSON file (a JSON array), a JSONL file
/// (one record per line, e.g. the output of `stepverify score` or
/// `eval processbench --predictions`), or a directory (every *.json and
/// *.jsonl file in it, by file name). Fields: "id" (string, required),
/// "label" (integer >= -1, required), "problem" or "question" (string),
/// "steps" (strings), "step_scores" (numbers, as many as steps when both are
/// present). A record without "step_scores" that carries "judge" (the output
/// of `stepverify judge`) takes the judge's "step_scores", a null (no chain
/// gave the step a verdict) read as 1, i.e. not flagged, as `eval processbench
/// --generative` scores it; a judge "error" (no chain could be read) gives
/// every step 1. Other fields are ignored. Throws IoError when a file cannot be
/// read, FormatError naming file and line (or array index) for a bad record.
STEPVERIFY_API std::vector<ProcessBenchRecord> read_processbench_records(const std::filesystem::path& path,
                                                                         const ProcessBenchReadOptions& options = {});

/// As read_processbench_records, from text; `source` names it in errors.
STEPVERIFY_API std::vector<ProcessBenchRecord> parse_processbench_records(const std::string& text,
                                                                          const std::string& source,
                                                                          const ProcessBenchReadOptions& options = {});

/// A step scorer: for each (problem, steps) pair, one score per step.
using ScoreFn = std::function<std::vector<std::vector<double>>(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps)>;

/// Fills every record's step_scores with one call of `score` on all
/// (problem, steps) pairs in record order (the scorer batches as it likes).
/// Throws InputError when a record has no steps text, or when the scorer
/// returns the wrong number of solutions or of steps.
STEPVERIFY_API void score_processbench_records(std::vector<ProcessBenchRecord>& records, const ScoreFn& score);

/// The result as one JSON object:
///   {"splits": {SPLIT: {"error_accuracy", "correct_accuracy", "f1", "threshold",
///                       "n_error", "n_correct"}}, "average_f1": float}
/// pretty-printed with 2 spaces, no trailing newline.
STEPVERIFY_API std::string processbench_json(const ProcessBenchResult& result);

/// A Markdown table (values in percent, one decimal, as in the paper), with an
/// average row and a line saying how the threshold was chosen.
STEPVERIFY_API std::string processbench_markdown(const ProcessBenchResult& result);

/// A plain-text table with aligned columns, for a terminal.
STEPVERIFY_API std::string processbench_text(const ProcessBenchResult& result);

/// A standalone SVG bar chart of F1 per split (one <rect class="bar"> per
/// split, in result order) with a dashed line at the average F1.
STEPVERIFY_API std::string processbench_svg(const ProcessBenchResult& result,
                                            const std::string& title = "ProcessBench: F1 per split");

/// One JSON line per record: {"id", "split", "label", "prediction", "match",
/// "threshold", "step_scores"}; the lines are valid input for --scores.
/// `result` must come from evaluate_processbench(records, ...) (InputError otherwise).
STEPVERIFY_API std::string processbench_predictions_jsonl(const std::vector<ProcessBenchRecord>& records,
                                                          const ProcessBenchResult& result);

}  // namespace stepverify
