// Drawing next tokens from logits.
#include "search/sample_logits.h"

#include <cmath>

#include <torch/torch.h>

namespace stepverify::detail {

// Next tokens [k] from logits [k, V] with temperature, top-k and top-p.
at::Tensor sample_logits(at::Tensor logits, double temperature, int top_k, double top_p, at::Generator& gen) {
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

}  // namespace stepverify::detail
