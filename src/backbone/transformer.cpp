// The decoder backbone, matching transformers 4.40 eager attention.
#include "stepverify/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backbone/cpu_kernels.h"
#include "backbone/parallel_parts.h"
#include "stepverify/runtime.h"
#include "stepverify/errors.h"

namespace stepverify {
namespace {

Linear make_linear(int64_t in, int64_t out, bool bias) { return Linear(in, out, bias); }

// y = x W^T + b. A decode step's few rows on the CPU skip the GEMM, which
// packs W first and for a few rows costs more than the product:
// - fp32, one row: OpenBLAS's matrix-vector product;
// - fp32, two to eight rows, and bf16, one to eight: gemv_rows, which reads
//   each weight once for all rows, its columns split over the BLAS thread
//   count (run_parts). bf16 weights are widened in registers, summed in
//   float and the result rounded to bf16 once, as oneDNN does (whose bf16
//   product streamed the weights at about 11 GB/s whatever the rows).
// Measured over 377 MB of fp32 weights (k = 1536) on this 2-core machine,
// OpenBLAS SkylakeX kernels, two threads: gemv_rows 10-12 / 11-13 / 13-15 /
// 26-28 ms for 1 / 2 / 4 / 8 rows; mv 9.5-11.7 ms a row; GEMM 34-40 ms for
// 1-8 rows (39-52 for 12-32). bench/forward's decode block has the whole step.
// Training (grad mode), other dtypes and devices take at::linear.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  constexpr int64_t kMaxRowsOutsideGemm = 8;
  const int64_t k = x.size(-1), n = w.size(0);
  const int64_t rows = k > 0 ? x.numel() / k : 0;
  const auto dtype = x.scalar_type();
  const bool fp32 = dtype == at::kFloat, bf16 = dtype == at::kBFloat16;
  if (rows == 0 || rows > kMaxRowsOutsideGemm || !(fp32 || bf16) || w.scalar_type() != dtype || !x.device().is_cpu() ||
      at::GradMode::is_enabled() || !w.is_contiguous() || (b.defined() && b.scalar_type() != dtype))
    return at::linear(x, w, b);
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  const auto flat = x.reshape({rows, k}).to(at::kFloat).contiguous();  // bf16 widens exactly
  auto out = at::empty({rows, n}, x.options().dtype(at::kFloat));
  if (fp32 && rows == 1) {
    auto row = out[0];
    at::mv_out(row, w, flat[0]);
    if (b.defined()) row.add_(b);
    return out.view(sizes);
  }
  const auto bias = b.defined() ? b.to(at::kFloat).contiguous() : at::Tensor();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  const float* xp = flat.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  const void* wp = w.data_ptr();
  // Columns in parts of whole 16-column blocks, at least 64 KiB of weights
  // a part, up to four parts a thread (taken as threads come free).
  constexpr int64_t kBlock = 16, kMinPartBytes = int64_t{64} << 10;
  const int threads = std::max(1, blas_threads());
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int64_t part_min_blocks = std::max<int64_t>(1, kMinPartBytes / (kBlock * k * w.element_size()));
  const int64_t parts = std::max<int64_t>(1, std::min(int64_t{4} * threads, blocks / part_min_blocks));
  auto part = [&](int64_t p) {
    const int64_t j0 = blocks * p / parts * kBlock, j1 = std::min(n, blocks * (p + 1) / parts * kBlock);
    if (fp32)
      detail::gemv_rows_f32(xp, rows, k, static_cast<const float*>(wp), bp, yp, n, j0, j1);
    else
      detail::gemv_rows_bf16(xp, rows, k, static_cast<const uint16_t*>(wp), bp, yp, n, j0, j1);
  };
  detail::run_parts(parts, threads, part);
  if (fp32) return out.view(sizes);
  return out.to(at::kBFloat16).view(sizes);
}

// Inference in fp32 on the CPU over a contiguous tensor: the fused loops of
// cpu_kernels.h apply.
bool fused_f32(const at::Tensor& t) {
  return !at::GradMode::is_enabled() && t.scalar_type() == at::kFloat && t.device().is_cpu() && t.is_contiguous() &&
         t.numel() > 0;
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// The fused RoPE pass applies: an fp32 inference projection, one cos/sin row
// per (batch row, position) ([B, T, d] fp32, as RotaryEmbedding gives), and
// fp32 key/value destinations whose rows are contiguous.
bool fused_rope_applies(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
                        const std::pair<at::Tensor, at::Tensor>& kv_out, int64_t d) {
  const int64_t B = qkv.size(0), T = qkv.size(1);
  if (!fused_f32(qkv) || cos.scalar_type() != at::kFloat || sin.scalar_type() != at::kFloat ||
      cos.sizes() != at::IntArrayRef{B, T, d} || sin.sizes() != cos.sizes())
    return false;
  if (!kv_out.first.defined()) return true;  // fresh outputs
  return kv_out.first.scalar_type() == at::kFloat && kv_out.second.scalar_type() == at::kFloat &&
         kv_out.first.stride(-1) == 1 && kv_out.second.stride(-1) == 1;
}

// One pass over the fused projection qkv [B, T, (heads + 2 kv) d]: the
// rotated queries into q5 [B, kv, T, G, d] (G = heads / kv), the rotated keys
// and the values into kv_out's first T positions ([B, kv, >= T, d], any
// strides with unit rows: a KV cache's slots).
void fused_rope_split(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, int64_t heads,
                      int64_t kv_heads, const at::Tensor& q5, const std::pair<at::Tensor, at::Tensor>& kv_out) {
  const int64_t B = qkv.size(0), T = qkv.size(1), d = cos.size(-1), G = heads / kv_heads;
  const int64_t nq = heads * d, nkv = kv_heads * d;
  const auto cs = cos.contiguous(), sn = sin.contiguous();
  const float* cos_p = cs.data_ptr<float>();
  const float* sin_p = sn.data_ptr<float>();
  const float* src = qkv.data_ptr<float>();
  float* qp = q5.data_ptr<float>();
  float* kp = kv_out.first.data_ptr<float>();
  float* vp = kv_out.second.data_ptr<float>();
  const auto ks = kv_out.first.strides(), vs = kv_out.second.strides();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t bt = b * T + t;
      const float* row = src + bt * (nq + 2 * nkv);
      const float* c = cos_p + bt * d;
      const float* sv = sin_p + bt * d;
      for (int64_t h = 0; h < heads; ++h)
        detail::rope_f32(row + h * d, c, sv, qp + (((b * kv_heads + h / G) * T + t) * G + h % G) * d, d);
      for (int64_t j = 0; j < kv_heads; ++j) {
        detail::rope_f32(row + nq + j * d, c, sv, kp + b * ks[0] + j * ks[1] + t * ks[2], d);
        std::memcpy(vp + b * vs[0] + j * vs[1] + t * vs[2], row + nq + nkv + j * d, d * sizeof(float));
      }
    }
}

}  // namespace

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t hidden) {
  weight = register_parameter("weight", torch::empty({vocab, hidden}));
}

