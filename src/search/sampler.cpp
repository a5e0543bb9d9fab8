// SamplingProposer: k next steps sampled from a causal LM over one shared KV prefix.
#include <algorithm>

#include <torch/torch.h>

#include "stepverify/errors.h"
#include "stepverify/search.h"
#include "search/sample_logits.h"
#include "util/sequences.h"

namespace stepverify {

// The prompt tokens already in the cache, kept across calls: the next call's
// prompt (one step longer) shares them, so only the new step is prefilled.
struct SamplingProposer::State {
  std::vector<int64_t> ids;
  std::unique_ptr<KVCache> cache;
  at::Generator gen;
};

SamplingProposer::SamplingProposer(std::shared_ptr<const Model> policy, SamplerOptions options)
    : policy_(std::move(policy)), options_(std::move(options)), state_(std::make_unique<State>()) {
  if (!policy_->has_lm_head()) throw ConfigError("SamplingProposer: the policy has no LM head");
  if (options_.temperature < 0 || options_.top_p <= 0 || options_.top_p > 1 || options_.top_k < 0 ||
      options_.max_step_tokens < 1)
    throw ConfigError("SamplingProposer: temperature >= 0, 0 < top_p <= 1, top_k >= 0, max_step_tokens >= 1");
  state_->gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
}

SamplingProposer::~SamplingProposer() = default;


std::vector<Proposal> SamplingProposer::propose(const std::string& question, const std::vector<std::string>& steps,
                                                int k) {
  if (k < 1) return {};
  c10::InferenceMode guard;
  const auto& tok = policy_->tokenizer();
  std::string prompt = options_.prompt_template;
  if (auto pos = prompt.find("{question}"); pos != std::string::npos) prompt.replace(pos, 10, question);
  for (const auto& s : steps) prompt += s + options_.step_delimiter;
  const auto ids = tok.encode(prompt);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n + options_.max_step_tokens > policy_->config().max_position_embeddings)
    throw InputError("SamplingProposer: the prompt of " + std::to_string(n) + " tokens leaves no room for a step");

  // Prefill only what the cache does not hold yet (at least the last token,
  // whose logits start the step).
  auto& st = *state_;
  if (!st.cache) {
    KVCacheOptions co;
    co.capacity = policy_->config().max_position_embeddings;
    st.cache = std::make_unique<KVCache>(policy_->new_cache(1, co));
  }
  const int64_t keep = detail::common_prefix(st.ids, ids, n - 1);
  st.cache->truncate(std::min(keep, st.cache->length()));
  ForwardInput in;
  in.input_ids = to_batch(std::vector<int64_t>(ids.begin() + keep, ids.end()));
  in.cache = st.cache.get();
  auto h = policy_->forward(in).hidden;
  policy_tokens_ += n - keep;
  prefill_tokens_ += n - keep;
  st.ids = ids;
  auto logits = policy_->logits(h.select(1, h.size(1) - 1)).expand({k, -1});  // [k, V]

  // k rows decode from a copy of the prefix; the shared cache stays at the prompt.
  auto rows = st.cache->fork();
  rows.reorder(torch::zeros({k}, torch::kLong));
  std::vector<std::vector<int64_t>> gen(k);
  std::vector<Proposal> out(k);
  std::vector<bool> done(k, false);
  const auto& eos_ids = policy_->config().eos_token_ids;
  const auto eos = tok.special_tokens().eos_id;
  for (int64_t t = 0; t < options_.max_step_tokens; ++t) {
    auto next = detail::sample_logits(logits, options_.temperature, options_.top_k, options_.top_p, st.gen);
    bool all_done = true;
    for (int r = 0; r < k; ++r) {
      if (done[r]) continue;
      const int64_t id = next[r].item<int64_t>();
      const bool is_eos = (eos && id == *eos) || std::find(eos_ids.begin(), eos_ids.end(), id) != eos_ids.end();
      DecodeOptions d;
      d.skip_special_tokens = true;
      if (is_eos) {
        done[r] = true;
        out[r].finished = true;
        out[r].text = tok.decode(gen[r], d);
        continue;
      }
      gen[r].push_back(id);
      out[r].tokens += 1;
      const std::string text = tok.decode(gen[r], d);
      if (auto cut = text.find(options_.step_delimiter); cut != std::string::npos) {
        out[r].text = text.substr(0, cut);
        done[r] = true;
      } else if (t + 1 == options_.max_step_tokens) {
        out[r].text = text;
        out[r].finished = true;  // a step that never ends ends the solution
      }
      all_done = all_done && done[r];
    }
    if (all_done) break;
    ForwardInput step;
    step.input_ids = next.view({k, 1});
    step.cache = &rows;
    logits = policy_->logits(policy_->forward(step).hidden.select(1, 0));
    policy_tokens_ += k;
  }
  for (int r = 0; r < k; ++r) {
    if (out[r].text.empty() && !gen[r].empty() && !done[r]) {
      DecodeOptions d;
      d.skip_special_tokens = true;
      out[r].text = tok.decode(gen[r], d);
    }
    if (!options_.final_marker.empty() && out[r].text.find(options_.final_marker) != std::string::npos)
      out[r].finished = true;
  }
  return out;
}

}  // namespace stepverify
