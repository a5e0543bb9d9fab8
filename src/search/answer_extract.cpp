// Final-answer extraction: \boxed, ####, "answer is", an answer line, the last
// number. The rules are written in include/stepverify/answer.h; this file
// follows them.
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
    while (!s.empty() && (std::strchr(".,;!/", s.back()) || is_space(s.back()))) {
      if (ends_with(s, "...")) break;  // an ellipsis is part of the answer ("1, 2, 3, ...")
      s.remove_suffix(1);
    }
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

// Whether `s` (cleaned) reads as an answer by itself: it has a structured or
// expression key, or is at most three words; every part of a structured key
// must read as an answer too (no plain text "t:", no word part "w:" of more
// than three words).
bool is_answer(std::string_view s) {
  if (s.size() > 512) return false;
  const std::string key = canonical_answer(s);
  if (key.find("t:") != std::string::npos) return false;
  for (size_t at = key.find("w:"); at != std::string::npos; at = key.find("w:", at + 2)) {
    size_t words = 0;
    for (size_t i = at + 2; i < key.size() && (is_alpha(key[i]) || key[i] == ' '); ++i)
      words += key[i] != ' ' && (i == at + 2 || key[i - 1] == ' ');
    if (words > 3) return false;
  }
  return true;
}

// Prose around math: a $, \(, \[ or \boxed inside the text (not only
// around it), or a two-letter English word ("is", "of") that would
// otherwise read as a product of two letters.
bool prose(std::string_view s) {
  s = trim(s);
  for (std::string_view d : {"\\(", "\\[", "\\boxed"}) {
    const size_t at = s.find(d);
    if (at != std::string_view::npos && at != 0) return true;
  }
  for (size_t i = 1; i + 1 < s.size(); ++i)
    if (s[i] == '$' && s[i - 1] != '\\' && s[i - 1] != '$' && s[i + 1] != '$') return true;
  static const char* const kWords[] = {"is", "of", "be", "to", "in", "so", "we", "it", "an",
                                       "as", "at", "by", "if", "on", "us", "my", "no", "do"};
  if (s.find(' ') == std::string_view::npos) return false;  // one token ("No", "xy") is no sentence
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if ((i > 0 && (is_alpha(s[i - 1]) || s[i - 1] == '\\')) || !is_alpha(s[i]) || !is_alpha(s[i + 1])) continue;
    if (i + 2 < s.size() && is_alpha(s[i + 2])) continue;
    for (const char* w : kWords)
      if (detail::lower(s[i]) == w[0] && s[i + 1] == w[1]) return true;
  }
  return false;
}

std::optional<std::string> whole_answer(std::string_view s) {
  if (prose(s)) return std::nullopt;
  auto a = clean_extracted(s);
  if (a && is_answer(*a)) return a;
  return std::nullopt;
}

struct Span {
  size_t begin = 0, end = 0;  // of the whole span, delimiters included
  std::string_view content;
};

// LaTeX math spans in order: $$..$$, \[..\] (may hold line breaks), $..$ and \(..\) (one line).
std::vector<Span> math_spans(std::string_view s) {
  std::vector<Span> out;
  // The first closer at or after `from` (an escaped \$ is no closer). The
  // answer for one `from` holds for every later `from` up to it, so each kind
  // is searched through the text about once: the scan stays linear.
  struct Cached {
    size_t from = std::string_view::npos, at = std::string_view::npos;
  };
  Cached cache[4];
  auto closer = [&](std::string_view close, size_t from) {
    Cached& c = cache[close == "$$" ? 0 : close == "$" ? 1 : close == "\\)" ? 2 : 3];
    if (c.from != std::string_view::npos && c.from <= from && (c.at == std::string_view::npos || c.at >= from))
      return c.at;
    size_t j = from;
    while (true) {
      j = s.find(close, j);
      if (j == std::string_view::npos || close != "$" || s[j - 1] != '\\') break;
      ++j;  // an escaped \$ inside
    }
    c = {from, j};
    return j;
  };
  for (size_t i = 0; i < s.size() && out.size() < 4096;) {
    std::string_view open, close;
    if (s.compare(i, 2, "$$") == 0) {
      open = close = "$$";
    } else if (s[i] == '$' && !(i > 0 && s[i - 1] == '\\')) {
      open = close = "$";
    } else if (s.compare(i, 2, "\\(") == 0) {
      open = "\\(";
      close = "\\)";
    } else if (s.compare(i, 2, "\\[") == 0) {
      open = "\\[";
      close = "\\]";
    } else {
      ++i;
      continue;
    }
    const size_t j = closer(close, i + open.size());
    if (j == std::string_view::npos) {
      i += open.size();
      continue;
    }
    const std::string_view content = s.substr(i + open.size(), j - i - open.size());
    const bool one_line = open == "$" || open == "\\(";
    if (one_line && content.find('\n') != std::string_view::npos) {
      i += open.size();  // an inline span does not cross a line
      continue;
    }
    out.push_back({i, j + close.size(), content});
    i = j + close.size();
  }
  return out;
}

