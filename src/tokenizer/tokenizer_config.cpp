#include "tokenizer/tokenizer_config.h"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "stepverify/errors.h"
#include "util/json.h"

namespace stepverify::detail {
namespace {

using nlohmann::json;

json parse_json_file(const std::filesystem::path& path) { return detail::parse_json_file<TokenizerError>(path); }

// A special token in HF configs is either a string or {"content": "..."}.
std::optional<std::string> token_text(const json& j, const std::string& key, const std::filesystem::path& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw TokenizerError(file.string() + ": field '" + key + "' must be a string or an object with a string 'content'");
}

std::optional<bool> opt_bool(const json& j, const std::string& key, const std::filesystem::path& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw TokenizerError(file.string() + ": field '" + key + "' must be a boolean");
  return it->get<bool>();
}

bool flag(const json& obj, const char* key, bool def) {
  auto it = obj.find(key);
  return (it != obj.end() && it->is_boolean()) ? it->get<bool>() : def;
}

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

HfTokenizerConfig read_hf_tokenizer_config(const std::filesystem::path& dir) {
  HfTokenizerConfig cfg;
  const auto map_path = dir / "special_tokens_map.json";
  const auto cfg_path = dir / "tokenizer_config.json";
  const auto added_path = dir / "added_tokens.json";

  auto take = [&](const json& j, const std::filesystem::path& file) {
    if (!j.is_object()) throw TokenizerError(file.string() + ": top level must be a JSON object");
    for (auto [key, slot] : {std::pair{"bos_token", &cfg.bos_token}, std::pair{"eos_token", &cfg.eos_token},
                             std::pair{"pad_token", &cfg.pad_token}, std::pair{"unk_token", &cfg.unk_token}}) {
      if (auto v = token_text(j, key, file)) *slot = v;
    }
    if (auto it = j.find("additional_special_tokens"); it != j.end() && it->is_array()) {
      cfg.additional_special_tokens.clear();
      for (const auto& t : *it) {
        if (t.is_string())
          cfg.additional_special_tokens.push_back(t.get<std::string>());
        else if (t.is_object() && t.contains("content"))
          cfg.additional_special_tokens.push_back(t["content"].get<std::string>());
      }
    }
  };

  if (std::filesystem::exists(map_path)) take(parse_json_file(map_path), map_path);

  std::map<int64_t, AddedToken> added;
  if (std::filesystem::exists(cfg_path)) {
    json j = parse_json_file(cfg_path);
    take(j, cfg_path);
    cfg.add_bos_token = opt_bool(j, "add_bos_token", cfg_path);
    cfg.add_eos_token = opt_bool(j, "add_eos_token", cfg_path);
    cfg.add_prefix_space = opt_bool(j, "add_prefix_space", cfg_path);
    cfg.legacy = opt_bool(j, "legacy", cfg_path);
    if (auto it = j.find("tokenizer_class"); it != j.end() && it->is_string())
      cfg.tokenizer_class = it->get<std::string>();
    if (auto it = j.find("added_tokens_decoder"); it != j.end() && !it->is_null()) {
      if (!it->is_object()) throw TokenizerError(cfg_path.string() + ": 'added_tokens_decoder' must be an object");
      for (const auto& [key, val] : it->items()) {
        AddedToken t;
        try {
          size_t used = 0;
          t.id = std::stoll(key, &used);
          if (used != key.size() || t.id < 0) throw std::invalid_argument(key);
        } catch (const std::exception&) {
          throw TokenizerError(cfg_path.string() + ": added_tokens_decoder key '" + key + "' is not a token id");
        }
        if (!val.is_object() || !val.contains("content") || !val["content"].is_string())
          throw TokenizerError(cfg_path.string() + ": added_tokens_decoder['" + key + "'] lacks a string 'content'");
        t.content = val["content"].get<std::string>();
        t.special = flag(val, "special", false);
        t.lstrip = flag(val, "lstrip", false);
        t.rstrip = flag(val, "rstrip", false);
        t.normalized = flag(val, "normalized", !t.special);
        t.single_word = flag(val, "single_word", false);
        added[t.id] = t;
      }
    }
  }

  if (std::filesystem::exists(added_path)) {
    json j = parse_json_file(added_path);
    if (!j.is_object()) throw TokenizerError(added_path.string() + ": top level must be an object {token: id}");
    for (const auto& [content, id] : j.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0)
        throw TokenizerError(added_path.string() + ": entry '" + content + "' must map to a non-negative integer id");
      const int64_t tid = id.get<int64_t>();
      auto found = added.find(tid);
      if (found != added.end()) {
        if (found->second.content != content)
          throw TokenizerError(added_path.string() + ": entry '" + content + "' has id " + std::to_string(tid) +
                               " which tokenizer_config.json gives to '" + found->second.content + "'");
        continue;
      }
      AddedToken t;
      t.id = tid;
      t.content = content;
      t.normalized = true;
      added[tid] = t;
    }
  }

