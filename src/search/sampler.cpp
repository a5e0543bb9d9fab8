// SamplingProposer: k next steps sampled from a causal LM over one shared KV prefix.
#include <algorithm>

#include <torch/torch.h>

#include "stepverify/errors.h"
#include "stepverify/sampler.h"
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
  options_.sampling.check("SamplingProposer");
  if (options_.max_step_tokens < 1) throw ConfigError("SamplingProposer: max_step_tokens >= 1");
  state_->gen = at::make_generator<at::CPUGeneratorImpl>(options_.sampling.seed);
}

SamplingProposer::~SamplingProposer() = default;

std::vector<int64_t> SamplingProposer::prompt_ids(const std::string& question,
                                                  const std::vector<std::string>& steps) const {
  const std::string prompt = options_.prompt.render(question, steps);
  auto ids = policy_->tokenizer().encode(prompt);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) throw InputError("SamplingProposer: the prompt encodes to no token");
  if (n + options_.max_step_tokens > policy_->config().max_position_embeddings)
    throw InputError("SamplingProposer: the prompt of " + std::to_string(n) + " tokens leaves no room for a step");
  return ids;
}

at::Tensor SamplingProposer::prefill(const std::vector<int64_t>& ids, int64_t n, bool want_logits) {
  auto& st = *state_;
  if (!st.cache) {
    KVCacheOptions co;
    co.capacity = policy_->config().max_position_embeddings;
    st.cache = std::make_unique<KVCache>(policy_->new_cache(1, co));
  }
  // Keep what the cache already holds of ids[0, n), recomputing at least the
  // last token when its logits are wanted.
  std::vector<int64_t> head(ids.begin(), ids.begin() + n);
  const int64_t keep = detail::common_prefix(st.ids, head, want_logits ? n - 1 : n);
  st.cache->truncate(std::min(keep, st.cache->length()));
  st.ids.assign(head.begin(), head.begin() + st.cache->length());
  if (st.cache->length() == n) return {};
  ForwardInput in;
  in.input_ids = to_batch(std::vector<int64_t>(head.begin() + st.cache->length(), head.end()));
  in.cache = st.cache.get();
  auto h = policy_->forward(in).hidden;
  policy_tokens_ += n - static_cast<int64_t>(st.ids.size());
  prefill_tokens_ += n - static_cast<int64_t>(st.ids.size());
  st.ids = head;
  return want_logits ? policy_->logits(h.select(1, h.size(1) - 1)) : at::Tensor();
}

