// The math-aware canonical key: normalisation of the answer text, then the
// structural key (sets, tuples, matrices, equations) over expression keys.
// The rules are written in include/stepverify/answer.h; this file follows them.
#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "search/answer_expression.h"
#include "search/answer_internal.h"
#include "stepverify/answer.h"

namespace stepverify {

// ============================================================ equivalence ==

namespace {

using detail::Budget;
using detail::command_at;
using detail::ends_with;
using detail::expression_key;
using detail::inverse;
using detail::is_alpha;
using detail::is_digit;
using detail::is_space;
using detail::lower;
using detail::match_brace;
using detail::mul;
using detail::negate;
using detail::Overflow;
using detail::ParseFail;
using detail::Poly;
using detail::replace_all;
using detail::replace_command;
using detail::starts_with;
using detail::trim;

// --------------------------------------------------------- normalisation --

// Drops `,` `{,}` `,\!` `\,` between a digit and a group of exactly 3 digits.
std::string drop_thousands(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (!out.empty() && is_digit(out.back())) {
      size_t len = 0;
      for (std::string_view sep : {"{,}", ",\\!", "\\,"})
        if (s.compare(i, sep.size(), sep) == 0) len = sep.size();
      if (len) {
        size_t j = i + len;
        while (j < s.size() && s[j] == ' ') ++j;
        if (j + 3 <= s.size() && is_digit(s[j]) && is_digit(s[j + 1]) && is_digit(s[j + 2]) &&
            (j + 3 == s.size() || !is_digit(s[j + 3]))) {
          i = j;
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

// Removes `\cmd{` ... `}` wrappers, keeping the content (one linear pass).
std::string unwrap_text(const std::string& s) {
  static const std::set<std::string_view> kWrappers = {"text",   "textbf", "textit", "textrm",     "mathrm", "mathbf",
                                                       "mathit", "mbox",   "boxed",  "textnormal", "emph",   "mathsf"};
  std::string out;
  std::vector<bool> drop;  // per open brace: drop its closing brace
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\') {
      const std::string_view cmd = command_at(s, i);
      size_t j = i + 1 + cmd.size();
      while (j < s.size() && s[j] == ' ') ++j;
      if (!cmd.empty() && kWrappers.count(cmd) && j < s.size() && s[j] == '{') {
        drop.push_back(true);
        out += ' ';
        i = j + 1;
        continue;
      }
      if (i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {  // \{ \} are not groups
        out += s.substr(i, 2);
        i += 2;
        continue;
      }
    }
    if (s[i] == '{') drop.push_back(false);
    if (s[i] == '}' && !drop.empty()) {
      const bool d = drop.back();
      drop.pop_back();
      if (d) {
        out += ' ';
        ++i;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

bool is_unit_word(std::string_view w) {
  static const std::set<std::string_view> kUnits = {
      "unit",        "units",   "degree",      "degrees",   "deg",        "radian", "radians", "cm",     "centimeter",
      "centimeters", "mm",      "millimeters", "km",        "kilometers", "meter",  "meters",  "metre",  "metres",
      "inch",        "inches",  "foot",        "feet",      "ft",         "yard",   "yards",   "yd",     "mile",
      "miles",       "mph",     "kmh",         "hour",      "hours",      "hr",     "hrs",     "minute", "minutes",
      "mins",        "second",  "seconds",     "secs",      "day",        "days",   "week",    "weeks",  "month",
      "months",      "year",    "years",       "dollar",    "dollars",    "cent",   "cents",   "pound",  "pounds",
      "lb",          "lbs",     "kg",          "kilograms", "gram",       "grams",  "liter",   "liters", "litre",
      "litres",      "ml",      "gallon",      "gallons",   "ounce",      "ounces", "oz",      "square", "sq",
      "cubic",       "percent", "point",       "points",    "acre",       "acres",  "mm",      "people", "students",
      "ways"};
  return kUnits.count(w) > 0;
}

// Removes trailing units: \text{ cm}^2 (after a non-empty value) and unit words.
std::string drop_trailing_units(std::string s) {
  for (int round = 0; round < 4; ++round) {
    std::string_view t = trim(s);
    // optional ^2 / ^{2} / ^3 after the unit
    std::string_view core = t;
    for (std::string_view sup : {"^2", "^3", "^{2}", "^{3}"})
      if (ends_with(core, sup)) {
        core = trim(core.substr(0, core.size() - sup.size()));
        break;
      }
    size_t unit_begin = std::string_view::npos;
    if (!core.empty() && core.back() == '}') {
      // find the matching '{' backwards
      int depth = 0;
      size_t open = std::string_view::npos;
      for (size_t k = core.size(); k-- > 0;) {
        if (core[k] == '}')
          ++depth;
        else if (core[k] == '{' && --depth == 0) {
          open = k;
          break;
        }
      }
      if (open == std::string_view::npos) break;
      const std::string_view content = trim(core.substr(open + 1, core.size() - open - 2));
      size_t c = open;
      while (c > 0 && is_alpha(core[c - 1])) --c;
      const std::string_view cmd = (c > 0 && core[c - 1] == '\\') ? core.substr(c, open - c) : std::string_view{};
      bool wordy = !content.empty();
      for (char ch : content)
        if (!(is_alpha(ch) || ch == ' ' || ch == '.' || ch == '/')) wordy = false;
      if ((cmd == "text" || cmd == "mbox" || cmd == "textrm" || cmd == "mathrm" || cmd == "textnormal") && wordy &&
          content.size() >= 2)
        unit_begin = c - 1;
    } else {
      size_t k = core.size();
      while (k > 0 && is_alpha(core[k - 1])) --k;
      const std::string_view word = core.substr(k);
      if (k > 0 && !word.empty() && core[k - 1] != '\\' && (core[k - 1] == ' ' || is_digit(core[k - 1])) &&
          is_unit_word(word))
        unit_begin = k;
    }
    if (unit_begin == std::string_view::npos) break;
    const std::string_view before = trim(core.substr(0, unit_begin));
    if (before.empty() || std::strchr("+-*/=,(^_", before.back())) break;
    s = std::string(before);
  }
  return s;
}

// Braces the one-token arguments of \frac, \sqrt, \binom: \frac12 -> \frac{1}{2},
// \frac{270}7 -> \frac{270}{7}, \sqrt2 -> \sqrt{2} (LaTeX: one character or command).
std::string brace_shorthands(std::string_view s, int depth = 0) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '{' && depth < kMaxNesting) {  // recurse into groups
      const size_t close = match_brace(s, i);
      if (close != std::string_view::npos) {
        out += '{' + brace_shorthands(s.substr(i + 1, close - i - 1), depth + 1) + '}';
        i = close + 1;
        continue;
      }
    }
    const std::string_view cmd = command_at(s, i);
    const int nargs = (cmd == "frac" || cmd == "binom") ? 2 : cmd == "sqrt" ? 1 : 0;
    if (!nargs) {
      out += s[i++];
      continue;
    }
    out += s.substr(i, 1 + cmd.size());
    i += 1 + cmd.size();
    if (cmd == "sqrt") {
      size_t j = i;
      while (j < s.size() && s[j] == ' ') ++j;
      if (j < s.size() && s[j] == '[') continue;  // \sqrt[n]{..}: left as is
    }
    for (int a = 0; a < nargs; ++a) {
      while (i < s.size() && s[i] == ' ') ++i;
      if (i >= s.size()) break;
      if (s[i] == '{') {
        const size_t close = match_brace(s, i);
        if (close == std::string_view::npos || depth >= kMaxNesting) break;
        out += '{' + brace_shorthands(s.substr(i + 1, close - i - 1), depth + 1) + '}';
        i = close + 1;
      } else if (s[i] == '\\') {
        const std::string_view c2 = command_at(s, i);
        if (c2.empty()) break;
        out += "{\\" + std::string(c2) + "}";
        i += 1 + c2.size();
      } else if (is_digit(s[i]) || is_alpha(s[i])) {
        out += '{';
        out += s[i++];
        out += '}';
      } else {
        break;
      }
    }
  }
  return out;
}

// "58,500" / "-1,234,567.5" (the whole answer) -> digits without commas.
std::string bare_thousands(const std::string& s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  const size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == start || i - start > 3 || i == s.size() || s[i] != ',' || s[start] == '0') return s;
  while (i < s.size() && s[i] == ',') {
    if (i + 3 >= s.size() || !is_digit(s[i + 1]) || !is_digit(s[i + 2]) || !is_digit(s[i + 3])) return s;
    i += 4;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i == s.size()) return s;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i != s.size()) return s;
  std::string out;
  for (char c : s)
    if (c != ',') out += c;
  return out;
}

// Removes spaces, except one between a command and a following letter and
// one between two digits (mixed numbers "7 3/4"; "2 3" stays unparsable).
std::string squeeze_spaces(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_space(s[i])) {
      out += s[i];
      continue;
    }
    size_t j = i;
    while (j < s.size() && is_space(s[j])) ++j;
    if (j < s.size() && !out.empty()) {
      // Is the text before a command name?
      size_t k = out.size();
      while (k > 0 && is_alpha(out[k - 1])) --k;
      const bool after_cmd = k > 0 && k < out.size() && out[k - 1] == '\\';
      if ((after_cmd && is_alpha(s[j])) || (is_digit(out.back()) && is_digit(s[j]))) out += ' ';
    }
    i = j - 1;
  }
  return out;
}

// Drops \! and turns \, \; \: \(space) ~ into spaces; a row break \\ is kept.
std::string drop_spacing(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char n = s[i + 1];
      if (n == '\\') {
        out += "\\\\";
        ++i;
        continue;
      }
      if (n == '!') {
        ++i;
        continue;
      }
      if (n == ',' || n == ';' || n == ':' || n == ' ') {
        out += ' ';
        ++i;
        continue;
      }
    }
    out += s[i] == '~' ? ' ' : s[i];
  }
  return out;
}

