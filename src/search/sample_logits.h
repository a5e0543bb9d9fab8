// Internal: drawing next tokens from logits (temperature, top-k, top-p).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "stepverify/sampling.h"

namespace stepverify::detail {

/// Next tokens [k] from logits [k, V] under `p` (temperature 0 is greedy;
/// p.seed is not read: `gen` is the generator).
at::Tensor sample_logits(at::Tensor logits, const SamplingParams& p, at::Generator& gen);

}  // namespace stepverify::detail
