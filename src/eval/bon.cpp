// Best-of-N evaluation: accuracy against N by subsampling, step AUROC, the
// first-error metric and reliability (rules in stepverify/eval/bon.h).
//
// Selection on a subset reuses select_answer: answers and scores are
// computed once per problem (one select_answer call on the full set, with the
// caller's extractor and equivalence), and each subset is then selected with
// the candidate's group number as its answer under an identity equivalence,
// which gives the same groups and the same tie-breaking at a fraction of the
// cost of re-canonicalising every answer.
#include "stepverify/eval/bon.h"

#include <cstring>

#include "stepverify/distributed.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "stepverify/errors.h"
#include "util/jsonl.h"

namespace stepverify {
namespace {

using json = nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr Aggregate kAggregates[] = {Aggregate::Min, Aggregate::Product, Aggregate::Last, Aggregate::Mean};
constexpr const char* kAggregateNames[] = {"best_min", "best_prod", "best_last", "best_mean"};

// ---------------------------------------------------------------- parsing

// A string field, or a number read as its JSON text; nullopt when absent or null.
std::optional<std::string> text_field(const json& j, const char* name, const std::string& where) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  throw InputError(where + "'" + name + "' must be a string");
}

BonCandidate parse_candidate(const json& c, size_t k) {
  const std::string where = "candidates[" + std::to_string(k) + "]: ";
  if (!c.is_object()) throw InputError("candidates[" + std::to_string(k) + "] is not an object");
  BonCandidate out;
  if (auto t = text_field(c, "text", where)) out.candidate.text = *t;
  out.candidate.answer = text_field(c, "answer", where);
  if (!out.candidate.answer && !(c.contains("text") && c["text"].is_string()))
    throw InputError(where + "needs 'text' or 'answer'");
  if (auto it = c.find("score"); it != c.end() && !it->is_null()) {
    if (!it->is_number()) throw InputError(where + "'score' must be a number");
    out.candidate.score = it->get<double>();
  }
  if (auto it = c.find("step_scores"); it != c.end() && !it->is_null()) {
    if (!it->is_array()) throw InputError(where + "'step_scores' must be a list of numbers");
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_number()) throw InputError(where + "step_scores[" + std::to_string(i) + "] is not a number");
      out.candidate.step_scores.push_back((*it)[i].get<double>());
    }
  }
  if (auto it = c.find("step_labels"); it != c.end() && !it->is_null()) {
    if (!it->is_array()) throw InputError(where + "'step_labels' must be a list of 0/1 or booleans");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      if (v.is_boolean()) {
        out.step_labels.push_back(v.get<bool>() ? 1 : 0);
      } else if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1)) {
        out.step_labels.push_back(static_cast<int>(v.get<int64_t>()));
      } else {
        throw InputError(where + "step_labels[" + std::to_string(i) + "] is not 0, 1, true or false");
      }
    }
    if (!out.candidate.step_scores.empty() && out.step_labels.size() != out.candidate.step_scores.size())
      throw InputError(where + std::to_string(out.step_labels.size()) + " step_labels for " +
                       std::to_string(out.candidate.step_scores.size()) + " step_scores");
  }
  if (auto it = c.find("correct"); it != c.end() && !it->is_null()) {
    if (!it->is_boolean()) throw InputError(where + "'correct' must be a boolean");
    out.correct = it->get<bool>();
  }
  return out;
}

// ---------------------------------------------------------------- selection

// Extracts nothing: subset candidates carry their answer or have none.
class NoExtractor : public AnswerExtractor {
 public:
  std::optional<std::string> extract(std::string_view) const override { return std::nullopt; }
};

// The answer is its own key (answers are group numbers).
class IdentityEquivalence : public AnswerEquivalence {
 public:
  std::string canonical(std::string_view answer) const override { return std::string(answer); }
};

// One problem, prepared once for all subsets.
struct Prepared {
  std::vector<long> group;                  // per candidate: its answer group, -1 when none
  std::vector<bool> correct;                // per candidate
  std::vector<double> score;                // "weighted"/"best" score (NaN: missing)
  std::vector<std::vector<double>> by_agg;  // [aggregate][candidate] best_<agg> score
};

