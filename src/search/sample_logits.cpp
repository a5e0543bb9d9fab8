// Drawing next tokens from logits; where generated text ends.
#include "search/sample_logits.h"

#include "stepverify/errors.h"
#include "stepverify/model.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

namespace stepverify::detail {

// Next tokens [k] from logits [k, V] with temperature, top-k and top-p.
at::Tensor sample_logits(at::Tensor logits, const SamplingParams& p, at::Generator& gen) {
  const double temperature = p.temperature, top_p = p.top_p;
  const int top_k = p.top_k;
  logits = logits.to(torch::kFloat).cpu();
  if (temperature == 0) return logits.argmax(-1);
  logits = logits / temperature;
  if (top_k > 0 && top_k < logits.size(-1)) {
    auto kth = std::get<0>(logits.topk(top_k, -1)).select(-1, top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, -INFINITY);
  }
  if (top_p < 1.0) {
    auto [sorted, idx] = logits.sort(-1, /*descending=*/true);
    auto cum = sorted.softmax(-1).cumsum(-1);
    // Drop tokens once the mass before them reaches top_p (the first always stays).
    auto drop = (cum - sorted.softmax(-1)) >= top_p;
    logits = logits.scatter(-1, idx, sorted.masked_fill(drop, -INFINITY));
  }
  return at::multinomial(logits.softmax(-1), 1, /*replacement=*/false, gen).squeeze(-1);
}

bool is_end_token(const Model& model, int64_t id) {
  const auto eos = model.tokenizer().special_tokens().eos_id;
  const auto& ids = model.config().eos_token_ids;
  return (eos && id == *eos) || std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace stepverify::detail

namespace stepverify {

void SamplingParams::check(const std::string& who) const {
  if (temperature < 0 || top_p <= 0 || top_p > 1 || top_k < 0)
    throw ConfigError(who + ": sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0 (got temperature " +
                      std::to_string(temperature) + ", top_p " + std::to_string(top_p) + ", top_k " +
                      std::to_string(top_k) + ")");
}

}  // namespace stepverify
