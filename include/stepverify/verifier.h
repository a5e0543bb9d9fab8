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

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stepverify/aggregate.h"
#include "stepverify/model.h"
#include "stepverify/verifier_spec.h"

namespace stepverify {

/// One solution to score.
struct Solution {
  std::string question;
  std::vector<std::string> steps;
};

/// Scores of one solution.
struct Scores {
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
struct VerifierOptions {
  /// Backbone load options (device, dtype, ...).
  LoadOptions load;
  /// A preset name or a spec file; empty: stepverify.json beside the
  /// checkpoint, else the preset implied by the architecture.
  std::string spec;
  /// Heads to load (by name); empty loads all heads of the spec.
  std::vector<std::string> heads;
  /// Memory budget of the prefix cache shared by sessions, in bytes (0 disables it).
  int64_t prefix_cache_bytes = 256ll << 20;
};

/// Call-time options of scoring.
struct ScoreOptions {
  /// Aggregate of step-level heads into `Scores::outcome`.
  Aggregate aggregate = Aggregate::Min;
  /// A user aggregate; overrides `aggregate` when set.
  std::function<double(const std::vector<double>&)> custom_aggregate;
  /// Most tokens (rows x padded length) in one batched forward.
  int64_t max_batch_tokens = 8192;
};

class ScoringSession;
class Head;
class PrefixCache;

class Verifier : public std::enable_shared_from_this<Verifier> {
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

  const VerifierSpec& spec() const { return spec_; }
  const Model& model() const { return *model_; }
  /// Names of the loaded heads, in spec order.
  std::vector<std::string> head_names() const;

  // Internal, used by sessions.
  struct Rendered {
    std::vector<int64_t> ids;
    std::vector<int64_t> step_positions;  ///< per step, where step-level heads read
    std::vector<int64_t> tag_positions;   ///< positions of the step tag
    int64_t solution_from = -1;           ///< first token after the question (tokens style)
  };
  /// Renders (question, steps) to ids. `partial`: the form a session extends
  /// step by step (no end-of-solution suffix, no EOS).
  Rendered render(const std::string& question, const std::vector<std::string>& steps, bool partial) const;
  /// score_batch on inputs already rendered (full form) and length-checked.
  std::vector<Scores> score_rendered(const std::vector<Rendered>& rendered, const ScoreOptions& options = {}) const;
  /// Where head `h` reads in `r`: one position per step (for "last" heads,
  /// the last token, once).
  std::vector<int64_t> read_positions(size_t h, const Rendered& r) const;
  /// Whether head `h` reads log-probability features (HeadSpec::features).
  bool reads_logprobs(size_t h) const;
  /// Per read of head `h`, the tokens [first, last] its log-probability
  /// features cover: the step read (the last step for "last" heads), from the
  /// solution's first token when HeadSpec::logprob_span is "solution"
  /// ("step+solution": the solution's span, which holds the step's).
  /// `step_only`: the step read alone, whatever the span.
  std::vector<std::pair<int64_t, int64_t>> read_spans(size_t h, const Rendered& r, bool step_only = false) const;
  /// Log-probabilities [last - first + 1] (float) the backbone's LM gives
  /// tokens first..last of `r`, from hidden rows of positions [offset, ...):
  /// needs offset < first. `lm` maps hidden rows to LM logits (default: the
  /// backbone's LM head).
  at::Tensor token_logprobs(const at::Tensor& hidden, int64_t offset, const Rendered& r, int64_t first, int64_t last,
                            const std::function<at::Tensor(const at::Tensor&)>& lm = {}) const;
  /// The inputs of head `h` for the reads `which` (indices into
  /// read_positions): hidden rows, plus log-probability features when the
  /// head reads them. `hidden` holds positions [offset, offset + rows) of `r`.
  /// `known`, when given, holds log-probabilities of tokens by position (NaN
  /// where unknown); a token it holds is not computed again, so spans may
  /// start before the hidden rows (sessions).
  at::Tensor head_inputs(size_t h, const at::Tensor& hidden, int64_t offset, const Rendered& r,
                         const std::vector<size_t>& which,
                         const std::function<at::Tensor(const at::Tensor&)>& lm = {},
                         const std::vector<float>* known = nullptr) const;
  /// Scores of head `h` on hidden rows [N, H].
  std::vector<double> head_scores(size_t h, const at::Tensor& rows) const;
  size_t num_heads() const { return heads_.size(); }
  const HeadSpec& head_spec(size_t h) const;
  PrefixCache* prefix_cache() const { return prefix_cache_.get(); }
  Scores finish(std::map<std::string, std::vector<double>> per_head, int64_t tokens,
               const ScoreOptions& options) const;
  /// Throws InputError when `tokens` do not fit the backbone's context.
  void check_length(int64_t tokens, const std::string& what) const;

 private:
  Verifier() = default;
  std::shared_ptr<const Model> model_;
  VerifierSpec spec_;
  std::vector<std::shared_ptr<const Head>> heads_;
  std::unique_ptr<PrefixCache> prefix_cache_;
  int64_t tag_id_ = -1;
  int64_t newline_id_ = -1;
};

}  // namespace stepverify
