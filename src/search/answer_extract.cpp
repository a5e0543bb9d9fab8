// Final-answer extraction: \boxed, ####, "answer is", an answer line, the last
// number. The rules are written in include/stepverify/answer.h; this file
// follows them.
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "search/answer_internal.h"
#include "stepverify/answer.h"

namespace stepverify {
namespace {

using detail::ends_with;
using detail::is_alpha;
using detail::is_digit;
using detail::is_space;
using detail::match_brace;
using detail::replace_all;
using detail::rfind_ci;
using detail::starts_with;
using detail::trim;

// ------------------------------------------------------------- extraction --

// Cleans an extracted answer (see DefaultExtractor). nullopt when empty.
std::optional<std::string> clean_extracted(std::string_view raw) {
  std::string_view s = trim(raw);
  if (!s.empty() && s[0] == ':') s = trim(s.substr(1));
  for (int round = 0; round < 6; ++round) {
    const std::string_view before = s;
    while (!s.empty() && (std::strchr(".,;!/", s.back()) || is_space(s.back()))) s.remove_suffix(1);
    s = trim(s);
    if (s.size() >= 2 && s.front() == '$' && s.back() == '$') s = trim(s.substr(1, s.size() - 2));
    for (auto [open, close] : {std::pair{"\\(", "\\)"}, std::pair{"\\[", "\\]"}})
      if (s.size() >= 4 && starts_with(s, open) && ends_with(s, close)) s = trim(s.substr(2, s.size() - 4));
    for (std::string_view w : {"\\text{", "\\textbf{", "\\mathrm{", "\\mbox{", "\\boxed{"}) {
      if (starts_with(s, w) && match_brace(s, w.size() - 1) == s.size() - 1)
        s = trim(s.substr(w.size(), s.size() - w.size() - 1));
    }
    if (s == before) break;
  }
  if (s.empty()) return std::nullopt;
  return std::string(s);
}

// The content of the last \boxed (or, when none yields one, \fbox).
std::optional<std::string> extract_boxed(std::string_view s) {
  for (std::string_view cmd : {"\\boxed", "\\fbox"}) {
    size_t end = s.size();
    for (int tries = 0; tries < 8; ++tries) {
      const size_t pos = end == 0 ? std::string_view::npos : s.rfind(cmd, end - 1);
      if (pos == std::string_view::npos) break;
      end = pos;
      size_t i = pos + cmd.size();
      if (i < s.size() && is_alpha(s[i])) continue;  // \boxedfoo: another command
      const bool had_space = i < s.size() && is_space(s[i]);
      while (i < s.size() && is_space(s[i])) ++i;
      std::optional<std::string> got;
      if (i < s.size() && s[i] == '{') {
        const size_t close = match_brace(s, i);
        if (close == std::string_view::npos) continue;
        got = clean_extracted(s.substr(i + 1, close - i - 1));
      } else if (had_space) {  // "\boxed 5$": up to the next $ or line end
        size_t j = i;
        while (j < s.size() && s[j] != '$' && s[j] != '\n') ++j;
        got = clean_extracted(s.substr(i, j - i));
      }
      if (got) return got;
    }
  }
  return std::nullopt;
}

std::string_view rest_of_line(std::string_view s, size_t from) {
  const size_t nl = s.find('\n', from);
  return s.substr(from, nl == std::string_view::npos ? std::string_view::npos : nl - from);
}

// Cuts a sentence "5. Therefore ..." after its first ". " outside $...$.
std::string_view first_sentence(std::string_view s) {
  bool math = false;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '$')
      math = !math;
    else if (!math && s[i] == '.' && is_space(s[i + 1]))
      return s.substr(0, i);
  }
  return s;
}

std::optional<std::string> extract_last_number(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && !is_digit(s[e - 1])) --e;
  if (e == 0) return std::nullopt;
  size_t b = e - 1;  // s[b] is a digit; extend left
  while (b > 0) {
    const char c = s[b - 1];
    if (is_digit(c)) {
      --b;
    } else if (c == '.' && b >= 2 && is_digit(s[b - 2])) {
      --b;
    } else if (c == ',' && b >= 2 && is_digit(s[b - 2]) && e - b >= 3 && is_digit(s[b]) && is_digit(s[b + 1]) &&
               is_digit(s[b + 2]) && (b + 3 == e || s[b + 3] == ',' || s[b + 3] == '.')) {
      --b;
    } else {
      break;
    }
  }
  if (b > 0 && s[b - 1] == '.') --b;  // ".5"
  if (b > 0 && s[b - 1] == '-') --b;
  std::string out;
  for (size_t i = b; i < e; ++i)
    if (s[i] != ',') out += s[i];
  return out;
}

}  // namespace

std::optional<std::string> DefaultExtractor::extract(std::string_view text) const {
  std::string owned;
  if (text.find("\xD0\xBA\xD0\xB8") != std::string_view::npos) {  // the PRM step tag "ки"
    owned = replace_all(std::string(text), "\xD0\xBA\xD0\xB8", "");
    text = owned;
  }
  if (options_.boxed)
    if (auto a = extract_boxed(text)) return a;
  if (options_.gsm8k_hashes) {
    const size_t p = text.rfind("####");
    if (p != std::string_view::npos)
      if (auto a = clean_extracted(rest_of_line(text, p + 4))) return a;
  }
  if (options_.final_answer_is) {
    const size_t p = rfind_ci(text, "final answer is $");
    if (p != std::string_view::npos) {
      const size_t b = p + 17, e = text.find('$', b);
      if (e != std::string_view::npos)
        if (auto a = clean_extracted(text.substr(b, e - b))) return a;
    }
  }
  if (options_.answer_is) {
    const size_t p = rfind_ci(text, "answer is");
    if (p != std::string_view::npos)
      if (auto a = clean_extracted(first_sentence(trim(rest_of_line(text, p + 9))))) return a;
  }
  if (options_.answer_line) {
    std::string_view lines[2];
    size_t end = text.size();
    for (int k = 0; k < 2 && end > 0;) {
      const size_t nl = text.rfind('\n', end - 1);
      const size_t b = nl == std::string_view::npos ? 0 : nl + 1;
      const std::string_view line = trim(text.substr(b, end - b));
      if (!line.empty()) lines[k++] = line;
      end = nl == std::string_view::npos ? 0 : nl;
    }
    const std::string_view last = lines[0];
    std::string_view low_prefix;
    for (std::string_view p : {"final answer:", "answer:", "**answer:**", "a:"}) {
      if (last.size() >= p.size() && rfind_ci(last.substr(0, p.size()), p) == 0) {
        low_prefix = p;
        break;
      }
    }
    if (!low_prefix.empty()) {
      if (auto a = clean_extracted(last.substr(low_prefix.size()))) return a;
    } else if (lines[1] == "# Answer") {
      if (auto a = clean_extracted(last)) return a;
    }
  }
  if (options_.last_number) return extract_last_number(text);
  return std::nullopt;
}

std::optional<std::string> extract_answer(std::string_view text) { return DefaultExtractor{}.extract(text); }

}  // namespace stepverify
