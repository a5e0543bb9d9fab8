// Internal: conversions between checkpoint views and torch tensors.
#pragma once

#include <optional>
#include <string>

#include <torch/torch.h>

#include "stepverify/checkpoint.h"

namespace stepverify {

/// torch dtype of a safetensors dtype.
c10::ScalarType torch_dtype(DType d);
/// safetensors dtype of a torch dtype, if it has one.
std::optional<DType> stepverify_dtype(c10::ScalarType t);
/// Copies a view into a new CPU tensor (safetensors data need not be aligned).
at::Tensor to_tensor(const TensorView& v);
/// Reads floating tensor `name` of `ckpt`, checks its shape, converts it.
/// Throws ShapeError naming the checkpoint and tensor.
at::Tensor load_parameter(const Checkpoint& ckpt, const std::string& name, at::IntArrayRef expected_shape,
                          c10::Device device, c10::ScalarType dtype);

}  // namespace stepverify
