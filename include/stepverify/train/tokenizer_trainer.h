// stepverify/train/tokenizer_trainer.h: trains a sentencepiece tokenizer with the
// sentencepiece trainer API and writes the Hugging Face files beside it.
//
//   stepverify::SentencePieceTrainOptions o;  o.vocab_size = 384;
//   stepverify::train_sentencepiece(lines, "models/policy", o);
//   // models/policy/tokenizer.model, tokenizer_config.json, special_tokens_map.json
//   auto tok = stepverify::load_tokenizer("models/policy");
//
// The defaults are Llama's: BPE, digits split, byte fallback (so "\n" and any
// other character outside the vocabulary encode as byte tokens), identity
// normalisation, ids 0/1/2 for <unk>/<s>/</s>. Unlike Llama no dummy prefix is
// added, so encode(a + "\n" + b) == encode(a) + ["\n"] + encode(b): a text
// built step by step tokenizes the same as the whole.
//
// Thread safety: reentrant (each call trains its own model).
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace stepverify {

/// Options of the sentencepiece trainer (names as its flags).
struct STEPVERIFY_API SentencePieceTrainOptions {
  int vocab_size = 384;                           ///< pieces, byte and special pieces included
  std::string model_type = "bpe";                 ///< "bpe" or "unigram"
  bool split_digits = true;                       ///< every digit its own piece
  bool byte_fallback = true;                      ///< unknown characters as <0xNN> pieces
  bool add_dummy_prefix = false;                  ///< prepend "▁" to the text (Llama: true)
  std::string normalization = "identity";         ///< sentencepiece normalization_rule_name
  double character_coverage = 1.0;                ///< share of characters kept as pieces
  std::vector<std::string> user_defined_symbols;  ///< pieces kept whole
  int num_threads = 1;                            ///< trainer threads (1: reproducible)
  bool quiet = true;                              ///< silence the trainer's log
};

/// Trains on `sentences` (one training sentence each; none may contain "\n")
/// and writes tokenizer.model, tokenizer_config.json and
/// special_tokens_map.json into `dir` (created). Throws TokenizerError when
/// the trainer fails, InputError on no sentences or a sentence with "\n".
STEPVERIFY_API void train_sentencepiece(const std::vector<std::string>& sentences, const std::filesystem::path& dir,
                                        const SentencePieceTrainOptions& options = {});

}  // namespace stepverify