  // Tokens named as special in the config are special even when the decoder
  // entry did not say so.
  for (auto& entry : added) {
    AddedToken& t = entry.second;
    auto named = [&](const std::optional<std::string>& s) { return s && *s == t.content; };
    if (named(cfg.bos_token) || named(cfg.eos_token) || named(cfg.pad_token) || named(cfg.unk_token) ||
        std::find(cfg.additional_special_tokens.begin(), cfg.additional_special_tokens.end(), t.content) !=
            cfg.additional_special_tokens.end())
      t.special = true;
    cfg.added_tokens.push_back(t);
  }
  return cfg;
}

std::vector<TextChunk> split_on_added_tokens(std::string_view text, const std::vector<AddedToken>& tokens) {
  std::vector<TextChunk> out;
  if (tokens.empty()) {
    if (!text.empty()) out.push_back({std::string(text), -1});
    return out;
  }
  // Leftmost-longest matching over all added token contents; candidates are
  // bucketed by first byte so that hundreds of tokens (Llama-3) stay cheap.
  std::array<std::vector<const AddedToken*>, 256> by_first_byte;
  for (const auto& t : tokens)
    if (!t.content.empty()) by_first_byte[static_cast<unsigned char>(t.content[0])].push_back(&t);
  struct Match {
    size_t pos, len;
    const AddedToken* tok;
  };
  std::vector<Match> matches;
  size_t i = 0;
  while (i < text.size()) {
    const AddedToken* best = nullptr;
    for (const AddedToken* candidate : by_first_byte[static_cast<unsigned char>(text[i])]) {
      const AddedToken& t = *candidate;
      if (t.content.size() > text.size() - i) continue;
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      if (!best || t.content.size() > best->content.size()) best = &t;
    }
    if (best) {
      matches.push_back({i, best->content.size(), best});
      i += best->content.size();
    } else {
      ++i;
    }
  }
  // Build chunks, then apply lstrip / rstrip on the neighbouring text.
  std::vector<TextChunk> chunks;
  size_t prev = 0;
  for (const auto& m : matches) {
    chunks.push_back({std::string(text.substr(prev, m.pos - prev)), -1});
    chunks.push_back({"", m.tok->id});
    prev = m.pos + m.len;
  }
  chunks.push_back({std::string(text.substr(prev)), -1});
  size_t k = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (chunks[c].token_id < 0) continue;
    const AddedToken& t = *matches[k++].tok;
    if (t.rstrip && c + 1 < chunks.size()) {
      std::string& right = chunks[c + 1].text;
      size_t n = 0;
      while (n < right.size() && is_ascii_space(right[n])) ++n;
      right.erase(0, n);
    }
    if (t.lstrip && c > 0) {
      std::string& left = chunks[c - 1].text;
      while (!left.empty() && is_ascii_space(left.back())) left.pop_back();
    }
  }
  for (auto& ch : chunks)
    if (ch.token_id >= 0 || !ch.text.empty()) out.push_back(std::move(ch));
  return out;
}

}  // namespace stepverify::detail
