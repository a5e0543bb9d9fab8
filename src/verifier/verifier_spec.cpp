// Verifier specs: JSON form and the presets of released verifiers.
#include "stepverify/verifier_spec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "stepverify/errors.h"
#include "stepverify/limits.h"
#include "util/files.h"
#include "util/json.h"

namespace stepverify {
namespace {

using nlohmann::json;

template <typename T>
struct is_int_vector : std::false_type {};
template <typename T>
struct is_int_vector<std::vector<T>> : std::is_integral<T> {};

template <typename T>
void take(const json& j, const char* key, T& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  // A float where an integer goes is refused (converting 1e300 to int is undefined).
  auto integer = [](const json& v) { return v.is_number_integer(); };
  bool ok = true;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) ok = integer(*it);
  if constexpr (is_int_vector<T>::value) ok = !it->is_array() || std::all_of(it->begin(), it->end(), integer);
  if (!ok) throw ConfigError(where + ": field '" + key + "' must hold integers (" + it->dump() + ")");
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw ConfigError(where + ": field '" + key + "' has the wrong type (" + it->dump() + ")");
  }
}

// Each enumerated field's JSON spellings, in enum order.
using Words2 = std::array<const char*, 2>;
using Words3 = std::array<const char*, 3>;
using Words4 = std::array<const char*, 4>;
using Words5 = std::array<const char*, 5>;
constexpr Words4 words(TemplateStyle) { return {"text", "chatml", "tokens", "turns"}; }
constexpr Words4 words(BosPolicy) { return {"auto", "yes", "no", "text"}; }
constexpr Words4 words(HeadMeaning) { return {"prm", "orm", "ovm", "sorm"}; }
constexpr Words5 words(HeadType) { return {"linear", "mlp", "lm_candidates", "ovm", "implicit"}; }
constexpr Words2 words(VerifierKind) { return {"heads", "implicit"}; }
constexpr Words3 words(TokenReduction) { return {"sum", "mean", "min"}; }
constexpr Words4 words(Activation) { return {"softmax", "sigmoid", "tanh", "none"}; }
constexpr Words4 words(ReadAt) { return {"tag", "before_tag", "step_end", "last"}; }
constexpr Words2 words(HeadFeatures) { return {"hidden", "hidden+logprob"}; }
constexpr Words3 words(LogprobSpan) { return {"step", "solution", "step+solution"}; }

template <typename E>
const char* name_of(E e) {
  const auto w = words(E{});
  const auto i = static_cast<size_t>(e);
  return i < w.size() ? w[i] : "?";
}

// Reads an enumerated field: absent or null keeps the default; anything but
// one of its spellings is a ConfigError naming the field and the choices.
template <typename E>
void take_enum(const json& j, const char* key, E& out, const std::string& where, const std::string& field) {
  std::string value = name_of(out);
  take(j, key, value, where);
  const auto w = words(E{});
  for (size_t i = 0; i < w.size(); ++i)
    if (value == w[i]) {
      out = static_cast<E>(i);
      return;
    }
  std::string list;
  for (const char* a : w) list += (list.empty() ? "" : ", ") + std::string(a);
  throw ConfigError(where + ": field '" + field + "' is '" + value + "'; expected one of " + list);
}

