// Internal: drawing next tokens from logits (temperature, top-k, top-p).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace stepverify::detail {

/// Next tokens [k] from logits [k, V]; temperature 0 is greedy.
at::Tensor sample_logits(at::Tensor logits, double temperature, int top_k, double top_p, at::Generator& gen);

}  // namespace stepverify::detail
