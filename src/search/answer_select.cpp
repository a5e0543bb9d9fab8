// Answer selection: step-score aggregation, majority vote, weighted
// self-consistency and best-of-N. The rules are written in
// include/stepverify/answer.h; this file follows them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stepverify/answer.h"
#include "stepverify/errors.h"

namespace stepverify {

// ============================================================== selection ==

Selection select_answer(const std::vector<Candidate>& candidates, const SelectionOptions& options) {
  static const DefaultExtractor kExtractor;
  static const MathEquivalence kEquivalence;
  const AnswerExtractor& extractor = options.extractor ? *options.extractor : kExtractor;
  const AnswerEquivalence& equivalence = options.equivalence ? *options.equivalence : kEquivalence;

  Selection sel;
  std::map<std::string, size_t> group_of;
  std::vector<bool> has_score;  // per group: some member has a finite score
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    std::optional<std::string> ans = c.answer ? c.answer : extractor.extract(c.text);
    double score = c.score ? *c.score : aggregate(c.step_scores, options.aggregate);
    if (!std::isfinite(score)) score = nan;
    sel.answers.push_back(ans);
    sel.scores.push_back(score);
    if (!std::isnan(score) && (sel.best_index < 0 || score > sel.scores[static_cast<size_t>(sel.best_index)]))
      sel.best_index = static_cast<long>(i);
    if (!ans) continue;
    const std::string key = equivalence.canonical(*ans);
    auto [it, fresh] = group_of.emplace(key, sel.groups.size());
    if (fresh) {
      sel.groups.push_back(AnswerGroup{key, *ans, {}, 0.0});
      has_score.push_back(false);
    }
    AnswerGroup& g = sel.groups[it->second];
    g.members.push_back(i);
    if (!std::isnan(score)) {
      g.weight += score;
      has_score[it->second] = true;
    }
  }
  for (size_t g = 0; g < sel.groups.size(); ++g) {
    if (sel.majority_group < 0 ||
        sel.groups[g].members.size() > sel.groups[static_cast<size_t>(sel.majority_group)].members.size())
      sel.majority_group = static_cast<long>(g);
    if (has_score[g] &&
        (sel.weighted_group < 0 || sel.groups[g].weight > sel.groups[static_cast<size_t>(sel.weighted_group)].weight))
      sel.weighted_group = static_cast<long>(g);
  }
  if (sel.majority_group >= 0) sel.majority = sel.groups[static_cast<size_t>(sel.majority_group)].answer;
  if (sel.weighted_group >= 0) sel.weighted = sel.groups[static_cast<size_t>(sel.weighted_group)].answer;
  if (sel.best_index >= 0) sel.best = sel.answers[static_cast<size_t>(sel.best_index)];
  return sel;
}

}  // namespace stepverify
