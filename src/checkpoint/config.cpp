// config.json -> ModelConfig, with an architecture registry.
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "stepverify/config.h"
#include "stepverify/errors.h"
#include "stepverify/limits.h"
#include "util/files.h"
#include "util/json.h"

namespace stepverify {
namespace {

using nlohmann::json;

struct ArchInfo {
  ModelFamily family;
  HeadKind head;
};

// Registered once; looked up by the `architectures` value of config.json.
const std::map<std::string, ArchInfo>& registry() {
  static std::map<std::string, ArchInfo> reg;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::pair<const char*, ModelFamily> families[] = {
        {"Llama", ModelFamily::Llama}, {"Mistral", ModelFamily::Mistral}, {"Qwen2", ModelFamily::Qwen2}};
    for (auto [prefix, fam] : families) {
      const std::string p = prefix;
      reg[p + "Model"] = {fam, HeadKind::None};
      reg[p + "ForCausalLM"] = {fam, HeadKind::CausalLM};
      reg[p + "ForSequenceClassification"] = {fam, HeadKind::SequenceClassification};
      reg[p + "ForTokenClassification"] = {fam, HeadKind::TokenClassification};
    }
    reg["Qwen2ForProcessRewardModel"] = {ModelFamily::Qwen2, HeadKind::ProcessRewardModel};
    reg["Qwen2ForRewardModel"] = {ModelFamily::Qwen2, HeadKind::RewardModel};
    reg["Qwen2ForPrmModel"] = {ModelFamily::Qwen2, HeadKind::ValueHead};
  });
  return reg;
}

class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw ConfigError(source_ + ": field '" + field + "' " + what);
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t required_int(const char* key) const {
    if (!has(key)) fail(key, "is required but missing");
    return positive(key);
  }
  int64_t positive(const char* key) const {
    const json& v = j_[key];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) fail(key, "must be a positive integer, found " + v.dump());
    return v.get<int64_t>();
  }
  int64_t int_or(const char* key, int64_t def) const { return has(key) ? positive(key) : def; }
  std::optional<int64_t> opt_id(const char* key) const {
    if (!has(key)) return std::nullopt;
    const json& v = j_[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) fail(key, "must be a non-negative integer, found " + v.dump());
    return v.get<int64_t>();
  }
  double number_or(const char* key, double def) const {
    if (!has(key)) return def;
    const json& v = j_[key];
    if (!v.is_number() || v.get<double>() <= 0) fail(key, "must be a positive number, found " + v.dump());
    return v.get<double>();
  }
  bool bool_or(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j_[key].is_boolean()) fail(key, "must be a boolean, found " + j_[key].dump());
    return j_[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j_[key].is_string()) fail(key, "must be a string, found " + j_[key].dump());
    return j_[key].get<std::string>();
  }

 private:
  const json& j_;
  const std::string& source_;
};

std::optional<RopeScaling> parse_rope_scaling(const json& j, const Fields& f) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return std::nullopt;
  const json& r = j["rope_scaling"];
  if (!r.is_object()) f.fail("rope_scaling", "must be an object or null");
  RopeScaling rs;
  // transformers accepts both "type" (older) and "rope_type" (Llama 3.1 and later).
  if (r.contains("rope_type") && r["rope_type"].is_string())
    rs.type = r["rope_type"].get<std::string>();
  else if (r.contains("type") && r["type"].is_string())
    rs.type = r["type"].get<std::string>();
  else
    f.fail("rope_scaling", "lacks a string 'type' or 'rope_type'");
  if (rs.type == "default") return std::nullopt;
  if (rs.type != "linear" && rs.type != "dynamic" && rs.type != "llama3")
    f.fail("rope_scaling", "has type '" + rs.type + "'; supported: linear, dynamic, llama3");
  auto num = [&](const char* key, double def) {
    if (!r.contains(key) || r[key].is_null()) return def;
    if (!r[key].is_number()) f.fail(std::string("rope_scaling.") + key, "must be a number");
    return r[key].get<double>();
  };
  rs.factor = num("factor", 0.0);
  if (!(rs.factor > 0.0)) f.fail("rope_scaling.factor", "must be a positive number");
  if (rs.type == "llama3") {
    rs.low_freq_factor = num("low_freq_factor", 1.0);
    rs.high_freq_factor = num("high_freq_factor", 4.0);
    rs.original_max_position_embeddings = static_cast<int64_t>(num("original_max_position_embeddings", 8192.0));
    if (rs.high_freq_factor <= rs.low_freq_factor)
      f.fail("rope_scaling.high_freq_factor", "must exceed low_freq_factor");
  }
  return rs;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (const auto& [name, _] : registry()) out.push_back(name);
  return out;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& path) {
  return from_json(detail::read_file(path, "config.json is required", limits::kMaxConfigFileBytes), path.string());
}

