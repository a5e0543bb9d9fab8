// stepverify/verifier.h: several verifier heads over one backbone pass.
//
//   auto v = stepverify::Verifier::load("Qwen2.5-Math-PRM-7B");     // preset chosen from config.json
//   auto r = v->score("What is 7 * 8?", {"7 * 8 = 56.", "The answer is 56."});
//   // r.step_scores: one reward per step; r.heads["prm"], r.outcome["prm"] (min by default)
//
//   auto s = v->session("What is 7 * 8?");          // incremental: the question is computed once
//   auto first = s->append_step("7 * 8 = 56.");       // computes only the new tokens
//   auto beam = s->fork();                            // shares the prefix (KV cache, O(1))
//
// The spec (verifier_spec.h) comes from VerifierOptions::spec (a preset name or
// a JSON file), else `stepverify.json` beside the checkpoint, else the preset
// the architecture implies (Qwen2ForProcessRewardModel -> qwen2.5-math-prm,
// Qwen2ForPrmModel -> skywork, *ForTokenClassification -> trl-token-classification,
// *ForSequenceClassification / Qwen2ForRewardModel -> orm). A causal LM needs
// an explicit spec (math-shepherd, ovm, ...).
//
// Thread safety: a loaded Verifier is immutable and may be shared by threads
// (score, score_batch and session are const and thread-safe; the shared prefix
// cache is synchronised). A ScoringSession is used by one thread at a time.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stepverify/aggregate.h"
#include "stepverify/input_template.h"
#include "stepverify/model.h"
#include "stepverify/verifier_spec.h"

namespace stepverify {

/// One solution to score.
struct STEPVERIFY_API Solution {
  std::string question;
  std::vector<std::string> steps;
};

/// Scores of one solution.
struct STEPVERIFY_API Scores {
  /// Per-step scores of the first step-level head (PRM, value, SORM), one per step.
  std::vector<double> step_scores;
  /// Per-step scores of every step-level head, by head name.
  std::map<std::string, std::vector<double>> heads;
  /// One score per head: a solution-level head's value ("last" read), or the
  /// aggregate of a step-level head's scores.
  std::map<std::string, double> outcome;
  /// Tokens of the rendered input.
  int64_t tokens = 0;
};

/// Load-time options.
struct STEPVERIFY_API VerifierOptions {
  /// Backbone load options (device, dtype, ...).
  LoadOptions load;
  /// A preset name or a spec file; empty: stepverify.json beside the
  /// checkpoint, else the preset implied by the architecture.
  std::string spec;
  /// A spec given as a value (e.g. built in code); overrides `spec`.
  std::optional<VerifierSpec> spec_value;
  /// Heads to load (by name); empty loads all heads of the spec.
  std::vector<std::string> heads;
  /// Memory budget of the prefix cache shared by sessions, in bytes (0 disables it).
  int64_t prefix_cache_bytes = 256ll << 20;
};

/// Call-time options of scoring.
struct STEPVERIFY_API ScoreOptions {
  /// Aggregate of step-level heads into `Scores::outcome`.
  Aggregate aggregate = Aggregate::Min;
  /// A user aggregate; overrides `aggregate` when set.
  std::function<double(const std::vector<double>&)> custom_aggregate;
  /// Most tokens (rows x padded length) in one batched forward.
  int64_t max_batch_tokens = 8192;
};

class ScoringSession;
class PrefixCache;
namespace detail {
struct VerifierAccess;  // src/verifier/verifier_internal.h
}  // namespace detail

class STEPVERIFY_API Verifier : public std::enable_shared_from_this<Verifier> {
 public:
  static std::shared_ptr<const Verifier> load(const std::filesystem::path& dir, const VerifierOptions& options = {});
  ~Verifier();

  /// Scores one solution. Throws InputError naming the step at fault (empty
  /// step list, empty step, a step holding the tag, a context too long).
  Scores score(const std::string& question, const std::vector<std::string>& steps,
               const ScoreOptions& options = {}) const;
  /// Scores many solutions in padded, length-sorted batches; results in input order.
  std::vector<Scores> score_batch(const std::vector<Solution>& solutions, const ScoreOptions& options = {}) const;
  /// A session for incremental scoring of one question.
  std::unique_ptr<ScoringSession> session(const std::string& question) const;

  /// (question, steps) as this verifier reads them: input_template().render
  /// plus the context check. Throws InputError (the step at fault, or the
  /// length against max_position_embeddings).
  RenderedInput tokenize(const std::string& question, const std::vector<std::string>& steps) const;
  /// score_batch on solutions already tokenized (e.g. checked one by one as
  /// they were read); results in input order.
  std::vector<Scores> score_tokenized(const std::vector<RenderedInput>& inputs, const ScoreOptions& options = {}) const;

  const VerifierSpec& spec() const;
  const Model& model() const;
  const InputTemplate& input_template() const;
  /// Names of the loaded heads, in spec order.
  std::vector<std::string> head_names() const;
  /// True when a loaded head scores each step (Scores::step_scores is filled).
  bool has_step_heads() const;
  /// The prefix cache sessions share (null when VerifierOptions::prefix_cache_bytes is 0).
  PrefixCache* prefix_cache() const;

  // Reading heads over hidden states computed elsewhere (a trainer's own
  // backbone copy, a custom scorer). `head` indexes head_names().

  /// The spec of loaded head `head`.
  const HeadSpec& head_spec(size_t head) const;
  /// Where head `head` reads in `input`: one token position per step, or the
  /// last token once when it reads "last".
  std::vector<int64_t> read_positions(size_t head, const RenderedInput& input) const;
  /// What head `head` takes at the reads `which` (indices into
  /// read_positions): the rows of `hidden` [T, H] (positions 0..T-1 of
  /// `input`), with its log-probability features appended when it reads them
  /// (HeadSpec::features). `lm` maps hidden rows to LM logits (default: this
  /// backbone's LM head). Returns [which.size(), H + head_spec(head).logprob_features()].
  at::Tensor head_inputs(size_t head, const at::Tensor& hidden, const RenderedInput& input,
                         const std::vector<size_t>& which,
                         const std::function<at::Tensor(const at::Tensor&)>& lm = {}) const;

  struct Impl;  ///< the internals (heads, read positions), defined in the library's sources

 private:
  friend struct detail::VerifierAccess;
  Verifier();
  std::unique_ptr<Impl> impl_;
};

}  // namespace stepverify