void validate(const VerifierSpec& s, const std::string& where) {
  if (s.input.style == TemplateStyle::Turns && (s.input.user_turn.find("{content}") == std::string::npos ||
                                                s.input.assistant_turn.find("{read}") == std::string::npos))
    throw ConfigError(where +
                      ": a turns template needs template.user_turn with {content} and "
                      "template.assistant_turn with {read}");
  if (s.heads.empty()) throw ConfigError(where + ": 'heads' must name at least one head");
  const bool implicit = s.kind == VerifierKind::Implicit;
  if (implicit) {
    if (s.implicit.reference.empty())
      throw ConfigError(where + ": an implicit verifier needs 'reference' (the reference LM's checkpoint)");
    if (!(s.implicit.beta > 0) || !std::isfinite(s.implicit.beta))
      throw ConfigError(where + ": 'beta' must be a positive number");
    if (s.input.style != TemplateStyle::Tokens)
      throw ConfigError(where + ": an implicit verifier needs a tokens-style template (its steps' tokens are read)");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < s.heads.size(); ++i) {
    const auto& h = s.heads[i];
    const std::string at = "heads[" + std::to_string(i) + "]";
    if (!names.insert(h.name).second) throw ConfigError(where + ": " + at + ": head name '" + h.name + "' repeated");
    if ((h.read == ReadAt::Tag || h.read == ReadAt::BeforeTag) && s.input.step_tag.empty())
      throw ConfigError(where + ": " + at + " reads at the step tag but template.step_tag is empty");
    if (h.type == HeadType::LmCandidates && h.candidates.empty() && h.candidate_tokens.size() < 2 &&
        h.candidate_ids.size() < 2)
      throw ConfigError(where + ": " + at +
                        ": lm_candidates needs 'candidates', two 'candidate_tokens' or two 'candidate_ids'");
    for (int64_t id : h.candidate_ids)
      if (id < 0) throw ConfigError(where + ": " + at + ".candidate_ids holds the negative id " + std::to_string(id));
    if (h.class_index < 0) throw ConfigError(where + ": " + at + ".class_index must be >= 0");
    if ((h.type == HeadType::Implicit) != implicit)
      throw ConfigError(where + ": " + at +
                        (implicit ? ": an implicit verifier's heads are of type 'implicit'"
                                  : ": type 'implicit' needs \"kind\": \"implicit\""));
    if (implicit && (h.read != ReadAt::StepEnd || h.activation != Activation::None || h.class_index != 0 ||
                     h.logprob_span != LogprobSpan::Step || h.features != HeadFeatures::Hidden))
      throw ConfigError(where + ": " + at +
                        ": an implicit head reads at 'step_end' with activation 'none', class_index 0 and its "
                        "step's tokens (logprob_span 'step')");
    if (h.features != HeadFeatures::Hidden && (h.type != HeadType::Linear || s.input.style != TemplateStyle::Tokens))
      throw ConfigError(where + ": " + at +
                        ": features 'hidden+logprob' need a linear head and a tokens-style template");
  }
  if (s.input.style == TemplateStyle::ChatML && s.input.step_tag.empty())
    throw ConfigError(where + ": chatml templates need template.step_tag (the step separator)");
}

// The presets, in the spec's own JSON form (parsed and validated on first use).
// Sources: Qwen/Qwen2.5-Math-PRM-7B; peiyi9979/math-shepherd-mistral-7b-prm;
// TRL PRMTrainer; Skywork/Skywork-o1-Open-PRM-Qwen-2.5; FreedomIntelligence/OVM;
// the GSM8K-verifier convention of sequence-classification ORMs;
// RLHFlow/Llama3.1-8B-PRM-{Deepseek,Mistral}-Data (the Llama 3.1 chat
// template with no system message; "+" after every step, read at the token
// before it: logits[:, -3] of each prefix conversation);
// MARIO-Math-Reasoning AlphaMath-7B (prompt "<question> {q} </question>\n" +
// the partial solution; tanh(v_head.summary) at its last token, so sessions
// give each step's value); Qwen/Qwen2.5-Math-RM-72B (its chat template:
// system prompt, question as the user turn, the solution as the assistant
// turn with steps joined by a blank line; score.2(relu(score.0(h))) at the
// last token, "\n" after <|im_end|>).
constexpr const char* kPresets[] = {
    R"({"name": "qwen2.5-math-prm",
        "template": {"style": "chatml", "step_tag": "<extra_0>",
                     "system": "Please reason step by step, and put your final answer within \\boxed{}."},
        "heads": [{"name": "prm", "type": "mlp", "weights": "score", "activation": "softmax",
                   "class_index": 1, "read": "tag"}]})",
    R"({"name": "math-shepherd",
        "template": {"style": "text", "question_suffix": " ", "step_separator": " ки\n",
                     "final_suffix": " ки", "step_tag": "ки"},
        "heads": [{"name": "prm", "type": "lm_candidates", "candidates": "+ -", "activation": "softmax",
                   "class_index": 0, "read": "tag"}]})",
    R"({"name": "trl-token-classification",
        "template": {"style": "tokens", "bos": "yes", "step_separator": "\n"},
        "heads": [{"name": "prm", "type": "linear", "weights": "score", "activation": "softmax",
                   "class_index": 1, "read": "step_end"}]})",
    R"({"name": "skywork",
        "template": {"style": "tokens", "bos": "text", "question_suffix": "\n", "step_separator": "\n",
                     "split_steps_on_newline": true},
        "heads": [{"name": "prm", "type": "linear", "weights": "v_head.summary", "activation": "sigmoid",
                   "class_index": 0, "read": "step_end"}]})",
    R"({"name": "ovm",
        "template": {"style": "tokens", "bos": "auto", "question_suffix": "\n", "step_separator": "\n",
                     "steps_in_one_string": true, "eos_at_end": true},
        "heads": [{"name": "ovm", "meaning": "ovm", "type": "ovm", "weights": "", "file": "verifier.pth",
                   "activation": "none", "class_index": 0, "read": "step_end"}]})",
    R"({"name": "rlhflow",
        "template": {"style": "turns", "bos": "no", "question_suffix": " ",
                     "preamble": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>",
                     "user_turn": "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
                     "assistant_turn": "<|start_header_id|>assistant<|end_header_id|>\n\n{read}+<|eot_id|>"},
        "heads": [{"name": "prm", "type": "lm_candidates", "candidate_tokens": ["+", "-"], "activation": "softmax",
                   "class_index": 0, "read": "step_end"}]})",
    R"({"name": "alphamath",
        "template": {"style": "text", "question_prefix": "<question> ", "question_suffix": " </question>\n",
                     "step_separator": "\n"},
        "heads": [{"name": "value", "meaning": "ovm", "type": "linear", "weights": "v_head.summary",
                   "activation": "tanh", "class_index": 0, "read": "last"}]})",
    R"({"name": "orm",
        "template": {"style": "text", "question_suffix": "\n", "step_separator": "\n"},
        "heads": [{"name": "orm", "meaning": "orm", "type": "linear", "weights": "score", "activation": "none",
                   "class_index": 0, "read": "last"}]})",
    R"({"name": "qwen2.5-math-rm",
        "template": {"style": "text", "bos": "no",
                     "question_prefix": "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>user\n",
                     "question_suffix": "<|im_end|>\n<|im_start|>assistant\n", "step_separator": "\n\n",
                     "final_suffix": "<|im_end|>\n"},
        "heads": [{"name": "orm", "meaning": "orm", "type": "mlp", "weights": "score", "activation": "none",
                   "class_index": 0, "read": "last"}]})",
};

