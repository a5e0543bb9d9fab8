// generate(): batched, left-padded sampling with rows dropped as they end.
#include "stepverify/generation.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <torch/torch.h>

#include "search/sample_logits.h"
#include "stepverify/errors.h"
#include "stepverify/model.h"
#include "stepverify/runtime.h"

namespace stepverify {

std::vector<Generation> generate(const Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerationOptions& o) {
  if (!model.has_lm_head()) throw ConfigError("generate: the model has no LM head");
  o.sampling.check("generate");
  if (o.max_new_tokens < 1 || o.max_batch_rows < 1 || o.num_samples < 1)
    throw ConfigError("generate: max_new_tokens >= 1, max_batch_rows >= 1, num_samples >= 1");
  const int64_t context = model.config().max_position_embeddings;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw InputError(fmt::format("generate: prompt {} is empty", i));
    if (static_cast<int64_t>(prompts[i].size()) + o.max_new_tokens > context)
      throw InputError(
          fmt::format("generate: prompt {} has {} tokens; with max_new_tokens {} it exceeds the "
                      "context of {}",
                      i, prompts[i].size(), o.max_new_tokens, context));
  }
  c10::InferenceMode guard;
  const int64_t n = o.num_samples;
  std::vector<Generation> out(prompts.size() * static_cast<size_t>(n));
  // Prompts per batch, so that a batch decodes at most max_batch_rows rows.
  const size_t per_batch = static_cast<size_t>(std::max<int64_t>(1, o.max_batch_rows / n));
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prompts[a].size() < prompts[b].size(); });
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.sampling.seed);
  const auto& tok = model.tokenizer();
  auto is_eos = [&](int64_t id) { return detail::is_end_token(model, id); };
  const auto dev = model.device();
  for (size_t start = 0; start < order.size(); start += per_batch) {
    const size_t end = std::min(order.size(), start + per_batch);
    const int64_t B = static_cast<int64_t>(end - start);
    int64_t L = 0;
    for (size_t i = start; i < end; ++i) L = std::max<int64_t>(L, static_cast<int64_t>(prompts[order[i]].size()));
    auto ids = torch::zeros({B, L}, torch::kLong);
    auto mask = torch::zeros({B, L}, torch::kLong);
    for (int64_t r = 0; r < B; ++r) {
      const auto& p = prompts[order[start + static_cast<size_t>(r)]];
      const int64_t len = static_cast<int64_t>(p.size());
      ids[r].narrow(0, L - len, len).copy_(torch::tensor(p, torch::kLong));
      mask[r].narrow(0, L - len, len).fill_(1);
    }
    auto pos = (mask.cumsum(1) - 1).clamp_min(0);
    KVCacheOptions co;
    co.capacity = L + o.max_new_tokens;
    co.initial_allocation = co.capacity;
    auto cache = model.new_cache(B, co);
    ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;
    in.position_ids = pos;
    in.cache = &cache;
    auto h = model.forward(in).hidden;
    auto logits = model.logits(h.select(1, L - 1));
    auto next_pos = pos.select(1, L - 1).to(dev) + 1;
    if (n > 1) {  // each prompt's rows repeated n times
      auto rep = torch::arange(B, torch::kLong).repeat_interleave(n);
      cache.reorder(rep.to(dev));
      logits = logits.index_select(0, rep.to(logits.device()));
      next_pos = next_pos.index_select(0, rep.to(dev));
    }
    // Cache row -> prompt index; -1 once the row has ended. Ended rows keep
    // decoding (their tokens ignored) until fewer than 3/4 of the rows are
    // live, then the cache is compacted: one copy per compaction, not per row.
    std::vector<int64_t> rows(static_cast<size_t>(B * n));
    for (int64_t r = 0; r < B * n; ++r)
      rows[static_cast<size_t>(r)] = static_cast<int64_t>(order[start + static_cast<size_t>(r / n)]) * n + r % n;
    int64_t live = B * n;
    for (int64_t t = 0; t < o.max_new_tokens && live > 0; ++t) {
      auto next = detail::sample_logits(logits, o.sampling, gen);
      const auto* nx = next.data_ptr<int64_t>();
      for (size_t r = 0; r < rows.size(); ++r) {
        if (rows[r] < 0) continue;
        auto& g = out[static_cast<size_t>(rows[r])];
        if (o.stop_at_eos && is_eos(nx[r])) {
          g.ended = true;
        } else {
          g.ids.push_back(nx[r]);
          if (t + 1 < o.max_new_tokens) continue;
        }
        rows[r] = -1;
        --live;
      }
      if (live == 0) break;
      if (live * 4 < static_cast<int64_t>(rows.size()) * 3) {
        std::vector<int64_t> keep;
        std::vector<int64_t> kept_rows;
        for (size_t r = 0; r < rows.size(); ++r)
          if (rows[r] >= 0) {
            keep.push_back(static_cast<int64_t>(r));
            kept_rows.push_back(rows[r]);
          }
        auto idx = torch::tensor(keep, torch::kLong);
        cache.reorder(idx.to(dev));
        next = next.index_select(0, idx);
        next_pos = next_pos.index_select(0, idx.to(dev));
        rows = std::move(kept_rows);
      }
      const int64_t A = static_cast<int64_t>(rows.size());
      ForwardInput step;
      step.input_ids = next.view({A, 1});
      step.attention_mask = torch::ones({A, 1}, torch::kLong);
      step.position_ids = next_pos.view({A, 1});
      step.cache = &cache;
      logits = model.logits(model.forward(step).hidden.select(1, 0));
      next_pos = next_pos + 1;
    }
  }
  DecodeOptions d;
  d.skip_special_tokens = true;
  for (auto& g : out) g.text = tok.decode(g.ids, d);
  return out;
}

}  // namespace stepverify
