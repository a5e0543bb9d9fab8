// Text utilities of the byte-level BPE tokenizer: UTF-8, the byte-level
// alphabet, the \s rewrite for PCRE2, NFC (ICU) and tokenizers' Split.
#include "tokenizer/byte_level.h"

#include <algorithm>

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

namespace stepverify::detail {

// ---------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------

// Length (1..4) of the well-formed UTF-8 sequence at s[i], or 0 when ill-formed;
// then *bad is the length of its maximal ill-formed subpart, which Python's
// decode(errors="replace") and Rust's from_utf8_lossy turn into one U+FFFD.
int utf8_sequence(std::string_view s, size_t i, int* bad) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  int need = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    need = 1;
  else if (c == 0xE0)
    need = 2, lo = 0xA0;
  else if (c == 0xED)
    need = 2, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF)
    need = 2;
  else if (c == 0xF0)
    need = 3, lo = 0x90;
  else if (c == 0xF4)
    need = 3, hi = 0x8F;
  else if (c >= 0xF1 && c <= 0xF3)
    need = 3;
  else {
    *bad = 1;
    return 0;
  }
  for (int k = 1; k <= need; ++k) {
    const auto d = i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
    if (i + k >= s.size() || d < lo || d > hi) {
      *bad = k;
      return 0;
    }
    lo = 0x80, hi = 0xBF;
  }
  return need + 1;
}

// Offset of the first ill-formed byte, or npos.
size_t find_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    int bad = 0;
    const int len = utf8_sequence(s, i, &bad);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8_decode_replace(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    int bad = 0;
    const int len = utf8_sequence(bytes, i, &bad);
    if (len > 0) {
      out.append(bytes.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

// Decodes the code point at s[i] of a well-formed string and advances i.
uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  uint32_t cp = len == 1 ? c : c & (0x7F >> len);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// ---------------------------------------------------------------------------
// Byte-level alphabet (GPT-2 bytes_to_unicode)
// ---------------------------------------------------------------------------

std::string to_byte_level(std::string_view bytes) {
  const auto& alphabet = ByteAlphabet::get();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += alphabet.char_of(static_cast<unsigned char>(c));
  return out;
}

// Appends the bytes a token stands for: through the alphabet when every char
// of it is in the alphabet, else its own UTF-8 (tokenizers' ByteLevel decoder;
// this is how added tokens such as "<|im_end|>" or "½" come out unchanged).
void append_token_bytes(std::string_view token, std::string& out) {
  const auto& alphabet = ByteAlphabet::get();
  const size_t start = out.size();
  for (size_t i = 0; i < token.size();) {
    const int b = alphabet.byte_of(next_code_point(token, i));
    if (b < 0) {
      out.resize(start);
      out.append(token);
      return;
    }
    out += static_cast<char>(b);
  }
}

// ---------------------------------------------------------------------------
// Regex (PCRE2, UTF + Unicode properties, JIT when available)
// ---------------------------------------------------------------------------

// Python's `regex` and Oniguruma read \s as the Unicode White_Space property;
// PCRE2's UCP \s also matches U+180E. Rewriting \s / \S makes them agree.
std::string with_python_whitespace(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's')
        out += "\\p{White_Space}";
      else if (next == 'S')
        out += "\\P{White_Space}";
      else
        out += '\\', out += next;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// NFC (ICU)
// ---------------------------------------------------------------------------

std::string nfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; }))
    return std::string(text);  // ASCII is always NFC
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = icu::Normalizer2::getNFCInstance(status);
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  if (U_SUCCESS(status))
    normalizer->normalizeUTF8(0, icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), sink, nullptr,
                              status);
  if (U_FAILURE(status)) throw InputError(std::string("NFC normalization failed: ") + u_errorName(status));
  return out;
}

// ---------------------------------------------------------------------------
// Pre-tokenizer steps (tokenizers' Split and ByteLevel)
// ---------------------------------------------------------------------------

// tokenizers' NormalizedString::split: the text cut into matches and gaps
// (roles swapped by `invert`), then combined as `behavior` says.
std::vector<Span> split_spans(std::string_view text, const PreTokenizerStep& step) {
  std::vector<Span> parts;
  size_t prev = 0;
  step.regex->for_each_match(text, [&](size_t b, size_t e) {
    if (b > prev) parts.push_back({prev, b, step.invert});
    parts.push_back({b, e, !step.invert});
    prev = e;
  });
  if (prev < text.size()) parts.push_back({prev, text.size(), step.invert});

  std::vector<Span> out;
  bool previous_match = false;
  switch (step.behavior) {
    case SplitBehavior::Isolated:
      return parts;
    case SplitBehavior::Removed:
      for (const auto& p : parts)
        if (!p.match) out.push_back(p);
      return out;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& p : parts) {
        if (p.match && !previous_match && !out.empty())
          out.back().end = p.end;
        else
          out.push_back(p);
        previous_match = p.match;
      }
      return out;
    case SplitBehavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !previous_match && !out.empty())
          out.back().begin = it->begin;
        else
          out.push_back(*it);
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      return out;
    case SplitBehavior::Contiguous:
      for (const auto& p : parts) {
        if (p.match && previous_match && !out.empty())
          out.back().end = p.end;
        else
          out.push_back(p);
        previous_match = p.match;
      }
      return out;
  }
  return parts;
}

}  // namespace stepverify::detail
