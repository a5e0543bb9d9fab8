// The fused fp32 loops of cpu_kernels.h, included by one file per instruction
// set (cpu_kernels_<isa>.cpp, each compiled with its -m flags) inside the
// namespace STEPVERIFY_KERNEL_ISA; cpu_kernels.cpp picks one at run time.
// Written with GCC/Clang vector extensions of 16 floats, which the compiler
// maps to one AVX-512 register, two AVX2 ones or four SSE ones. (One file per
// set rather than target_clones: Clang refuses vector arguments between
// functions of different targets.)
//
// Keep to compiler builtins and this file's own (internal) helpers: an inline
// function of a library header emitted here would carry this file's -m flags,
// and the linker could pick that copy for the other files too. (Checked with
// nm: the objects define no weak code symbols.)
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace stepverify::detail::STEPVERIFY_KERNEL_ISA {
namespace {

constexpr int kLanes = 16;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(kLanes * sizeof(int32_t))));
typedef uint32_t vu __attribute__((vector_size(kLanes * sizeof(uint32_t))));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf splat(float x) { return vf{} + x; }
inline vf select(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

// exp by Cephes' expf scheme: x = k ln2 + r with |r| <= ln2/2, a degree-7
// polynomial for exp(r), 2^k added to the exponent bits. Inputs are clamped
// to [-87, 88] so 2^k stays a normal float (exp(-87) ~ 1.6e-38, exp(88) ~
// 1.7e38); NaN passes through.
inline vf exp_v(vf x) {
  const vf lo = splat(-87.0f), hi = splat(88.0f);
  x = select(x < lo, lo, x);
  x = select(x > hi, hi, x);
  const vf round = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vf k = (x * 1.44269504088896341f + round) - round;
  vf r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const vf y = p * r * r + r + 1.0f;
  const vu scale = (vu) __builtin_convertvector(k, vi) << 23;
  return (vf)((vu)y + scale);
}

// The sum of the 16 lanes, pairwise (halves added until one lane is left).
inline float sum_lanes(vf v) {
  typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
  typedef float v4 __attribute__((vector_size(4 * sizeof(float))));
  v8 a, b;
  std::memcpy(&a, &v, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
  a += b;
  v4 c, d;
  std::memcpy(&c, &a, sizeof c);
  std::memcpy(&d, reinterpret_cast<const char*>(&a) + sizeof c, sizeof d);
  c += d;
  return (c[0] + c[2]) + (c[1] + c[3]);
}

}  // namespace

void rms_norm_f32(const float* x, const float* w, float* out, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    vf acc = {};
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
      const vf v = load(xr + j);
      acc += v * v;
    }
    float ss = sum_lanes(acc);
    for (; j < n; ++j) ss += xr[j] * xr[j];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (j = 0; j < n; ++j) o[j] = w[j] * (xr[j] * inv);
  }
}

void silu_mul_f32(const float* gu, float* out, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gu + r * 2 * n;
    const float* u = g + n;
    float* o = out + r * n;
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
      const vf a = load(g + j);
      store(o + j, a / (1.0f + exp_v(-a)) * load(u + j));
    }
    if (j < n) {  // the tail, through a zero-padded vector
      float tg[kLanes] = {}, tu[kLanes] = {}, to[kLanes];
      const int64_t m = n - j;
      std::memcpy(tg, g + j, m * sizeof(float));
      std::memcpy(tu, u + j, m * sizeof(float));
      const vf a = load(tg);
      store(to, a / (1.0f + exp_v(-a)) * load(tu));
      std::memcpy(o + j, to, m * sizeof(float));
    }
  }
}

void rope_f32(const float* __restrict x, const float* __restrict cos, const float* __restrict sin,
              float* __restrict out, int64_t d) {
  const int64_t h = d / 2;
  for (int64_t j = 0; j < h; ++j) out[j] = x[j] * cos[j] - x[j + h] * sin[j];
  for (int64_t j = 0; j < h; ++j) out[h + j] = x[h + j] * cos[h + j] + x[j] * sin[h + j];
}

float exp_f32(float x) { return exp_v(splat(x))[0]; }

