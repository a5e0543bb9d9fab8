// stepverify/sampling.h: how next tokens are drawn from a causal LM. One
// struct shared by generate() (GenerationOptions), the step sampler
// (SamplerOptions) and the rollout policy (LmRolloutOptions::generation).
//
//   stepverify::SamplingParams p;
//   p.temperature = 0.7;  p.top_p = 0.95;  p.seed = 3;
//   p.check("my sampler");   // throws ConfigError on a value out of range
//
// Thread safety: a plain value.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <string>

namespace stepverify {

/// Temperature, top-k, top-p and seed of token sampling.
struct STEPVERIFY_API SamplingParams {
  double temperature = 1.0;  ///< 0 means greedy
  int top_k = 0;             ///< keep the k most likely tokens (0: all)
  double top_p = 1.0;        ///< nucleus: smallest set with this much mass
  uint64_t seed = 0;         ///< seed of the sampling generator

  /// Throws ConfigError naming `who` unless temperature >= 0, 0 < top_p <= 1
  /// and top_k >= 0.
  void check(const std::string& who) const;
};

}  // namespace stepverify
