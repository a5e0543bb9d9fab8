// Internal to the byte-level BPE tokenizer (src/tokenizer/bpe_*.cpp): UTF-8
// helpers, the GPT-2 byte-level alphabet, PCRE2 regexes that read \s as Python
// does, NFC through ICU, and tokenizers' Split / ByteLevel pre-tokenizer steps.
// Not installed.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "stepverify/errors.h"

namespace stepverify::detail {

// ---------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------

// Length (1..4) of the well-formed UTF-8 sequence at s[i], or 0 when ill-formed;
// then *bad is the length of its maximal ill-formed subpart, which Python's
// decode(errors="replace") and Rust's from_utf8_lossy turn into one U+FFFD.
int utf8_sequence(std::string_view s, size_t i, int* bad);

// Offset of the first ill-formed byte, or npos.
size_t find_invalid_utf8(std::string_view s);

std::string utf8_decode_replace(std::string_view bytes);

// Decodes the code point at s[i] of a well-formed string and advances i.
uint32_t next_code_point(std::string_view s, size_t& i);

void append_utf8(std::string& out, uint32_t cp);

// ---------------------------------------------------------------------------
// Byte-level alphabet (GPT-2 bytes_to_unicode)
// ---------------------------------------------------------------------------

// Printable Latin-1 bytes (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) stand for
// themselves; the other 68 bytes map to U+0100, U+0101, ... in byte order, so
// space is "Ġ" (U+0120) and newline "Ċ" (U+010A).
class ByteAlphabet {
 public:
  static const ByteAlphabet& get() {
    static const ByteAlphabet alphabet;
    return alphabet;
  }
  const std::string& char_of(unsigned char b) const { return chars_[b]; }
  /// The byte a code point stands for, or -1 when it is outside the alphabet.
  int byte_of(uint32_t cp) const { return cp < bytes_.size() ? bytes_[cp] : -1; }

 private:
  ByteAlphabet() {
    bytes_.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      append_utf8(chars_[b], cp);
      bytes_[cp] = static_cast<int16_t>(b);
    }
  }
  std::array<std::string, 256> chars_;
  std::array<int16_t, 256 + 68> bytes_;
};

std::string to_byte_level(std::string_view bytes);

// Appends the bytes a token stands for: through the alphabet when every char
// of it is in the alphabet, else its own UTF-8 (tokenizers' ByteLevel decoder;
// this is how added tokens such as "<|im_end|>" or "½" come out unchanged).
void append_token_bytes(std::string_view token, std::string& out);

// ---------------------------------------------------------------------------
// Regex (PCRE2, UTF + Unicode properties, JIT when available)
// ---------------------------------------------------------------------------

// Python's `regex` and Oniguruma read \s as the Unicode White_Space property;
// PCRE2's UCP \s also matches U+180E. Rewriting \s / \S makes them agree.
std::string with_python_whitespace(const std::string& pattern);

// Per-thread PCRE2 match state: match data and a JIT stack large enough for
// long runs of whitespace.
struct MatchState {
  MatchState()
      : data(pcre2_match_data_create(1, nullptr)),
        context(pcre2_match_context_create(nullptr)),
        jit_stack(pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr)) {
    if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
  pcre2_match_data* data;
  pcre2_match_context* context;
  pcre2_jit_stack* jit_stack;
};

class Regex {
 public:
  /// Compiles `pattern` (a literal string when `literal`); `where` names the
  /// file and field for errors.
  Regex(const std::string& pattern, bool literal, const std::string& where) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    const std::string source = literal ? pattern : with_python_whitespace(pattern);
    const uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code* compiled =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &code, &offset, nullptr);
    if (!compiled) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(code, message, sizeof message);
      throw TokenizerError(where + ": cannot compile regex '" + pattern + "': " + reinterpret_cast<char*>(message) +
                           " at offset " + std::to_string(offset));
    }
    code_.reset(compiled, pcre2_code_free);
    pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // falls back to the interpreter
  }

  /// Calls f(begin, end) for each non-empty match, left to right, as
  /// re.finditer / onig find_iter do. `text` must be valid UTF-8.
  template <class F>
  void for_each_match(std::string_view text, F&& f) const {
    thread_local MatchState state;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t offset = 0;
    while (offset < text.size()) {
      const int rc =
          pcre2_match(code_.get(), subject, text.size(), offset, PCRE2_NO_UTF_CHECK, state.data, state.context);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        throw InputError(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<char*>(message));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
      if (ov[1] == ov[0]) {  // empty match: step over one character
        int bad = 0;
        offset = ov[0] + std::max(1, utf8_sequence(text, ov[0], &bad));
        continue;
      }
      f(ov[0], ov[1]);
      offset = ov[1];
    }
  }

 private:
  std::shared_ptr<pcre2_code> code_;
};

// ---------------------------------------------------------------------------
// NFC (ICU)
// ---------------------------------------------------------------------------

std::string nfc(std::string_view text);

// ---------------------------------------------------------------------------
// Pre-tokenizer steps (tokenizers' Split and ByteLevel)
// ---------------------------------------------------------------------------

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreTokenizerStep {
  bool byte_level = false;             ///< ByteLevel (else Split)
  std::shared_ptr<const Regex> regex;  ///< Split pattern; ByteLevel's GPT-2 regex if use_regex
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  ///< ByteLevel: prepend " " to each split lacking one
};

struct Span {
  size_t begin, end;
  bool match;
};

// tokenizers' NormalizedString::split: the text cut into matches and gaps
// (roles swapped by `invert`), then combined as `behavior` says.
std::vector<Span> split_spans(std::string_view text, const PreTokenizerStep& step);

}  // namespace stepverify::detail
