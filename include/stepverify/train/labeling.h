// stepverify/train/labeling.h: step labels from Monte Carlo rollouts.
//
//   auto policy = stepverify::Model::load("models/policy");
//   stepverify::LmRolloutPolicy roll(policy);                  // completes "question\nstep\n..." prompts
//   std::vector<stepverify::LabelProblem> probs = {{question, steps, "32"}};
//   stepverify::LabelOptions o;  o.rollouts = 8;
//   auto labels = stepverify::monte_carlo_labels(roll, probs, o);
//   // labels[0].soft[i]: share of rollouts from steps[0..i] reaching "32" (Math-Shepherd soft)
//   // labels[0].hard[i]: 1 when any did (Math-Shepherd hard)
//   auto fe = stepverify::find_first_error(roll, probs[0], o);   // OmegaPRM binary search
//   auto sorm = stepverify::sorm_labels(labels[0].hard);          // positives propagated backwards
//
// Conventions. The prefix of step i is steps[0..i]. The last step of a
// solution is its end: its label is whether the solution's own answer is
// right, with no rollout (Math-Shepherd). A rollout reaches the gold answer
// when the answer extracted from its completion equals the gold under
// LabelOptions::equal (MathEquivalence by default).
//
// find_first_error (OmegaPRM's binary search): a solution whose answer is
// right has no wrong step (0 rollout batches). Otherwise the search keeps an
// interval [lo, hi] with every prefix shorter than lo good and the prefix
// through hi bad (initially lo = 0, hi = last step) and probes the middle
// with one batch of `rollouts` rollouts: a prefix is good when any rollout
// reaches the gold answer. It stops when lo == hi, after ceil(log2(steps))
// batches at most, and reports lo.
//
// Thread safety: the functions are reentrant; a RolloutPolicy is called from
// the calling thread only.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stepverify/generation.h"
#include "stepverify/steps.h"

namespace stepverify {

class Model;         // stepverify/model.h
class ProcessGroup;  // stepverify/distributed.h

/// A partial solution to complete.
struct STEPVERIFY_API RolloutRequest {
  std::string question;
  std::vector<std::string> steps;  ///< the prefix
};

/// The extension point: completes partial solutions and returns final answers.
class STEPVERIFY_API RolloutPolicy {
 public:
  virtual ~RolloutPolicy() = default;
  /// `n` completions of every request; returns requests.size() * n final
  /// answers, request-major ("" when a completion states none).
  virtual std::vector<std::string> rollout(const std::vector<RolloutRequest>& requests, int n) = 0;
  /// Makes the next rollout() call draw as the call numbered `call` (0-based)
  /// of a fresh policy would: sharded and per-item labeling seed each call by
  /// its index, not by how many calls this process made. The default does
  /// nothing (a policy whose draws do not depend on its history).
  virtual void seek(uint64_t call) { (void)call; }
};

/// Options of the built-in rollout policy.
struct STEPVERIFY_API LmRolloutOptions {
  GenerationOptions generation;  ///< sampling (temperature 1 by default); the seed advances per call
  PolicyPrompt prompt;           ///< the prompt of a prefix (question, then its steps)
};

/// Rollouts sampled from a causal LM with generate(); answers extracted from
/// the completions with the default extractor.
class STEPVERIFY_API LmRolloutPolicy : public RolloutPolicy {
 public:
  explicit LmRolloutPolicy(std::shared_ptr<const Model> policy, LmRolloutOptions options = {});
  std::vector<std::string> rollout(const std::vector<RolloutRequest>& requests, int n) override;
  /// The seed of call k is generation.sampling.seed + k-th multiple of a constant.
  void seek(uint64_t call) override { calls_ = call; }
  /// Tokens generated so far.
  int64_t generated_tokens() const { return generated_; }

 private:
  std::shared_ptr<const Model> policy_;
  LmRolloutOptions options_;
  uint64_t calls_ = 0;
  int64_t generated_ = 0;
};

/// A solution to label.
struct STEPVERIFY_API LabelProblem {
  std::string question;
  std::vector<std::string> steps;
  std::string gold;  ///< the correct final answer
};

/// Options of the labelers.
struct STEPVERIFY_API LabelOptions {
  int rollouts = 8;                 ///< rollouts per prefix (per probe for the binary search)
  int64_t requests_per_call = 256;  ///< prefixes handed to the policy at once
  /// Answer equality (default: answers_equal, the MathEquivalence).
  std::function<bool(const std::string& answer, const std::string& gold)> equal;
  bool progress = false;  ///< progress bar on stderr
  /// Monte Carlo labels: a step prefix shared by several solutions of the same
  /// question and gold answer (samples often agree on their first steps) is
  /// rolled out once and its label given to all of them; its rollouts count
  /// for the first solution that has it.
  bool share_prefixes = true;
  /// Monte Carlo labels over a process group (null: this process alone): the
  /// rollout calls (batches of requests_per_call prefixes, in the order one
  /// process makes them) are dealt round-robin to the ranks, each seeded by
  /// its index (RolloutPolicy::seek), and every rank ends with all the
  /// labels, the same as one process's. Not owned.
  ProcessGroup* group = nullptr;
};

/// Monte Carlo labels of one solution.
struct STEPVERIFY_API StepLabels {
  std::vector<double> soft;  ///< share of rollouts reaching the gold answer, per step
  std::vector<int> hard;     ///< 1 when any rollout did, per step
  int64_t rollouts = 0;      ///< rollouts spent on this solution (a shared prefix counts once, for its first owner)
};

/// Math-Shepherd estimation for every step of every problem. Throws InputError
/// on a problem without steps.
STEPVERIFY_API std::vector<StepLabels> monte_carlo_labels(RolloutPolicy& policy,
                                                          const std::vector<LabelProblem>& problems,
                                                          const LabelOptions& options = {});

/// The outcome of the binary search.
struct STEPVERIFY_API FirstErrorSearch {
  int first_error = -1;  ///< -1 when the answer is right
  int batches = 0;       ///< rollout batches used
  int64_t rollouts = 0;
  std::vector<int> labels;  ///< 1 before the first error, 0 from it on
};

STEPVERIFY_API FirstErrorSearch find_first_error(RolloutPolicy& policy, const LabelProblem& problem,
                                                 const LabelOptions& options = {});

/// GLoRe SORM labels from hard Monte Carlo labels: a step is positive when
/// it or any later step is (positives propagated backwards); when `outcome`
/// is given, the last step takes it.
STEPVERIFY_API std::vector<double> sorm_labels(const std::vector<int>& hard,
                                               std::optional<bool> outcome = std::nullopt);

}  // namespace stepverify
