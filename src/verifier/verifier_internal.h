// Internal: what scoring sessions need from a Verifier beyond its
// public calls (the heads, where they read, their inputs). Marked
// STEPVERIFY_API for the project's other targets (train, eval, the CLI,
// tests); not part of the installed API.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "stepverify/session.h"
#include "stepverify/verifier.h"

namespace stepverify {

class Head;

struct STEPVERIFY_API Verifier::Impl {
  std::shared_ptr<const Model> model_;
  /// An implicit PRM's reference LM, run in lockstep with model_ (null otherwise).
  std::shared_ptr<const Model> reference_;
  VerifierSpec spec_;
  std::vector<std::shared_ptr<const Head>> heads_;
  std::unique_ptr<PrefixCache> prefix_cache_;
  std::optional<InputTemplate> template_;

  using Rendered = RenderedInput;
  /// input_template().render.
  Rendered render(const std::string& question, const std::vector<std::string>& steps, bool partial) const {
    return template_->render(question, steps, partial);
  }
  /// The backbone forward (with the reference in lockstep for an implicit PRM:
  /// hidden [..., H + H_ref], its cache holding both models' layers).
  ForwardOutput forward(const ForwardInput& in) const;
  /// An empty cache for forward().
  KVCache new_cache(int64_t batch = 1) const;
  /// KV bytes per cached token (both models' layers).
  int64_t bytes_per_token() const;
  /// Verifier::score_tokenized.
  std::vector<Scores> score_rendered(const std::vector<Rendered>& rendered, const ScoreOptions& options = {}) const;
  /// Where head `h` reads in `r`: one position per step (for "last" heads,
  /// the last token, once).
  std::vector<int64_t> read_positions(size_t h, const Rendered& r) const;
  /// Whether head `h` reads log-probability features (HeadSpec::features).
  bool reads_logprobs(size_t h) const;
  /// Whether head `h` reads once, at the last token.
  bool reads_last(size_t h) const;
  /// Per read of head `h`, the tokens [first, last] its log-probability
  /// features cover: the step read (the last step for "last" heads), from the
  /// solution's first token when HeadSpec::logprob_span is "solution"
  /// ("step+solution": the solution's span, which holds the step's).
  /// `step_only`: the step read alone, whatever the span.
  std::vector<std::pair<int64_t, int64_t>> read_spans(size_t h, const Rendered& r, bool step_only = false) const;
  /// Log-probabilities [last - first + 1] (float) the backbone's LM gives
  /// tokens first..last of `r`, from hidden rows of positions [offset, ...):
  /// needs offset < first. `lm` maps hidden rows to LM logits (default: the
  /// backbone's LM head). For an implicit PRM (and no `lm`): the log-ratios
  /// log p - log p_ref, the token rewards before beta.
  at::Tensor token_logprobs(const at::Tensor& hidden, int64_t offset, const Rendered& r, int64_t first, int64_t last,
                            const std::function<at::Tensor(const at::Tensor&)>& lm = {}) const;
  /// The inputs of head `h` for the reads `which` (indices into
  /// read_positions): hidden rows, plus log-probability features when the
  /// head reads them. `hidden` holds positions [offset, offset + rows) of `r`.
  /// `known`, when given, holds log-probabilities of tokens by position (NaN
  /// where unknown); a token it holds is not computed again, so spans may
  /// start before the hidden rows (sessions).
  at::Tensor head_inputs(size_t h, const at::Tensor& hidden, int64_t offset, const Rendered& r,
                         const std::vector<size_t>& which, const std::function<at::Tensor(const at::Tensor&)>& lm = {},
                         const std::vector<float>* known = nullptr) const;
  /// Scores of head `h` on hidden rows [N, H].
  std::vector<double> head_scores(size_t h, const at::Tensor& rows) const;
  size_t num_heads() const { return heads_.size(); }
  const HeadSpec& head_spec(size_t h) const;
  Scores finish(std::map<std::string, std::vector<double>> per_head, int64_t tokens, const ScoreOptions& options) const;
  /// Throws InputError when `tokens` do not fit the backbone's context.
  void check_length(int64_t tokens, const std::string& what) const;
};

namespace detail {

/// The internals of `v` (sessions).
struct VerifierAccess {
  static const Verifier::Impl& impl(const Verifier& v) { return *v.impl_; }
};

inline const Verifier::Impl& verifier_impl(const Verifier& v) { return VerifierAccess::impl(v); }

}  // namespace detail
}  // namespace stepverify