struct Number {
  size_t begin = 0, end = 0;
  std::string text;  // separators removed, a decimal comma as '.'
};

bool three_digits(std::string_view s, size_t k) {
  return k + 3 <= s.size() && is_digit(s[k]) && is_digit(s[k + 1]) && is_digit(s[k + 2]) &&
         (k + 3 == s.size() || !is_digit(s[k + 3]));
}

// The number token starting at s[i] (a digit, or '.' before a digit).
Number number_at(std::string_view s, size_t i) {
  Number n;
  n.begin = i;
  size_t j = i;
  while (j < s.size() && is_digit(s[j])) ++j;
  const size_t int_len = j - i;
  std::string text(s.substr(i, int_len));
  bool grouped = false;
  if (int_len >= 1 && int_len <= 3 && s[i] != '0')
    while (j < s.size() && s[j] == ',' && three_digits(s, j + 1)) {  // 1,000,000
      text += s.substr(j + 1, 3);
      j += 4;
      grouped = true;
    }
  if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
    size_t k = j + 1;
    while (k < s.size() && is_digit(s[k])) ++k;
    text += s.substr(j, k - j);
    j = k;
  } else if (!grouped && int_len > 0 && j + 1 < s.size() && s[j] == ',' && is_digit(s[j + 1])) {
    size_t k = j + 1;  // a decimal comma: 2,74 / 0,111 / 1000,99
    while (k < s.size() && is_digit(s[k])) ++k;
    const size_t after = k - j - 1;
    if (after == 2 || s[i] == '0' || int_len >= 4) {
      text += "." + std::string(s.substr(j + 1, after));
      j = k;
    }
  }
  if (j + 1 < s.size() && s[j] == '/' && is_digit(s[j + 1])) {  // 2/3
    size_t k = j + 1;
    while (k < s.size() && is_digit(s[k])) ++k;
    text += s.substr(j, k - j);
    j = k;
  }
  if (i > 0 && s[i - 1] == '-' && !(i > 1 && (is_digit(s[i - 2]) || is_alpha(s[i - 2])))) {
    text = "-" + text;
    --n.begin;
  }
  n.end = j;
  n.text = text;
  return n;
}

// The last number not glued to a word ("AZYUK2A" has none).
std::optional<Number> last_number(std::string_view s) {
  std::optional<Number> last;
  for (size_t i = 0; i < s.size();) {
    const bool starts = is_digit(s[i]) || (s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]));
    if (!starts) {
      ++i;
      continue;
    }
    Number n = number_at(s, i);
    const bool glued = i > 0 && (is_alpha(s[i - 1]) || s[i - 1] == '_' || s[i - 1] == '\\');
    if (!glued && !n.text.empty()) {
      last = n;
    }
    i = std::max(n.end, i + 1);
  }
  return last;
}

// The last math span that reads as an answer, unless a plain number comes
// after it; else the last number.
std::optional<std::string> last_math_or_number(std::string_view s, bool spans, bool numbers) {
  const auto num = numbers ? last_number(s) : std::nullopt;
  if (spans) {
    const auto all = math_spans(s);
    int tries = 0;
    for (size_t k = all.size(); k-- > 0 && tries < 8; ++tries) {
      if (num && num->begin >= all[k].end) break;  // a number after the span wins
      if (auto a = whole_answer(all[k].content)) return a;
    }
  }
  if (num) return num->text;
  return std::nullopt;
}

// The answer in the text after a phrase ("The final answer is ..."): the
// sentence read whole, else its last math span or number.
std::optional<std::string> answer_in(std::string_view segment) {
  if (auto a = whole_answer(segment)) return a;
  return last_math_or_number(segment, true, true);
}

