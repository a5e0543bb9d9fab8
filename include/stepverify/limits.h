// stepverify/limits.h: the largest inputs the library accepts. Past a limit a
// reader throws a stepverify::Error naming the file and the limit; at the
// limit it reads as usual. They bound the memory and time a bad or hostile
// file can cost (and keep recursive code, e.g. JSON output, within the stack).
//
//   if (bytes > stepverify::limits::kMaxConfigFileBytes) ...  // what Model::load would refuse
//
// Answer extraction and equivalence have their own bounds, in answer.h
// (kMaxStructuredAnswerBytes, kMaxNesting, kMaxTerms, kMaxExponent, kMaxWork).
//
// Thread safety: constants.
#pragma once

#include <cstdint>

namespace stepverify::limits {

/// A safetensors JSON header: 100,000,000 bytes, the reference
/// implementation's limit (a 70B checkpoint's headers are under 100 kB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

/// A configuration or tokenizer file read whole (config.json,
/// tokenizer.json, tokenizer_config.json, vocab.json, merges.txt,
/// tokenizer.model, a verifier spec): 256 MiB. The largest tokenizer.json
/// files of released models (256k vocabularies) are about 35 MB.
inline constexpr uint64_t kMaxConfigFileBytes = uint64_t{256} << 20;

/// Nesting of arrays and objects in any JSON document or JSONL line the
/// library parses: 512 levels. Real files nest fewer than 10.
inline constexpr int kMaxJsonDepth = 512;

}  // namespace stepverify::limits
