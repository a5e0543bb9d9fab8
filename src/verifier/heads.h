// Internal: verifier heads over backbone hidden states.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "stepverify/checkpoint.h"
#include "stepverify/model.h"
#include "stepverify/verifier_spec.h"

namespace stepverify {

/// A head: hidden states [N, H] -> one score per row, after its activation.
class Head {
 public:
  explicit Head(HeadSpec spec) : spec_(std::move(spec)) {}
  virtual ~Head() = default;
  const HeadSpec& spec() const { return spec_; }
  /// Raw outputs [N, C] in float32.
  virtual at::Tensor outputs(const at::Tensor& hidden) const = 0;
  /// Scores [N] (float64 on the CPU) after the activation.
  at::Tensor scores(const at::Tensor& hidden) const;

 private:
  HeadSpec spec_;
};

/// Builds the head `spec` describes. Weights come from `file` (relative to
/// `dir`; safetensors or torch.save) or from `ckpt`; `model` supplies the LM
/// head and tokenizer for lm_candidates. Throws ShapeError naming a missing or
/// mis-shaped tensor, ConfigError for candidates the tokenizer lacks.
std::shared_ptr<const Head> make_head(const HeadSpec& spec, const Checkpoint& ckpt, const std::filesystem::path& dir,
                                      const Model& model);

}  // namespace stepverify
