// stepverify/tokenizer.h: text <-> token ids, token-exact with Hugging Face.
//
//   auto tok = stepverify::load_tokenizer("models/llama");      // picks the implementation
//   std::vector<int64_t> ids = tok->encode("Janet has 16 eggs.");  // [1, 421, 344, ...]
//   stepverify::DecodeOptions d;  d.skip_special_tokens = true;  std::string text = tok->decode(ids, d);
//
// Implementations: sentencepiece (`tokenizer.model`, reproducing HF's
// LlamaTokenizer with `legacy` true and false) and byte-level BPE
// (`tokenizer.json`, or `vocab.json` + `merges.txt`, reproducing HF's Qwen2 and
// GPT-2 style tokenizers). `load_tokenizer` chooses from the files a checkpoint
// ships. Special tokens written in raw text ("<s>", "<|im_start|>",
// "<extra_0>") become their ids unless `parse_special_tokens` is false.
//
// Thread safety: a loaded Tokenizer is immutable; all const methods may be
// called concurrently from any number of threads.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stepverify {

/// Options for one `encode` call.
struct STEPVERIFY_API EncodeOptions {
  /// Add the tokenizer's BOS/EOS as its config says (HF `add_special_tokens`).
  bool add_special_tokens = true;
  /// Turn added/special tokens written in the text into their ids (HF default).
  bool parse_special_tokens = true;
};

/// Options for one `decode` call.
struct STEPVERIFY_API DecodeOptions {
  /// Drop special tokens (BOS, EOS, pad, <|im_start|>, ...) from the text.
  bool skip_special_tokens = false;
};

/// Options fixed when a tokenizer is loaded.
struct STEPVERIFY_API TokenizerOptions {
  /// Override the `legacy` flag of tokenizer_config.json (sentencepiece only).
  std::optional<bool> legacy;
  /// Override whether encode() adds BOS when add_special_tokens is true.
  std::optional<bool> add_bos_token;
  /// Override whether encode() adds EOS when add_special_tokens is true.
  std::optional<bool> add_eos_token;
};

/// A token added on top of the base vocabulary (HF `added_tokens_decoder`).
struct STEPVERIFY_API AddedToken {
  int64_t id = -1;           ///< id in the vocabulary
  std::string content;       ///< the literal text of the token
  bool special = false;      ///< skipped by decode(skip_special_tokens)
  bool lstrip = false;       ///< eats whitespace on its left when matched in text
  bool rstrip = false;       ///< eats whitespace on its right when matched in text
  bool normalized = false;   ///< matched after normalisation (fast tokenizers)
  bool single_word = false;  ///< matched only as a whole word
};

/// The special tokens of a tokenizer; a missing one is std::nullopt.
struct STEPVERIFY_API SpecialTokens {
  std::optional<int64_t> bos_id;   ///< beginning of sequence
  std::optional<int64_t> eos_id;   ///< end of sequence
  std::optional<int64_t> pad_id;   ///< padding
  std::optional<int64_t> unk_id;   ///< unknown
  std::optional<std::string> bos;  ///< BOS text, e.g. "<s>"
  std::optional<std::string> eos;  ///< EOS text, e.g. "</s>" or "<|endoftext|>"
  std::optional<std::string> pad;  ///< pad text
  std::optional<std::string> unk;  ///< unk text
};

/// The result of encoding with pieces: ids and the token strings HF reports
/// (`convert_ids_to_tokens`), e.g. "▁Janet" or "Ġthe".
struct STEPVERIFY_API Encoding {
  std::vector<int64_t> ids;         ///< token ids
  std::vector<std::string> pieces;  ///< one piece per id
};

/// Abstract tokenizer; obtain one from `load_tokenizer`.
class STEPVERIFY_API Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Encodes `text` to ids. Throws InputError on invalid UTF-8 where the
  /// implementation cannot represent it.
  virtual std::vector<int64_t> encode(std::string_view text, const EncodeOptions& options = {}) const {
    return encode_with_pieces(text, options).ids;
  }
  /// Encodes `text` to ids and pieces.
  virtual Encoding encode_with_pieces(std::string_view text, const EncodeOptions& options = {}) const = 0;
  /// Decodes ids to text as HF's `decode` does. Throws TokenizerError naming
  /// the id when one is outside the vocabulary.
  virtual std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options = {}) const = 0;
  /// The piece (token string) of `id`. Throws TokenizerError when out of range.
  virtual std::string id_to_piece(int64_t id) const = 0;
  /// The id of a piece or added token, if the vocabulary has it.
  virtual std::optional<int64_t> piece_to_id(std::string_view piece) const = 0;
  /// Number of ids, base vocabulary plus added tokens (HF `len(tokenizer)`).
  virtual int64_t size() const = 0;
  /// BOS/EOS/PAD/UNK ids and texts.
  virtual const SpecialTokens& special_tokens() const = 0;
  /// Added tokens (special or not), in id order.
  virtual const std::vector<AddedToken>& added_tokens() const = 0;
  /// True when `id` is a special token (skipped by skip_special_tokens).
  virtual bool is_special(int64_t id) const = 0;
  /// "sentencepiece" or "byte-level-bpe".
  virtual std::string kind() const = 0;
};

/// Loads the tokenizer a checkpoint directory ships: `tokenizer.json` (byte-level
/// BPE), `vocab.json` + `merges.txt`, or `tokenizer.model` (sentencepiece), with
/// `tokenizer_config.json`, `special_tokens_map.json` and `added_tokens.json`.
/// Throws IoError when none is present, TokenizerError when one is corrupt.
STEPVERIFY_API std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir,
                                                         const TokenizerOptions& options = {});

/// Loads a sentencepiece tokenizer from `tokenizer.model` in `dir` (the HF
/// LlamaTokenizer conventions come from `tokenizer_config.json` beside it).
STEPVERIFY_API std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& dir,
                                                                       const TokenizerOptions& options = {});

/// Loads a byte-level BPE tokenizer from `tokenizer.json`, or from
/// `vocab.json` + `merges.txt`, in `dir`.
STEPVERIFY_API std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::filesystem::path& dir,
                                                             const TokenizerOptions& options = {});

}  // namespace stepverify
