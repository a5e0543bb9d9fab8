// The math-aware canonical key: the normalised text (answer_normalize.cpp),
// then the structural key (sets, tuples, intervals, relations, matrices) over
// expression keys. The rules are written in include/stepverify/answer.h.
#include <algorithm>
#include <cmath>
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
using detail::starts_with;
using detail::trim;

// ------------------------------------------------------------- structure --

// Splits `s` at the separators found outside brackets (( [ { and \{ \}
// nest): `at(i)` returns the length of a separator starting at s[i], or 0.
template <class At>
std::vector<std::string_view> split_top_level(std::string_view s, At at) {
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t b = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if (c == ')' || c == ']' || c == '}') {
      --depth;
    } else if (depth == 0) {
      if (const size_t len = at(i)) {
        parts.push_back(s.substr(b, i - b));
        b = i + len;
        i = b - 1;
      }
    }
  }
  parts.push_back(s.substr(b));
  return parts;
}

// Splits `s` at top-level occurrences of `sep` (a command such as \cup only
// when no letter follows it).
std::vector<std::string_view> split_top(std::string_view s, std::string_view sep) {
  const bool command = sep.size() > 1 && sep[0] == '\\' && is_alpha(sep[1]);
  return split_top_level(s, [&](size_t i) -> size_t {
    if (s.compare(i, sep.size(), sep) != 0) return 0;
    if (command && i + sep.size() < s.size() && is_alpha(s[i + sep.size()])) return 0;
    return sep.size();
  });
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

std::string canon_struct(std::string_view s, int depth);

// "a \pm b" -> {"a+b", "a-b"}. Several signs are correlated, as in
// "1 \pm 2 \mp 3" -> {1+2-3, 1-2+3}: every \pm takes one sign and every \mp
// the other, so there are always two variants (or one, without signs).
std::vector<std::string> expand_pm(std::string_view s) {
  s = trim(s);
  const auto parts = split_top_level(s, [&](size_t i) -> size_t {
    const std::string_view cmd = command_at(s, i);
    return cmd == "pm" || cmd == "mp" ? 3 : 0;
  });
  if (parts.size() < 2) return {std::string(s)};
  std::string plus, minus;
  for (size_t k = 0; k < parts.size(); ++k) {
    plus += parts[k];
    minus += parts[k];
    if (k + 1 == parts.size()) break;
    const size_t sign = static_cast<size_t>(parts[k].data() - s.data()) + parts[k].size();
    const bool pm = s.compare(sign, 3, "\\pm") == 0;
    plus += pm ? "+" : "-";
    minus += pm ? "-" : "+";
  }
  return {plus, minus};
}

// The unordered key of a list of elements, \pm expanded: S{k1,k2,...}.
std::string set_key(const std::vector<std::string_view>& parts, int depth) {
  std::vector<std::string> keys;
  for (auto p : parts)
    for (const std::string& e : expand_pm(p)) keys.push_back(canon_struct(e, depth + 1));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (keys.size() == 1) return keys[0];  // {5}, "5 or 5.0", "3 \pm 0": the one element
  std::string out = "S{";
  for (size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i];
  return out + "}";
}

std::string ordered_keys(const std::vector<std::string_view>& parts, int depth) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + canon_struct(parts[i], depth + 1);
  return out;
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
  return "t:" + std::to_string(s.size()) + ":" + std::string(s);  // length first: no text mimics a structure
}

