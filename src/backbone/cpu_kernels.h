// Fused fp32 loops of the backbone's inference forward on the CPU: what torch
// runs as several elementwise passes (each allocating its result) done in one.
// Torch-free: raw pointers, rows of contiguous floats. Each function is
// compiled for AVX-512, AVX2+FMA and baseline x86-64 and picks one at load
// time (the CPU varies between machines; no -march flag is assumed).
//
// Results match torch's composite of the same formula to float rounding (the
// order of a sum differs; FMA contracts a product and a sum).
//
// Thread safety: pure functions; callers give disjoint outputs.
#pragma once

#include <cstdint>

namespace stepverify::detail {

/// out[r] = w * (x[r] / sqrt(mean(x[r]^2) + eps)) for `rows` rows of `n`
/// floats (HF's LlamaRMSNorm in float32). `out` may equal `x`.
void rms_norm_f32(const float* x, const float* w, float* out, int64_t rows, int64_t n, float eps);

/// out[r][j] = silu(gu[r][j]) * gu[r][n + j]: rows of 2n floats in, n out
/// (the gated MLP's silu(gate) * up over the fused gate/up projection).
void silu_mul_f32(const float* gu, float* out, int64_t rows, int64_t n);

/// Rotary embedding of one head vector of d (even) floats, rotate-half form:
/// out[j] = x[j] * cos[j] + rotate_half(x)[j] * sin[j], where rotate_half(x)
/// is (-x[d/2:], x[:d/2]). `out` must not overlap `x`.
void rope_f32(const float* x, const float* cos, const float* sin, float* out, int64_t d);

/// y[r][j] = sum_c x[r][c] * w[j][c] (+ bias[j]) for the columns j in
/// [j0, j1): m rows x [m, k] times the transpose of w [n, k] into y [m, n],
/// all row-major; bias may be null; the other columns of y are not touched
/// (so threads may split [0, n) between them). The weights are read once per
/// eight input rows (a decode step's few rows: memory-bound, where a GEMM
/// first packs every weight). `y` must not overlap the inputs.
void gemv_rows_f32(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y, int64_t n,
                   int64_t j0, int64_t j1);

/// gemv_rows_f32 over bf16 weights (their raw bits), widened to float as
/// they are read and summed in float: half the bytes streamed.
void gemv_rows_bf16(const float* x, int64_t m, int64_t k, const uint16_t* w, const float* bias, float* y, int64_t n,
                    int64_t j0, int64_t j1);

/// exp(x) for one float, the same approximation silu_mul_f32 uses (relative
/// error under 2e-7 on [-87, 88]; inputs outside are clamped). For tests.
float exp_f32(float x);

}  // namespace stepverify::detail

// Each instruction set's build of the same functions
// (cpu_kernels_<isa>.cpp): the dispatcher picks one, the tests call each.
#define STEPVERIFY_DECLARE_KERNELS(isa)                                                                                \
  namespace stepverify::detail::isa {                                                                                  \
  void rms_norm_f32(const float* x, const float* w, float* out, int64_t rows, int64_t n, float eps);                   \
  void silu_mul_f32(const float* gu, float* out, int64_t rows, int64_t n);                                             \
  void rope_f32(const float* x, const float* cos, const float* sin, float* out, int64_t d);                            \
  void gemv_rows_f32(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y, int64_t n,     \
                     int64_t j0, int64_t j1);                                                                          \
  void gemv_rows_bf16(const float* x, int64_t m, int64_t k, const uint16_t* w, const float* bias, float* y, int64_t n, \
                      int64_t j0, int64_t j1);                                                                         \
  float exp_f32(float x);                                                                                              \
  }
STEPVERIFY_DECLARE_KERNELS(base)
#if defined(__x86_64__)
STEPVERIFY_DECLARE_KERNELS(avx2)
STEPVERIFY_DECLARE_KERNELS(avx512)
#endif
