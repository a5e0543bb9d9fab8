// ProcessBench: first-error predictions, per-split metrics and threshold
// calibration (see stepverify/eval/evaluation.h for the definitions).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "stepverify/errors.h"
#include "stepverify/eval/evaluation.h"

namespace stepverify {
namespace {

// Throws InputError when `r` cannot be evaluated (see evaluate_processbench).
void check_record(const ProcessBenchRecord& r) {
  const std::string where = "record '" + r.id + "'";
  if (r.label < -1) throw InputError(where + ": label " + std::to_string(r.label) + " is below -1");
  if (!r.steps.empty() && r.steps.size() != r.step_scores.size())
    throw InputError(where + ": " + std::to_string(r.steps.size()) + " steps but " +
                     std::to_string(r.step_scores.size()) + " step scores");
  if (r.label >= 0 && static_cast<size_t>(r.label) >= r.step_scores.size())
    throw InputError(where + ": label " + std::to_string(r.label) + " but only " +
                     std::to_string(r.step_scores.size()) + " step scores");
  for (size_t i = 0; i < r.step_scores.size(); ++i)
    if (!std::isfinite(r.step_scores[i]))
      throw InputError(where + ": step_scores[" + std::to_string(i) + "] is not finite");
}

double fraction(int64_t num, int64_t den) { return den ? static_cast<double>(num) / static_cast<double>(den) : 0.0; }

}  // namespace

std::string split_of_id(const std::string& id) {
  const auto dash = id.rfind('-');
  if (dash == std::string::npos || dash == 0)
    throw FormatError("id '" + id + "': expected SPLIT-N (the split is the part before the last '-')");
  return id.substr(0, dash);
}

int first_error_prediction(const std::vector<double>& scores, double threshold) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i] < threshold) return static_cast<int>(i);
  return -1;
}

double processbench_f1(double error_accuracy, double correct_accuracy) {
  const double sum = error_accuracy + correct_accuracy;
  return sum > 0 ? 2 * error_accuracy * correct_accuracy / sum : 0.0;
}

SplitMetrics processbench_metrics(const std::vector<ProcessBenchRecord>& records, double threshold,
                                  const std::string& split, std::vector<int>* predictions) {
  SplitMetrics m;
  m.split = split;
  m.threshold = threshold;
  for (const auto& r : records) {
    check_record(r);
    const int pred = first_error_prediction(r.step_scores, threshold);
    if (predictions) predictions->push_back(pred);
    if (r.label == -1) {
      ++m.n_correct;
      if (pred == -1) ++m.n_correct_matched;
    } else {
      ++m.n_error;
      if (pred == r.label) ++m.n_error_matched;
    }
  }
  m.error_accuracy = fraction(m.n_error_matched, m.n_error);
  m.correct_accuracy = fraction(m.n_correct_matched, m.n_correct);
  m.f1 = processbench_f1(m.error_accuracy, m.correct_accuracy);
  return m;
}

