// Internal: conversions between checkpoint views and torch tensors.
// Marked STEPVERIFY_API for the project's other targets (train, eval, the
// CLI, tests); not part of the installed API.
#pragma once

#include "stepverify/export.h"

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <torch/torch.h>

#include "stepverify/checkpoint.h"

namespace stepverify {

/// torch dtype of a safetensors dtype.
STEPVERIFY_API c10::ScalarType torch_dtype(DType d);
/// safetensors dtype of a torch dtype, if it has one.
STEPVERIFY_API std::optional<DType> stepverify_dtype(c10::ScalarType t);
/// Copies a view into a new CPU tensor (safetensors data need not be aligned).
STEPVERIFY_API at::Tensor to_tensor(const TensorView& v);
/// A CPU tensor over the view's bytes, without a copy (it keeps the source
/// alive); undefined when the bytes cannot be used in place (not a mapped
/// file, or not aligned to the element size).
STEPVERIFY_API at::Tensor view_in_place(const TensorView& v);
/// Reads floating tensor `name` of `ckpt`, checks its shape, converts it.
/// With `in_place`, a CPU tensor of the checkpoint's dtype in a mapped file
/// is used where it lies; conversions read the bytes once and release them.
/// Throws ShapeError naming the checkpoint and tensor.
STEPVERIFY_API at::Tensor load_parameter(const Checkpoint& ckpt, const std::string& name,
                                         at::IntArrayRef expected_shape, c10::Device device, c10::ScalarType dtype,
                                         bool in_place = false);

/// The tensors of a torch.save state_dict (`bytes`, the file's contents), by
/// name; entries that are not (string, tensor) are left out. Read by a
/// restricted unpickler (torch_save.cpp): only what a state_dict needs runs,
/// and every length, storage and tensor is checked against the bytes. Throws
/// FormatError naming `where`.
STEPVERIFY_API std::map<std::string, at::Tensor> read_state_dict(std::string_view bytes, const std::string& where);

}  // namespace stepverify
