// Byte-level BPE (GPT-2, Qwen2, Llama-3 style), token-exact with Hugging Face
// transformers 4.40 / tokenizers 0.19.
//
// Two sources, two sets of HF semantics:
//   * slow files (vocab.json + merges.txt): PreTrainedTokenizer with Qwen2Tokenizer
//     or GPT2Tokenizer rules: NFC of the whole text (Qwen2), split on every added
//     token, regex findall, BPE; decode keeps "legacy" added tokens verbatim.
//   * tokenizer.json: the Rust `tokenizers` pipeline: split on added tokens,
//     normalizer per chunk, pre-tokenizers, BPE, post-processor template.
// Text runs as: added-token split -> normalizer -> pre-tokenizer steps (regex
// splits through PCRE2) -> byte-level alphabet -> merges by rank (cached per word).
//
// Thread safety: a BpeTokenizer is immutable after loading except for its word
// cache, whose shards are guarded by mutexes.
//
// The text utilities are in byte_level.h, the BPE model in bpe_model.h.
#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "stepverify/errors.h"
#include "stepverify/limits.h"
#include "stepverify/tokenizer.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_config.h"
#include "util/json.h"

namespace stepverify {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using detail::append_token_bytes;
using detail::BpeModel;
using detail::find_invalid_utf8;
using detail::nfc;
using detail::PreTokenizerStep;
using detail::Regex;
using detail::Span;
using detail::split_spans;
using detail::SplitBehavior;
using detail::utf8_decode_replace;
using detail::WordCache;

// Pre-tokenization regexes of the HF slow tokenizers (tokenization_qwen2.py and
// tokenization_gpt2.py). The GPT-2 one is also what a ByteLevel pre-tokenizer
// with use_regex=true applies.
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------------------
// The tokenizer
// ---------------------------------------------------------------------------

/// Which HF implementation the loaded files are reproduced with.
enum class Flavor { Slow, Fast };

/// Everything a loader determines; BpeTokenizer derives its tables from it.
struct BpeSpec {
  Flavor flavor = Flavor::Slow;
  std::string source;  ///< file named in errors
  BpeModel model;
  bool nfc = false;           ///< NFC (slow: whole text; fast: per chunk)
  bool prefix_space = false;  ///< slow GPT-2 add_prefix_space
  std::vector<PreTokenizerStep> steps;
  std::vector<AddedToken> added;             ///< any order; ids unique
  SpecialTokens special;                     ///< texts and ids
  std::vector<int64_t> prefix, suffix;       ///< added by add_special_tokens
  std::unordered_set<int64_t> skip_ids;      ///< dropped by skip_special_tokens
  std::unordered_set<int64_t> verbatim_ids;  ///< slow: decoded as text, not bytes
  bool spaces_between_special = false;       ///< slow: " ".join of decode sub-texts
  bool clean_up_spaces = false;              ///< HF clean_up_tokenization
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec) : spec_(std::move(spec)) {
    std::sort(spec_.added.begin(), spec_.added.end(),
              [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
    int64_t max_id = -1;
    for (const auto& [piece, id] : spec_.model.vocab()) max_id = std::max<int64_t>(max_id, id);
    for (const auto& t : spec_.added) max_id = std::max(max_id, t.id);
    // Ids index a table; a corrupt file must not make it absurdly large.
    const auto entries = static_cast<int64_t>(spec_.model.vocab().size() + spec_.added.size());
    if (max_id > 4 * entries + 65536)
      throw TokenizerError(spec_.source + ": token id " + std::to_string(max_id) +
                           " is far beyond the vocabulary size " + std::to_string(entries));
    pieces_.resize(max_id + 1);
    present_.assign(max_id + 1, false);
    for (const auto& [piece, id] : spec_.model.vocab()) pieces_[id] = piece, present_[id] = true;
    std::unordered_set<std::string> distinct;  // HF len(): distinct strings
    for (const auto& [piece, id] : spec_.model.vocab()) distinct.insert(piece);
    for (const auto& t : spec_.added) {
      pieces_[t.id] = t.content;
      present_[t.id] = true;
      added_ids_.emplace(t.content, t.id);
      distinct.insert(t.content);
      // The slow tokenizer looks tokens up among added tokens first, so a BPE
      // piece spelled like an added token takes the added token's id.
      auto base = spec_.model.vocab().find(t.content);
      if (spec_.flavor == Flavor::Slow && base != spec_.model.vocab().end() && base->second != t.id)
        remap_.emplace(base->second, static_cast<int32_t>(t.id));
      (t.special ? split_special_ : split_plain_).push_back(t);
    }
    size_ = static_cast<int64_t>(distinct.size());
    for (const auto* edge : {&spec_.prefix, &spec_.suffix})
      for (int64_t id : *edge) check_id(id, "post_processor");
    split_all_ = split_plain_;
    split_all_.insert(split_all_.end(), split_special_.begin(), split_special_.end());
  }

  Encoding encode_with_pieces(std::string_view raw, const EncodeOptions& options) const override {
    if (size_t bad = find_invalid_utf8(raw); bad != std::string_view::npos)
      throw InputError("encode: text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
    const bool slow = spec_.flavor == Flavor::Slow;
    std::string text(raw);
    if (slow && spec_.prefix_space) text.insert(0, " ");
    if (slow && spec_.nfc) text = nfc(text);  // Qwen2Tokenizer.prepare_for_tokenization

    // Slow HF with split_special_tokens splits on no added token at all;
    // tokenizers with encode_special_tokens still splits on non-special ones.
    const std::vector<AddedToken>& split_on = options.parse_special_tokens ? split_all_
                                              : slow                       ? no_tokens_
                                                                           : split_plain_;

    std::vector<int32_t> ids;
    if (options.add_special_tokens) ids.insert(ids.end(), spec_.prefix.begin(), spec_.prefix.end());
    for (const auto& chunk : detail::split_on_added_tokens(text, split_on)) {
      if (chunk.token_id >= 0) {
        ids.push_back(static_cast<int32_t>(chunk.token_id));
      } else if (!slow && spec_.nfc) {
        pre_tokenize(0, nfc(chunk.text), ids);
      } else {
        pre_tokenize(0, chunk.text, ids);
      }
    }
    if (options.add_special_tokens) ids.insert(ids.end(), spec_.suffix.begin(), spec_.suffix.end());

    Encoding enc;
    enc.ids.assign(ids.begin(), ids.end());
    enc.pieces.reserve(ids.size());
    for (int32_t id : ids) enc.pieces.push_back(pieces_[id]);
    return enc;
  }

  // HF decode. Slow (PreTrainedTokenizer._decode): tokens in `verbatim_ids`
  // (legacy added tokens) are emitted as text between separately byte-decoded
  // runs, joined with " " when spaces_between_special_tokens. Fast: all tokens
  // go through the ByteLevel decoder at once. Both replace invalid UTF-8.
  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const override {
    std::vector<std::string> sub_texts;
    std::string bytes;
    bool pending = false;
    for (int64_t id : ids) {
      check_id(id, "decode");
      if (options.skip_special_tokens && spec_.skip_ids.count(id)) continue;
      if (spec_.verbatim_ids.count(id)) {
        if (pending) {
          std::string run = utf8_decode_replace(bytes);
          if (!run.empty()) sub_texts.push_back(std::move(run));
          bytes.clear();
          pending = false;
        }
        sub_texts.push_back(pieces_[id]);
      } else {
        append_token_bytes(pieces_[id], bytes);
        pending = true;
      }
    }
    if (pending) sub_texts.push_back(utf8_decode_replace(bytes));
    std::string text;
    for (size_t i = 0; i < sub_texts.size(); ++i) {
      if (i > 0 && spec_.spaces_between_special) text += ' ';
      text += sub_texts[i];
    }
    return spec_.clean_up_spaces ? clean_up_tokenization(text) : text;
  }

  std::string id_to_piece(int64_t id) const override {
    check_id(id, "id_to_piece");
    return pieces_[id];
  }
  std::optional<int64_t> piece_to_id(std::string_view piece) const override {
    const std::string key(piece);
    if (auto it = added_ids_.find(key); it != added_ids_.end()) return it->second;
    if (auto it = spec_.model.vocab().find(key); it != spec_.model.vocab().end()) return it->second;
    return std::nullopt;
  }
  int64_t size() const override { return size_; }
  const SpecialTokens& special_tokens() const override { return spec_.special; }
  const std::vector<AddedToken>& added_tokens() const override { return spec_.added; }
  bool is_special(int64_t id) const override { return spec_.skip_ids.count(id) > 0; }
  std::string kind() const override { return "byte-level-bpe"; }

 private:
  void check_id(int64_t id, const char* what) const {
    if (id < 0 || id >= static_cast<int64_t>(pieces_.size()) || !present_[id])
      throw TokenizerError(std::string(what) + ": token id " + std::to_string(id) + " is not in the vocabulary of " +
                           spec_.source);
  }

  // Runs pre-tokenizer steps from `step` on `text`, then BPE on each piece.
  void pre_tokenize(size_t step, std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    if (step == spec_.steps.size()) return encode_word(text, ids);
    const PreTokenizerStep& s = spec_.steps[step];
    std::string prefixed;
    if (s.byte_level && s.add_prefix_space && text.front() != ' ') {
      prefixed = " " + std::string(text);
      text = prefixed;
    }
    if (!s.regex) return pre_tokenize(step + 1, text, ids);
    for (const Span& span : split_spans(text, s))
      pre_tokenize(step + 1, text.substr(span.begin, span.end - span.begin), ids);
  }

  void encode_word(std::string_view word, std::vector<int32_t>& ids) const {
    constexpr size_t kMaxCachedWord = 64;
    std::string key;
    if (word.size() <= kMaxCachedWord) {
      key.assign(word);
      if (cache_.find(key, ids)) return;
    }
    std::vector<int32_t> word_ids;
    spec_.model.encode_word(word, word_ids);
    if (!remap_.empty())
      for (int32_t& id : word_ids)
        if (auto it = remap_.find(id); it != remap_.end()) id = it->second;
    ids.insert(ids.end(), word_ids.begin(), word_ids.end());
    if (!key.empty()) cache_.insert(key, std::move(word_ids));
  }

  // PreTrainedTokenizerBase.clean_up_tokenization.
  static std::string clean_up_tokenization(std::string text) {
    static const std::pair<std::string, std::string> kRules[] = {
        {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) {
      std::string out;
      size_t pos = 0;
      for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
        out.append(text, pos, hit - pos).append(to);
      text = out.append(text, pos, std::string::npos);
    }
    return text;
  }

  BpeSpec spec_;
  std::vector<std::string> pieces_;  ///< by id (HF convert_ids_to_tokens)
  std::vector<bool> present_;
  std::unordered_map<std::string, int64_t> added_ids_;
  std::unordered_map<int32_t, int32_t> remap_;
  std::vector<AddedToken> split_all_, split_plain_, split_special_, no_tokens_;
  int64_t size_ = 0;
  WordCache cache_;
};

// ---------------------------------------------------------------------------
// Loading: shared pieces
// ---------------------------------------------------------------------------

json parse_json(const fs::path& path) { return detail::parse_json_file<TokenizerError>(path); }

json parse_json_if_present(const fs::path& path) { return fs::exists(path) ? parse_json(path) : json::object(); }

// Reads a {piece: id} object; ids must be distinct non-negative integers.
std::unordered_map<std::string, int32_t> read_vocab(const json& j, const std::string& where) {
  if (!j.is_object()) throw TokenizerError(where + ": must be a JSON object {token: id}");
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int64_t, std::string> owner;
  vocab.reserve(j.size());
  for (const auto& [piece, id] : j.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      throw TokenizerError(where + ": entry '" + piece + "' has id " + id.dump() + ", not a non-negative integer");
    const int64_t v = id.get<int64_t>();
    if (auto [it, fresh] = owner.emplace(v, piece); !fresh)
      throw TokenizerError(where + ": entries '" + it->second + "' and '" + piece + "' share id " + std::to_string(v));
    vocab.emplace(piece, static_cast<int32_t>(v));
  }
  return vocab;
}

// Resolves a merge (left, right) to ids; `where` names the file and entry.
std::array<int32_t, 3> resolve_merge(const std::unordered_map<std::string, int32_t>& vocab, const std::string& left,
                                     const std::string& right, const std::string& where) {
  std::array<int32_t, 3> ids{};
  const std::string merged = left + right;
  const std::string* parts[3] = {&left, &right, &merged};
  for (int k = 0; k < 3; ++k) {
    auto it = vocab.find(*parts[k]);
    if (it == vocab.end())
      throw TokenizerError(where + ": " + (k == 2 ? "merged token '" : "token '") + *parts[k] +
                           "' is not in the vocabulary");
    ids[k] = it->second;
  }
  return ids;
}

// HF's tokenizer __init__ adds every named special token (and, for fast
// tokenizers, tokenizer_config's added tokens) that the added vocabulary
// lacks: with its vocab id when the vocab has it, else a new id
// (len(get_vocab())). Returns the token's id.
int64_t ensure_added(std::vector<AddedToken>& added, const std::unordered_map<std::string, int32_t>& vocab,
                     const std::string& content, bool special = true) {
  for (const auto& t : added)
    if (t.content == content) return t.id;
  AddedToken t;
  t.content = content;
  t.special = special;
  t.normalized = !special;
  if (auto it = vocab.find(content); it != vocab.end()) {
    t.id = it->second;
  } else {
    size_t fresh = vocab.size();
    for (const auto& a : added) fresh += vocab.count(a.content) ? 0 : 1;
    t.id = static_cast<int64_t>(fresh);
  }
  added.push_back(t);
  return t.id;
}

// Special-token texts: the config files, else the class defaults of
// Qwen2Tokenizer(Fast) (eos = unk = pad = <|endoftext|>, no bos) and
// GPT2Tokenizer(Fast) (bos = eos = unk = <|endoftext|>). A key present with
// null in a config file means "none", not the default.
SpecialTokens special_texts(const detail::HfTokenizerConfig& cfg, const json& config_json, const json& map_json) {
  const std::string& cls = cfg.tokenizer_class;
  const bool qwen2 = cls.rfind("Qwen2Tokenizer", 0) == 0;
  const bool gpt2 = cls.rfind("GPT2Tokenizer", 0) == 0;
  auto pick = [&](const std::optional<std::string>& value, const char* key, bool by_default) {
    if (value || config_json.contains(key) || map_json.contains(key)) return value;
    return by_default ? std::optional<std::string>("<|endoftext|>") : std::nullopt;
  };
  SpecialTokens s;
  s.bos = pick(cfg.bos_token, "bos_token", gpt2);
  s.eos = pick(cfg.eos_token, "eos_token", qwen2 || gpt2);
  s.unk = pick(cfg.unk_token, "unk_token", qwen2 || gpt2);
  s.pad = pick(cfg.pad_token, "pad_token", qwen2);
  return s;
}

// Adds the named special tokens (HF all_special_tokens) to the added tokens,
// fills their ids in `spec.special`, and returns their ids.
std::vector<int64_t> register_special_tokens(BpeSpec& spec, const detail::HfTokenizerConfig& cfg) {
  const auto& vocab = spec.model.vocab();
  std::vector<int64_t> ids;
  auto named = [&](const std::optional<std::string>& text, std::optional<int64_t>& id) {
    if (!text) return;
    id = ensure_added(spec.added, vocab, *text);
    ids.push_back(*id);
  };
  named(spec.special.bos, spec.special.bos_id);
  named(spec.special.eos, spec.special.eos_id);
  named(spec.special.unk, spec.special.unk_id);
  named(spec.special.pad, spec.special.pad_id);
  for (const auto& text : cfg.additional_special_tokens) ids.push_back(ensure_added(spec.added, vocab, text));
  return ids;
}

bool clean_up_default(const json& config_json, bool class_default) {
  auto it = config_json.find("clean_up_tokenization_spaces");
  return it != config_json.end() && it->is_boolean() ? it->get<bool>() : class_default;
}

// ---------------------------------------------------------------------------
// Loading: slow files (vocab.json + merges.txt)
// ---------------------------------------------------------------------------

std::unique_ptr<Tokenizer> load_slow(const fs::path& dir, const TokenizerOptions& options) {
  const fs::path vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt";
  auto vocab = read_vocab(parse_json(vocab_path), vocab_path.string());
  const size_t base_vocab_size = vocab.size();

  // merges.txt: "#version" first line skipped, blank lines skipped, else "left right".
  std::vector<std::array<int32_t, 3>> merges;
  const std::string merges_text = detail::read_file(merges_path, "", limits::kMaxConfigFileBytes);
  size_t line_no = 0;
  for (size_t pos = 0; pos < merges_text.size();) {
    size_t end = merges_text.find('\n', pos);
    if (end == std::string::npos) end = merges_text.size();
    std::string_view line(merges_text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const std::string where = merges_path.string() + ":" + std::to_string(line_no);
    const size_t gap = line.find(' ');
    const bool two =
        gap != std::string_view::npos && gap > 0 && line.find_first_of(" \t", gap + 1) == std::string_view::npos;
    if (!two)
      throw TokenizerError(where + ": expected two tokens separated by one space, got '" + std::string(line) + "'");
    merges.push_back(resolve_merge(vocab, std::string(line.substr(0, gap)), std::string(line.substr(gap + 1)), where));
  }

  const auto cfg = detail::read_hf_tokenizer_config(dir);
  const json config_json = parse_json_if_present(dir / "tokenizer_config.json");
  const json map_json = parse_json_if_present(dir / "special_tokens_map.json");
  const bool gpt2 = cfg.tokenizer_class.rfind("GPT2Tokenizer", 0) == 0;

  BpeSpec spec;
  spec.flavor = Flavor::Slow;
  spec.source = vocab_path.string();
  spec.special = special_texts(cfg, config_json, map_json);
  std::optional<int32_t> unk_id;
  if (spec.special.unk)
    if (auto it = vocab.find(*spec.special.unk); it != vocab.end()) unk_id = it->second;
  spec.model = BpeModel(std::move(vocab), merges, false, unk_id, spec.source);
  spec.nfc = !gpt2;  // Qwen2Tokenizer NFC-normalizes; GPT2Tokenizer does not
  spec.prefix_space = gpt2 && cfg.add_prefix_space.value_or(false);
  PreTokenizerStep split;
  split.regex = std::make_shared<Regex>(gpt2 ? kGpt2Pattern : kQwen2Pattern, false, spec.source);
  spec.steps.push_back(split);
  spec.added = cfg.added_tokens;

  // Slow HF: skip_special_tokens drops all_special_ids (the named special
  // tokens only, whatever the `special` flags of added_tokens_decoder say).
  const std::vector<int64_t> special_ids = register_special_tokens(spec, cfg);
  spec.skip_ids.insert(special_ids.begin(), special_ids.end());
  for (auto& t : spec.added) t.special = spec.skip_ids.count(t.id) > 0;
  // legacy_added_tokens of _decode: added tokens that are not special, plus
  // additional special tokens beyond the base vocabulary.
  for (const auto& t : spec.added) {
    const bool additional = std::find(cfg.additional_special_tokens.begin(), cfg.additional_special_tokens.end(),
                                      t.content) != cfg.additional_special_tokens.end();
    if (!t.special || (additional && t.id >= static_cast<int64_t>(base_vocab_size))) spec.verbatim_ids.insert(t.id);
  }

  // GPT2Tokenizer adds BOS when add_bos_token; neither class adds EOS, but the
  // config flag is honoured when present.
  if (options.add_bos_token.value_or(cfg.add_bos_token.value_or(false)) && spec.special.bos_id)
    spec.prefix.push_back(*spec.special.bos_id);
  if (options.add_eos_token.value_or(cfg.add_eos_token.value_or(false)) && spec.special.eos_id)
    spec.suffix.push_back(*spec.special.eos_id);
  spec.spaces_between_special = gpt2;  // Qwen2Tokenizer._decode passes False
  spec.clean_up_spaces = clean_up_default(config_json, gpt2);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

// ---------------------------------------------------------------------------
// Loading: tokenizer.json
// ---------------------------------------------------------------------------

std::string type_of(const json& j) {
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Calls f on `j` and, for a Sequence, on each member (recursively).
void for_each_component(const json& j, const char* members, const std::function<void(const json&)>& f) {
  if (!j.is_object()) return;
  if (type_of(j) == "Sequence") {
    auto it = j.find(members);
    if (it != j.end() && it->is_array())
      for (const auto& m : *it) for_each_component(m, members, f);
    return;
  }
  f(j);
}

bool bool_field(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// Llama-2 / Mistral fast tokenizers are sentencepiece BPE in disguise.
void reject_sentencepiece_style(const json& root, const std::string& file) {
  bool metaspace = bool_field(root["model"], "byte_fallback", false);
  for (const char* key : {"pre_tokenizer", "decoder", "normalizer"}) {
    const char* members = std::strcmp(key, "normalizer") == 0 ? "normalizers"
                          : std::strcmp(key, "decoder") == 0  ? "decoders"
                                                              : "pretokenizers";
    for_each_component(root.value(key, json()), members, [&](const json& c) {
      const std::string t = type_of(c);
      if (t == "Metaspace" || t == "Prepend" || t == "ByteFallback") metaspace = true;
      if (t == "Replace" && c.dump().find("\xE2\x96\x81") != std::string::npos) metaspace = true;
    });
  }
  if (metaspace)
    throw TokenizerError(file +
                         ": a sentencepiece-style BPE (Metaspace / byte_fallback, as in "
                         "Llama-2 and Mistral), not byte-level BPE; load its "
                         "tokenizer.model with the sentencepiece tokenizer instead");
}

std::vector<PreTokenizerStep> read_pre_tokenizer(const json& root, const std::string& file) {
  std::vector<PreTokenizerStep> steps;
  bool byte_level = false;
  for_each_component(root.value("pre_tokenizer", json()), "pretokenizers", [&](const json& c) {
    const std::string t = type_of(c);
    PreTokenizerStep step;
    if (byte_level) throw TokenizerError(file + ": pre_tokenizer: a " + t + " after ByteLevel is not supported");
    if (t == "ByteLevel") {
      step.byte_level = byte_level = true;
      step.add_prefix_space = bool_field(c, "add_prefix_space", true);
      if (bool_field(c, "use_regex", true)) step.regex = std::make_shared<Regex>(kGpt2Pattern, false, file);
    } else if (t == "Split") {
      const json& pattern = c.value("pattern", json());
      const bool literal = pattern.contains("String") && pattern["String"].is_string();
      if (!literal && !(pattern.contains("Regex") && pattern["Regex"].is_string()))
        throw TokenizerError(file +
                             ": pre_tokenizer Split: 'pattern' must be {\"Regex\": ...} "
                             "or {\"String\": ...}");
      step.regex = std::make_shared<Regex>(pattern[literal ? "String" : "Regex"].get<std::string>(), literal,
                                           file + ": pre_tokenizer Split");
      static const std::pair<const char*, SplitBehavior> kBehaviors[] = {
          {"Removed", SplitBehavior::Removed},
          {"Isolated", SplitBehavior::Isolated},
          {"MergedWithPrevious", SplitBehavior::MergedWithPrevious},
          {"MergedWithNext", SplitBehavior::MergedWithNext},
          {"Contiguous", SplitBehavior::Contiguous}};
      const std::string behavior = c.value("behavior", std::string("Isolated"));
      auto found = std::find_if(std::begin(kBehaviors), std::end(kBehaviors),
                                [&](const auto& b) { return behavior == b.first; });
      if (found == std::end(kBehaviors))
        throw TokenizerError(file + ": pre_tokenizer Split: unknown behavior '" + behavior + "'");
      step.behavior = found->second;
      step.invert = bool_field(c, "invert", false);
    } else {
      throw TokenizerError(file + ": pre_tokenizer type '" + t +
                           "' is not supported "
                           "(byte-level BPE supports Split, ByteLevel and Sequence)");
    }
    steps.push_back(std::move(step));
  });
  if (!byte_level) throw TokenizerError(file + ": pre_tokenizer has no ByteLevel step; not a byte-level BPE");
  return steps;
}

// BOS/EOS from the post_processor: ids before and after $A in the "single"
// template (TemplateProcessing), or cls/sep (Roberta/BertProcessing).
void read_post_processor(const json& root, const std::string& file, BpeSpec& spec) {
  for_each_component(root.value("post_processor", json()), "processors", [&](const json& c) {
    const std::string t = type_of(c);
    if (t == "ByteLevel") return;
    if (t == "RobertaProcessing" || t == "BertProcessing") {
      spec.prefix.push_back(c.at("cls").at(1).get<int64_t>());
      spec.suffix.push_back(c.at("sep").at(1).get<int64_t>());
      return;
    }
    if (t != "TemplateProcessing") throw TokenizerError(file + ": post_processor type '" + t + "' is not supported");
    bool after = false;
    for (const auto& item : c.at("single")) {
      if (item.contains("Sequence")) {
        after = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].at("id").get<std::string>();
        const json& entry = c.at("special_tokens").at(name);
        for (const auto& id : entry.at("ids")) (after ? spec.suffix : spec.prefix).push_back(id.get<int64_t>());
      }
    }
  });
}

std::unique_ptr<Tokenizer> load_fast(const fs::path& dir, const TokenizerOptions& options) {
  const fs::path path = dir / "tokenizer.json";
  const std::string file = path.string();
  const json root = parse_json(path);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object())
    throw TokenizerError(file + ": no 'model' object");
  const json& model = root["model"];
  reject_sentencepiece_style(root, file);
  const std::string model_type = type_of(model);
  if (!model_type.empty() && model_type != "BPE")
    throw TokenizerError(file + ": model.type '" + model_type + "' is not supported (BPE only)");
  if (!model.contains("vocab") || !model.contains("merges"))
    throw TokenizerError(file + ": model lacks 'vocab' or 'merges'");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      throw TokenizerError(file + ": model." + key + " is not supported");
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0)
    throw TokenizerError(file + ": model.dropout is not supported");

  auto vocab = read_vocab(model["vocab"], file + ": model.vocab");
  std::vector<std::array<int32_t, 3>> merges;
  const json& merges_json = model["merges"];
  if (!merges_json.is_array()) throw TokenizerError(file + ": model.merges must be an array");
  for (size_t i = 0; i < merges_json.size(); ++i) {
    const json& m = merges_json[i];
    const std::string where = file + ": model.merges[" + std::to_string(i) + "]";
    std::string left, right;
    if (m.is_string()) {  // "left right"
      const std::string s = m.get<std::string>();
      const size_t gap = s.find(' ');
      if (gap == std::string::npos || s.find(' ', gap + 1) != std::string::npos)
        throw TokenizerError(where + ": expected \"left right\", got '" + s + "'");
      left = s.substr(0, gap), right = s.substr(gap + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      throw TokenizerError(where + ": expected \"left right\" or [\"left\", \"right\"]");
    }
    merges.push_back(resolve_merge(vocab, left, right, where));
  }

  BpeSpec spec;
  spec.flavor = Flavor::Fast;
  spec.source = file;
  bool unsupported_normalizer = false;
  std::string normalizer_type;
  for_each_component(root.value("normalizer", json()), "normalizers", [&](const json& c) {
    normalizer_type = type_of(c);
    if (normalizer_type == "NFC")
      spec.nfc = true;
    else
      unsupported_normalizer = true;
  });
  if (unsupported_normalizer)
    throw TokenizerError(file + ": normalizer '" + normalizer_type +
                         "' is not supported (null, NFC or a Sequence of NFC)");
  spec.steps = read_pre_tokenizer(root, file);
  bool byte_level_decoder = false;
  for_each_component(root.value("decoder", json()), "decoders", [&](const json& c) {
    if (type_of(c) != "ByteLevel")
      throw TokenizerError(file + ": decoder '" + type_of(c) + "' is not supported (ByteLevel)");
    byte_level_decoder = true;
  });
  if (!byte_level_decoder) throw TokenizerError(file + ": decoder must be ByteLevel");

  std::optional<int32_t> unk_id;
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    auto it = vocab.find(model["unk_token"].get<std::string>());
    if (it != vocab.end()) unk_id = it->second;
  }
  spec.model = BpeModel(std::move(vocab), merges, bool_field(model, "ignore_merges", false), unk_id, file);

  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    if (!root["added_tokens"].is_array()) throw TokenizerError(file + ": added_tokens must be an array");
    std::unordered_set<int64_t> seen;
    for (size_t i = 0; i < root["added_tokens"].size(); ++i) {
      const json& a = root["added_tokens"][i];
      const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
          !a.contains("content") || !a["content"].is_string())
        throw TokenizerError(where + ": needs a non-negative integer 'id' and a string 'content'");
      AddedToken t;
      t.id = a["id"].get<int64_t>();
      t.content = a["content"].get<std::string>();
      if (!seen.insert(t.id).second) throw TokenizerError(where + ": id " + std::to_string(t.id) + " appears twice");
      t.special = bool_field(a, "special", false);
      t.lstrip = bool_field(a, "lstrip", false);
      t.rstrip = bool_field(a, "rstrip", false);
      t.normalized = bool_field(a, "normalized", !t.special);
      t.single_word = bool_field(a, "single_word", false);
      spec.added.push_back(t);
    }
  }

  // PreTrainedTokenizerFast.__init__ adds tokenizer_config's added tokens and
  // the named special tokens that tokenizer.json lacks.
  const auto cfg = detail::read_hf_tokenizer_config(dir);
  const json config_json = parse_json_if_present(dir / "tokenizer_config.json");
  const json map_json = parse_json_if_present(dir / "special_tokens_map.json");
  for (const auto& t : cfg.added_tokens) ensure_added(spec.added, spec.model.vocab(), t.content, t.special);
  spec.special = special_texts(cfg, config_json, map_json);
  register_special_tokens(spec, cfg);
  for (const auto& t : spec.added)
    if (t.special) spec.skip_ids.insert(t.id);

  read_post_processor(root, file, spec);
  // TokenizerOptions override what the template adds.
  auto override_edge = [](std::vector<int64_t>& edge, std::optional<bool> add, std::optional<int64_t> id, bool front) {
    if (!add || !id) return;
    edge.erase(std::remove(edge.begin(), edge.end(), *id), edge.end());
    if (*add) edge.insert(front ? edge.begin() : edge.end(), *id);
  };
  override_edge(spec.prefix, options.add_bos_token, spec.special.bos_id, true);
  override_edge(spec.suffix, options.add_eos_token, spec.special.eos_id, false);
  spec.clean_up_spaces = clean_up_default(config_json, cfg.tokenizer_class.rfind("Qwen2Tokenizer", 0) != 0);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const fs::path& dir, const TokenizerOptions& options) {
  if (fs::exists(dir / "tokenizer.json")) {
    try {
      return load_fast(dir, options);
    } catch (const json::exception& e) {  // a field of the wrong JSON type or missing
      throw TokenizerError((dir / "tokenizer.json").string() + ": malformed: " + e.what());
    }
  }
  if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) return load_slow(dir, options);
  throw IoError(dir.string() + ": no tokenizer.json, nor vocab.json with merges.txt");
}

}  // namespace stepverify