std::map<std::string, VerifierSpec> make_presets() {
  std::map<std::string, VerifierSpec> p;
  for (const char* text : kPresets) {
    auto spec = VerifierSpec::from_json(text, "built-in preset");
    p[spec.name] = spec;
  }
  return p;
}

const std::map<std::string, VerifierSpec>& presets() {
  static const auto p = make_presets();
  return p;
}

}  // namespace

const char* to_string(TemplateStyle v) { return name_of(v); }
const char* to_string(BosPolicy v) { return name_of(v); }
const char* to_string(HeadMeaning v) { return name_of(v); }
const char* to_string(HeadType v) { return name_of(v); }
const char* to_string(Activation v) { return name_of(v); }
const char* to_string(ReadAt v) { return name_of(v); }
const char* to_string(HeadFeatures v) { return name_of(v); }
const char* to_string(LogprobSpan v) { return name_of(v); }
const char* to_string(VerifierKind v) { return name_of(v); }
const char* to_string(TokenReduction v) { return name_of(v); }

VerifierSpec VerifierSpec::from_json(const std::string& text, const std::string& source) {
  const json j = detail::parse_json<ConfigError>(text, source);
  if (!j.is_object()) throw ConfigError(source + ": a spec must be a JSON object");
  VerifierSpec s;
  take(j, "name", s.name, source);
  take_enum(j, "kind", s.kind, source, "kind");
  const bool implicit = s.kind == VerifierKind::Implicit;
  if (implicit) {
    take(j, "reference", s.implicit.reference, source);
    take(j, "beta", s.implicit.beta, source);
    take_enum(j, "reduction", s.implicit.reduction, source, "reduction");
    // The policy's text: question + "\n", then each step encoded alone and
    // ended by "\n" (a step's tokens never merge with the next one's).
    s.input.style = TemplateStyle::Tokens;
    s.input.question_suffix = "\n";
  } else {
    for (const char* key : {"reference", "beta", "reduction"})
      if (j.contains(key)) throw ConfigError(source + ": field '" + key + "' needs \"kind\": \"implicit\"");
  }
  if (auto t = j.find("template"); t != j.end()) {
    if (!t->is_object()) throw ConfigError(source + ": 'template' must be an object");
    auto& in = s.input;
    take_enum(*t, "style", in.style, source, "template.style");
    take(*t, "system", in.system, source);
    take(*t, "question_prefix", in.question_prefix, source);
    take(*t, "question_suffix", in.question_suffix, source);
    take(*t, "step_separator", in.step_separator, source);
    take(*t, "final_suffix", in.final_suffix, source);
    take(*t, "step_tag", in.step_tag, source);
    take_enum(*t, "bos", in.bos, source, "template.bos");
    take(*t, "split_steps_on_newline", in.split_steps_on_newline, source);
    take(*t, "steps_in_one_string", in.steps_in_one_string, source);
    take(*t, "eos_at_end", in.eos_at_end, source);
    take(*t, "preamble", in.preamble, source);
    take(*t, "user_turn", in.user_turn, source);
    take(*t, "assistant_turn", in.assistant_turn, source);
  }
  auto hs = j.find("heads");
  if (implicit && hs == j.end()) {
    HeadSpec h;
    h.name = "implicit";
    h.type = HeadType::Implicit;
    h.weights.clear();
    h.activation = Activation::None;
    h.class_index = 0;
    h.read = ReadAt::StepEnd;
    s.heads.push_back(h);
  } else if (hs == j.end() || !hs->is_array()) {
    throw ConfigError(source + ": 'heads' must be a list");
  }
  for (const auto& hj : hs != j.end() ? *hs : json::array()) {
    if (!hj.is_object()) throw ConfigError(source + ": each entry of 'heads' must be an object");
    const std::string at = "heads[" + std::to_string(s.heads.size()) + "]";
    HeadSpec h;
    take(hj, "name", h.name, source);
    take_enum(hj, "meaning", h.meaning, source, at + ".meaning");
    take_enum(hj, "type", h.type, source, at + ".type");
    if (h.type == HeadType::Implicit) {  // an implicit head's own defaults (the fields below may restate them)
      h.weights.clear();
      h.activation = Activation::None;
      h.class_index = 0;
      h.read = ReadAt::StepEnd;
    }
    take(hj, "weights", h.weights, source);
    take(hj, "file", h.file, source);
    take_enum(hj, "activation", h.activation, source, at + ".activation");
    take(hj, "class_index", h.class_index, source);
    take(hj, "candidates", h.candidates, source);
    take(hj, "candidate_tokens", h.candidate_tokens, source);
    take(hj, "candidate_ids", h.candidate_ids, source);
    take_enum(hj, "read", h.read, source, at + ".read");
    take_enum(hj, "features", h.features, source, at + ".features");
    take_enum(hj, "logprob_span", h.logprob_span, source, at + ".logprob_span");
    s.heads.push_back(h);
  }
  validate(s, source);
  return s;
}