RMSNormImpl::RMSNormImpl(int64_t hidden, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) const {
  if (fused_f32(x) && weight.scalar_type() == at::kFloat && weight.is_contiguous()) {
    auto out = at::empty_like(x);
    const int64_t n = x.size(-1);
    detail::rms_norm_f32(x.data_ptr<float>(), weight.data_ptr<float>(), out.data_ptr<float>(), x.numel() / n, n,
                         static_cast<float>(eps_));
    return out;
  }
  // HF: computed in float32, cast back to the input dtype before the weight.
  auto xf = x.to(torch::kFloat);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * at::rsqrt(var + eps_);
  return weight * xf.to(x.scalar_type());
}

AttentionImpl::AttentionImpl(const ModelConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", make_linear(c.hidden_size, heads_ * head_dim_, c.qkv_bias));
  k_proj = register_module("k_proj", make_linear(c.hidden_size, kv_heads_ * head_dim_, c.qkv_bias));
  v_proj = register_module("v_proj", make_linear(c.hidden_size, kv_heads_ * head_dim_, c.qkv_bias));
  o_proj = register_module("o_proj", make_linear(heads_ * head_dim_, c.hidden_size, c.o_bias));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const AttentionMask& mask, KVCache* cache, int64_t layer) const {
  const int64_t B = x.size(0), T = x.size(1), G = heads_ / kv_heads_, d = head_dim_;
  const int64_t nq = heads_ * d, nkv = kv_heads_ * d;
  const bool grad = at::GradMode::is_enabled();
  at::Tensor q, k, v, qkv;
  if (qkv_weight_.defined() && !grad) {
    qkv = project(x, qkv_weight_, qkv_bias_);
    q = qkv.narrow(-1, 0, nq);
    k = qkv.narrow(-1, nq, nkv);
    v = qkv.narrow(-1, nq + nkv, nkv);
  } else {
    q = q_proj->forward(x);
    k = k_proj->forward(x);
    v = v_proj->forward(x);
  }
  // Queries as [B, kv, T, G, d]: the G query heads of one KV head (HF's
  // repeat_kv order) side by side per position, so a block of positions is
  // one [G * n, d] matrix per KV head without repeating K/V.
  at::Tensor q5, K, V;
  auto slots = cache ? cache->slots(layer) : std::pair<at::Tensor, at::Tensor>{};
  if (qkv.defined() && fused_rope_applies(qkv, cos, sin, slots, d)) {
    // One pass over the projection: rotated queries in that layout, rotated
    // keys and the values straight into the cache (or fresh [B, kv, T, d]).
    q5 = at::empty({B, kv_heads_, T, G, d}, qkv.options());
    if (!cache)
      slots = {at::empty({B, kv_heads_, T, d}, qkv.options()), at::empty({B, kv_heads_, T, d}, qkv.options())};
    fused_rope_split(qkv, cos, sin, heads_, kv_heads_, q5, slots);
    std::tie(K, V) = cache ? cache->written(layer) : slots;
  } else {
    q = q.view({B, T, heads_, d}).transpose(1, 2);
    k = k.view({B, T, kv_heads_, d}).transpose(1, 2);
    v = v.view({B, T, kv_heads_, d}).transpose(1, 2);
    auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [B, 1, T, d]
    q = q * c + rotate_half(q) * s;
    k = k * c + rotate_half(k) * s;
    K = k;
    V = v;
    if (cache) std::tie(K, V) = cache->write(layer, k, v);
    q5 = q.reshape({B, kv_heads_, G, T, d}).transpose(2, 3);
  }
  const int64_t S = K.size(2);
  const double scale = std::sqrt(static_cast<double>(d));
  if (grad) {
    // Training: one differentiable batched product, no slice copies.
    auto scores = (at::matmul(q5.transpose(2, 3).reshape({B, kv_heads_, G * T, d}), K.transpose(-1, -2)) / scale)
                      .view({B, kv_heads_, G, T, S}) +
                  mask.bias;
    auto probs = at::softmax(scores, -1, torch::kFloat).to(q5.scalar_type());
    auto o = at::matmul(probs.view({B, kv_heads_, G * T, S}), V);  // [B, kv, G*T, d]
    return o_proj->forward(o.view({B, kv_heads_, G, T, d}).permute({0, 3, 1, 2, 4}).reshape({B, T, nq}));
  }
  // Inference. Keys no query of a block sees are skipped (mask.key_extent):
  // a causal prefill computes about half the scores. Scores start as the
  // mask and the product is added with the 1/sqrt(d) scale folded in (one
  // pass fewer than scaling and masking after it). Queries go by blocks of
  // kQueryBlock positions and batch rows by as many as keep the score tensor
  // under kScoreBytes (in cache; larger buffers would be fresh mmap()s, page
  // faults on every layer): decoding and short appends take one batched
  // product for every row.
  constexpr int64_t kScoreBytes = 8 << 20;
  constexpr int64_t kQueryBlock = 128;
  const int64_t elem = static_cast<int64_t>(c10::elementSize(q5.scalar_type()));
  auto extent = [&](int64_t t0, int64_t n) {
    if (mask.key_extent.empty()) return S;
    const auto first = mask.key_extent.begin() + t0;
    return std::clamp<int64_t>(*std::max_element(first, first + n), 1, S);
  };
  // Attention of queries [t0, t0+n) of batch rows [b0, b0+nb) over keys
  // [0, e): [nb, n, kv, G, d].
  auto attend = [&](int64_t b0, int64_t nb, int64_t t0, int64_t n, int64_t e) {
    auto scores = at::empty({nb, kv_heads_, n, G, e}, q5.options());
    scores.copy_(mask.bias.narrow(0, b0, nb).narrow(3, t0, n).narrow(4, 0, e).transpose(2, 3));
    auto s3 = scores.view({nb * kv_heads_, n * G, e});
    s3.baddbmm_(q5.narrow(0, b0, nb).narrow(2, t0, n).reshape({nb * kv_heads_, n * G, d}),
                K.narrow(0, b0, nb).narrow(2, 0, e).reshape({nb * kv_heads_, e, d}).transpose(1, 2), 1.0, 1.0 / scale);
    auto probs = at::softmax(s3, -1, torch::kFloat).to(q5.scalar_type());
    return at::bmm(probs, V.narrow(0, b0, nb).narrow(2, 0, e).reshape({nb * kv_heads_, e, d}))
        .view({nb, kv_heads_, n, G, d})
        .permute({0, 2, 1, 3, 4});
  };
  const int64_t block = std::min(T, kQueryBlock);
  const int64_t rows = std::clamp<int64_t>(kScoreBytes / std::max<int64_t>(block * heads_ * S * elem, 1), 1, B);
  if (rows == B && block == T)
    return project(attend(0, B, 0, T, extent(0, T)).reshape({B, T, nq}), o_proj->weight, o_proj->bias);
  auto out = at::empty({B, T, kv_heads_, G, d}, q5.options());
  for (int64_t b0 = 0; b0 < B; b0 += rows) {
    const int64_t nb = std::min(rows, B - b0);
    for (int64_t t0 = 0; t0 < T; t0 += block) {
      const int64_t n = std::min(block, T - t0);
      out.narrow(0, b0, nb).narrow(1, t0, n).copy_(attend(b0, nb, t0, n, extent(t0, n)));
    }
  }
  return project(out.view({B, T, nq}), o_proj->weight, o_proj->bias);
}