// One variable: a letter or a Greek command, with an optional subscript.
bool is_variable(std::string_view s) {
  s = trim(s);
  size_t i = 0;
  if (!s.empty() && is_alpha(s[0])) {
    i = 1;
  } else if (s.size() > 1 && s[0] == '\\') {
    static const std::set<std::string_view> kGreek = {"alpha",  "beta", "gamma",  "delta", "theta", "phi",
                                                      "lambda", "mu",   "omega",  "rho",   "sigma", "tau",
                                                      "psi",    "chi",  "varphi", "eta",   "xi",    "zeta"};
    const std::string_view cmd = command_at(s, 0);
    if (!kGreek.count(cmd)) return false;
    i = 1 + cmd.size();
  } else {
    return false;
  }
  if (i < s.size() && s[i] == '_') {
    ++i;
    if (i < s.size() && s[i] == '{') {
      const size_t c = match_brace(s, i);
      if (c == std::string_view::npos) return false;
      i = c + 1;
    } else if (i < s.size() && (is_digit(s[i]) || is_alpha(s[i]))) {
      ++i;
    }
  }
  return i == s.size();
}

// What a leading "lhs =" names: a variable, a tuple of variables "(p, q)",
// or a function value "f(x)" / "P(2)".
enum class Lhs { None, Variable, Function };
Lhs lhs_kind(std::string_view s) {
  s = trim(s);
  if (is_variable(s)) return Lhs::Variable;
  if (wrapped(s) && s[0] == '(') {
    const auto parts = split_top(s.substr(1, s.size() - 2), ",");
    bool all = parts.size() > 1;
    for (auto p : parts) all = all && is_variable(p);
    if (all) return Lhs::Variable;
  }
  size_t i = 0;
  while (i < s.size() && is_alpha(s[i])) ++i;
  if (i >= 1 && i <= 2 && i < s.size() && s[i] == '(' && s.back() == ')' && wrapped(s.substr(i)) &&
      !(i == 1 && (s[0] == 'x' || s[0] == 'y' || s[0] == 'z'))) {
    const std::string_view arg = trim(s.substr(i + 1, s.size() - i - 2));
    bool number = !arg.empty();
    for (char c : arg) number = number && (is_digit(c) || c == '-' || c == '.');
    if (is_variable(arg) || number) return Lhs::Function;  // f(x) = ..., P(2) = ...; not x(x-3) = 0
  }
  return Lhs::None;
}

// A value a variable can be set to that is not an expression: a tuple,
// interval, set, list, matrix or a \pm pair.
bool structured(std::string_view s) {
  s = trim(s);
  if (s.empty()) return false;
  if (s[0] == '(' || s[0] == '[' || starts_with(s, "\\{") || starts_with(s, "\\begin")) return true;
  for (std::string_view sep : {",", "\\pm", "\\mp", "\\cup"})
    if (split_top(s, sep).size() > 1) return true;
  return false;
}

// A number (no variables), or \infty.
bool constant(std::string_view s, const std::optional<detail::Value>& v) {
  const std::string_view t = trim(s);
  if (t == "\\infty" || t == "-\\infty" || t == "+\\infty") return true;
  return v && v->numeric && !v->variables;
}

// -------------------------------------------------------------- relations --

enum class Rel { Eq, Lt, Le, Gt, Ge, Ne, Approx, In };

// The relation's key word, in Rel's order.
const char* rel_name(Rel r) {
  static constexpr const char* kNames[] = {"=", "<", "<=", ">", ">=", "!=", "~", "in"};
  return kNames[static_cast<int>(r)];
}

// The relation with its sides swapped: < and >, <= and >= trade places.
Rel flip(Rel r) {
  if (r == Rel::Lt || r == Rel::Gt) return r == Rel::Lt ? Rel::Gt : Rel::Lt;
  if (r == Rel::Le || r == Rel::Ge) return r == Rel::Le ? Rel::Ge : Rel::Le;
  return r;
}

bool is_order(Rel r) { return r == Rel::Lt || r == Rel::Le || r == Rel::Gt || r == Rel::Ge; }

