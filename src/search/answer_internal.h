// Internal to src/search/answer_*.cpp: the small text helpers shared by answer
// extraction, the canonical key and the expression parser. Not installed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stepverify::detail {

// ---------------------------------------------------------------- helpers --

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
inline bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Position of the `}` closing the `{` at `open`, or npos (raw brace counting).
inline size_t match_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{')
      ++depth;
    else if (s[i] == '}' && --depth == 0)
      return i;
  }
  return std::string_view::npos;
}

// Case-insensitive last occurrence of `needle` (lower-case) in `s`.
inline size_t rfind_ci(std::string_view s, std::string_view needle) {
  if (needle.size() > s.size()) return std::string_view::npos;
  for (size_t i = s.size() - needle.size() + 1; i-- > 0;) {
    size_t k = 0;
    while (k < needle.size() && lower(s[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return i;
  }
  return std::string_view::npos;
}

// The command name (letters) starting at s[i] == '\\', or "".
inline std::string_view command_at(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '\\') return {};
  size_t j = i + 1;
  while (j < s.size() && is_alpha(s[j])) ++j;
  return s.substr(i + 1, j - i - 1);
}

// Replaces every command `\from` (not followed by a letter) by `to`.
inline std::string replace_command(const std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\' && command_at(s, i) == from) {
      out += to;
      i += 1 + from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

inline std::string replace_all(const std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, from.size(), from) == 0) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

// The normalised text of an answer (answer_normalize.cpp): the first stage
// of MathEquivalence's key.
std::string normalize_answer(std::string_view answer);

}  // namespace stepverify::detail