// The last answer phrase: where it ends and the sentence after it.
struct Phrase {
  size_t at = std::string_view::npos;
  std::string_view sentence;
  bool final = false;  // "final answer ..."
};
Phrase last_phrase(std::string_view s, bool final_is, bool answer_is) {
  Phrase best;
  for (std::string_view p : {"final answer is", "final answer:", "answer is", "answer:"}) {
    if (!(p[0] == 'f' ? final_is : answer_is)) continue;
    const size_t at = rfind_ci(s, p);
    if (at == std::string_view::npos) continue;
    const size_t end = at + p.size();
    if (best.at != std::string_view::npos && end <= best.at) continue;  // "final answer is" beats its tail "answer is"
    best.at = end;
    best.final = p[0] == 'f';
    best.sentence = first_sentence(trim(rest_of_line(s, end)));
  }
  return best;
}

// The content of the last \boxed (or, when none yields one, \fbox), with the
// boxes just before it when only separators (spaces, commas, "and", \quad,
// $) stand between them: "\boxed{-2} \text{ and } \boxed{1}" -> "-2, 1".
struct Boxed {
  std::string answer;
  size_t end = 0;  // end of the last box
};
std::optional<Boxed> extract_boxed(std::string_view s) {
  struct Box {
    size_t begin, end;
    std::string content;
  };
  for (std::string_view cmd : {"\\boxed", "\\fbox"}) {
    std::vector<Box> boxes;  // from the last backwards
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
      size_t box_end = i;
      if (i < s.size() && s[i] == '{') {
        const size_t close = match_brace(s, i);
        if (close == std::string_view::npos) continue;
        got = clean_extracted(s.substr(i + 1, close - i - 1));
        box_end = close + 1;
      } else if (had_space) {  // "\boxed 5$": up to the next $ or line end
        size_t j = i;
        while (j < s.size() && s[j] != '$' && s[j] != '\n') ++j;
        got = clean_extracted(s.substr(i, j - i));
        box_end = j;
      }
      if (!got) continue;
      if (!boxes.empty()) {                       // only separators between this box and the later one?
        if (box_end > boxes.back().begin) break;  // the later box is inside this one
        std::string gap(s.substr(box_end, boxes.back().begin - box_end));
        for (std::string_view w : {"\\text{and}", "\\text{ and }", "\\text{or}", "\\quad", "\\qquad", "\\,", "and",
                                   "or", "$", ",", ";", "\\(", "\\)", "\\[", "\\]"})
          gap = replace_all(gap, w, " ");
        if (!trim(gap).empty()) break;
      }
      boxes.push_back({pos, box_end, *got});
    }
    if (boxes.empty()) continue;
    Boxed out;
    out.end = boxes.front().end;
    for (size_t k = boxes.size(); k-- > 0;) out.answer += boxes[k].content + (k ? ", " : "");
    return out;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> DefaultExtractor::extract(std::string_view text) const {
  std::string owned;
  if (text.find("\xD0\xBA\xD0\xB8") != std::string_view::npos) {  // the PRM step tag "ки"
    owned = replace_all(std::string(text), "\xD0\xBA\xD0\xB8", "");
    text = owned;
  }
  if (options_.whole)
    if (auto a = whole_answer(text)) return a;
  const Phrase phrase = last_phrase(text, options_.final_answer_is, options_.answer_is);
  std::optional<std::string> from_phrase;
  if (phrase.at != std::string_view::npos) from_phrase = answer_in(phrase.sentence);
  if (options_.boxed)
    if (auto b = extract_boxed(text)) {
      // "\boxed{255} ... The final answer is 10,455.": a final-answer phrase after the box wins.
      if (from_phrase && phrase.final && phrase.at >= b->end) return from_phrase;
      return b->answer;
    }
  if (options_.gsm8k_hashes) {
    const size_t p = text.rfind("####");
    if (p != std::string_view::npos)
      if (auto a = clean_extracted(rest_of_line(text, p + 4))) return a;
  }
  if (from_phrase) return from_phrase;
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
    if (last.size() >= 2 && rfind_ci(last.substr(0, 2), "a:") == 0) {
      if (auto a = answer_in(last.substr(2))) return a;
    } else if (lines[1] == "# Answer") {
      if (auto a = clean_extracted(last)) return a;
    }
  }
  return last_math_or_number(text, options_.math_span, options_.last_number);
}

std::optional<std::string> extract_answer(std::string_view text) { return DefaultExtractor{}.extract(text); }

}  // namespace stepverify