// Splits at top-level relation signs (after normalize: = < > \le \ge \ne \approx \in).
bool split_relations(std::string_view s, std::vector<std::string_view>& parts, std::vector<Rel>& ops) {
  parts = split_top_level(s, [&](size_t i) -> size_t {
    const char c = s[i];
    if (c == '=' || c == '<' || c == '>') {
      ops.push_back(c == '=' ? Rel::Eq : c == '<' ? Rel::Lt : Rel::Gt);
      return 1;
    }
    const std::string_view cmd = command_at(s, i);
    static constexpr std::pair<std::string_view, Rel> kCommands[] = {
        {"le", Rel::Le}, {"ge", Rel::Ge}, {"ne", Rel::Ne}, {"approx", Rel::Approx}, {"in", Rel::In}};
    for (const auto& [name, rel] : kCommands)
      if (cmd == name) {
        ops.push_back(rel);
        return 1 + cmd.size();
      }
    return 0;
  });
  if (ops.empty() || ops.size() > 16) return false;
  for (auto p : parts)
    if (trim(p).empty()) return false;
  return true;
}

std::string interval_key(const std::string& lo, bool lo_closed, const std::string& hi, bool hi_closed) {
  return std::string("T") + (lo_closed ? "[" : "(") + lo + "," + hi + (hi_closed ? "]" : ")");
}

// A relation lhs op rhs with one variable, linear: the interval it describes.
std::optional<std::string> linear_interval(const detail::Value& l, Rel op, const detail::Value& r, int depth) {
  if (!l.exact || !r.exact || !(is_order(op) || op == Rel::Ne)) return std::nullopt;
  Poly d;
  try {
    d = *l.exact + negate(*r.exact);
  } catch (const ParseFail&) {
    return std::nullopt;
  } catch (const Overflow&) {
    return std::nullopt;
  }
  std::string var;
  Poly a, b;
  for (const auto& [k, t] : d.terms) {
    const auto& [mono, coef] = t;
    detail::Mono rest = mono;
    for (const auto& [name, e] : mono.syms) {
      if (name.empty() || name[0] == '@') return std::nullopt;
      const bool is_const = name == "\\pi" || name == "e" || name == "i" || is_digit(name[0]);
      if (is_const) continue;
      if (e != 1 || (!var.empty() && var != name)) return std::nullopt;
      var = name;
      rest.syms.erase(name);
    }
    (mono.syms.count(var) ? a : b).add_term(rest, coef);
  }
  if (var.empty() || a.terms.empty()) return std::nullopt;
  const auto av = detail::poly_value(a, 0), bv = detail::poly_value(b, 0);
  if (!av || !bv || av->imag() != 0 || bv->imag() != 0 || av->real() == 0) return std::nullopt;
  const detail::Complex c = -*bv / *av;
  if (av->real() < 0) op = flip(op);
  const std::string ck = "n:" + detail::number_text(c);
  const std::string inf = canon_struct("\\infty", depth + 1), minus_inf = canon_struct("-\\infty", depth + 1);
  switch (op) {
    case Rel::Lt:
      return interval_key(minus_inf, false, ck, false);
    case Rel::Le:
      return interval_key(minus_inf, false, ck, true);
    case Rel::Gt:
      return interval_key(ck, false, inf, false);
    case Rel::Ge:
      return interval_key(ck, true, inf, false);
    default: {  // x != c
      std::vector<std::string> two = {interval_key(minus_inf, false, ck, false), interval_key(ck, false, inf, false)};
      std::sort(two.begin(), two.end());
      return "U(" + two[0] + "," + two[1] + ")";
    }
  }
}

// lhs op rhs by the values of lhs - rhs at the points: an equation up to a
// non-zero factor, an inequality up to a positive factor (direction kept).
std::optional<std::string> relation_values(const detail::Value& l, Rel op, const detail::Value& r) {
  if (!l.numeric || !r.numeric) return std::nullopt;
  std::array<detail::Complex, detail::kPoints> d;
  size_t k0 = d.size();
  for (size_t k = 0; k < d.size(); ++k) {
    d[k] = l.at[k] - r.at[k];
    const long double scale = std::max(std::abs(l.at[k]), std::abs(r.at[k]));
    if (std::abs(d[k]) <= 1e-15L * scale) d[k] = 0;
    if (k0 == d.size() && d[k] != detail::Complex(0)) k0 = k;
  }
  if (k0 == d.size()) return std::string("R") + rel_name(op) + ":0";  // holds everywhere (or nowhere)
  detail::Complex f;
  if (op == Rel::Eq || op == Rel::Ne) {
    f = d[k0];
  } else {
    f = std::abs(d[k0]);
    if (d[k0].real() < 0) {
      f = -f;
      op = flip(op);
    }
  }
  std::string key = std::string("R") + rel_name(op) + ":";
  for (const auto& z : d) key += detail::number_text(z / f) + ";";
  return key;
}