Prepared prepare(const BonProblem& p, size_t index, const BonOptions& options) {
  static const MathEquivalence kEquivalence;
  const AnswerEquivalence& equivalence = options.equivalence ? *options.equivalence : kEquivalence;
  std::vector<Candidate> cands;
  cands.reserve(p.candidates.size());
  for (const auto& c : p.candidates) cands.push_back(c.candidate);
  SelectionOptions so;
  so.aggregate = options.aggregate;
  so.extractor = options.extractor;
  so.equivalence = &equivalence;
  const Selection full = select_answer(cands, so);

  Prepared out;
  const size_t k = cands.size();
  out.group.assign(k, -1);
  for (size_t g = 0; g < full.groups.size(); ++g)
    for (size_t m : full.groups[g].members) out.group[m] = static_cast<long>(g);
  out.score = full.scores;
  out.by_agg.assign(4, std::vector<double>(k, kNaN));
  for (size_t a = 0; a < 4; ++a)
    for (size_t i = 0; i < k; ++i) {
      const double v = aggregate(cands[i].step_scores, kAggregates[a]);
      out.by_agg[a][i] = std::isfinite(v) ? v : kNaN;
    }
  std::optional<std::string> gold_key;
  if (p.gold) gold_key = equivalence.canonical(*p.gold);
  out.correct.assign(k, false);
  for (size_t i = 0; i < k; ++i) {
    const auto& c = p.candidates[i];
    if (c.correct) {
      out.correct[i] = *c.correct;
    } else if (gold_key) {
      out.correct[i] = out.group[i] >= 0 && full.groups[static_cast<size_t>(out.group[i])].key == *gold_key;
    } else {
      throw InputError("problem " + std::to_string(index) + (p.id.empty() ? "" : " (id " + p.id + ")") +
                       ": no gold answer, and candidates[" + std::to_string(i) + "] has no 'correct'");
    }
  }
  return out;
}

// Candidates of subset `idx` with group numbers as answers and `score` as scores.
std::vector<Candidate> subset_candidates(const Prepared& p, const std::vector<size_t>& idx,
                                         const std::vector<double>& score) {
  std::vector<Candidate> out(idx.size());
  for (size_t j = 0; j < idx.size(); ++j) {
    const size_t i = idx[j];
    if (p.group[i] >= 0) out[j].answer = std::to_string(p.group[i]);
    out[j].score = score[i];  // NaN counts as missing in select_answer
  }
  return out;
}

// ---------------------------------------------------------------- subsets

// Uniform integer in [0, m), m >= 1, by rejection (platform independent):
// the values below 2^64 mod m are rejected, leaving a multiple of m values.
uint64_t bounded(std::mt19937_64& rng, uint64_t m) {
  const uint64_t reject_below = (0 - m) % m;
  for (;;) {
    const uint64_t x = rng();
    if (x >= reject_below) return x % m;
  }
}

// C(k, n), or cap + 1 when it exceeds cap.
uint64_t binomial_capped(size_t k, size_t n, uint64_t cap) {
  if (n > k) return 0;
  n = std::min(n, k - n);
  long double c = 1;
  for (size_t i = 1; i <= n; ++i) {
    c = c * static_cast<long double>(k - n + i) / static_cast<long double>(i);
    if (c > static_cast<long double>(cap) + 0.5L) return cap + 1;
  }
  return static_cast<uint64_t>(std::llround(static_cast<double>(c)));
}

// The subsets of size n of 0..k-1 for problem `problem` (sorted indices each).
std::vector<std::vector<size_t>> subsets_of(size_t k, size_t n, size_t problem, const BonOptions& options) {
  std::vector<std::vector<size_t>> out;
  std::vector<size_t> all(k);
  for (size_t i = 0; i < k; ++i) all[i] = i;
  if (n >= k) {
    out.push_back(all);
    return out;
  }
  const uint64_t samples = static_cast<uint64_t>(options.samples);
  if (binomial_capped(k, n, samples) <= samples) {
    // Every n-subset once, in lexicographic order.
    std::vector<size_t> c(all.begin(), all.begin() + static_cast<long>(n));
    for (;;) {
      out.push_back(c);
      size_t i = n;
      while (i > 0 && c[i - 1] == k - n + i - 1) --i;
      if (i == 0) break;
      ++c[i - 1];
      for (size_t j = i; j < n; ++j) c[j] = c[j - 1] + 1;
    }
    return out;
  }
  std::seed_seq seq{static_cast<uint32_t>(options.seed), static_cast<uint32_t>(options.seed >> 32),
                    static_cast<uint32_t>(problem), static_cast<uint32_t>(problem >> 32), static_cast<uint32_t>(n)};
  std::mt19937_64 rng(seq);
  for (uint64_t s = 0; s < samples; ++s) {
    std::vector<size_t> perm = all;
    for (size_t i = 0; i < n; ++i) std::swap(perm[i], perm[i + bounded(rng, k - i)]);
    std::vector<size_t> pick(perm.begin(), perm.begin() + static_cast<long>(n));
    std::sort(pick.begin(), pick.end());
    out.push_back(std::move(pick));
  }
  return out;
}