namespace {
using Released = std::function<void(const void*)>;
// Concatenates parameters along dim 0 and turns each into a view of the
// result; `released` sees each original once it is copied.
at::Tensor fuse_rows(std::initializer_list<at::Tensor*> params, const Released& released) {
  std::vector<at::Tensor> parts;
  std::vector<const void*> data;  // set_data below changes what the parts point to
  for (auto* p : params) {
    parts.push_back(*p);
    data.push_back(p->data_ptr());
  }
  auto fused = at::cat(parts, 0);
  int64_t offset = 0;
  for (auto* p : params) {
    const int64_t n = p->size(0);
    p->set_data(fused.narrow(0, offset, n));
    offset += n;
  }
  if (released)
    for (const void* d : data) released(d);
  return fused;
}
}  // namespace

void AttentionImpl::fuse(const Released& released) {
  torch::NoGradGuard no_grad;
  qkv_weight_ = fuse_rows({&q_proj->weight, &k_proj->weight, &v_proj->weight}, released);
  if (q_proj->bias.defined()) qkv_bias_ = fuse_rows({&q_proj->bias, &k_proj->bias, &v_proj->bias}, released);
}

void MLPImpl::fuse(const Released& released) {
  torch::NoGradGuard no_grad;
  gate_up_weight_ = fuse_rows({&gate_proj->weight, &up_proj->weight}, released);
  if (gate_proj->bias.defined()) gate_up_bias_ = fuse_rows({&gate_proj->bias, &up_proj->bias}, released);
}