std::string normalize(std::string_view in) {
  std::string s(in);
  for (char& c : s)
    if (is_space(c)) c = ' ';
  // "\\frac" (exactly two backslashes before a letter, an escaping slip) ->
  // "\frac"; not inside environments, where "\\" breaks rows.
  if (s.find("\\begin{") == std::string::npos) {
    std::string t;
    for (size_t i = 0; i < s.size();) {
      size_t j = i;
      while (j < s.size() && s[j] == '\\') ++j;
      if (j == i) {
        t += s[i++];
        continue;
      }
      t.append(j - i == 2 && j < s.size() && is_alpha(s[j]) ? 1 : j - i, '\\');
      i = j;
    }
    s = std::move(t);
  }
  s = drop_thousands(s);
  for (std::string_view cmd : {"left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big", "displaystyle",
                               "textstyle", "quad", "qquad", "degree", "circ", "limits"})
    s = replace_command(s, cmd, cmd == "quad" || cmd == "qquad" ? " " : "");
  s = drop_spacing(s);
  s = replace_all(s, "\xC2\xB0", "");  // °
  for (auto [from, to] :
       {std::pair{"dfrac", "\\frac"}, std::pair{"tfrac", "\\frac"}, std::pair{"cfrac", "\\frac"},
        std::pair{"dbinom", "\\binom"}, std::pair{"tbinom", "\\binom"}, std::pair{"leq", "\\le"},
        std::pair{"geq", "\\ge"}, std::pair{"neq", "\\ne"}, std::pair{"leqslant", "\\le"},
        std::pair{"geqslant", "\\ge"}, std::pair{"varnothing", "\\emptyset"}, std::pair{"bmatrix", "pmatrix"}})
    s = replace_command(s, from, to);
  s = replace_all(s, "{bmatrix}", "{pmatrix}");
  s = replace_all(s, "\\$", "");
  s = replace_all(s, "$", "");
  s = replace_all(s, "\\%", "");
  s = replace_all(s, "%", "");
  for (std::string_view d : {"\\(", "\\)", "\\[", "\\]"}) s = replace_all(s, d, " ");
  // "\left." / "\right." left a lone null delimiter only at the ends; the
  // degree sign left "^{}" or a dangling "^".
  s = replace_all(s, "^{}", "");
  s = replace_all(s, "^{ }", "");
  {
    std::string t;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '^') {
        size_t j = i + 1;
        while (j < s.size() && s[j] == ' ') ++j;
        if (j == s.size() ||
            !(is_digit(s[j]) || is_alpha(s[j]) || s[j] == '{' || s[j] == '\\' || s[j] == '-' || s[j] == '('))
          continue;
      }
      t += s[i];
    }
    s = std::move(t);
  }
  s = drop_trailing_units(s);
  s = unwrap_text(s);
  s = drop_trailing_units(s);
  s = brace_shorthands(s);
  s = squeeze_spaces(s);
  while (!s.empty() && (s.back() == '.' || s.back() == ',' || s.back() == ';')) s.pop_back();
  return bare_thousands(s);
}