// Whether the group chosen (index into sel.groups) is right: its first member.
bool group_right(const Selection& sel, long g, const std::vector<size_t>& idx, const Prepared& p) {
  if (g < 0) return false;
  return p.correct[idx[sel.groups[static_cast<size_t>(g)].members.front()]];
}

bool best_right(const Selection& sel, const std::vector<size_t>& idx, const Prepared& p) {
  return sel.best_index >= 0 && p.correct[idx[static_cast<size_t>(sel.best_index)]];
}

void check_labels(const std::vector<int>& labels, const std::string& where) {
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != 0 && labels[i] != 1)
      throw InputError(where + "label " + std::to_string(i) + " is " + std::to_string(labels[i]) + ", not 0 or 1");
}

}  // namespace

namespace {

BonProblem problem_from_json(const json& j) {
  if (!j.is_object()) throw InputError("the line is not a JSON object");
  BonProblem p;
  if (auto it = j.find("id"); it != j.end() && !it->is_null())
    p.id = it->is_string() ? it->get<std::string>() : it->dump();
  p.gold = text_field(j, "gold", "");
  // A gold solution rather than a gold answer: take its final answer (as `vote` does).
  if (p.gold && (p.gold->find("\\boxed") != std::string::npos || p.gold->find("####") != std::string::npos))
    p.gold = extract_answer(*p.gold);
  auto it = j.find("candidates");
  if (it == j.end() || !it->is_array()) throw InputError("field 'candidates' must be a list of objects");
  for (size_t k = 0; k < it->size(); ++k) p.candidates.push_back(parse_candidate((*it)[k], k));
  return p;
}

}  // namespace

BonProblem parse_bon_problem(std::string_view json_line) {
  detail::check_json_depth<FormatError>(json_line, "the line");
  json j;
  try {
    j = json::parse(json_line.begin(), json_line.end());
  } catch (const json::exception& e) {
    throw FormatError(std::string("not valid JSON: ") + e.what());
  }
  return problem_from_json(j);
}

std::vector<BonProblem> read_bon_problems(const std::filesystem::path& path, std::ostream* skipped) {
  std::ifstream in(path);
  if (!in) throw IoError(path.string() + ": cannot open");
  std::vector<BonProblem> problems;
  detail::for_each_jsonl<json>(
      in, path.string(), skipped ? detail::BadLine::Skip : detail::BadLine::Throw,
      [&](const json& j, const std::string&) {
        BonProblem p = problem_from_json(j);
        if (p.candidates.empty()) throw InputError("no candidate");
        if (!p.gold)
          for (size_t k = 0; k < p.candidates.size(); ++k)
            if (!p.candidates[k].correct)
              throw InputError("no 'gold', and candidates[" + std::to_string(k) + "] has no 'correct'");
        problems.push_back(std::move(p));
      },
      skipped);
  return problems;
}

std::optional<double> auroc(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size())
    throw InputError("auroc: " + std::to_string(scores.size()) + " scores for " + std::to_string(labels.size()) +
                     " labels");
  check_labels(labels, "auroc: ");
  std::vector<size_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) {
    if (!std::isfinite(scores[i])) throw InputError("auroc: score " + std::to_string(i) + " is not finite");
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney: sum of the (average, 1-based) ranks of the positives.
  double rank_sum = 0;
  int64_t pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t t = i; t < j; ++t)
      if (labels[order[t]] == 1) {
        rank_sum += avg_rank;
        ++pos;
      }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(scores.size()) - pos;
  if (pos == 0 || neg == 0) return std::nullopt;
  const double p = static_cast<double>(pos), n = static_cast<double>(neg);
  return (rank_sum - p * (p + 1) / 2) / (p * n);
}

