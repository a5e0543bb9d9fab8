// Internal: drawing next tokens from logits (temperature, top-k, top-p), and
// where generated text ends.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "stepverify/sampling.h"

namespace stepverify {
class Model;
}  // namespace stepverify

namespace stepverify::detail {

/// Next tokens [k] from logits [k, V] under `p` (temperature 0 is greedy;
/// p.seed is not read: `gen` is the generator).
at::Tensor sample_logits(at::Tensor logits, const SamplingParams& p, at::Generator& gen);

/// Whether `id` ends generated text: the tokenizer's EOS or one of the
/// config's eos_token_ids.
bool is_end_token(const Model& model, int64_t id);

}  // namespace stepverify::detail
