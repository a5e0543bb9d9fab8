// stepverify/model.h: a loaded decoder-only checkpoint (backbone, LM head, tokenizer).
//
//   auto model = stepverify::Model::load("models/llama");           // config, weights, tokenizer
//   auto ids = model->tokenizer().encode("Ana has 12 coins");
//   stepverify::ForwardInput in;  in.input_ids = stepverify::to_batch(ids);
//   auto out = model->forward(in);
//   at::Tensor logits = model->logits(out.hidden);               // [1, T, vocab], float32
//
// The backbone reproduces transformers 4.40 eager attention for the Llama,
// Mistral and Qwen2 families: RMSNorm in fp32, rotate-half RoPE (linear,
// dynamic and llama3 scaling), grouped-query attention with causal, padding and
// sliding-window masks that stay finite (finfo.min, as HF), SwiGLU MLP, final
// norm, LM head tied or not. Parameters carry Hugging Face's names, so loading
// is a checked one-to-one copy: a missing tensor or a wrong shape throws
// ShapeError naming the tensor and the checkpoint.
//
// Thread safety: a loaded Model is immutable; forward(), logits() and the
// tokenizer may be called concurrently from many threads, each with its own
// KVCache (a cache is used by one thread at a time). LoadOptions, ForwardInput
// and ForwardOutput are plain values.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "stepverify/checkpoint.h"
#include "stepverify/config.h"
#include "stepverify/kv_cache.h"
#include "stepverify/tokenizer.h"

namespace stepverify {

class TransformerImpl;

/// Load-time options.
struct STEPVERIFY_API LoadOptions {
  /// Device of the weights and of every tensor the model returns.
  c10::Device device = c10::kCPU;
  /// Compute dtype: float32 (parity), bfloat16 or float16.
  c10::ScalarType dtype = c10::kFloat;
  /// Load the LM head (lm_head.weight, or the tied embeddings) when the
  /// architecture has one.
  bool load_lm_head = true;
  /// Load the tokenizer files beside the checkpoint.
  bool load_tokenizer = true;
  /// Use weights whose dtype equals `dtype` where they lie in the mapped
  /// checkpoint (CPU only; no copy, so a 15 GB bf16 checkpoint needs 15 GB,
  /// not 30). The mapping is private: training such a model writes private
  /// copies of the pages it changes, never the file. Only q/k/v and gate/up,
  /// fused into one matrix each, are copied (their mapped pages released).
  /// false: every weight is copied into memory the model owns.
  bool weights_in_place = true;
  /// Called during loading with (bytes done, bytes in all) of the weights,
  /// e.g. to draw a progress bar; empty: nothing is called.
  std::function<void(int64_t, int64_t)> progress;
  /// Tokenizer overrides.
  TokenizerOptions tokenizer;

  /// Throws ConfigError when these options cannot load a model here (a dtype
  /// other than float32/bfloat16/float16, float16 on the CPU, CUDA without a
  /// device); lets a long program fail before its first step.
  void check() const;
};

/// One forward call. Tensors may live on any device; they are moved to the model's.
struct STEPVERIFY_API ForwardInput {
  /// Token ids, int64 [batch, T].
  at::Tensor input_ids;
  /// 1 for tokens, 0 for padding, [batch, T]; undefined means all ones.
  at::Tensor attention_mask;
  /// Positions [batch, T]; undefined means past + 0..T-1 in every row (HF's
  /// default: right padding matches unpadded runs; left padding needs
  /// cumsum(mask) - 1).
  at::Tensor position_ids;
  /// When set, the new tokens are appended to this cache and attend to it.
  KVCache* cache = nullptr;
  /// Which keys each new token sees, bool [batch, T, past + T] (the cached
  /// positions, then the new tokens); undefined means causal (and HF's
  /// sliding window). With it, set position_ids: it replaces the causal and
  /// sliding-window masks (padding is still masked). Tree attention uses it:
  /// several continuations of one cached prefix in one row, each seeing the
  /// prefix and its own earlier tokens (ScoringSession::append_candidates).
  at::Tensor visibility;
  /// Return the hidden state after every layer (HF `output_hidden_states`).
  bool output_hidden_states = false;
};

/// What a forward returns.
struct STEPVERIFY_API ForwardOutput {
  /// Last layer after the final norm, [batch, T, hidden], model dtype.
  at::Tensor hidden;
  /// With output_hidden_states: index 0 the embeddings, i the output of layer
  /// i (1..N-1), N the last layer after the final norm (HF's convention).
  std::vector<at::Tensor> hidden_states;
};

/// Turns ids into an int64 [1, T] tensor on the CPU.
STEPVERIFY_API at::Tensor to_batch(const std::vector<int64_t>& ids);

class STEPVERIFY_API Model {
 public:
  /// Loads config.json, the safetensors weights and the tokenizer from `dir`.
  static std::shared_ptr<const Model> load(const std::filesystem::path& dir, const LoadOptions& options = {});
  /// The same from a config and checkpoint already opened (the tokenizer is
  /// read from `dir`), for loaders that also read other tensors of the checkpoint.
  static std::shared_ptr<const Model> load(const std::filesystem::path& dir, const ModelConfig& config,
                                           const Checkpoint& checkpoint, const LoadOptions& options = {});
  /// Builds a model from a config and tensors (e.g. from memory); no tokenizer.
  static std::shared_ptr<const Model> from_checkpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                                                      const LoadOptions& options = {});
  /// A model with random weights (normal, std 0.02; norms 1), seeded, for
  /// benchmarks and tests; no tokenizer.
  static std::shared_ptr<const Model> random(const ModelConfig& config, uint64_t seed, const LoadOptions& options = {});
  ~Model();

  const ModelConfig& config() const { return config_; }
  /// The tokenizer; throws Error when the model was loaded without one.
  const Tokenizer& tokenizer() const;
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  bool has_lm_head() const;
  c10::Device device() const { return options_.device; }
  c10::ScalarType dtype() const { return options_.dtype; }

  /// Runs the backbone. Throws InputError on ids outside the vocabulary,
  /// mismatched shapes, or a cache without room.
  ForwardOutput forward(const ForwardInput& input) const;
  /// LM head over hidden states [..., hidden] -> float32 [..., vocab].
  at::Tensor logits(const at::Tensor& hidden) const;
  /// An empty cache for `batch` rows on the model's device and dtype.
  KVCache new_cache(int64_t batch = 1, const KVCacheOptions& options = {}) const;
  /// Greedy decoding with the KV cache (no stopping at EOS unless `stop_at_eos`).
  std::vector<int64_t> generate_greedy(const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                                       bool stop_at_eos = false) const;
  /// Parameter count of the backbone without embeddings, and with everything.
  int64_t num_parameters(bool include_embeddings = true) const;
  /// Tensors of the checkpoint that no parameter consumed (heads for other
  /// issues, unused extras).
  const std::vector<std::string>& unused_tensors() const { return unused_; }
  /// Expert access to the libtorch module (parameters under HF names).
  TransformerImpl& transformer() const { return *transformer_; }

 private:
  Model() = default;
  // Config, options and modules with uninitialised parameters.
  static std::shared_ptr<Model> make_unloaded(const ModelConfig& config, const LoadOptions& options);
  ModelConfig config_;
  LoadOptions options_;
  std::shared_ptr<TransformerImpl> transformer_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<std::string> unused_;
};

}  // namespace stepverify
