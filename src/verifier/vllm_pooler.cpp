// VerifierSpec::for_architecture (the spec a checkpoint's head implies) and
// VerifierSpec::from_vllm_pooler (the spec equivalent to a vLLM pooler config).
// The rules are written in include/stepverify/verifier_spec.h.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stepverify/config.h"
#include "stepverify/errors.h"
#include "stepverify/tokenizer.h"
#include "stepverify/verifier_spec.h"
#include "util/json.h"

namespace stepverify {
namespace {

using json = nlohmann::json;

// The text of one token id; ConfigError unless it encodes back to that id alone.
std::string token_text(const Tokenizer& tok, int64_t id, const std::string& field, const std::string& where) {
  if (id < 0) throw ConfigError(where + ": " + field + " is the negative id " + std::to_string(id));
  std::string text;
  try {
    text = tok.decode({id});
  } catch (const Error& e) {
    throw ConfigError(where + ": " + field + " " + std::to_string(id) + " is not a token of the model: " + e.what());
  }
  EncodeOptions raw;
  raw.add_special_tokens = false;
  if (text.empty() || tok.encode(text, raw) != std::vector<int64_t>{id})
    throw ConfigError(where + ": " + field + " " + std::to_string(id) + " ('" + text +
                      "') does not encode back to itself alone, so no text template can place it");
  return text;
}

}  // namespace

VerifierSpec VerifierSpec::for_architecture(const ModelConfig& cfg) {
  switch (cfg.head) {
    case HeadKind::ProcessRewardModel:
      return preset("qwen2.5-math-prm");
    case HeadKind::ValueHead:
      return preset("skywork");
    case HeadKind::TokenClassification:
      return preset("trl-token-classification");
    case HeadKind::SequenceClassification:
      return preset("orm");
    case HeadKind::RewardModel:
      return preset("qwen2.5-math-rm");  // score.0, ReLU, score.2 [1, H], its chat template
    default:
      throw ConfigError(cfg.source + ": " + cfg.architecture +
                        " carries no verifier head of its own; name a spec (e.g. math-shepherd, ovm) or add "
                        "stepverify.json");
  }
}

VerifierSpec VerifierSpec::from_vllm_pooler(const std::string& pooler_json, const std::filesystem::path& model_dir) {
  const std::string where = "vLLM pooler config";
  const json p = detail::parse_json<ConfigError>(pooler_json, where);
  if (!p.is_object()) throw ConfigError(where + ": must be a JSON object");
  auto field = [&](const char* key) -> const json* {
    auto it = p.find(key);
    return it == p.end() || it->is_null() ? nullptr : &*it;
  };
  const json* type_j = field("pooling_type");
  if (!type_j || !type_j->is_string()) throw ConfigError(where + ": 'pooling_type' (a string) is required");
  const std::string type = type_j->get<std::string>();
  bool softmax = true;
  if (const json* s = field("softmax")) {
    if (!s->is_boolean()) throw ConfigError(where + ": 'softmax' must be true or false");
    softmax = s->get<bool>();
  }
  std::vector<int64_t> returned;
  if (const json* r = field("returned_token_ids")) {
    if (!r->is_array()) throw ConfigError(where + ": 'returned_token_ids' must be a list of token ids");
    for (const auto& id : *r) {
      if (!id.is_number_integer()) throw ConfigError(where + ": 'returned_token_ids' must hold integers");
      returned.push_back(id.get<int64_t>());
    }
  }
  const auto cfg = ModelConfig::from_file(model_dir / "config.json");

  if (type == "STEP") {
    const json* tag_j = field("step_tag_id");
    if (!tag_j || !tag_j->is_number_integer())
      throw ConfigError(where + ": STEP pooling needs 'step_tag_id' (the id of the step tag token)");
    const auto tok = load_tokenizer(model_dir);
    const std::string tag = token_text(*tok, tag_j->get<int64_t>(), "step_tag_id", where);
    VerifierSpec s;
    if (!returned.empty() && cfg.head == HeadKind::CausalLM) {
      // LM-head logits of the returned tokens at each tag (Math-Shepherd served by vLLM).
      if (returned.size() < 2) throw ConfigError(where + ": 'returned_token_ids' needs two or more ids");
      for (size_t i = 0; i < returned.size(); ++i)
        if (returned[i] < 0 || (cfg.vocab_size > 0 && returned[i] >= cfg.vocab_size))
          throw ConfigError(where + ": returned_token_ids[" + std::to_string(i) + "] = " + std::to_string(returned[i]) +
                            " is outside the vocabulary (" + std::to_string(cfg.vocab_size) + ")");
      s = preset("math-shepherd");  // the layout vLLM's docs feed step-tag PRMs
      s.input.step_separator = " " + tag + "\n";
      s.input.final_suffix = " " + tag;
      HeadSpec h;
      h.name = "prm";
      h.type = HeadType::LmCandidates;
      h.candidate_ids = returned;
      h.activation = softmax ? Activation::Softmax : Activation::None;
      h.class_index = 0;
      h.read = ReadAt::Tag;
      s.heads = {h};
    } else {
      // The model's own head at each tag; returned_token_ids pick its classes
      // (the first is reported; the softmax covers all of the head's classes).
      s = for_architecture(cfg);
      for (auto& h : s.heads) {
        h.read = ReadAt::Tag;
        if (!returned.empty()) {
          if (returned[0] < 0 || returned[0] > 64)
            throw ConfigError(where + ": returned_token_ids[0] = " + std::to_string(returned[0]) +
                              " is not a class of " + cfg.architecture + "'s head");
          h.class_index = static_cast<int>(returned[0]);
        }
      }
      if (s.input.style != TemplateStyle::ChatML && s.input.style != TemplateStyle::Text)
        throw ConfigError(where + ": STEP pooling reads tag tokens, but " + cfg.architecture + "'s template ('" +
                          s.name + "') has no tags; give returned_token_ids or write stepverify.json");
    }
    s.input.step_tag = tag;
    s.name = "vllm-step";
    return s;
  }
  if (type == "LAST") {
    VerifierSpec s = for_architecture(cfg);
    for (auto& h : s.heads) {
      h.read = ReadAt::Last;
      h.meaning = HeadMeaning::Orm;
      h.name = "orm";
    }
    s.name = "vllm-last";
    return s;
  }
  if (type == "ALL") {
    if (cfg.head != HeadKind::TokenClassification && cfg.head != HeadKind::ValueHead)
      throw ConfigError(where +
                        ": ALL pooling returns a score per token; stepverify reads them at step ends for "
                        "token-classification or value heads, and " +
                        cfg.architecture + " has neither");
    VerifierSpec s = for_architecture(cfg);
    for (auto& h : s.heads) h.read = ReadAt::StepEnd;
    s.name = "vllm-all";
    return s;
  }
  throw ConfigError(where + ": pooling_type '" + type +
                    "' has no stepverify equivalent (a verifier reads scores at positions: STEP, LAST or ALL)");
}

}  // namespace stepverify