// ------------------------------------------------------------- structure --

// Splits `s` at top-level occurrences of `sep` (brackets ( [ { and \{ \} nest).
std::vector<std::string_view> split_top(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t b = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{')
      ++depth;
    else if (c == ')' || c == ']' || c == '}')
      --depth;
    else if (depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      if (sep.size() > 1 && sep[0] == '\\' && is_alpha(sep[1]) && i + sep.size() < s.size() &&
          is_alpha(s[i + sep.size()]))
        continue;
      parts.push_back(s.substr(b, i - b));
      b = i + sep.size();
      i = b - 1;
    }
  }
  parts.push_back(s.substr(b));
  return parts;
}

// Whether s[0] (one of ( [) is closed exactly at the last character.
bool wrapped(std::string_view s) {
  if (s.size() < 2 || !(s[0] == '(' || s[0] == '[') || !(s.back() == ')' || s.back() == ']')) return false;
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(' || s[i] == '[' || s[i] == '{')
      ++depth;
    else if (s[i] == ')' || s[i] == ']' || s[i] == '}') {
      if (--depth == 0) return i == s.size() - 1;
    }
  }
  return false;
}

std::string canon_struct(std::string_view s, int depth);

// Whether the \{ at the start closes with the \} at the end.
bool set_wrapped(std::string_view s) {
  int depth = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] != '\\') continue;
    if (s[i + 1] == '{')
      ++depth;
    else if (s[i + 1] == '}' && --depth == 0)
      return i + 2 == s.size();
    ++i;
  }
  return false;
}