namespace {

// Weight rows per pass of gemv_rows_f32 with M input rows: each load of an
// input chunk serves R rows, and the R x M accumulators must stay in
// registers: 32 vector registers with AVX-512 (at most 16 accumulators),
// 16 half-width ones below (each vector two of them).
constexpr int weight_rows_per_pass(int m) {
#if defined(__AVX512F__)
  return m <= 4 ? 4 : 2;
#else
  return m <= 2 ? 2 : 1;
#endif
}

// Prefetch distance of gemv_rows, in blocks of R weight rows: while a block
// is read, the one this many blocks after it is prefetched, as one linear
// stream (the R rows of a block are contiguous). Measured over 377 MB of fp32
// weights (k = 1536) on this 2-core machine: 13 -> 21 GB/s on one thread
// against a per-row prefetch 2 KiB ahead (and 28 GB/s for a bare sum of the
// same bytes); one and two blocks ahead were within noise of each other.
constexpr int64_t kPrefetchBlocks = 2;

// Weights as floats: fp32 as they are, bf16 (raw bits) widened exactly (the
// bits are a float's upper half).
inline vf load_w(const float* p) { return load(p); }
inline vf load_w(const uint16_t* p) {
  typedef uint16_t vh __attribute__((vector_size(kLanes * sizeof(uint16_t))));
  vh h;
  std::memcpy(&h, p, sizeof h);
  return (vf)(__builtin_convertvector(h, vu) << 16);
}
inline float scalar_w(float v) { return v; }
inline float scalar_w(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// y[r][j] for M input rows and the R weight rows from j; the k % 16 tail in
// scalar arithmetic.
template <int M, int R, typename W>
inline void gemv_block(const float* x, int64_t k, const W* w, const float* bias, float* y, int64_t n, int64_t j,
                       const W* ahead_block) {
  const int64_t kv = k / kLanes * kLanes;
  // Each step reads kLanes weights of each of the R rows: as many bytes of
  // ahead_block (R rows) are prefetched, a cache line at a time.
  constexpr int64_t kStepBytes = R * kLanes * sizeof(W), kLine = 64;
  const char* ahead = reinterpret_cast<const char*>(ahead_block);
  vf acc[R][M] = {};
  for (int64_t c = 0; c < kv; c += kLanes) {
    for (int64_t b = 0; b < kStepBytes; b += kLine) __builtin_prefetch(ahead + c / kLanes * kStepBytes + b);
    vf wv[R];
    for (int q = 0; q < R; ++q) wv[q] = load_w(w + (j + q) * k + c);
    for (int r = 0; r < M; ++r) {
      const vf xv = load(x + r * k + c);
      for (int q = 0; q < R; ++q) acc[q][r] += wv[q] * xv;
    }
  }
  for (int q = 0; q < R; ++q)
    for (int r = 0; r < M; ++r) {
      float s = sum_lanes(acc[q][r]);
      for (int64_t c = kv; c < k; ++c) s += x[r * k + c] * scalar_w(w[(j + q) * k + c]);
      y[r * n + j + q] = bias ? s + bias[j + q] : s;
    }
}

template <int M, typename W>
inline void gemv_rows(const float* x, int64_t k, const W* w, const float* bias, float* y, int64_t n, int64_t j0,
                      int64_t j1) {
  constexpr int R = weight_rows_per_pass(M);
  // The block kPrefetchBlocks ahead while it lies within [j0, j1) (another
  // thread's columns are not this one's to fetch), else the block itself
  // (already in cache: a wasted hint, but no address outside the weights).
  constexpr int64_t kAhead = kPrefetchBlocks * R;
  int64_t j = j0;
  for (; j + R <= j1; j += R) gemv_block<M, R>(x, k, w, bias, y, n, j, w + (j + kAhead + R <= j1 ? j + kAhead : j) * k);
  for (; j < j1; ++j) gemv_block<M, 1>(x, k, w, bias, y, n, j, w + j * k);
}

template <typename W>
void gemv_rows_any(const float* x, int64_t m, int64_t k, const W* w, const float* bias, float* y, int64_t n, int64_t j0,
                   int64_t j1) {
  using Rows = void (*)(const float*, int64_t, const W*, const float*, float*, int64_t, int64_t, int64_t);
  static constexpr Rows kByRows[8] = {gemv_rows<1, W>, gemv_rows<2, W>, gemv_rows<3, W>, gemv_rows<4, W>,
                                      gemv_rows<5, W>, gemv_rows<6, W>, gemv_rows<7, W>, gemv_rows<8, W>};
  for (int64_t r0 = 0; r0 < m; r0 += 8) {  // up to eight input rows per pass over the weights
    const int64_t rows = m - r0 < 8 ? m - r0 : 8;
    kByRows[rows - 1](x + r0 * k, k, w, bias, y + r0 * n, n, j0, j1);
  }
}

}  // namespace

void gemv_rows_f32(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y, int64_t n,
                   int64_t j0, int64_t j1) {
  gemv_rows_any(x, m, k, w, bias, y, n, j0, j1);
}

void gemv_rows_bf16(const float* x, int64_t m, int64_t k, const uint16_t* w, const float* bias, float* y, int64_t n,
                    int64_t j0, int64_t j1) {
  gemv_rows_any(x, m, k, w, bias, y, n, j0, j1);
}

}  // namespace stepverify::detail::STEPVERIFY_KERNEL_ISA