std::vector<Proposal> SamplingProposer::decode(KVCache& rows, at::Tensor logits, at::Tensor positions) {
  const auto& tok = policy_->tokenizer();
  const int64_t R = rows.batch();
  std::vector<std::vector<int64_t>> gen(static_cast<size_t>(R));
  std::vector<Proposal> out(static_cast<size_t>(R));
  std::vector<bool> done(static_cast<size_t>(R), false);
  DecodeOptions d;
  d.skip_special_tokens = true;
  for (int64_t t = 0; t < options_.max_step_tokens; ++t) {
    auto next = detail::sample_logits(logits, options_.sampling, state_->gen);
    // The policy's own log-probability of each drawn token (temperature 1):
    // MCTS's prior. The token ending a step (delimiter or EOS) counts.
    const auto logprob = torch::log_softmax(logits.to(torch::kFloat).cpu(), -1).gather(1, next.view({R, 1})).view({R});
    const auto lp = logprob.accessor<float, 1>();
    const auto ids = next.accessor<int64_t, 1>();
    bool all_done = true;
    for (size_t r = 0; r < static_cast<size_t>(R); ++r) {
      if (done[r]) continue;
      const int64_t id = ids[static_cast<int64_t>(r)];
      out[r].logprob += lp[static_cast<int64_t>(r)];
      if (detail::is_end_token(*policy_, id)) {
        done[r] = true;
        out[r].finished = true;
        out[r].text = tok.decode(gen[r], d);
        continue;
      }
      gen[r].push_back(id);
      out[r].tokens += 1;
      const std::string text = tok.decode(gen[r], d);
      if (auto cut = text.find(options_.prompt.step_delimiter); cut != std::string::npos) {
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
    step.input_ids = next.view({R, 1});
    step.cache = &rows;
    if (positions.defined()) {
      step.position_ids = positions.view({R, 1});
      positions = positions + 1;
    }
    logits = policy_->logits(policy_->forward(step).hidden.select(1, 0));
    policy_tokens_ += R;
  }
  for (size_t r = 0; r < static_cast<size_t>(R); ++r) {
    if (out[r].text.empty() && !gen[r].empty() && !done[r]) out[r].text = tok.decode(gen[r], d);
    if (!options_.final_marker.empty() && out[r].text.find(options_.final_marker) != std::string::npos)
      out[r].finished = true;
  }
  return out;
}

std::vector<Proposal> SamplingProposer::propose(const std::string& question, const std::vector<std::string>& steps,
                                                int k) {
  if (k < 1) return {};
  c10::InferenceMode guard;
  const auto ids = prompt_ids(question, steps);
  auto logits = prefill(ids, static_cast<int64_t>(ids.size()), true).expand({k, -1});  // [k, V]
  // k rows decode from a copy of the prefix; the shared cache stays at the prompt.
  auto rows = state_->cache->fork();
  rows.reorder(torch::zeros({k}, torch::kLong).to(policy_->device()));
  return decode(rows, logits, {});
}

std::vector<std::vector<Proposal>> SamplingProposer::propose_many(const std::string& question,
                                                                  const std::vector<std::vector<std::string>>& partials,
                                                                  int k) {
  if (k < 1 || partials.empty()) return std::vector<std::vector<Proposal>>(partials.size());
  if (partials.size() == 1) return {propose(question, partials[0], k)};
  // The padding of a batch sits between the shared prefix and each row's own
  // tokens; a sliding window counts cache slots, so it would see pads as
  // distance. Such models propose one partial at a time.
  if (const auto& w = policy_->config().sliding_window; w && *w < policy_->config().max_position_embeddings)
    return StepProposer::propose_many(question, partials, k);
  c10::InferenceMode guard;
  std::vector<std::vector<int64_t>> ids;
  for (const auto& p : partials) ids.push_back(prompt_ids(question, p));
  // The prefix every prompt shares (each keeps at least one token of its own).
  int64_t shared = static_cast<int64_t>(ids[0].size());
  for (const auto& x : ids)
    shared = std::min(shared, detail::common_prefix(ids[0], x, static_cast<int64_t>(x.size()) - 1));
  if (shared > 0) prefill(ids[0], shared, false);
  const int64_t B = static_cast<int64_t>(ids.size());
  int64_t L = 0;
  for (const auto& x : ids) L = std::max<int64_t>(L, static_cast<int64_t>(x.size()) - shared);
  // Each partial's own tokens, left-padded after the shared prefix (pads masked).
  auto input = torch::zeros({B, L}, torch::kLong);
  auto mask = torch::zeros({B, L}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& x = ids[static_cast<size_t>(b)];
    const int64_t n = static_cast<int64_t>(x.size()) - shared;
    input[b].narrow(0, L - n, n).copy_(torch::tensor(std::vector<int64_t>(x.begin() + shared, x.end()), torch::kLong));
    mask[b].narrow(0, L - n, n).fill_(1);
  }
  const auto dev = policy_->device();
  KVCache rows = shared > 0 ? state_->cache->fork() : policy_->new_cache(1, [&] {
    KVCacheOptions co;
    co.capacity = policy_->config().max_position_embeddings;
    return co;
  }());
  rows.reorder(torch::zeros({B}, torch::kLong).to(dev));
  ForwardInput in;
  in.input_ids = input;
  in.attention_mask = mask;
  in.position_ids = shared + (mask.cumsum(1) - 1).clamp_min(0);
  in.cache = &rows;
  auto h = policy_->forward(in).hidden;
  policy_tokens_ += mask.sum().item<int64_t>();
  prefill_tokens_ += mask.sum().item<int64_t>();
  auto logits = policy_->logits(h.select(1, L - 1));
  auto positions = (in.position_ids.select(1, L - 1) + 1).to(dev);
  auto rep = torch::arange(B, torch::kLong).repeat_interleave(k);
  rows.reorder(rep.to(dev));
  auto flat = decode(rows, logits.index_select(0, rep.to(logits.device())), positions.index_select(0, rep.to(dev)));
  std::vector<std::vector<Proposal>> out(static_cast<size_t>(B));
  for (size_t r = 0; r < flat.size(); ++r) out[r / static_cast<size_t>(k)].push_back(std::move(flat[r]));
  return out;
}

std::vector<Proposal> SamplingProposer::propose_greedy(const std::string& question,
                                                       const std::vector<std::vector<std::string>>& partials) {
  // The same decoding at temperature 0; the options come back however it ends.
  struct Restore {
    SamplingParams& target;
    SamplingParams saved;
    ~Restore() { target = saved; }
  } restore{options_.sampling, options_.sampling};
  options_.sampling.temperature = 0;
  std::vector<Proposal> out;
  for (auto& one : propose_many(question, partials, 1)) out.push_back(one.empty() ? Proposal{} : std::move(one[0]));
  return out;
}

std::vector<Proposal> StepProposer::propose_greedy(const std::string& question,
                                                   const std::vector<std::vector<std::string>>& partials) {
  std::vector<Proposal> out;
  out.reserve(partials.size());
  for (const auto& p : partials) {
    // None proposed: an empty step, which the verifier refuses (the rollout ends there).
    auto one = propose(question, p, 1);
    out.push_back(one.empty() ? Proposal{} : std::move(one[0]));
  }
  return out;
}

std::vector<std::vector<Proposal>> StepProposer::propose_many(const std::string& question,
                                                              const std::vector<std::vector<std::string>>& partials,
                                                              int k) {
  std::vector<std::vector<Proposal>> out;
  out.reserve(partials.size());
  for (const auto& p : partials) out.push_back(propose(question, p, k));
  return out;
}

}  // namespace stepverify
