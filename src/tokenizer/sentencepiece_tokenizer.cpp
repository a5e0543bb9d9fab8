// Sentencepiece tokenizer reproducing transformers 4.40's slow LlamaTokenizer.
//
// legacy = false: the model is loaded with add_dummy_prefix turned off (HF's
// get_spm_processor), "▁" is prepended to the text by hand, and every chunk
// that starts with a space is encoded behind "<unk>" whose pieces are then
// dropped, so no extra "▁" appears after a special token.
// legacy = true: plain sentencepiece on each chunk between special tokens.
#include <algorithm>
#include <map>
#include <set>

#include "stepverify/errors.h"
#include "stepverify/limits.h"
#include "stepverify/tokenizer.h"
#include "tokenizer/spm_shim.h"
#include "tokenizer/tokenizer_config.h"

namespace stepverify {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

// --- Minimal protobuf surgery: set NormalizerSpec.add_dummy_prefix = false. ---
// ModelProto.normalizer_spec is field 3 (message); NormalizerSpec.add_dummy_prefix
// is field 3 (bool). Everything else is copied byte for byte.

bool read_varint(std::string_view s, size_t& pos, uint64_t& out) {
  out = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= s.size()) return false;
    const uint8_t b = static_cast<uint8_t>(s[pos++]);
    out |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void write_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

struct Field {
  uint64_t number;
  int wire;
  std::string_view bytes;    // the whole field, key included
  std::string_view payload;  // length-delimited content
};

std::vector<Field> parse_fields(std::string_view s, const std::string& where) {
  std::vector<Field> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    uint64_t key = 0, v = 0;
    if (!read_varint(s, pos, key)) throw TokenizerError(where + ": corrupt protobuf (bad field key)");
    Field f{key >> 3, static_cast<int>(key & 7), {}, {}};
    switch (f.wire) {
      case 0:
        if (!read_varint(s, pos, v)) throw TokenizerError(where + ": corrupt protobuf (bad varint)");
        break;
      case 1:
        pos += 8;
        break;
      case 5:
        pos += 4;
        break;
      case 2:
        if (!read_varint(s, pos, v) || v > s.size() - pos)
          throw TokenizerError(where + ": corrupt protobuf (length past the end)");
        f.payload = s.substr(pos, v);
        pos += v;
        break;
      default:
        throw TokenizerError(where + ": corrupt protobuf (wire type " + std::to_string(f.wire) + ")");
    }
    if (pos > s.size()) throw TokenizerError(where + ": corrupt protobuf (truncated)");
    f.bytes = s.substr(start, pos - start);
    out.push_back(f);
  }
  return out;
}