MLPImpl::MLPImpl(const ModelConfig& c) {
  gate_proj = register_module("gate_proj", make_linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module("up_proj", make_linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module("down_proj", make_linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) const {
  if (gate_up_weight_.defined() && !at::GradMode::is_enabled()) {
    auto gu = project(x, gate_up_weight_, gate_up_bias_);
    const int64_t n = gu.size(-1) / 2;
    if (!fused_f32(gu))
      return project(at::silu(gu.narrow(-1, 0, n)) * gu.narrow(-1, n, n), down_proj->weight, down_proj->bias);
    auto sizes = gu.sizes().vec();
    sizes.back() = n;
    auto act = at::empty(sizes, gu.options());
    detail::silu_mul_f32(gu.data_ptr<float>(), act.data_ptr<float>(), gu.numel() / (2 * n), n);
    return project(act, down_proj->weight, down_proj->bias);
  }
  return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) {
  self_attn = register_module("self_attn", Attention(c));
  mlp = register_module("mlp", MLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const AttentionMask& mask, KVCache* cache, int64_t layer) const {
  auto h = x + self_attn->forward(input_layernorm->forward(x), cos, sin, mask, cache, layer);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

DecoderImpl::DecoderImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layer_list.push_back(DecoderLayer(c));
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

TransformerImpl::TransformerImpl(const ModelConfig& c, bool with_lm_head, c10::Device device)
    : config_(c), rope_(c, device) {
  model = register_module("model", Decoder(c));
  if (with_lm_head) lm_head = register_module("lm_head", make_linear(c.hidden_size, c.vocab_size, false));
}

AttentionMask TransformerImpl::build_mask(const at::Tensor& key_valid, int64_t past, int64_t T, c10::ScalarType dtype,
                                          const at::Tensor& visibility) const {
  const int64_t S = key_valid.size(1);
  auto dev = key_valid.device();
  at::Tensor visible;
  if (visibility.defined()) {
    visible = visibility.to(dev, torch::kBool);
  } else {
    auto qi = torch::arange(past, past + T, torch::dtype(torch::kLong).device(dev)).unsqueeze(1);  // [T, 1]
    auto kj = torch::arange(0, S, torch::dtype(torch::kLong).device(dev)).unsqueeze(0);            // [1, S]
    visible = kj <= qi;
    if (config_.sliding_window) visible = visible.logical_and(qi - kj <= *config_.sliding_window);
    visible = visible.unsqueeze(0);
  }
  visible = visible.logical_and(key_valid.unsqueeze(1).to(torch::kBool));  // [B, T, S]
  // Finite minimum, as HF: a row with no visible key gets uniform attention
  // instead of NaN.
  const double minval = AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "mask_min", [] {
    return static_cast<double>(std::numeric_limits<scalar_t>::lowest());
  });
  auto bias = at::zeros(visible.sizes(), torch::dtype(dtype).device(dev)).masked_fill(visible.logical_not(), minval);
  AttentionMask mask{bias.view({bias.size(0), 1, 1, T, S}), {}};
  // Per query: 1 + the last key any row sees, or S where some row sees none
  // (inference only: training attends over every key).
  if (at::GradMode::is_enabled()) return mask;
  auto seen = visible.any(0);  // [T, S]
  auto last = (seen.to(torch::kInt) * torch::arange(1, S + 1, torch::dtype(torch::kInt).device(dev))).amax(-1);  // [T]
  auto blind = visible.any(-1).logical_not().any(0);                                                             // [T]
  auto extent = at::where(blind, at::full_like(last, S), last).to(torch::kCPU, torch::kLong).contiguous();
  mask.key_extent.assign(extent.data_ptr<int64_t>(), extent.data_ptr<int64_t>() + T);
  return mask;
}

ForwardOutput TransformerImpl::forward(const ForwardInput& in, const TransformerImpl* companion) const {
  const auto& c = config_;
  const auto dev = model->norm->weight.device();
  const auto dtype = model->norm->weight.scalar_type();
  if (!in.input_ids.defined() || in.input_ids.dim() != 2)
    throw InputError("forward: input_ids must be an int64 tensor [batch, T]");
  const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
  if (B == 0 || T == 0)
    throw InputError("forward: empty input (batch " + std::to_string(B) + ", T " + std::to_string(T) + ")");
  auto ids = in.input_ids.to(dev, torch::kLong);
  {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= c.vocab_size) {
      const int64_t bad = lo < 0 ? lo : hi;
      auto where = (ids == bad).nonzero()[0];
      throw InputError("forward: token id " + std::to_string(bad) + " at row " +
                       std::to_string(where[0].item<int64_t>()) + ", position " +
                       std::to_string(where[1].item<int64_t>()) + " is outside the vocabulary of " +
                       std::to_string(c.vocab_size));
    }
  }
  auto check_shape = [&](const at::Tensor& t, const char* what) {
    if (t.defined() && (t.dim() != 2 || t.size(0) != B || t.size(1) != T))
      throw InputError(std::string("forward: ") + what + " must be [" + std::to_string(B) + ", " + std::to_string(T) +
                       "]");
  };
  check_shape(in.attention_mask, "attention_mask");
  check_shape(in.position_ids, "position_ids");
  auto mask2d = in.attention_mask.defined() ? in.attention_mask.to(dev, torch::kLong)
                                            : torch::ones({B, T}, torch::dtype(torch::kLong).device(dev));
  const int64_t past = in.cache ? in.cache->length() : 0;
  if (in.cache && in.cache->batch() != B)
    throw InputError("forward: batch of " + std::to_string(B) + " rows given to a cache of " +
                     std::to_string(in.cache->batch()) + " rows");
  auto pos = in.position_ids.defined()
                 ? in.position_ids.to(dev, torch::kLong)
                 : torch::arange(past, past + T, torch::dtype(torch::kLong).device(dev)).unsqueeze(0).expand({B, T});

  if (in.visibility.defined() && (in.visibility.dim() != 3 || in.visibility.size(0) != B ||
                                  in.visibility.size(1) != T || in.visibility.size(2) != past + T))
    throw InputError("forward: visibility must be [" + std::to_string(B) + ", " + std::to_string(T) + ", " +
                     std::to_string(past + T) + "] (cached positions + new tokens)");
  at::Tensor key_valid = mask2d;
  if (in.cache) {
    in.cache->reserve(T, mask2d);  // throws, leaving the cache unchanged, when there is no room
    key_valid = in.cache->pending_mask();
  }
  auto mask = build_mask(key_valid, past, T, dtype, in.visibility);
  auto [cos, sin] = rope_.cos_sin(pos, dtype);

  ForwardOutput out;
  auto h = model->embed_tokens->weight.index_select(0, ids.reshape({-1})).view({B, T, c.hidden_size});
  if (in.output_hidden_states) out.hidden_states.push_back(h);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    h = model->layer_list[i]->forward(h, cos, sin, mask, in.cache, i);
    if (in.output_hidden_states && i + 1 < c.num_hidden_layers) out.hidden_states.push_back(h);
  }
  out.hidden = model->norm->forward(h);
  if (in.output_hidden_states) out.hidden_states.push_back(out.hidden);
  if (companion) {
    const auto& cc = companion->config_;
    auto [ccos, csin] = companion->rope_.cos_sin(pos, dtype);
    auto hc = companion->model->embed_tokens->weight.index_select(0, ids.reshape({-1})).view({B, T, cc.hidden_size});
    for (int64_t i = 0; i < cc.num_hidden_layers; ++i)
      hc = companion->model->layer_list[i]->forward(hc, ccos, csin, mask, in.cache, c.num_hidden_layers + i);
    out.hidden = torch::cat({out.hidden, companion->model->norm->forward(hc)}, -1);
  }
  if (in.cache) in.cache->commit();
  return out;
}

void TransformerImpl::tie_lm_head() {
  if (has_lm_head()) lm_head->weight.set_data(model->embed_tokens->weight);
}

void TransformerImpl::fuse_projections(const std::function<void(const void*)>& released) {
  for (auto& layer : model->layer_list) {
    layer->self_attn->fuse(released);
    layer->mlp->fuse(released);
  }
}

at::Tensor TransformerImpl::logits(const at::Tensor& hidden) const {
  if (!has_lm_head()) throw Error("logits: " + config_.architecture + " checkpoint has no LM head loaded");
  return project(hidden, lm_head->weight, lm_head->bias).to(torch::kFloat);
}

}  // namespace stepverify
