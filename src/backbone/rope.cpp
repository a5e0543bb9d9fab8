// Rotary position embeddings as transformers computes them (float32 inverse
// frequencies, cos/sin cast to the compute dtype), with rope scaling.
#include <cmath>

#include "stepverify/transformer.h"

namespace stepverify {
namespace {

// 1 / base^(arange(0, d, 2) / d), in float32 as HF does it.
at::Tensor default_inv_freq(double base, int64_t dim, c10::Device device) {
  auto exps = torch::arange(0, dim, 2, torch::dtype(torch::kLong)).to(torch::kFloat) / static_cast<double>(dim);
  return at::reciprocal(at::pow(at::Scalar(base), exps)).to(device);
}

// Llama 3.1: long wavelengths divided by `factor`, short ones kept, smooth in between.
at::Tensor llama3_inv_freq(const at::Tensor& inv_freq, const RopeScaling& rs) {
  const double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
  const double low_wavelen = old_ctx / rs.low_freq_factor;
  const double high_wavelen = old_ctx / rs.high_freq_factor;
  auto wavelen = 2.0 * M_PI / inv_freq;
  auto scaled = at::where(wavelen > low_wavelen, inv_freq / rs.factor, inv_freq);
  auto smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
  auto medium = at::logical_not(wavelen < high_wavelen).logical_and(at::logical_not(wavelen > low_wavelen));
  return at::where(medium, smoothed, scaled);
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config, c10::Device device) : config_(config) {
  inv_freq_ = default_inv_freq(config.rope_theta, config.head_dim, device);
  if (config.rope_scaling && config.rope_scaling->type == "llama3")
    inv_freq_ = llama3_inv_freq(inv_freq_, *config.rope_scaling);
}

at::Tensor RotaryEmbedding::inv_freq(int64_t max_pos) const {
  const auto& rs = config_.rope_scaling;
  if (rs && rs->type == "dynamic") {
    // Dynamic NTK (HF 4.40): past max_position_embeddings the base grows with
    // the longest position of the call.
    const int64_t seq_len = max_pos + 1;
    const int64_t max_pe = config_.max_position_embeddings;
    if (seq_len > max_pe) {
      // HF computes the new base with float32 tensor arithmetic; so do we.
      const double d = static_cast<double>(config_.head_dim);
      auto seq = torch::scalar_tensor(seq_len, torch::kLong);
      auto base = ((seq * rs->factor) / static_cast<double>(max_pe) - (rs->factor - 1.0)).pow(d / (d - 2.0)) *
                  config_.rope_theta;
      auto exps = torch::arange(0, config_.head_dim, 2, torch::kLong).to(torch::kFloat) / d;
      return at::reciprocal(at::pow(base, exps)).to(inv_freq_.device());
    }
  }
  return inv_freq_;
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(const at::Tensor& position_ids,
                                                           c10::ScalarType dtype) const {
  int64_t max_pos = 0;
  if (config_.rope_scaling && config_.rope_scaling->type == "dynamic") max_pos = position_ids.max().item<int64_t>();
  auto freq = inv_freq(max_pos);
  auto pos = position_ids.to(torch::kFloat);
  if (config_.rope_scaling && config_.rope_scaling->type == "linear") pos = pos / config_.rope_scaling->factor;
  auto freqs = pos.unsqueeze(-1) * freq.view({1, 1, -1});  // [B, T, d/2]
  auto emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

}  // namespace stepverify
