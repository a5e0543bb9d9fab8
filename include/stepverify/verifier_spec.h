// stepverify/verifier_spec.h: a declarative description of a released verifier.
//
//   auto spec = stepverify::VerifierSpec::preset("math-shepherd");
//   auto spec2 = stepverify::VerifierSpec::from_file("my_prm/stepverify.json");
//
// A spec says how (question, steps) become tokens (the input template), which
// positions are read, and what head turns the hidden state there into a
// score. Presets reproduce the released conventions exactly; see README.md for
// each preset's source and an example input string.
//
// JSON form (stepverify.json beside a checkpoint, or any file):
//   {"name": "...", "kind": "heads"|"implicit",
//    "reference": str, "beta": num, "reduction": "sum"|"mean"|"min",   (implicit)
//    "template": {"style": "chatml"|"text"|"tokens", "system": str,
//                 "question_prefix": str, "question_suffix": str,
//                 "step_separator": str, "final_suffix": str, "step_tag": str,
//                 "bos": "auto"|"yes"|"no"|"text", "split_steps_on_newline": bool,
//                 "steps_in_one_string": bool, "eos_at_end": bool,
//                 "preamble": str, "user_turn": str, "assistant_turn": str},
//    "heads": [{"name": str, "meaning": "prm"|"orm"|"ovm"|"sorm",
//               "type": "lm_candidates"|"mlp"|"linear"|"ovm", "weights": str,
//               "file": str, "activation": "softmax"|"sigmoid"|"tanh"|"none",
//               "class_index": int, "candidates": str, "candidate_tokens": [str],
//               "candidate_ids": [int],
//               "read": "tag"|"before_tag"|"step_end"|"last"}]}
//
// Thread safety: a plain value.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace stepverify {

struct ModelConfig;

// The spec's enumerated fields. Each is parsed from (and written back to) its
// JSON string once, in verifier_spec.cpp; to_string gives that string.

/// How a template renders (question, steps); see TemplateSpec::style.
enum class TemplateStyle { Text, ChatML, Tokens, Turns };
/// Whether a BOS token starts the input; see TemplateSpec::bos.
enum class BosPolicy { Auto, Yes, No, Text };
/// What a head's score means.
enum class HeadMeaning { Prm, Orm, Ovm, Sorm };
/// How a head turns hidden states into scores; see HeadSpec::type.
enum class HeadType { Linear, Mlp, LmCandidates, Ovm, Implicit };
/// What a verifier is; see VerifierSpec::kind.
enum class VerifierKind { Heads, Implicit };
/// How an implicit PRM's token rewards become a step's reward.
enum class TokenReduction { Sum, Mean, Min };
/// The function applied to a head's outputs.
enum class Activation { Softmax, Sigmoid, Tanh, None };
/// Where a head reads; see HeadSpec::read.
enum class ReadAt { Tag, BeforeTag, StepEnd, Last };
/// What a linear head reads; see HeadSpec::features.
enum class HeadFeatures { Hidden, HiddenLogprob };
/// The tokens the log-probability features cover; see HeadSpec::logprob_span.
enum class LogprobSpan { Step, Solution, StepSolution };

/// The JSON spelling of each value ("chatml", "before_tag", "hidden+logprob", ...).
STEPVERIFY_API const char* to_string(TemplateStyle v);
STEPVERIFY_API const char* to_string(BosPolicy v);
STEPVERIFY_API const char* to_string(HeadMeaning v);
STEPVERIFY_API const char* to_string(HeadType v);
STEPVERIFY_API const char* to_string(Activation v);
STEPVERIFY_API const char* to_string(ReadAt v);
STEPVERIFY_API const char* to_string(HeadFeatures v);
STEPVERIFY_API const char* to_string(LogprobSpan v);
STEPVERIFY_API const char* to_string(VerifierKind v);
STEPVERIFY_API const char* to_string(TokenReduction v);