std::string join_keys(const std::vector<std::string_view>& parts, int depth, bool sort) {
  std::vector<std::string> keys;
  for (auto p : parts) keys.push_back(canon_struct(p, depth + 1));
  if (sort) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  }
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i];
  return out;
}

// Strips a leading "x =", "x \in", "a_1 =", "\theta =" when no other '=' follows.
std::string_view strip_leading_variable(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && is_alpha(s[i]) && !(i + 1 < s.size() && is_alpha(s[i + 1]))) {
    ++i;
    if (i < s.size() && s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '{') {
        const size_t c = match_brace(s, i);
        if (c == std::string_view::npos) return s;
        i = c + 1;
      } else if (i < s.size() && (is_digit(s[i]) || is_alpha(s[i]))) {
        ++i;
      }
    }
  } else if (s.size() > 1 && s[0] == '\\') {
    const std::string_view cmd = command_at(s, 0);
    static const std::set<std::string_view> kGreek = {"alpha", "beta",   "gamma", "theta",
                                                      "phi",   "lambda", "mu",    "omega"};
    if (!kGreek.count(cmd)) return s;
    i = 1 + cmd.size();
  } else {
    return s;
  }
  while (i < s.size() && s[i] == ' ') ++i;
  std::string_view rest;
  if (i < s.size() && s[i] == '=')
    rest = s.substr(i + 1);
  else if (command_at(s, i) == "in")
    rest = s.substr(i + 3);
  else
    return s;
  rest = trim(rest);
  if (rest.empty() || split_top(rest, "=").size() > 1) return s;
  return rest;
}

std::string text_key(std::string_view s) {
  bool words = !s.empty();
  for (char c : s)
    if (!is_alpha(c) && c != ' ') words = false;
  if (words) {
    std::string w;
    for (char c : s) w += lower(c);
    return "w:" + w;
  }
  return "t:" + std::string(s);
}