// The exact form of an equation, scaled so its first coefficient is 1 (when
// the values are not available: opaque functions, \infty).
std::optional<std::string> relation_exact(const detail::Value& l, Rel op, const detail::Value& r) {
  if (!l.exact || !r.exact || op != Rel::Eq) return std::nullopt;
  try {
    Poly d = *l.exact + negate(*r.exact);
    if (d.terms.empty()) return std::string("R=:0");
    Budget b;
    d = mul(d, Poly::constant(inverse(d.terms.begin()->second.second)), b);
    return "R=:e:" + d.key();
  } catch (const ParseFail&) {
  } catch (const Overflow&) {}
  return std::nullopt;
}

std::string pair_key(std::string_view a, Rel op, std::string_view b, int depth) {
  const auto va = detail::evaluate(trim(a)), vb = detail::evaluate(trim(b));
  if (va && vb) {
    if (auto k = linear_interval(*va, op, *vb, depth)) return *k;
    if (auto k = relation_values(*va, op, *vb)) return *k;
    if (auto k = relation_exact(*va, op, *vb)) return *k;
  }
  return text_key(std::string(trim(a)) + rel_name(op) + std::string(trim(b)));
}

std::string relation_key(std::vector<std::string_view> parts, std::vector<Rel> ops, std::string_view whole, int depth) {
  // "x = 1/3 \approx 0.33": the approximation is not the answer; "x \approx 11" alone is x = 11.
  while (ops.size() >= 2 && ops.back() == Rel::Approx) {
    ops.pop_back();
    parts.pop_back();
  }
  for (Rel& r : ops)
    if (r == Rel::Approx) r = Rel::Eq;
  const bool all_eq = std::all_of(ops.begin(), ops.end(), [](Rel r) { return r == Rel::Eq; });
  if (ops.size() == 1 && ops[0] == Rel::In) {  // x \in S: the set
    if (lhs_kind(parts[0]) == Lhs::Variable) return canon_struct(parts[1], depth + 1);
    return text_key(whole);
  }
  if (std::find(ops.begin(), ops.end(), Rel::In) != ops.end()) return text_key(whole);
  if (all_eq) {
    const std::string_view l = trim(parts.front()), r = trim(parts.back());
    const Lhs lk = lhs_kind(l);
    if (lk == Lhs::Function) return canon_struct(r, depth + 1);  // f(x) = ...: the value
    if (structured(r)) {
      if (lk == Lhs::Variable || parts.size() > 2) return canon_struct(r, depth + 1);
      return text_key(whole);
    }
    const auto vr = detail::evaluate(r);
    // A computation "a = b = c" ending in a number, or "x = number": the number.
    if (constant(r, vr) && (lk == Lhs::Variable || parts.size() > 2)) return canon_struct(r, depth + 1);
    // "1/2 = 10/20" (a computation) or "\cos \angle RPS = -24/25" (a named
    // quantity that is no expression): the number.
    if (constant(r, vr)) {
      const auto vl = detail::evaluate(l);
      if (!vl || constant(l, vl)) return canon_struct(r, depth + 1);
    }
    return pair_key(l, Rel::Eq, r, depth);
  }
  // a < x < b (or >, >=): the interval between the constants.
  if (ops.size() == 2 && is_order(ops[0]) && is_order(ops[1]) && is_variable(parts[1])) {
    const bool up0 = ops[0] == Rel::Lt || ops[0] == Rel::Le, up1 = ops[1] == Rel::Lt || ops[1] == Rel::Le;
    const auto va = detail::evaluate(trim(parts[0])), vb = detail::evaluate(trim(parts[2]));
    if (up0 == up1 && constant(parts[0], va) && constant(parts[2], vb)) {
      const size_t lo = up0 ? 0 : 2, hi = up0 ? 2 : 0;
      const bool lo_closed = ops[up0 ? 0 : 1] == Rel::Le || ops[up0 ? 0 : 1] == Rel::Ge;
      const bool hi_closed = ops[up0 ? 1 : 0] == Rel::Le || ops[up0 ? 1 : 0] == Rel::Ge;
      return interval_key(canon_struct(parts[lo], depth + 1), lo_closed, canon_struct(parts[hi], depth + 1), hi_closed);
    }
  }
  if (ops.size() == 1) return pair_key(parts[0], ops[0], parts[1], depth);
  std::string key = "C:";
  for (size_t i = 0; i < ops.size(); ++i) key += pair_key(parts[i], ops[i], parts[i + 1], depth) + "&";
  return key;
}