/// How (question, steps) become token ids.
struct STEPVERIFY_API TemplateSpec {
  /// "chatml": system/user/assistant messages rendered as
  ///   <|im_start|>{role}\n{content}<|im_end|>\n, the assistant content being
  ///   step_tag.join(steps) + step_tag; encoded as one string.
  /// "text": question_prefix + question + question_suffix +
  ///   step_separator.join(steps) + final_suffix, encoded as one string.
  /// "tokens": ids concatenated: [BOS] + enc(question_prefix + question +
  ///   question_suffix) + for each step enc(step) + enc(step_separator).
  /// "turns": preamble, then per step user_turn (content: the step; for the
  ///   first, question + question_suffix + step) and assistant_turn; each
  ///   step is read at the token before "{read}" in its assistant turn
  ///   (RLHFlow's "+" turns); encoded as one string.
  TemplateStyle style = TemplateStyle::Text;
  std::string system;                 ///< chatml system message (empty: none)
  std::string question_prefix;        ///< text before the question
  std::string question_suffix;        ///< text after the question
  std::string step_separator = "\n";  ///< between steps (text) or after each step (tokens)
  std::string final_suffix;           ///< text style: after the last step
  std::string step_tag;               ///< the token whose positions are read ("tag", "before_tag")
  /// BOS: "auto" (as the tokenizer config says), "yes", "no", or "text" (the
  /// BOS string written before the question and parsed as a special token).
  BosPolicy bos = BosPolicy::Auto;
  /// tokens style: steps are split on "\n" first and each piece is followed by
  /// the id of "\n" (Skywork).
  bool split_steps_on_newline = false;
  /// tokens style: the steps are encoded as one string step_separator.join(steps)
  /// and the step ends are the separator tokens (OVM).
  bool steps_in_one_string = false;
  /// tokens style: EOS after the last step; the last step is read there (OVM).
  bool eos_at_end = false;
  /// turns style: text before the first turn (BOS and system header included).
  std::string preamble;
  /// turns style: a user turn; "{content}" is replaced by the step.
  std::string user_turn;
  /// turns style: an assistant turn; "{read}" marks where the step is read
  /// (the token before it) and is removed.
  std::string assistant_turn;
};

/// One head over the shared backbone.
struct STEPVERIFY_API HeadSpec {
  std::string name = "prm";                ///< key in the results ("prm", "orm", "ovm", "sorm", or any)
  HeadMeaning meaning = HeadMeaning::Prm;  ///< "prm", "orm", "ovm" or "sorm"
  /// "lm_candidates": softmax over the LM-head logits of `candidates`;
  /// "mlp": weights.0 [H,H] + bias, ReLU, weights.2 [C,H] + bias;
  /// "linear": weights.weight [C,H] (+ weights.bias);
  /// "ovm": gain [1], bias [1], vscore_head.weight [1,H]: w . (gain * h + bias);
  /// "implicit": no weights, the implicit PRM's step reward (VerifierSpec::implicit).
  HeadType type = HeadType::Linear;
  std::string weights = "score";  ///< tensor-name prefix in the checkpoint or `file`
  std::string file;               ///< separate .safetensors or torch.save file (relative to the checkpoint)
  Activation activation = Activation::Softmax;  ///< "softmax", "sigmoid", "tanh" or "none"
  int class_index = 1;                          ///< softmax class reported
  std::string candidates;                       ///< lm_candidates: text whose ids (no BOS) are the candidates
  /// lm_candidates: strings each encoded alone, the last id of each a
  /// candidate (RLHFlow: encode('+')[-1], encode('-')[-1]); overrides `candidates`.
  std::vector<std::string> candidate_tokens;
  /// lm_candidates: the candidate token ids themselves (vLLM's
  /// returned_token_ids); overrides `candidates` and `candidate_tokens`.
  std::vector<int64_t> candidate_ids;
  /// "tag": at each step_tag token; "before_tag": the token before it;
  /// "step_end": the last token of each step (plus separator);
  /// "last": the last token of the sequence (one score for the solution).
  ReadAt read = ReadAt::Tag;
  /// What a linear head reads: "hidden" (the hidden state at the read
  /// position) or "hidden+logprob" (that, then the minimum and the mean
  /// log-probability the backbone's LM head gives the tokens of the step read,
  /// the separator included; weights [C, H+2], see logprob_span; tokens-style templates and
  /// backbones with an LM head). A likelihood feature: a stronger LM of the
  /// policy's family finds slips (a wrong digit, a wrong operand) as tokens it
  /// did not expect, which a head over one hidden state rarely learns to see.
  HeadFeatures features = HeadFeatures::Hidden;
  /// The tokens the log-probability features cover: "step" (the step read),
  /// "solution" (the solution from its first token through the step read: the
  /// whole solution for "last" heads) or "step+solution" (both pairs, step
  /// first: weights [C, H+4]). Outcome and value heads judge a solution or a
  /// prefix, so their features should cover all of it; a PRM trained on
  /// prefix labels (Math-Shepherd's) judges the prefix too, and the step's own
  /// pair tells it where the first slip is.
  LogprobSpan logprob_span = LogprobSpan::Step;
  /// Log-probability features this head appends to the hidden state (0, 2 or 4).
  int64_t logprob_features() const {
    if (features != HeadFeatures::HiddenLogprob) return 0;
    return logprob_span == LogprobSpan::StepSolution ? 4 : 2;
  }
};