std::string canon_struct(std::string_view in, int depth) {
  std::string_view s = trim(in);
  if (depth > 8) return text_key(s);
  s = strip_leading_variable(s);
  if (s.empty()) return "t:";
  // multiple-choice letters
  if ((s.size() == 1 && s[0] >= 'A' && s[0] <= 'E') ||
      (s.size() == 3 && s[0] == '(' && s[2] == ')' && s[1] >= 'A' && s[1] <= 'E') ||
      (s.size() == 2 && s[1] == ')' && s[0] >= 'A' && s[0] <= 'E')) {
    return std::string("c:") + (s.size() == 3 ? s[1] : s[0]);
  }
  // matrices
  if (starts_with(s, "\\begin{")) {
    const size_t close = s.find('}');
    const std::string_view env = s.substr(7, close - 7);
    const std::string end = "\\end{" + std::string(env) + "}";
    if ((env == "pmatrix" || env == "matrix" || env == "array") && ends_with(s, end)) {
      std::string_view body = s.substr(close + 1, s.size() - close - 1 - end.size());
      if (env == "array" && starts_with(trim(body), "{")) {
        body = trim(body);
        const size_t c = match_brace(body, 0);
        if (c == std::string_view::npos) return text_key(s);
        body = body.substr(c + 1);
      }
      std::string key = "M[";
      const auto rows = split_top(body, "\\\\");
      for (size_t r = 0; r < rows.size(); ++r) {
        if (trim(rows[r]).empty() && r + 1 == rows.size() && r > 0) break;  // trailing "\\"
        key += (r ? ";" : "") + join_keys(split_top(rows[r], "&"), depth, false);
      }
      return key + "]";
    }
    return text_key(s);
  }
  if (s == "\\emptyset" || s == "\\{\\}" || s == "{}") return "S{}";
  // sets \{...\}
  if (starts_with(s, "\\{") && ends_with(s, "\\}") && set_wrapped(s))
    return "S{" + join_keys(split_top(s.substr(2, s.size() - 4), ","), depth, true) + "}";
  // an outer {..} group: PRM800K drops it
  if (s[0] == '{' && match_brace(s, 0) == s.size() - 1) return canon_struct(s.substr(1, s.size() - 2), depth + 1);
  // unions
  if (auto parts = split_top(s, "\\cup"); parts.size() > 1) return "U(" + join_keys(parts, depth, true) + ")";
  // tuples, intervals, lists
  if (wrapped(s)) {
    const auto parts = split_top(s.substr(1, s.size() - 2), ",");
    if (parts.size() > 1) {
      std::string key = "T" + std::string(1, s[0]) + join_keys(parts, depth, false) + std::string(1, s.back());
      if (key == "T(e:-1*\\infty,e:1*\\infty)") return "e:1*\\mathbb{R}";
      return key;
    }
  }
  if (auto parts = split_top(s, ","); parts.size() > 1) return "L[" + join_keys(parts, depth, false) + "]";
  // a \pm b
  for (std::string_view pm : {"\\pm", "\\mp"}) {
    if (auto parts = split_top(s, pm); parts.size() == 2) {
      const std::string a = trim(parts[0]).empty() ? "e:0" : canon_struct(parts[0], depth + 1);
      return std::string(pm == "\\pm" ? "PM(" : "MP(") + a + "," + canon_struct(parts[1], depth + 1) + ")";
    }
  }
  // equations
  if (auto parts = split_top(s, "="); parts.size() == 2) {
    Poly l, r;
    if (expression_key(parts[0], &l) && expression_key(parts[1], &r)) {
      try {
        Poly d = l + negate(r);
        if (d.terms.empty()) return "EQ:0";
        Budget b;
        d = mul(d, Poly::constant(inverse(d.terms.begin()->second.second)), b);
        return "EQ:" + d.key();
      } catch (const ParseFail&) {
      } catch (const Overflow&) {}
    }
    return text_key(s);
  }
  // words
  {
    bool word = false, other = false;
    size_t run = 0;
    for (char c : s) {
      if (is_alpha(c)) {
        if (++run >= 3) word = true;
      } else {
        run = 0;
        if (c != ' ') other = true;
      }
    }
    if (word && !other) return text_key(s);
  }
  if (auto k = expression_key(s)) return *k;
  return text_key(s);
}

}  // namespace

std::string MathEquivalence::canonical(std::string_view answer) const {
  if (answer.size() > kMaxStructuredAnswerBytes) {
    std::string t;  // whitespace-normalised text only
    for (char c : answer)
      if (!is_space(c)) t += c;
    return "t:" + t;
  }
  return canon_struct(normalize(answer), 0);
}

std::string StringEquivalence::canonical(std::string_view answer) const { return std::string(trim(answer)); }

std::string canonical_answer(std::string_view answer) { return MathEquivalence{}.canonical(answer); }
bool answers_equal(std::string_view a, std::string_view b) { return MathEquivalence{}.equal(a, b); }

}  // namespace stepverify
