// Picks the build of the fused loops for this CPU, once (see cpu_kernels.h).
#include "backbone/cpu_kernels.h"

namespace stepverify::detail {
namespace {

struct Kernels {
  decltype(&base::rms_norm_f32) rms_norm = base::rms_norm_f32;
  decltype(&base::silu_mul_f32) silu_mul = base::silu_mul_f32;
  decltype(&base::rope_f32) rope = base::rope_f32;
  decltype(&base::gemv_rows_f32) gemv_rows = base::gemv_rows_f32;
  decltype(&base::gemv_rows_bf16) gemv_rows_bf16 = base::gemv_rows_bf16;
  decltype(&base::exp_f32) exp = base::exp_f32;
};

#define STEPVERIFY_USE_KERNELS(k, isa)    \
  k.rms_norm = isa::rms_norm_f32;         \
  k.silu_mul = isa::silu_mul_f32;         \
  k.rope = isa::rope_f32;                 \
  k.gemv_rows = isa::gemv_rows_f32;       \
  k.gemv_rows_bf16 = isa::gemv_rows_bf16; \
  k.exp = isa::exp_f32

const Kernels& kernels() {
  static const Kernels k = [] {
    Kernels k;
#ifdef STEPVERIFY_X86_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
      STEPVERIFY_USE_KERNELS(k, avx512);
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      STEPVERIFY_USE_KERNELS(k, avx2);
    }
#endif
    return k;
  }();
  return k;
}

}  // namespace

void rms_norm_f32(const float* x, const float* w, float* out, int64_t rows, int64_t n, float eps) {
  kernels().rms_norm(x, w, out, rows, n, eps);
}
void silu_mul_f32(const float* gu, float* out, int64_t rows, int64_t n) { kernels().silu_mul(gu, out, rows, n); }
void rope_f32(const float* x, const float* cos, const float* sin, float* out, int64_t d) {
  kernels().rope(x, cos, sin, out, d);
}
void gemv_rows_f32(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y, int64_t n,
                   int64_t j0, int64_t j1) {
  kernels().gemv_rows(x, m, k, w, bias, y, n, j0, j1);
}
void gemv_rows_bf16(const float* x, int64_t m, int64_t k, const uint16_t* w, const float* bias, float* y, int64_t n,
                    int64_t j0, int64_t j1) {
  kernels().gemv_rows_bf16(x, m, k, w, bias, y, n, j0, j1);
}
float exp_f32(float x) { return kernels().exp(x); }

}  // namespace stepverify::detail
