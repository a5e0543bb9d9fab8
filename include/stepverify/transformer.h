// stepverify/transformer.h: the libtorch modules of the decoder backbone.
//
// Most users go through stepverify::Model (model.h). This header is for those
// who need the modules themselves: training heads over the backbone, reading
// parameters by their Hugging Face names:
//
//   auto& t = model->transformer();
//   for (auto& [name, p] : t.named_parameters())   // "model.layers.0.self_attn.q_proj.weight", ...
//
// Submodules are registered under Hugging Face's names: the root holds
// "model" (embed_tokens, layers.N.{self_attn,mlp,input_layernorm,
// post_attention_layernorm}, norm) and, when present, "lm_head".
//
// Thread safety: forward() does not modify the module; concurrent forwards are
// safe. Changing parameters while forwards run is not. RotaryEmbedding's const
// methods may run concurrently; fuse(), fuse_projections() and tie_lm_head()
// change parameters: call them before sharing the module.
#pragma once

#include "stepverify/export.h"

#include <functional>
#include <optional>
#include <vector>

#include <torch/torch.h>

#include "stepverify/config.h"
#include "stepverify/model.h"

namespace stepverify {

/// Rotary position embeddings (rotate-half), with linear, dynamic and llama3 scaling.
class STEPVERIFY_API RotaryEmbedding {
 public:
  RotaryEmbedding(const ModelConfig& config, c10::Device device);
  /// cos and sin [B, T, head_dim] in `dtype` for integer positions [B, T].
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& position_ids, c10::ScalarType dtype) const;
  /// The inverse frequencies used for a call whose largest position is `max_pos`.
  at::Tensor inv_freq(int64_t max_pos) const;

 private:
  ModelConfig config_;
  at::Tensor inv_freq_;  // float32 [head_dim / 2]
};

/// y = x W^T + b. Parameters are allocated uninitialised: loading fills them
/// (no wasted random init on multi-GB checkpoints).
class STEPVERIFY_API LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias);
  at::Tensor forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }
  at::Tensor weight, bias;
};
TORCH_MODULE(Linear);

/// Token embeddings: a [vocab, hidden] parameter, read by index.
class STEPVERIFY_API EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t hidden);
  at::Tensor weight;
};
TORCH_MODULE(Embedding);

class STEPVERIFY_API RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t hidden, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

/// The attention mask of one forward: the additive bias and, per query
/// position, how far its visible keys reach, so attention can skip the keys
/// no query of a block sees (a causal prefill computes about half the score
/// matrix).
struct AttentionMask {
  at::Tensor bias;  // [B, 1, 1, T, S]: 0 where a key is visible, the dtype's lowest value elsewhere
  // [T] or empty (every key may be visible): for query t, keys at or past
  // key_extent[t] are masked in every batch row (S for a query some row sees
  // no key of, which HF attends uniformly).
  std::vector<int64_t> key_extent;
};

class STEPVERIFY_API AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  /// x [B,T,H]; cos/sin [B,T,d]; mask over S keys; cache optional.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const AttentionMask& mask,
                     KVCache* cache, int64_t layer) const;
  /// Puts q/k/v weights (and biases) in one tensor, the three parameters
  /// becoming views of it, so inference runs one GEMM instead of three.
  /// Forwards with grad mode on keep using the three parameters.
  void fuse(const std::function<void(const void*)>& released = {});
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
  at::Tensor qkv_weight_, qkv_bias_;
};
TORCH_MODULE(Attention);

class STEPVERIFY_API MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x) const;
  /// Puts gate and up weights in one tensor (see AttentionImpl::fuse).
  void fuse(const std::function<void(const void*)>& released = {});
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  at::Tensor gate_up_weight_, gate_up_bias_;
};
TORCH_MODULE(MLP);

class STEPVERIFY_API DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const AttentionMask& mask,
                     KVCache* cache, int64_t layer) const;
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

/// embed_tokens, layers, norm: registered as "model" under the root.
class STEPVERIFY_API DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelConfig& config);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<DecoderLayer> layer_list;
};
TORCH_MODULE(Decoder);

/// The root module: "model" and optionally "lm_head".
class STEPVERIFY_API TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(const ModelConfig& config, bool with_lm_head, c10::Device device);
  /// With `companion` (a model of the same cache geometry, dtype, vocabulary
  /// and sliding window), the companion runs in lockstep over the same
  /// tokens, positions and masks, its keys and values in cache layers
  /// [num_hidden_layers, num_hidden_layers + its layers); the hidden state
  /// returned is [..., hidden + the companion's hidden] (an implicit PRM's two
  /// LMs in one cache: sessions, forks and tree attention serve both).
  ForwardOutput forward(const ForwardInput& input, const TransformerImpl* companion = nullptr) const;
  /// Float32 logits [..., vocab] from hidden states.
  at::Tensor logits(const at::Tensor& hidden) const;
  bool has_lm_head() const { return !lm_head.is_empty(); }
  /// Shares the embedding matrix with the LM head (tie_word_embeddings).
  void tie_lm_head();
  /// Fuses the projections of every layer for inference (call after loading).
  /// `released` is called with the data of each tensor copied into a fused
  /// one (the loader drops its mapped pages).
  void fuse_projections(const std::function<void(const void*)>& released = {});
  const ModelConfig& config() const { return config_; }

  Decoder model{nullptr};
  Linear lm_head{nullptr};

 private:
  AttentionMask build_mask(const at::Tensor& key_valid, int64_t past, int64_t T, c10::ScalarType dtype,
                           const at::Tensor& visibility) const;
  ModelConfig config_;
  RotaryEmbedding rope_;
};

}  // namespace stepverify
