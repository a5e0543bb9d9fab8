// stepverify/config.h: a checkpoint's config.json, typed.
//
//   auto cfg = stepverify::ModelConfig::from_file("models/llama/config.json");
//   // cfg.family == ModelFamily::Llama, cfg.num_key_value_heads == 2, cfg.head_dim == 16
//
// Llama, Mistral and Qwen2 families (every `architectures` value built on them:
// *ForCausalLM, *ForSequenceClassification, *ForTokenClassification,
// Qwen2ForProcessRewardModel, Qwen2ForRewardModel, Qwen2ForPrmModel, bare
// *Model). Defaults follow transformers 4.40 for fields a file leaves out. An
// unknown architecture throws ConfigError listing the supported ones.
//
// Thread safety: a plain value; safe to share read-only.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stepverify {

/// Backbone families, which differ in biases, windows and RoPE handling.
enum class ModelFamily { Llama, Mistral, Qwen2 };

/// What sits on top of the backbone in the checkpoint.
enum class HeadKind {
  None,                    ///< bare backbone (*Model)
  CausalLM,                ///< lm_head over the vocabulary
  SequenceClassification,  ///< `score` [num_labels, H] at the last non-pad token
  TokenClassification,     ///< `score` [num_labels, H] at every token
  ProcessRewardModel,      ///< Qwen2.5-Math-PRM: score.0 [H,H] + ReLU + score.2 [2,H]
  RewardModel,             ///< Qwen2.5-Math-RM: score.0 [H,H] + ReLU + score.2 [1,H]
  ValueHead,               ///< Skywork PRM: v_head.summary [1,H]
};

/// `rope_scaling` of config.json.
struct STEPVERIFY_API RopeScaling {
  std::string type;                                 ///< "linear", "dynamic" or "llama3"
  double factor = 1.0;                              ///< scaling factor
  double low_freq_factor = 1.0;                     ///< llama3 only
  double high_freq_factor = 4.0;                    ///< llama3 only
  int64_t original_max_position_embeddings = 8192;  ///< llama3 only
};

/// The typed config of a decoder-only checkpoint.
struct STEPVERIFY_API ModelConfig {
  std::string architecture;  ///< architectures[0], e.g. "LlamaForCausalLM"
  std::string model_type;    ///< "llama", "mistral" or "qwen2"
  ModelFamily family = ModelFamily::Llama;
  HeadKind head = HeadKind::CausalLM;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  ///< defaults to num_attention_heads
  int64_t head_dim = 0;             ///< `head_dim` or hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;  ///< applied for the Llama family (as in HF 4.40)
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;                  ///< biases on q/k/v projections (Qwen2; Llama attention_bias)
  bool o_bias = false;                    ///< bias on o_proj (Llama attention_bias)
  bool mlp_bias = false;                  ///< biases on gate/up/down (Llama mlp_bias)
  std::optional<int64_t> sliding_window;  ///< keys older than this many positions are masked
  std::string hidden_act = "silu";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  int64_t num_labels = 2;   ///< for classification heads
  std::string torch_dtype;  ///< as saved, informational
  std::string source;       ///< file the config came from, for messages

  /// Parses config.json. Throws IoError when absent, ConfigError naming the
  /// file and field when a required field is missing or has a bad value.
  static ModelConfig from_file(const std::filesystem::path& path);
  /// Parses config JSON text; `source` names it in error messages.
  static ModelConfig from_json(std::string_view text, const std::string& source = "config.json");
};

/// The `architectures` values stepverify can load.
STEPVERIFY_API std::vector<std::string> supported_architectures();

}  // namespace stepverify
