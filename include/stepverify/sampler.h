// stepverify/sampler.h: the built-in step proposer, sampling steps from a
// causal LM (temperature, top-k, top-p, stop at the step delimiter or EOS,
// KV cache reused across steps, seeded).
//
//   auto policy = stepverify::Model::load("models/policy");
//   stepverify::SamplerOptions so;  so.sampling.temperature = 0.8;  so.sampling.seed = 1;
//   stepverify::SamplingProposer proposer(policy, so);
//   auto result = stepverify::beam_search(*verifier, proposer, question);
//
// Thread safety: a SamplingProposer is used by one thread at a time; the
// policy model is shared read-only.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stepverify/kv_cache.h"
#include "stepverify/model.h"
#include "stepverify/sampling.h"
#include "stepverify/search.h"
#include "stepverify/steps.h"

namespace stepverify {

/// Options of the built-in sampler.
struct STEPVERIFY_API SamplerOptions {
  SamplingParams sampling;       ///< temperature, top-k, top-p, seed (each call advances the generator)
  int64_t max_step_tokens = 96;  ///< a step longer than this is cut (and marked finished)
  /// The policy's prompt; its step_delimiter also ends a sampled step.
  PolicyPrompt prompt;
  /// A step containing this text finishes the solution (empty: only EOS does).
  std::string final_marker = "The answer is";
};

/// Samples steps from a causal LM, in batches of k rows over one shared KV
/// prefix. propose_many decodes every partial solution's k rows in one batch:
/// the prompt prefix they share stays in the cache across calls, each
/// partial's remaining tokens are prefilled together (left-padded within the
/// batch), and the rows decode together.
class STEPVERIFY_API SamplingProposer : public StepProposer {
 public:
  SamplingProposer(std::shared_ptr<const Model> policy, SamplerOptions options = {});
  ~SamplingProposer() override;
  std::vector<Proposal> propose(const std::string& question, const std::vector<std::string>& steps, int k) override;
  std::vector<std::vector<Proposal>> propose_many(const std::string& question,
                                                  const std::vector<std::vector<std::string>>& partials,
                                                  int k) override;
  /// propose_many(question, partials, 1) at temperature 0.
  std::vector<Proposal> propose_greedy(const std::string& question,
                                       const std::vector<std::vector<std::string>>& partials) override;
  /// Tokens run through the policy (prefill and decoding).
  int64_t policy_tokens() const { return policy_tokens_; }
  /// Prompt tokens prefilled (the part of each prompt the cache did not hold).
  int64_t prefill_tokens() const { return prefill_tokens_; }

 private:
  struct State;
  std::vector<int64_t> prompt_ids(const std::string& question, const std::vector<std::string>& steps) const;
  // Makes the shared cache hold ids[0, n) (prefilling what it lacks); returns
  // the logits after the last token when `want_logits`.
  at::Tensor prefill(const std::vector<int64_t>& ids, int64_t n, bool want_logits);
  // Decodes rows (a cache of rows.batch() rows whose next-token logits are
  // given) until each ends a step; `positions` [rows] is each row's next
  // position (undefined: past + 0 in every row).
  std::vector<Proposal> decode(KVCache& rows, at::Tensor logits, at::Tensor positions);
  std::shared_ptr<const Model> policy_;
  SamplerOptions options_;
  std::unique_ptr<State> state_;
  int64_t policy_tokens_ = 0;
  int64_t prefill_tokens_ = 0;
};

}  // namespace stepverify