std::string without_dummy_prefix(std::string_view model, const std::string& where) {
  std::string out;
  bool had_spec = false;
  for (const auto& f : parse_fields(model, where)) {
    if (f.number != 3 || f.wire != 2) {
      out.append(f.bytes);
      continue;
    }
    had_spec = true;
    std::string spec;
    for (const auto& g : parse_fields(f.payload, where))
      if (g.number != 3) spec.append(g.bytes);
    spec.push_back(static_cast<char>(0x18));  // field 3, varint
    spec.push_back(0);
    out.push_back(static_cast<char>(0x1a));  // field 3, length-delimited
    write_varint(out, spec.size());
    out.append(spec);
  }
  if (!had_spec) out.append(std::string("\x1a\x02\x18\x00", 4));
  return out;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& dir, const TokenizerOptions& options) {
    const auto model_path = dir / "tokenizer.model";
    where_ = model_path.string();
    const std::string bytes = detail::read_file(model_path, "", limits::kMaxConfigFileBytes);
    cfg_ = detail::read_hf_tokenizer_config(dir);
    legacy_ = options.legacy.value_or(cfg_.legacy.value_or(true));
    add_bos_ = options.add_bos_token.value_or(cfg_.add_bos_token.value_or(true));
    add_eos_ = options.add_eos_token.value_or(cfg_.add_eos_token.value_or(false));
    sp_ = std::make_unique<detail::SpmModel>(legacy_ ? bytes : without_dummy_prefix(bytes, where_), where_);
    base_size_ = sp_->size();

    // Special tokens: LlamaTokenizer's defaults, overridden by the config files.
    special_.unk = cfg_.unk_token.value_or("<unk>");
    special_.bos = cfg_.bos_token.value_or("<s>");
    special_.eos = cfg_.eos_token.value_or("</s>");
    special_.pad = cfg_.pad_token;

    // Added tokens: those of the config, plus unk/bos/eos/pad which HF always adds.
    std::map<int64_t, AddedToken> added;
    for (const auto& t : cfg_.added_tokens) added[t.id] = t;
    for (const auto* s : {&special_.unk, &special_.bos, &special_.eos, &special_.pad}) {
      if (!*s) continue;
      bool known = std::any_of(added.begin(), added.end(), [&](const auto& kv) { return kv.second.content == **s; });
      if (known) continue;
      const int id = sp_->piece_to_id(**s);
      if (id == sp_->unk_id() && **s != sp_->id_to_piece(sp_->unk_id())) continue;  // not in the vocabulary
      AddedToken t;
      t.id = id;
      t.content = **s;
      t.special = true;
      added[id] = t;
    }
    int64_t next = base_size_;
    for (auto& [id, t] : added) {
      if (id < base_size_ && sp_->id_to_piece(static_cast<int>(id)) != t.content)
        throw TokenizerError((dir / "tokenizer_config.json").string() + ": added token '" + t.content + "' has id " +
                             std::to_string(id) + " but " + where_ + " gives that id to '" +
                             sp_->id_to_piece(static_cast<int>(id)) + "'");
      if (id >= base_size_) next = std::max(next, id + 1);
      added_.push_back(t);
      added_by_content_[t.content] = id;
      if (t.special) special_ids_.insert(id);
    }
    size_ = next;
    auto id_of = [&](const std::optional<std::string>& s) -> std::optional<int64_t> {
      if (!s) return std::nullopt;
      return piece_to_id(*s);
    };
    special_.unk_id = id_of(special_.unk);
    special_.bos_id = id_of(special_.bos);
    special_.eos_id = id_of(special_.eos);
    special_.pad_id = id_of(special_.pad);
    if (add_bos_ && !special_.bos_id)
      throw TokenizerError(where_ + ": add_bos_token is set but the BOS token '" + *special_.bos +
                           "' is not in the vocabulary");
    if (add_eos_ && !special_.eos_id)
      throw TokenizerError(where_ + ": add_eos_token is set but the EOS token '" + *special_.eos +
                           "' is not in the vocabulary");
    for (const auto& t : added_)
      if (t.special) special_strings_.insert(t.content);
    std::vector<std::string> unk_pieces;
    std::vector<int64_t> unk_ids;
    sp_->encode(*special_.unk, unk_pieces, unk_ids);
    unk_token_length_ = static_cast<int64_t>(unk_pieces.size());
  }

  Encoding encode_with_pieces(std::string_view text, const EncodeOptions& options) const override {
    std::vector<std::string> tokens;  // HF "tokens": pieces or added-token contents
    std::vector<int64_t> ids;
    if (!text.empty()) {
      std::string t(text);
      if (!legacy_) t = std::string(kSpace) + replace_all(t, kSpace, " ");
      std::vector<detail::TextChunk> chunks;
      if (options.parse_special_tokens)
        chunks = detail::split_on_added_tokens(t, added_);
      else
        chunks.push_back({t, -1});
      for (const auto& ch : chunks) {
        if (ch.token_id >= 0) {
          tokens.push_back(id_to_piece(ch.token_id));
          ids.push_back(ch.token_id);
          continue;
        }
        encode_chunk(ch.text, tokens, ids);
      }
      // legacy=false: a lone "▁" before a special token is dropped.
      if (!legacy_ && tokens.size() > 1 && tokens[0] == kSpace && special_strings_.count(tokens[1])) {
        tokens.erase(tokens.begin());
        ids.erase(ids.begin());
      }
    }
    Encoding out;
    if (options.add_special_tokens && add_bos_) {
      out.ids.push_back(*special_.bos_id);
      out.pieces.push_back(*special_.bos);
    }
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.pieces.insert(out.pieces.end(), tokens.begin(), tokens.end());
    if (options.add_special_tokens && add_eos_) {
      out.ids.push_back(*special_.eos_id);
      out.pieces.push_back(*special_.eos);
    }
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const override {
    // HF _decode: tokens, minus specials when asked; non-special added tokens
    // are emitted verbatim between sentencepiece-decoded runs, joined by " ".
    std::vector<std::string> sub_texts, run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string s = tokens_to_string(run);
      if (!s.empty()) sub_texts.push_back(s);
      run.clear();
    };
    for (int64_t id : ids) {
      std::string piece = id_to_piece(id);
      if (options.skip_special_tokens && special_ids_.count(id)) continue;
      const bool legacy_added = added_by_content_.count(piece) && !special_strings_.count(piece);
      if (legacy_added) {
        flush();
        sub_texts.push_back(piece);
      } else {
        run.push_back(piece);
      }
    }
    if (!run.empty()) sub_texts.push_back(tokens_to_string(run));
    std::string out;
    for (size_t i = 0; i < sub_texts.size(); ++i) out += (i ? " " : "") + sub_texts[i];
    return out;
  }

  std::string id_to_piece(int64_t id) const override {
    if (id < 0 || id >= size_)
      throw TokenizerError(where_ + ": token id " + std::to_string(id) + " is outside the vocabulary of " +
                           std::to_string(size_));
    if (id >= base_size_) {
      for (const auto& t : added_)
        if (t.id == id) return t.content;
      throw TokenizerError(where_ + ": token id " + std::to_string(id) + " is not assigned");
    }
    return sp_->id_to_piece(static_cast<int>(id));
  }

  std::optional<int64_t> piece_to_id(std::string_view piece) const override {
    auto it = added_by_content_.find(std::string(piece));
    if (it != added_by_content_.end()) return it->second;
    const int id = sp_->piece_to_id(piece);
    if (id == sp_->unk_id() && piece != sp_->id_to_piece(id)) return std::nullopt;
    return id;
  }

  int64_t size() const override { return size_; }
  const SpecialTokens& special_tokens() const override { return special_; }
  const std::vector<AddedToken>& added_tokens() const override { return added_; }
  bool is_special(int64_t id) const override { return special_ids_.count(id) > 0; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  void encode_chunk(const std::string& text, std::vector<std::string>& tokens, std::vector<int64_t>& ids) const {
    std::string input = text;
    size_t skip = 0;
    if (!legacy_ && (text.rfind(kSpace, 0) == 0 || text.rfind(" ", 0) == 0)) {
      // Encode behind "<unk>" and drop its pieces, so sentencepiece keeps the
      // leading space as a piece of its own where the model says so.
      input = *special_.unk + text;
      skip = static_cast<size_t>(unk_token_length_);
    }
    std::vector<std::string> pieces;
    std::vector<int64_t> piece_ids;
    sp_->encode(input, pieces, piece_ids);
    const size_t from = skip <= pieces.size() ? skip : 0;
    tokens.insert(tokens.end(), pieces.begin() + from, pieces.end());
    ids.insert(ids.end(), piece_ids.begin() + from, piece_ids.end());
  }

  // HF LlamaTokenizer.convert_tokens_to_string (4.40).
  std::string tokens_to_string(std::vector<std::string> tokens) const {
    if (tokens.empty()) return "";
    if (tokens[0].rfind(kSpace, 0) == 0) tokens[0] = tokens[0].substr(kSpace.size());
    std::string out;
    std::vector<std::string> current;
    bool prev_special = false;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (special_strings_.count(tokens[i])) {
        if (!prev_special && i != 0 && legacy_) out += " ";
        out += sp_->decode_pieces(current) + tokens[i];
        prev_special = true;
        current.clear();
      } else {
        current.push_back(tokens[i]);
        prev_special = false;
      }
    }
    out += sp_->decode_pieces(current);
    return out;
  }

  std::unique_ptr<detail::SpmModel> sp_;
  detail::HfTokenizerConfig cfg_;
  std::string where_;
  bool legacy_ = true, add_bos_ = true, add_eos_ = false;
  int64_t base_size_ = 0, size_ = 0, unk_token_length_ = 0;
  SpecialTokens special_;
  std::vector<AddedToken> added_;
  std::map<std::string, int64_t> added_by_content_;
  std::set<int64_t> special_ids_;
  std::set<std::string> special_strings_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& dir,
                                                        const TokenizerOptions& options) {
  return std::make_unique<SentencePieceTokenizer>(dir, options);
}

}  // namespace stepverify