// A matrix environment (pmatrix, matrix, array; bmatrix was renamed), cell by cell.
std::optional<std::string> matrix_key(std::string_view s, int depth) {
  if (!starts_with(s, "\\begin{")) return std::nullopt;
  const size_t close = s.find('}');
  if (close == std::string_view::npos) return std::nullopt;
  const std::string_view env = s.substr(7, close - 7);
  const std::string end = "\\end{" + std::string(env) + "}";
  if (!((env == "pmatrix" || env == "matrix" || env == "array") && s.find(end) == s.size() - end.size()))
    return std::nullopt;  // one environment, closed at the end
  std::string_view body = s.substr(close + 1, s.size() - close - 1 - end.size());
  if (env == "array" && starts_with(trim(body), "{")) {
    body = trim(body);
    const size_t c = match_brace(body, 0);
    if (c == std::string_view::npos) return std::nullopt;
    body = body.substr(c + 1);
  }
  std::string key = "M[";
  const auto rows = split_top(body, "\\\\");
  for (size_t r = 0; r < rows.size(); ++r) {
    if (trim(rows[r]).empty() && r + 1 == rows.size() && r > 0) break;  // trailing "\\"
    key += (r ? ";" : "") + ordered_keys(split_top(rows[r], "&"), depth);
  }
  return key + "]";
}