VerifierSpec VerifierSpec::from_file(const std::filesystem::path& path) {
  return from_json(detail::read_file(path, "spec file", limits::kMaxConfigFileBytes), path.string());
}

VerifierSpec VerifierSpec::preset(const std::string& name) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string list;
    for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
    throw ConfigError("unknown verifier preset '" + name + "'; presets: " + list);
  }
  return it->second;
}

std::vector<std::string> VerifierSpec::preset_names() {
  std::vector<std::string> out;
  for (const auto& [n, _] : presets()) out.push_back(n);
  return out;
}

std::string VerifierSpec::to_json() const {
  json t = {{"style", to_string(input.style)},
            {"system", input.system},
            {"question_prefix", input.question_prefix},
            {"question_suffix", input.question_suffix},
            {"step_separator", input.step_separator},
            {"final_suffix", input.final_suffix},
            {"step_tag", input.step_tag},
            {"bos", to_string(input.bos)},
            {"split_steps_on_newline", input.split_steps_on_newline},
            {"steps_in_one_string", input.steps_in_one_string},
            {"eos_at_end", input.eos_at_end},
            {"preamble", input.preamble},
            {"user_turn", input.user_turn},
            {"assistant_turn", input.assistant_turn}};
  json hs = json::array();
  for (const auto& h : heads)
    hs.push_back({{"name", h.name},
                  {"meaning", to_string(h.meaning)},
                  {"type", to_string(h.type)},
                  {"weights", h.weights},
                  {"file", h.file},
                  {"activation", to_string(h.activation)},
                  {"class_index", h.class_index},
                  {"candidates", h.candidates},
                  {"candidate_tokens", h.candidate_tokens},
                  {"candidate_ids", h.candidate_ids},
                  {"read", to_string(h.read)},
                  {"features", to_string(h.features)},
                  {"logprob_span", to_string(h.logprob_span)}});
  json out = {{"name", name}, {"kind", to_string(kind)}};
  if (kind == VerifierKind::Implicit) {
    out["reference"] = implicit.reference;
    out["beta"] = implicit.beta;
    out["reduction"] = to_string(implicit.reduction);
  }
  out["template"] = t;
  out["heads"] = hs;
  return out.dump(2);
}

}  // namespace stepverify