ReliabilityTable reliability(const std::vector<double>& scores, const std::vector<int>& labels, int bins) {
  if (bins < 1) throw InputError("reliability: bins must be >= 1, got " + std::to_string(bins));
  if (scores.size() != labels.size())
    throw InputError("reliability: " + std::to_string(scores.size()) + " scores for " + std::to_string(labels.size()) +
                     " labels");
  check_labels(labels, "reliability: ");
  ReliabilityTable t;
  t.bins.resize(static_cast<size_t>(bins));
  std::vector<double> sum_score(t.bins.size(), 0), sum_label(t.bins.size(), 0);
  for (size_t i = 0; i < scores.size(); ++i) {
    const double s = scores[i];
    if (!(s >= 0 && s <= 1))
      throw InputError("reliability: score " + std::to_string(i) + " (" + std::to_string(s) + ") is outside [0, 1]");
    const size_t b = std::min(static_cast<size_t>(bins - 1), static_cast<size_t>(std::floor(s * bins)));
    ++t.bins[b].count;
    sum_score[b] += s;
    sum_label[b] += labels[i];
  }
  t.total = static_cast<int64_t>(scores.size());
  for (size_t b = 0; b < t.bins.size(); ++b) {
    auto& bin = t.bins[b];
    bin.lo = static_cast<double>(b) / bins;
    bin.hi = static_cast<double>(b + 1) / bins;
    if (bin.count == 0) {
      bin.mean_score = bin.accuracy = kNaN;
      continue;
    }
    const double n = static_cast<double>(bin.count);
    bin.mean_score = sum_score[b] / n;
    bin.accuracy = sum_label[b] / n;
    t.ece += n / static_cast<double>(t.total) * std::fabs(bin.accuracy - bin.mean_score);
  }
  return t;
}