// Sums, differences and products of numeric matrices ("A + B", "A B",
// "A \cdot B"), evaluated cell by cell; nullopt when `s` is not such an
// expression of two or more matrices.
std::optional<std::string> matrix_arithmetic_key(std::string_view s) {
  using Cells = std::vector<std::vector<std::array<detail::Complex, detail::kPoints>>>;
  struct Term {
    Cells m;
    bool variables = false;
  };
  auto read_matrix = [](std::string_view& rest, Term& out) -> bool {
    rest = trim(rest);
    if (!starts_with(rest, "\\begin{")) return false;
    const size_t close = rest.find('}');
    if (close == std::string_view::npos) return false;
    const std::string env(rest.substr(7, close - 7));
    if (env != "pmatrix" && env != "matrix") return false;
    const std::string end = "\\end{" + env + "}";
    const size_t e = rest.find(end);
    if (e == std::string_view::npos) return false;
    const std::string_view body = rest.substr(close + 1, e - close - 1);
    rest = rest.substr(e + end.size());
    const auto rows = split_top(body, "\\\\");
    for (size_t r = 0; r < rows.size(); ++r) {
      if (trim(rows[r]).empty() && r + 1 == rows.size() && r > 0) break;
      out.m.emplace_back();
      for (auto cell : split_top(rows[r], "&")) {
        const auto v = detail::evaluate(trim(cell));
        if (!v || !v->numeric) return false;
        out.variables = out.variables || v->variables;
        out.m.back().push_back(v->at);
      }
      if (out.m.back().size() != out.m.front().size()) return false;
    }
    return !out.m.empty();
  };
  std::string_view rest = s;
  std::vector<Term> sum;  // terms of the sum, each a product already multiplied out
  std::vector<int> signs;
  int sign = 1, count = 0;
  Term cur;
  if (!read_matrix(rest, cur)) return std::nullopt;
  ++count;
  for (;;) {
    rest = trim(rest);
    if (rest.empty()) break;
    char op = '*';
    if (rest[0] == '+' || rest[0] == '-') {
      op = rest[0];
      rest.remove_prefix(1);
    } else if (command_at(rest, 0) == "cdot" || command_at(rest, 0) == "times") {
      rest.remove_prefix(1 + command_at(rest, 0).size());
    }
    Term next;
    if (!read_matrix(rest, next)) return std::nullopt;
    ++count;
    if (op == '*') {  // cur = cur * next
      const size_t n = cur.m.size(), k = cur.m[0].size(), p = next.m[0].size();
      if (next.m.size() != k) return std::nullopt;
      Term prod;
      prod.variables = cur.variables || next.variables;
      prod.m.assign(n, std::vector<std::array<detail::Complex, detail::kPoints>>(p));
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < p; ++j)
          for (size_t t = 0; t < detail::kPoints; ++t) {
            detail::Complex acc(0);
            for (size_t q = 0; q < k; ++q) acc += cur.m[i][q][t] * next.m[q][j][t];
            if (!std::isfinite(acc.real()) || !std::isfinite(acc.imag())) return std::nullopt;
            prod.m[i][j][t] = acc;
          }
      cur = std::move(prod);
    } else {
      sum.push_back(std::move(cur));
      signs.push_back(sign);
      sign = op == '-' ? -1 : 1;
      cur = std::move(next);
    }
  }
  if (count < 2) return std::nullopt;
  sum.push_back(std::move(cur));
  signs.push_back(sign);
  Term total = sum[0];
  for (size_t i = 0; i < total.m.size(); ++i)
    for (size_t j = 0; j < total.m[i].size(); ++j)
      for (auto& z : total.m[i][j]) z *= static_cast<long double>(signs[0]);
  for (size_t t = 1; t < sum.size(); ++t) {
    if (sum[t].m.size() != total.m.size() || sum[t].m[0].size() != total.m[0].size()) return std::nullopt;
    total.variables = total.variables || sum[t].variables;
    for (size_t i = 0; i < total.m.size(); ++i)
      for (size_t j = 0; j < total.m[i].size(); ++j)
        for (size_t q = 0; q < detail::kPoints; ++q) {
          auto& z = total.m[i][j][q];
          z += static_cast<long double>(signs[t]) * sum[t].m[i][j][q];
          if (!std::isfinite(z.real()) || !std::isfinite(z.imag())) return std::nullopt;
        }
  }
  std::string key = "M[";
  for (size_t i = 0; i < total.m.size(); ++i) {
    for (size_t j = 0; j < total.m[i].size(); ++j) {
      detail::Value v;
      v.numeric = true;
      v.variables = total.variables;
      v.at = total.m[i][j];
      key += (j ? "," : "") + detail::value_key(v).value_or("t:");
    }
    key += i + 1 < total.m.size() ? ";" : "";
  }
  return key + "]";
}