ModelConfig ModelConfig::from_json(std::string_view text, const std::string& source) {
  const json j = detail::parse_json<ConfigError>(text, source);
  if (!j.is_object()) throw ConfigError(source + ": top level must be a JSON object");
  Fields f(j, source);
  ModelConfig c;
  c.source = source;

  if (!f.has("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    f.fail("architectures", "is required: a non-empty list of class names");
  c.architecture = j["architectures"][0].get<std::string>();
  auto it = registry().find(c.architecture);
  if (it == registry().end()) {
    std::string list;
    for (const auto& name : supported_architectures()) list += (list.empty() ? "" : ", ") + name;
    throw ConfigError(source + ": architecture '" + c.architecture + "' is not supported; supported: " + list);
  }
  c.family = it->second.family;
  c.head = it->second.head;
  const char* expected_type = c.family == ModelFamily::Llama     ? "llama"
                              : c.family == ModelFamily::Mistral ? "mistral"
                                                                 : "qwen2";
  c.model_type = f.string_or("model_type", expected_type);

  c.vocab_size = f.required_int("vocab_size");
  c.hidden_size = f.required_int("hidden_size");
  c.intermediate_size = f.required_int("intermediate_size");
  c.num_hidden_layers = f.required_int("num_hidden_layers");
  c.num_attention_heads = f.required_int("num_attention_heads");
  c.num_key_value_heads = f.int_or("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  if (f.has("head_dim")) {
    c.head_dim = f.positive("head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      f.fail("hidden_size", "must be divisible by num_attention_heads when head_dim is not given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) f.fail("head_dim", "must be even for rotary embeddings");
  c.max_position_embeddings = f.int_or("max_position_embeddings", 2048);
  c.rope_theta = f.number_or("rope_theta", 10000.0);
  c.rms_norm_eps = f.number_or("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", false);
  c.hidden_act = f.string_or("hidden_act", "silu");
  if (c.hidden_act != "silu" && c.hidden_act != "swish")
    f.fail("hidden_act", "is '" + c.hidden_act + "'; only silu (SwiGLU) is supported");
  c.torch_dtype = f.string_or("torch_dtype", "");

  switch (c.family) {
    case ModelFamily::Llama: {
      const bool attention_bias = f.bool_or("attention_bias", false);
      c.qkv_bias = c.o_bias = attention_bias;
      c.mlp_bias = f.bool_or("mlp_bias", false);
      c.rope_scaling = parse_rope_scaling(j, f);
      break;
    }
    case ModelFamily::Mistral:
      // transformers 4.40 ignores rope_scaling for Mistral and Qwen2.
      if (f.has("sliding_window")) c.sliding_window = f.positive("sliding_window");
      break;
    case ModelFamily::Qwen2:
      c.qkv_bias = true;
      // transformers 4.40's eager Qwen2 masks with config.sliding_window
      // whether or not use_sliding_window is set (only flash attention reads
      // that flag); Qwen2Config defaults the window to 4096.
      // An explicit null means no window.
      if (f.has("sliding_window"))
        c.sliding_window = f.positive("sliding_window");
      else if (!j.contains("sliding_window"))
        c.sliding_window = 4096;
      break;
  }

  c.bos_token_id = f.opt_id("bos_token_id");
  c.pad_token_id = f.opt_id("pad_token_id");
  if (f.has("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_array()) {
      for (const auto& v : e) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0) f.fail("eos_token_id", "must hold non-negative integers");
        c.eos_token_ids.push_back(v.get<int64_t>());
      }
    } else if (auto id = f.opt_id("eos_token_id")) {
      c.eos_token_ids.push_back(*id);
    }
  }
  if (f.has("num_labels"))
    c.num_labels = f.positive("num_labels");
  else if (f.has("id2label") && j["id2label"].is_object())
    c.num_labels = static_cast<int64_t>(j["id2label"].size());
  return c;
}

}  // namespace stepverify