BonResult evaluate_bon(const std::vector<BonProblem>& problems, const BonOptions& options) {
  if (options.samples < 1) throw InputError("evaluate_bon: samples must be >= 1");
  if (options.reliability_bins < 1) throw InputError("evaluate_bon: reliability_bins must be >= 1");
  BonResult r;
  r.samples = options.samples;
  r.seed = options.seed;
  r.problems = static_cast<int64_t>(problems.size());

  // Which methods the data allow, and the N grid.
  size_t max_k = 0;
  bool any_score = false, any_steps = false;
  for (size_t pi = 0; pi < problems.size(); ++pi) {
    const auto& p = problems[pi];
    if (p.candidates.empty())
      throw InputError("problem " + std::to_string(pi) + (p.id.empty() ? "" : " (id " + p.id + ")") +
                       " has no candidate");
    max_k = std::max(max_k, p.candidates.size());
    r.candidates += static_cast<int64_t>(p.candidates.size());
    for (const auto& c : p.candidates) {
      any_score = any_score || c.candidate.score.has_value();
      any_steps = any_steps || !c.candidate.step_scores.empty();
    }
  }
  if (!options.n_values.empty()) {
    for (size_t i = 0; i < options.n_values.size(); ++i)
      if (options.n_values[i] < 1 || (i > 0 && options.n_values[i] <= options.n_values[i - 1]))
        throw InputError("evaluate_bon: n_values must be positive and increasing");
    r.n = options.n_values;
  } else if (max_k > 0) {
    for (size_t n = 1; n < max_k; n *= 2) r.n.push_back(static_cast<int>(n));
    r.n.push_back(static_cast<int>(max_k));
  }
  enum Method { kMajority, kWeighted, kBest, kBestAgg0 };
  std::vector<int> methods = {kMajority};
  if (any_score || any_steps) methods.push_back(kWeighted);
  if (any_score) methods.push_back(kBest);
  if (any_steps)
    for (int a = 0; a < 4; ++a) methods.push_back(kBestAgg0 + a);
  for (int m : methods) {
    BonCurve c;
    c.method = m == kMajority   ? "majority"
               : m == kWeighted ? "weighted"
               : m == kBest     ? "best"
                                : kAggregateNames[m - kBestAgg0];
    c.accuracy.assign(r.n.size(), 0.0);
    r.curves.push_back(std::move(c));
  }

  // Curves.
  static const NoExtractor kNoExtractor;
  static const IdentityEquivalence kIdentity;
  SelectionOptions sub_options;
  sub_options.extractor = &kNoExtractor;
  sub_options.equivalence = &kIdentity;
  std::vector<double> step_scores;
  std::vector<int> step_labels;
  std::vector<ProcessBenchRecord> records;
  // Per problem, its contribution to each curve point (N-major, then method),
  // computed by the rank that owns it.
  const size_t cells = r.n.size() * methods.size();
  const int world = options.group ? options.group->world_size() : 1, rank = options.group ? options.group->rank() : 0;
  std::vector<std::vector<double>> contribution(problems.size());
  for (size_t pi : shard_items(problems.size(), 1, rank, world)) {
    const BonProblem& p = problems[pi];
    const Prepared prep = prepare(p, pi, options);
    const size_t k = p.candidates.size();
    auto& cell = contribution[pi];
    cell.assign(cells, 0.0);
    for (size_t ni = 0; ni < r.n.size(); ++ni) {
      const auto subsets = subsets_of(k, static_cast<size_t>(r.n[ni]), pi, options);
      std::vector<double> right(methods.size(), 0.0);
      for (const auto& idx : subsets) {
        const Selection sel = select_answer(subset_candidates(prep, idx, prep.score), sub_options);
        for (size_t mi = 0; mi < methods.size(); ++mi) {
          const int m = methods[mi];
          if (m == kMajority) right[mi] += group_right(sel, sel.majority_group, idx, prep);
          if (m == kWeighted) right[mi] += group_right(sel, sel.weighted_group, idx, prep);
          if (m == kBest) right[mi] += best_right(sel, idx, prep);
          if (m >= kBestAgg0) {
            const auto& score = prep.by_agg[static_cast<size_t>(m - kBestAgg0)];
            right[mi] += best_right(select_answer(subset_candidates(prep, idx, score), sub_options), idx, prep);
          }
        }
      }
      for (size_t mi = 0; mi < methods.size(); ++mi)
        cell[ni * methods.size() + mi] = right[mi] / static_cast<double>(subsets.size());
    }
  }
  if (options.group && world > 1) {
    // Each rank's cells, in its problems' order, as raw doubles.
    std::string mine;
    for (size_t pi : shard_items(problems.size(), 1, rank, world))
      mine.append(reinterpret_cast<const char*>(contribution[pi].data()), cells * sizeof(double));
    const auto all = options.group->allgather(mine);
    for (int from = 0; from < world; ++from) {
      const auto owned = shard_items(problems.size(), 1, from, world);
      const std::string& bytes = all[static_cast<size_t>(from)];
      if (bytes.size() != owned.size() * cells * sizeof(double))
        throw Error("evaluate_bon: rank " + std::to_string(from) + " sent " + std::to_string(bytes.size()) +
                    " bytes of curves");
      for (size_t j = 0; j < owned.size(); ++j) {
        auto& cell = contribution[owned[j]];
        cell.resize(cells);
        std::memcpy(cell.data(), bytes.data() + j * cells * sizeof(double), cells * sizeof(double));
      }
    }
  }
  for (size_t pi = 0; pi < problems.size(); ++pi) {
    const BonProblem& p = problems[pi];
    const size_t k = p.candidates.size();
    for (size_t ni = 0; ni < r.n.size(); ++ni)
      for (size_t mi = 0; mi < methods.size(); ++mi)
        r.curves[mi].accuracy[ni] += contribution[pi][ni * methods.size() + mi];

    // Step labels.
    for (size_t ci = 0; ci < k; ++ci) {
      const auto& c = p.candidates[ci];
      const std::string where = "problem " + std::to_string(pi) + (p.id.empty() ? "" : " (id " + p.id + ")") +
                                ", candidates[" + std::to_string(ci) + "]: ";
      check_labels(c.step_labels, where + "step_labels: ");
      if (c.step_labels.empty() || c.candidate.step_scores.empty()) continue;
      if (c.step_labels.size() != c.candidate.step_scores.size())
        throw InputError(where + std::to_string(c.step_labels.size()) + " step_labels for " +
                         std::to_string(c.candidate.step_scores.size()) + " step_scores");
      ProcessBenchRecord rec;
      rec.id = "bon-" + std::to_string(records.size());
      rec.split = "bon";
      for (size_t s = 0; s < c.step_labels.size(); ++s) {
        if (!std::isfinite(c.candidate.step_scores[s]))
          throw InputError(where + "step_scores[" + std::to_string(s) + "] is not finite");
        if (c.step_labels[s] == 0 && rec.label == -1) rec.label = static_cast<int>(s);
      }
      rec.step_scores = c.candidate.step_scores;
      records.push_back(std::move(rec));
      step_scores.insert(step_scores.end(), c.candidate.step_scores.begin(), c.candidate.step_scores.end());
      step_labels.insert(step_labels.end(), c.step_labels.begin(), c.step_labels.end());
    }
  }
  if (!problems.empty())
    for (auto& c : r.curves)
      for (double& a : c.accuracy) a /= static_cast<double>(problems.size());

  r.labeled_solutions = static_cast<int64_t>(records.size());
  r.labeled_steps = static_cast<int64_t>(step_scores.size());
  if (!records.empty()) {
    r.step_auroc = auroc(step_scores, step_labels);
    r.first_error = processbench_metrics(records, options.threshold, "bon");
    const bool in_unit = std::all_of(step_scores.begin(), step_scores.end(), [](double s) { return s >= 0 && s <= 1; });
    if (in_unit) r.reliability = reliability(step_scores, step_labels, options.reliability_bins);
  }
  return r;
}

}  // namespace stepverify
