// Monte Carlo step labels, OmegaPRM's binary search and SORM labels.
#include "stepverify/train/labeling.h"

#include <chrono>
#include <map>
#include <iostream>

#include <fmt/format.h>

#include "stepverify/answer.h"
#include "stepverify/distributed.h"
#include "stepverify/errors.h"
#include "stepverify/model.h"

namespace stepverify {

LmRolloutPolicy::LmRolloutPolicy(std::shared_ptr<const Model> policy, LmRolloutOptions options)
    : policy_(std::move(policy)), options_(std::move(options)) {
  if (!policy_ || !policy_->has_lm_head()) throw ConfigError("LmRolloutPolicy: the policy needs an LM head");
}

std::vector<std::string> LmRolloutPolicy::rollout(const std::vector<RolloutRequest>& requests, int n) {
  if (n < 1) throw ConfigError("rollout: n must be at least 1");
  const auto& tok = policy_->tokenizer();
  std::vector<std::vector<int64_t>> prompts;
  prompts.reserve(requests.size());
  for (const auto& r : requests) {
    prompts.push_back(tok.encode(options_.prompt.render(r.question, r.steps)));
  }
  auto g = options_.generation;
  g.num_samples = n;
  g.sampling.seed = options_.generation.sampling.seed + 0x9E3779B97F4A7C15ull * ++calls_;
  auto outs = generate(*policy_, prompts, g);
  std::vector<std::string> answers;
  answers.reserve(outs.size());
  for (const auto& o : outs) {
    generated_ += static_cast<int64_t>(o.ids.size());
    answers.push_back(extract_answer(o.text).value_or(""));
  }
  return answers;
}

namespace {

bool matches(const LabelOptions& o, const std::string& answer, const std::string& gold) {
  if (answer.empty()) return false;
  return o.equal ? o.equal(answer, gold) : answers_equal(answer, gold);
}

// Whether the solution's own final answer is right.
bool own_answer_right(const LabelProblem& p, const LabelOptions& o) {
  std::string text;
  for (const auto& s : p.steps) text += s + "\n";
  return matches(o, extract_answer(text).value_or(""), p.gold);
}

void check_problem(const LabelProblem& p, size_t i) {
  if (p.steps.empty()) throw InputError(fmt::format("labeling: problem {} has no steps", i));
}

}  // namespace

std::vector<StepLabels> monte_carlo_labels(RolloutPolicy& policy, const std::vector<LabelProblem>& problems,
                                           const LabelOptions& o) {
  if (o.rollouts < 1 || o.requests_per_call < 1) throw ConfigError("labeling: rollouts and requests_per_call >= 1");
  std::vector<StepLabels> out(problems.size());
  // One job per distinct prefix: samples of one question often share their
  // first steps, and a shared prefix is rolled out once (when share_prefixes).
  struct Job {
    size_t problem, step;                         // the first owner
    std::vector<std::pair<size_t, size_t>> also;  // further (problem, step) with the same prefix
  };
  std::vector<Job> jobs;
  std::map<std::vector<std::string>, size_t> by_prefix;  // question, gold, steps... -> job
  for (size_t i = 0; i < problems.size(); ++i) {
    check_problem(problems[i], i);
    const auto& p = problems[i];
    const size_t S = p.steps.size();
    out[i].soft.assign(S, 0.0);
    out[i].hard.assign(S, 0);
    const bool right = own_answer_right(p, o);
    out[i].soft[S - 1] = right ? 1.0 : 0.0;
    out[i].hard[S - 1] = right ? 1 : 0;
    std::vector<std::string> key = {p.question, p.gold};
    for (size_t s = 0; s + 1 < S; ++s) {
      key.push_back(p.steps[s]);
      if (o.share_prefixes) {
        const auto [it, fresh] = by_prefix.emplace(key, jobs.size());
        if (!fresh) {
          jobs[it->second].also.emplace_back(i, s);
          continue;
        }
      }
      jobs.push_back({i, s, {}});
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Hits per job; with a group, each rank's calls, summed over the ranks.
  std::vector<double> hits_of(jobs.size(), 0.0);
  const size_t per_call = static_cast<size_t>(o.requests_per_call);
  const size_t calls = (jobs.size() + per_call - 1) / per_call;
  const int world = o.group ? o.group->world_size() : 1, rank = o.group ? o.group->rank() : 0;
  for (size_t call : shard_items(calls, 1, rank, world)) {
    const size_t start = call * per_call;
    const size_t end = std::min(jobs.size(), start + per_call);
    std::vector<RolloutRequest> reqs;
    for (size_t j = start; j < end; ++j) {
      const auto& p = problems[jobs[j].problem];
      reqs.push_back(
          {p.question,
           std::vector<std::string>(p.steps.begin(), p.steps.begin() + static_cast<std::ptrdiff_t>(jobs[j].step) + 1)});
    }
    if (o.group) policy.seek(call);
    const auto answers = policy.rollout(reqs, o.rollouts);
    if (answers.size() != reqs.size() * static_cast<size_t>(o.rollouts))
      throw Error(fmt::format("labeling: the policy returned {} answers for {} requests x {} rollouts", answers.size(),
                              reqs.size(), o.rollouts));
    for (size_t j = start; j < end; ++j)
      for (int k = 0; k < o.rollouts; ++k)
        hits_of[j] += matches(o, answers[(j - start) * static_cast<size_t>(o.rollouts) + static_cast<size_t>(k)],
                              problems[jobs[j].problem].gold);
    if (o.progress) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::cerr << fmt::format("\rlabeling {}/{} distinct prefixes ({:.0f} rollouts/s)", end, jobs.size(),
                               static_cast<double>(end) * o.rollouts / std::max(secs, 1e-9))
                << std::flush;
    }
  }
  if (o.progress && !jobs.empty()) std::cerr << "\n";
  if (o.group) o.group->allreduce_sum(hits_of.data(), hits_of.size());  // counts: exact in double
  for (size_t j = 0; j < jobs.size(); ++j) {
    const auto& job = jobs[j];
    const int hits = static_cast<int>(hits_of[j]);
    out[job.problem].rollouts += o.rollouts;
    auto set = [&](size_t problem, size_t step) {
      out[problem].soft[step] = static_cast<double>(hits) / o.rollouts;
      out[problem].hard[step] = hits > 0;
    };
    set(job.problem, job.step);
    for (const auto& [problem, step] : job.also) set(problem, step);
  }
  return out;
}

FirstErrorSearch find_first_error(RolloutPolicy& policy, const LabelProblem& p, const LabelOptions& o) {
  check_problem(p, 0);
  if (o.rollouts < 1) throw ConfigError("labeling: rollouts >= 1");
  FirstErrorSearch r;
  const int S = static_cast<int>(p.steps.size());
  if (own_answer_right(p, o)) {
    r.labels.assign(static_cast<size_t>(S), 1);
    return r;
  }
  int lo = 0, hi = S - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    RolloutRequest req{p.question, std::vector<std::string>(p.steps.begin(), p.steps.begin() + mid + 1)};
    const auto answers = policy.rollout({req}, o.rollouts);
    if (answers.size() != static_cast<size_t>(o.rollouts))
      throw Error(fmt::format("labeling: the policy returned {} answers for 1 request x {} rollouts", answers.size(),
                              o.rollouts));
    ++r.batches;
    r.rollouts += o.rollouts;
    bool good = false;
    for (const auto& a : answers) good = good || matches(o, a, p.gold);
    if (good)
      lo = mid + 1;
    else
      hi = mid;
  }
  r.first_error = lo;
  for (int i = 0; i < S; ++i) r.labels.push_back(i < lo ? 1 : 0);
  return r;
}

std::vector<double> sorm_labels(const std::vector<int>& hard, std::optional<bool> outcome) {
  std::vector<double> out(hard.size(), 0.0);
  if (hard.empty()) return out;
  std::vector<int> h = hard;
  if (outcome) h.back() = *outcome ? 1 : 0;
  bool later_positive = false;
  for (size_t i = h.size(); i-- > 0;) {
    later_positive = later_positive || h[i] != 0;
    out[i] = later_positive ? 1.0 : 0.0;
  }
  return out;
}

}  // namespace stepverify