// For threshold t a record is predicted right exactly when t lies in an
// interval (lo, hi]: with m_i the minimum of scores 0..i (m_{-1} = +inf),
//   label L >= 0: all steps before L are >= t and step L is < t, i.e.
//                 t in (s_L, m_{L-1}] (empty when s_L >= m_{L-1});
//   label -1:     no step is < t, i.e. t in (-inf, m_{n-1}].
// Each interval adds 1 to a contiguous range of the sorted candidates, so a
// difference array over candidates gives every candidate's counts at once.
double calibrate_threshold(const std::vector<ProcessBenchRecord>& records) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> scores;
  for (const auto& r : records) {
    check_record(r);
    scores.insert(scores.end(), r.step_scores.begin(), r.step_scores.end());
  }
  if (scores.empty()) throw InputError("calibrating the threshold: the records hold no step score");
  std::sort(scores.begin(), scores.end());
  scores.erase(std::unique(scores.begin(), scores.end()), scores.end());

  std::vector<double> cand;
  cand.reserve(2 * scores.size() + 1);
  for (size_t i = 0; i < scores.size(); ++i) {
    if (i > 0) {
      const double mid = scores[i - 1] + (scores[i] - scores[i - 1]) / 2;
      // When two scores are adjacent doubles the midpoint rounds onto one of
      // them; it then duplicates a candidate and is left out.
      if (mid > scores[i - 1] && mid < scores[i]) cand.push_back(mid);
    }
    cand.push_back(scores[i]);
  }
  cand.push_back(scores.back() + 1);  // flags every step
  // cand is ascending: s0, mid01, s1, mid12, s2, ..., max + 1.

  const size_t n = cand.size();
  std::vector<int64_t> d_err(n + 1, 0), d_cor(n + 1, 0);
  int64_t n_error = 0, n_correct = 0;
  // Adds 1 on the candidates inside (lo, hi].
  auto add = [&](std::vector<int64_t>& d, double lo, double hi) {
    const size_t a = std::upper_bound(cand.begin(), cand.end(), lo) - cand.begin();
    const size_t b = std::upper_bound(cand.begin(), cand.end(), hi) - cand.begin();
    if (a < b) {
      d[a] += 1;
      d[b] -= 1;
    }
  };
  for (const auto& r : records) {
    double prefix_min = kInf;  // m_{i-1}
    if (r.label == -1) {
      ++n_correct;
      for (double s : r.step_scores) prefix_min = std::min(prefix_min, s);
      add(d_cor, -kInf, prefix_min);
    } else {
      ++n_error;
      for (int i = 0; i < r.label; ++i) prefix_min = std::min(prefix_min, r.step_scores[i]);
      const double s_label = r.step_scores[r.label];
      if (s_label < prefix_min) add(d_err, s_label, prefix_min);
    }
  }

  double best_f1 = -1, best_t = cand.front();
  int64_t err = 0, cor = 0;
  for (size_t k = 0; k < n; ++k) {
    err += d_err[k];
    cor += d_cor[k];
    const double f1 = processbench_f1(fraction(err, n_error), fraction(cor, n_correct));
    if (f1 > best_f1 + 1e-12) {  // strictly better: the lowest of ties is kept
      best_f1 = f1;
      best_t = cand[k];
    }
  }
  return best_t;
}

ProcessBenchResult evaluate_processbench(const std::vector<ProcessBenchRecord>& records,
                                         const ProcessBenchOptions& options) {
  // Records of each split, in order of first appearance.
  std::vector<std::string> order;
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < records.size(); ++i) {
    auto [it, fresh] = members.try_emplace(records[i].split);
    if (fresh) order.push_back(records[i].split);
    it->second.push_back(i);
  }
  auto subset = [&](const std::string& split) {
    std::vector<ProcessBenchRecord> out;
    for (size_t i : members.at(split)) out.push_back(records[i]);
    return out;
  };

  ProcessBenchResult result;
  double threshold = options.threshold;
  if (!options.calibrate_on.empty()) {
    if (!members.count(options.calibrate_on)) {
      std::string have;
      for (const auto& s : order) have += (have.empty() ? "" : ", ") + s;
      throw InputError("calibrate on split '" + options.calibrate_on +
                       "': no record of it (splits present: " + (have.empty() ? "none" : have) + ")");
    }
    threshold = calibrate_threshold(subset(options.calibrate_on));
    result.calibrated_on = options.calibrate_on;
  }
  if (!std::isfinite(threshold)) throw InputError("the threshold must be finite");

  result.predictions.assign(records.size(), -1);
  double sum_f1 = 0;
  for (const auto& split : order) {
    std::vector<int> preds;
    result.splits.push_back(processbench_metrics(subset(split), threshold, split, &preds));
    const auto& idx = members.at(split);
    for (size_t k = 0; k < idx.size(); ++k) result.predictions[idx[k]] = preds[k];
    sum_f1 += result.splits.back().f1;
  }
  result.average_f1 = order.empty() ? 0.0 : sum_f1 / static_cast<double>(order.size());
  return result;
}

}  // namespace stepverify
