// stepverify/input_template.h: how a verifier sees a solution: the token ids
// of (question, steps) under a spec's TemplateSpec, and the positions its
// heads read (each step's end, each step tag).
//
//   auto v = stepverify::Verifier::load("Qwen2.5-Math-PRM-7B");
//   auto r = v->input_template().render("What is 7 * 8?", {"7 * 8 = 56.", "The answer is 56."});
//   // r.ids: the backbone's input; r.tag_positions: where each <extra_0> step tag sits
//   auto scores = v->score_tokenized({r});           // score it without rendering again
//
// The styles (chatml, text, tokens, turns) are described on TemplateSpec
// (verifier_spec.h).
//
// Thread safety: an InputTemplate is immutable; render() may run on many threads.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stepverify/tokenizer.h"
#include "stepverify/verifier_spec.h"

namespace stepverify {

/// A solution rendered for the verifier.
struct STEPVERIFY_API RenderedInput {
  std::vector<int64_t> ids;             ///< the backbone's input tokens
  std::vector<int64_t> step_positions;  ///< per step, where step-level heads read
  std::vector<int64_t> tag_positions;   ///< positions of the step tag
  int64_t solution_from = -1;           ///< first token after the question (tokens style)
};

/// Renders (question, steps) under one TemplateSpec.
class STEPVERIFY_API InputTemplate {
 public:
  /// `name` names the spec in error messages. Throws ConfigError when the
  /// step tag is not one token of `tokenizer`.
  InputTemplate(TemplateSpec spec, std::shared_ptr<const Tokenizer> tokenizer, std::string name);

  /// The ids and read positions of (question, steps). `partial`: the form a
  /// scoring session extends step by step (no end-of-solution suffix, no EOS;
  /// the steps may be empty). Throws InputError naming the step at fault (an
  /// empty step, a step holding the tag or the separator, steps that merge).
  /// Does not check the length against a model's context (Verifier::tokenize does).
  RenderedInput render(const std::string& question, const std::vector<std::string>& steps, bool partial = false) const;

  const TemplateSpec& spec() const { return spec_; }
  /// The step tag's token id, -1 when the template has no tag.
  int64_t tag_id() const { return tag_id_; }

 private:
  TemplateSpec spec_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::string name_;
  int64_t tag_id_ = -1;
  int64_t newline_id_ = -1;
};

}  // namespace stepverify
