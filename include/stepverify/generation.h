// stepverify/generation.h: batched sampling from a causal LM over many prompts.
//
//   stepverify::GenerationOptions o;  o.sampling.temperature = 1.0;  o.sampling.seed = 3;  o.max_new_tokens = 96;
//   std::vector<std::vector<int64_t>> prompts = {tok.encode("Ana has 3 apples..."), ...};
//   auto outs = stepverify::generate(*policy, prompts, o);     // one Generation per prompt, in order
//   o.num_samples = 16;                                       // 16 per prompt, one prefill each
//   // outs[i].text: the completion (special tokens skipped); outs[i].ended: EOS was produced
//
// Prompts are sorted by length, left-padded, prefilled together and decoded
// with one KV cache per batch of at most max_batch_rows rows (at least one
// prompt's num_samples rows); rows that end keep a slot until fewer than 3/4
// of the rows are live, then the cache is compacted (one copy).
// This is what rollouts (Monte Carlo labels), dataset sampling and the demo
// use; the step-at-a-time SamplingProposer (search.h) is for searches.
//
// Sampling is seeded: the same model, prompts and options give the same
// outputs (on one device and build).
//
// Thread safety: reentrant; the model is shared read-only. This header is
// plain C++ (no torch header); calling generate() needs stepverify/model.h.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <string>
#include <vector>

#include "stepverify/sampling.h"

namespace stepverify {

class Model;  // stepverify/model.h

/// Call-time options of generate().
struct STEPVERIFY_API GenerationOptions {
  SamplingParams sampling;       ///< temperature, top-k, top-p, seed (each call starts from the seed)
  int64_t max_new_tokens = 128;  ///< tokens generated per prompt at most
  int64_t max_batch_rows = 256;  ///< rows (prompts x num_samples) decoded together
  bool stop_at_eos = true;       ///< a row ends at EOS (then not emitted in `ids`)
  /// Completions per prompt: the prompt is prefilled once and its KV rows
  /// repeated, so n samples cost one prefill. Outputs are prompt-major.
  int num_samples = 1;
};

/// One completion.
struct STEPVERIFY_API Generation {
  std::vector<int64_t> ids;  ///< generated tokens (no prompt; no EOS when stop_at_eos)
  std::string text;          ///< decoded with special tokens skipped
  bool ended = false;        ///< stopped at EOS (false: max_new_tokens reached)
};

/// Samples num_samples completions per prompt. Throws InputError on an empty prompt
/// or one that leaves no room for max_new_tokens in the context.
STEPVERIFY_API std::vector<Generation> generate(const Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                                const GenerationOptions& options = {});

}  // namespace stepverify
