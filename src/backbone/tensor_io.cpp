// Conversions between checkpoint views and torch tensors.
#include "backbone/tensor_io.h"

#include <cstdint>
#include <cstring>

#include "stepverify/errors.h"
#include "util/sequences.h"

namespace stepverify {
namespace {

bool is_floating(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F64; }

}  // namespace

at::Tensor to_tensor(const TensorView& v) {
  auto t = torch::empty(v.shape, torch::dtype(torch_dtype(v.dtype)));
  if (v.nbytes) std::memcpy(t.data_ptr(), v.data, v.nbytes);
  return t;
}

at::Tensor view_in_place(const TensorView& v) {
  if (!v.source || !v.source->mapped() || v.nbytes == 0) return {};
  if (reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype) != 0) return {};
  auto keep = v.source;  // the tensor owns a reference to the mapping
  return torch::from_blob(
      const_cast<std::byte*>(v.data), v.shape, [keep](void*) {}, torch::dtype(torch_dtype(v.dtype)));
}

c10::ScalarType torch_dtype(DType d) {
  switch (d) {
    case DType::F64:
      return torch::kDouble;
    case DType::F32:
      return torch::kFloat;
    case DType::F16:
      return torch::kHalf;
    case DType::BF16:
      return torch::kBFloat16;
    case DType::I64:
      return torch::kLong;
    case DType::I32:
      return torch::kInt;
    case DType::I16:
      return torch::kShort;
    case DType::I8:
      return torch::kChar;
    case DType::U8:
      return torch::kByte;
    case DType::BOOL:
      return torch::kBool;
  }
  return torch::kFloat;
}

std::optional<DType> stepverify_dtype(c10::ScalarType t) {
  switch (t) {
    case torch::kDouble:
      return DType::F64;
    case torch::kFloat:
      return DType::F32;
    case torch::kHalf:
      return DType::F16;
    case torch::kBFloat16:
      return DType::BF16;
    case torch::kLong:
      return DType::I64;
    case torch::kInt:
      return DType::I32;
    case torch::kShort:
      return DType::I16;
    case torch::kChar:
      return DType::I8;
    case torch::kByte:
      return DType::U8;
    case torch::kBool:
      return DType::BOOL;
    default:
      return std::nullopt;
  }
}

at::Tensor load_parameter(const Checkpoint& ckpt, const std::string& name, at::IntArrayRef expected_shape,
                          c10::Device device, c10::ScalarType dtype, bool in_place) {
  TensorView view = ckpt.tensor(name);
  if (!is_floating(view.dtype))
    throw ShapeError(ckpt.name() + ": tensor " + name + ": dtype " + std::string(dtype_name(view.dtype)) +
                     " where a floating-point weight is expected");
  if (at::IntArrayRef(view.shape) != expected_shape)
    throw ShapeError(ckpt.name() + ": tensor " + name + ": expected " + detail::shape_str(expected_shape) + ", found " +
                     detail::shape_str(view.shape));
  if (in_place) {
    if (auto t = view_in_place(view); t.defined()) {
      if (device.is_cpu() && t.scalar_type() == dtype) return t;
      // One conversion straight from the mapped bytes, which are then dropped.
      auto converted = t.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
      view.source->release(view.data, view.nbytes);
      return converted;
    }
  }
  return to_tensor(view).to(device, dtype);
}

}  // namespace stepverify