std::string canon_struct(std::string_view in, int depth) {
  std::string_view s = trim(in);
  if (depth > 8) return text_key(s);
  if (s.empty()) return "t:";
  // multiple-choice letters
  if ((s.size() == 1 && s[0] >= 'A' && s[0] <= 'E') ||
      (s.size() == 3 && s[0] == '(' && s[2] == ')' && s[1] >= 'A' && s[1] <= 'E') ||
      (s.size() == 2 && s[1] == ')' && s[0] >= 'A' && s[0] <= 'E')) {
    return std::string("c:") + (s.size() == 3 ? s[1] : s[0]);
  }
  if (auto m = matrix_key(s, depth)) return *m;
  if (starts_with(s, "\\begin{"))
    if (auto m = matrix_arithmetic_key(s)) return *m;
  // a matrix in brackets: [\begin{array}..\end{array}], (\begin{pmatrix}..\end{pmatrix})
  if (wrapped(s) && starts_with(trim(s.substr(1, s.size() - 2)), "\\begin{"))
    if (auto m = matrix_key(trim(s.substr(1, s.size() - 2)), depth)) return *m;
  if (starts_with(s, "\\begin{")) return text_key(s);
  if (s == "\\emptyset" || s == "\\{\\}" || s == "{}") return "S{}";
  if (s == "\\mathbb{R}" || s == "\\mathbb R") return "T(-inf,inf)";                  // all reals, as (-\infty, \infty)
  if (s == "..." || s == "\\ldots" || s == "\\dots" || s == "\\cdots") return "etc";  // "1, 2, 3, ..."
  // sets \{...\}: unordered, \pm expanded
  if (starts_with(s, "\\{") && ends_with(s, "\\}") && set_wrapped(s))
    return set_key(split_top(s.substr(2, s.size() - 4), ","), depth);
  // an outer {..} group: PRM800K drops it
  if (s[0] == '{' && match_brace(s, 0) == s.size() - 1) return canon_struct(s.substr(1, s.size() - 2), depth + 1);
  // tuples and intervals (a, b), [a, b), ...: ordered, bracket kinds kept
  if (wrapped(s)) {
    const auto parts = split_top(s.substr(1, s.size() - 2), ",");
    if (parts.size() > 1) {
      const std::string key = "T" + std::string(1, s[0]) + ordered_keys(parts, depth) + std::string(1, s.back());
      if (key == interval_key(canon_struct("-\\infty", depth + 1), false, canon_struct("\\infty", depth + 1), false))
        return "T(-inf,inf)";
      return key;
    }
  }
  // bare lists "1, -2": the solutions, unordered
  if (auto parts = split_top(s, ","); parts.size() > 1) return set_key(parts, depth);
  // relations and equations
  {
    std::vector<std::string_view> parts;
    std::vector<Rel> ops;
    if (split_relations(s, parts, ops)) return relation_key(parts, ops, s, depth);
  }
  // unions of intervals and sets: unordered
  if (auto parts = split_top(s, "\\cup"); parts.size() > 1) {
    std::vector<std::string> keys;
    for (auto p : parts) keys.push_back(canon_struct(p, depth + 1));
    std::sort(keys.begin(), keys.end());
    std::string out = "U(";
    for (size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i];
    return out + ")";
  }
  // a \pm b: the set of both
  if (auto e = expand_pm(s); e.size() > 1) return set_key({s}, depth);
  // words (and the short answers that would otherwise read as products: no, on, ...)
  {
    std::string low;
    for (char c : s) low += lower(c);
    for (const char* w : {"no", "yes", "ok", "or", "and", "up", "on", "off"})
      if (low == w) return text_key(s);
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
  return canon_struct(detail::normalize_answer(answer), 0);
}

CustomEquivalence::CustomEquivalence(Rule rule, const AnswerEquivalence* fallback)
    : rule_(std::move(rule)), fallback_(fallback) {}

std::string CustomEquivalence::canonical(std::string_view answer) const {
  if (rule_)
    if (auto key = rule_(answer)) return "u:" + *key;
  if (fallback_) return "m:" + fallback_->canonical(answer);
  return "m:" + MathEquivalence{}.canonical(answer);
}

std::string StringEquivalence::canonical(std::string_view answer) const { return std::string(trim(answer)); }

std::string canonical_answer(std::string_view answer) { return MathEquivalence{}.canonical(answer); }
bool answers_equal(std::string_view a, std::string_view b) { return MathEquivalence{}.equal(a, b); }

}  // namespace stepverify
