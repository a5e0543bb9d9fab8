// The text normalisation MathEquivalence keys build on: spacing, LaTeX
// spelling variants, thousands separators and decimal commas, percent and
// currency signs, units, \text wrappers, shorthand arguments. The rules are
// written in include/stepverify/answer.h; this file follows them.
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "search/answer_internal.h"
#include "stepverify/answer.h"

namespace stepverify::detail {
namespace {

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
      "ways",        "pct",     "percentage",  "percents"};
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
      if ((cmd == "text" || cmd == "mbox" || cmd == "textrm" || cmd == "mathrm" || cmd == "textnormal" ||
           cmd == "textbf" || cmd == "textit" || cmd == "mathbf") &&
          wordy && content.size() >= 2)
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
  if (i == start || i == s.size() || s[i] != ',') return s;
  {  // a decimal comma: 1,22 / 0,111 / 1000,99 (two digits after it, or 0 or 4+ digits before it)
    size_t j = i + 1;
    while (j < s.size() && is_digit(s[j])) ++j;
    const size_t before = i - start, after = j - i - 1;
    if (j == s.size() && after > 0 && (after == 2 || s[start] == '0' || before >= 4)) {
      std::string out = s;
      out[i] = '.';
      return out;
    }
  }
  if (i - start > 3 || s[start] == '0') return s;
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
      // "2e - 1" is 2e minus 1, not the literal 2e-1: the space stays.
      const bool e_sign = (out.back() == 'e' || out.back() == 'E') && (s[j] == '-' || s[j] == '+');
      if ((after_cmd && is_alpha(s[j])) || (is_digit(out.back()) && is_digit(s[j])) || e_sign) out += ' ';
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

// "1 000", "10 000 000": a plain space between digit groups of 3 (the first
// of 1 to 3 digits) is a thousands separator; "7 3/4" stays a mixed number.
std::string space_thousands(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const bool start = is_digit(s[i]) && (i == 0 || !(is_digit(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == ','));
    if (!start) {
      out += s[i++];
      continue;
    }
    size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    size_t end = j, groups = 0;
    if (j - i <= 3)
      while (end + 4 <= s.size() && s[end] == ' ' && is_digit(s[end + 1]) && is_digit(s[end + 2]) &&
             is_digit(s[end + 3]) && (end + 4 == s.size() || !(is_digit(s[end + 4]) || s[end + 4] == '/'))) {
        end += 4;
        ++groups;
      }
    for (size_t k = i; k < (groups ? end : j); ++k)
      if (s[k] != ' ') out += s[k];
    i = groups ? end : j;
  }
  return out;
}

// "12 and 13", "x = 1 or x = 2": a list (" and " / " or " not between two words).
std::string words_as_commas(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    for (std::string_view w : {" and ", " or "}) {
      if (s.compare(i, w.size(), w) != 0) continue;
      size_t a = i, b = i + w.size();
      while (a > 0 && s[a - 1] == ' ') --a;
      while (b < s.size() && s[b] == ' ') ++b;
      if (a > 0 && b < s.size() && !(is_alpha(s[a - 1]) && is_alpha(s[b]))) {
        out += ", ";
        i += w.size();
        goto next;
      }
    }
    out += s[i++];
  next:;
  }
  return out;
}

}  // namespace

std::string normalize_answer(std::string_view in) {
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
  for (auto [from, to] :
       {std::pair{"\xE2\x89\xA4", "\\le "}, std::pair{"\xE2\x89\xA5", "\\ge "}, std::pair{"\xE2\x89\xA0", "\\ne "},
        std::pair{"\xE2\x88\x92", "-"}, std::pair{"\xC3\x97", "\\times "}, std::pair{"\xC2\xB7", "\\cdot "},
        std::pair{"\xCF\x80", "\\pi "}, std::pair{"\xE2\x88\x9E", "\\infty "}, std::pair{"\xC2\xB2", "^2"},
        std::pair{"\xC2\xB3", "^3"}, std::pair{"\xE2\x82\xAC", ""}, std::pair{"\xC2\xA3", ""}, std::pair{"<=", "\\le "},
        std::pair{">=", "\\ge "}, std::pair{"!=", "\\ne "}})
    s = replace_all(s, from, to);  // ≤ ≥ ≠ − × · π ∞ ² ³ € £ and ASCII <= >= !=
  s = drop_thousands(s);
  s = space_thousands(s);
  for (std::string_view cmd : {"left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big", "displaystyle",
                               "textstyle", "quad", "qquad", "degree", "circ", "limits"})
    s = replace_command(s, cmd, cmd == "quad" || cmd == "qquad" ? " " : "");
  s = drop_spacing(s);
  s = replace_all(s, "\xC2\xB0", "");  // °
  for (auto [from, to] : {std::pair{"dfrac", "\\frac"}, std::pair{"tfrac", "\\frac"}, std::pair{"cfrac", "\\frac"},
                          std::pair{"dbinom", "\\binom"}, std::pair{"tbinom", "\\binom"}, std::pair{"leq", "\\le"},
                          std::pair{"geq", "\\ge"}, std::pair{"neq", "\\ne"}, std::pair{"leqslant", "\\le"},
                          std::pair{"geqslant", "\\ge"}, std::pair{"varnothing", "\\emptyset"},
                          std::pair{"bmatrix", "pmatrix"}, std::pair{"lt", "<"}, std::pair{"gt", ">"},
                          std::pair{"neq", "\\ne"}, std::pair{"leqq", "\\le"}, std::pair{"geqq", "\\ge"}})
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
  s = words_as_commas(s);
  s = brace_shorthands(s);
  s = std::string(trim(s));
  while (!s.empty() && (s.back() == '.' || s.back() == ',' || s.back() == ';') && !ends_with(s, "...")) s.pop_back();
  // Before spaces go: "32, 349" is a list, "32,349" a number.
  return squeeze_spaces(bare_thousands(std::string(trim(s))));
}

}  // namespace stepverify::detail