/// An implicit PRM (PRIME, arXiv 2412.01981): two causal LMs of one
/// architecture, a tuned one (the checkpoint) and its reference. Token t's
/// reward is beta * (log p(y_t | y_<t) - log p_ref(y_t | y_<t)); a step's
/// reward is the reduction of its tokens' rewards (its separator included);
/// a prefix's value is the sum of its steps' rewards (Aggregate::Sum).
struct STEPVERIFY_API ImplicitSpec {
  /// The reference LM's checkpoint directory, relative to the verifier's
  /// checkpoint (or absolute). Its tokenizer is not read: the two models
  /// share the checkpoint's. The vocabulary size, KV geometry, sliding window
  /// and context are checked; the token mapping is trusted (a reference is
  /// the model the tuned one was trained from).
  std::string reference;
  double beta = 0.05;                              ///< the reward scale (PRIME's default)
  TokenReduction reduction = TokenReduction::Sum;  ///< token rewards -> step reward
};

/// A verifier: template plus heads.
struct STEPVERIFY_API VerifierSpec {
  std::string name;
  /// "heads": heads over one backbone (the default). "implicit": an implicit
  /// PRM (`implicit`); its one head (type "implicit", named "implicit",
  /// read at each step end) is made when `heads` is not given, and its
  /// template defaults to the tokens style: [BOS] + question + "\n", then
  /// each step encoded alone and ended by "\n" (set "template" to match how
  /// the two LMs were trained, e.g. a chat template's turns).
  VerifierKind kind = VerifierKind::Heads;
  ImplicitSpec implicit;  ///< kind "implicit" only
  TemplateSpec input;
  std::vector<HeadSpec> heads;

  /// Parses JSON text; throws ConfigError naming `source` and the field.
  static VerifierSpec from_json(const std::string& text, const std::string& source = "spec");
  static VerifierSpec from_file(const std::filesystem::path& path);
  /// A built-in preset: "qwen2.5-math-prm", "math-shepherd",
  /// "trl-token-classification", "skywork", "ovm", "orm", "qwen2.5-math-rm", "rlhflow", "alphamath".
  /// Throws ConfigError listing the presets when unknown.
  static VerifierSpec preset(const std::string& name);
  static std::vector<std::string> preset_names();
  /// The spec a checkpoint's architecture implies when it ships no
  /// stepverify.json: Qwen2ForProcessRewardModel -> qwen2.5-math-prm,
  /// Qwen2ForRewardModel -> qwen2.5-math-rm, a value head -> skywork, token
  /// classification -> trl-token-classification, sequence classification ->
  /// orm. ConfigError naming the architecture when it carries no head.
  static VerifierSpec for_architecture(const ModelConfig& config);
  /// The spec equivalent to a vLLM pooler config (the JSON vLLM takes in
  /// --override-pooler-config: pooling_type, step_tag_id, returned_token_ids,
  /// softmax) for the checkpoint in `model_dir` (its config.json and
  /// tokenizer give the architecture and the tag's text):
  ///  * STEP with returned_token_ids: an lm_candidates head over those ids,
  ///    read at every step_tag_id token, softmax over them, reporting the
  ///    first (vLLM returns all; the first is the "good" token by convention,
  ///    Math-Shepherd's "+"); the template is the architecture's own with that
  ///    tag, or for a causal LM the text layout vLLM's docs feed such PRMs:
  ///    "question step1 TAG\nstep2 TAG";
  ///  * STEP without returned_token_ids: the architecture's head (e.g.
  ///    Qwen2.5-Math-PRM's) read at every step_tag_id token;
  ///  * LAST: the architecture's head at the last token (one score);
  ///  * ALL: a token-classification or value head read at each step's end;
  ///  * MEAN, CLS (and anything else): ConfigError, since a verifier reads positions.
  /// Throws ConfigError naming the field at fault.
  static VerifierSpec from_vllm_pooler(const std::string& pooler_json, const std::filesystem::path& model_dir);
  /// The JSON form.
  std::string to_json() const;
};

}  // namespace stepverify
