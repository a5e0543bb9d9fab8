// Internal: what every tokenizer implementation reads from the HF side files
// (tokenizer_config.json, special_tokens_map.json, added_tokens.json), and the
// splitting of raw text on added tokens as HF's slow tokenizers do it.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stepverify/tokenizer.h"
#include "util/files.h"

namespace stepverify::detail {

/// The fields of tokenizer_config.json (falling back to special_tokens_map.json)
/// that the implementations use. Absent fields stay std::nullopt.
struct HfTokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::optional<bool> add_prefix_space;
  std::optional<bool> legacy;
  std::string tokenizer_class;
  /// added_tokens_decoder of tokenizer_config.json merged with added_tokens.json
  /// (ids from added_tokens.json get special = false unless listed as special).
  std::vector<AddedToken> added_tokens;
  /// additional_special_tokens (strings).
  std::vector<std::string> additional_special_tokens;
};

/// Reads the config files in `dir`; a missing file is fine, a corrupt one
/// throws TokenizerError naming the file and field.
HfTokenizerConfig read_hf_tokenizer_config(const std::filesystem::path& dir);

/// One chunk of text after splitting on added tokens: either plain text to run
/// through the model, or an added token (by index into the list given).
struct TextChunk {
  std::string text;       ///< plain text (empty for a token chunk)
  int64_t token_id = -1;  ///< >= 0 when this chunk is an added token
};

/// Splits `text` on the contents of `tokens` as HF's slow tokenizers do
/// (leftmost, longest match; lstrip/rstrip eat whitespace of the neighbours;
/// empty text chunks dropped).
std::vector<TextChunk> split_on_added_tokens(std::string_view text, const std::vector<AddedToken>& tokens);

}  // namespace stepverify::detail
