// Answer extraction, the math-aware canonical key, and answer selection.
// The rules are written in include/stepverify/answer.h; this file follows them.
#include "stepverify/answer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "stepverify/errors.h"

namespace stepverify {
namespace {

// ---------------------------------------------------------------- helpers --

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Position of the `}` closing the `{` at `open`, or npos (raw brace counting).
size_t match_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    else if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

// Case-insensitive last occurrence of `needle` (lower-case) in `s`.
size_t rfind_ci(std::string_view s, std::string_view needle) {
  if (needle.size() > s.size()) return std::string_view::npos;
  for (size_t i = s.size() - needle.size() + 1; i-- > 0;) {
    size_t k = 0;
    while (k < needle.size() && lower(s[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return i;
  }
  return std::string_view::npos;
}

// The command name (letters) starting at s[i] == '\\', or "".
std::string_view command_at(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '\\') return {};
  size_t j = i + 1;
  while (j < s.size() && is_alpha(s[j])) ++j;
  return s.substr(i + 1, j - i - 1);
}

// Replaces every command `\from` (not followed by a letter) by `to`.
std::string replace_command(const std::string& s, std::string_view from, std::string_view to) {
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

std::string replace_all(const std::string& s, std::string_view from, std::string_view to) {
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
    if (s[i] == '$') math = !math;
    else if (!math && s[i] == '.' && is_space(s[i + 1])) return s.substr(0, i);
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

// ============================================================ equivalence ==

namespace {

// ------------------------------------------------------ exact arithmetic --

using i128 = __int128;
struct Overflow {};   // exact arithmetic left 128 bits
struct ParseFail {};  // not a form the parser understands (or a cap was hit)

i128 ck_add(i128 a, i128 b) {
  i128 r;
  if (__builtin_add_overflow(a, b, &r)) throw Overflow{};
  return r;
}
i128 ck_mul(i128 a, i128 b) {
  i128 r;
  if (__builtin_mul_overflow(a, b, &r)) throw Overflow{};
  return r;
}
i128 ck_abs(i128 a) {
  if (a == std::numeric_limits<i128>::min()) throw Overflow{};
  return a < 0 ? -a : a;
}
i128 gcd(i128 a, i128 b) {
  a = ck_abs(a);
  b = ck_abs(b);
  while (b != 0) {
    const i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}
std::string i128_str(i128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    const int d = static_cast<int>(v % 10);
    s += static_cast<char>('0' + (d < 0 ? -d : d));
    v /= 10;
  }
  if (neg) s += '-';
  std::reverse(s.begin(), s.end());
  return s;
}

struct Rat {
  i128 n = 0, d = 1;
  static Rat make(i128 n, i128 d) {
    if (d == 0) throw ParseFail{};
    if (d < 0) {
      n = ck_mul(n, -1);
      d = ck_mul(d, -1);
    }
    const i128 g = gcd(n, d);
    if (g > 1) {
      n /= g;
      d /= g;
    }
    return {n, d};
  }
  bool is_zero() const { return n == 0; }
  bool is_int() const { return d == 1; }
  std::string str() const { return d == 1 ? i128_str(n) : i128_str(n) + "/" + i128_str(d); }
};
Rat operator+(Rat a, Rat b) {
  const i128 g = gcd(a.d, b.d);
  return Rat::make(ck_add(ck_mul(a.n, b.d / g), ck_mul(b.n, a.d / g)), ck_mul(a.d, b.d / g));
}
Rat operator-(Rat a) { return {ck_mul(a.n, -1), a.d}; }
Rat operator*(Rat a, Rat b) {
  const i128 g1 = gcd(a.n, b.d), g2 = gcd(b.n, a.d);
  const i128 x = g1 ? g1 : 1, y = g2 ? g2 : 1;
  return Rat::make(ck_mul(a.n / x, b.n / y), ck_mul(a.d / y, b.d / x));
}
Rat inverse(Rat a) {
  if (a.n == 0) throw ParseFail{};
  return Rat::make(a.d, a.n);
}

// Writes n = s^2 * r with r square-free; false when n is too big to factor.
bool square_free(i128 n, i128& s, i128& r) {
  if (n <= 0 || n > 10000000000LL) return false;
  s = 1;
  r = 1;
  for (i128 p = 2; p * p <= n; ++p) {
    while (n % (p * p) == 0) {
      n /= p * p;
      s *= p;
    }
    if (n % p == 0) {
      n /= p;
      r *= p;
    }
  }
  r *= n;
  return true;
}

// --------------------------------------------------------- polynomials --

// A monomial: product of symbols with integer exponents times sqrt(rad),
// rad square-free (1: none).
struct Mono {
  std::map<std::string, int> syms;
  i128 rad = 1;
  std::string key() const {
    std::string k;
    if (rad != 1) k = "r" + i128_str(rad);
    for (const auto& [name, e] : syms) {
      if (!k.empty()) k += '*';
      k += name;
      if (e != 1) k += "^" + std::to_string(e);
    }
    return k;
  }
};

struct Poly {
  std::map<std::string, std::pair<Mono, Rat>> terms;  // key -> (monomial, coefficient)

  static Poly constant(Rat r) {
    Poly p;
    if (!r.is_zero()) p.terms[""] = {Mono{}, r};
    return p;
  }
  static Poly symbol(const std::string& name) {
    Mono m;
    m.syms[name] = 1;
    Poly p;
    p.terms[m.key()] = {m, Rat{1, 1}};
    return p;
  }
  bool is_constant() const { return terms.empty() || (terms.size() == 1 && terms.begin()->first.empty()); }
  Rat constant_value() const { return terms.empty() ? Rat{0, 1} : terms.begin()->second.second; }
  void add_term(const Mono& m, Rat c) {
    const std::string k = m.key();
    auto it = terms.find(k);
    if (it == terms.end()) {
      if (!c.is_zero()) terms.emplace(k, std::make_pair(m, c));
    } else {
      it->second.second = it->second.second + c;
      if (it->second.second.is_zero()) terms.erase(it);
    }
    if (terms.size() > kMaxTerms) throw ParseFail{};
  }
  std::string key() const {
    if (terms.empty()) return "0";
    std::string k;
    for (const auto& [mk, t] : terms) {
      if (!k.empty()) k += '+';
      k += t.second.str();
      if (!mk.empty()) k += "*" + mk;
    }
    return k;
  }
};

struct Budget {
  long work = kMaxWork;
  void spend(long n = 1) {
    work -= n;
    if (work < 0) throw ParseFail{};
  }
};

Poly operator+(const Poly& a, const Poly& b) {
  Poly r = a;
  for (const auto& [k, t] : b.terms) r.add_term(t.first, t.second);
  return r;
}
Poly negate(const Poly& a) {
  Poly r = a;
  for (auto& [k, t] : r.terms) t.second = -t.second;
  return r;
}
Mono mono_mul(const Mono& a, const Mono& b, Rat& coef) {
  Mono m = a;
  for (const auto& [name, e] : b.syms) {
    const int ne = m.syms[name] + e;
    if (ne == 0) m.syms.erase(name);
    else if (std::abs(ne) > 4 * kMaxExponent) throw ParseFail{};
    else m.syms[name] = ne;
  }
  const i128 g = gcd(a.rad, b.rad);
  m.rad = ck_mul(a.rad / g, b.rad / g);
  if (m.rad > 1000000000000000000LL) throw ParseFail{};
  coef = coef * Rat{g, 1};
  return m;
}
Poly mul(const Poly& a, const Poly& b, Budget& budget) {
  Poly r;
  for (const auto& [ka, ta] : a.terms)
    for (const auto& [kb, tb] : b.terms) {
      budget.spend();
      Rat c = ta.second * tb.second;
      const Mono m = mono_mul(ta.first, tb.first, c);
      r.add_term(m, c);
    }
  return r;
}
// 1 / (single term); ParseFail for sums.
Poly inverse_term(const Poly& p) {
  if (p.terms.size() != 1) throw ParseFail{};
  const auto& [m, c] = p.terms.begin()->second;
  Mono inv;
  for (const auto& [name, e] : m.syms) inv.syms[name] = -e;
  inv.rad = m.rad;
  Rat ic = inverse(c) * inverse(Rat{m.rad, 1});
  Poly r;
  r.add_term(inv, ic);
  return r;
}

// ------------------------------------------------------------- the AST --

enum class Kind { Num, Sym, Add, Mul, Div, Neg, Pow, Sqrt, Root, Func, Fact, Binom };
struct Node {
  Kind kind;
  std::string text;  // Num: literal; Sym: name; Func: name
  int a = -1, b = -1;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  std::vector<Node> nodes;

  int parse_all() {
    const int r = expr();
    skip();
    if (i_ != s_.size()) throw ParseFail{};
    return r;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
  int depth_ = 0;

  int add(Kind k, std::string text = {}, int a = -1, int b = -1) {
    if (nodes.size() > 4 * kMaxStructuredAnswerBytes) throw ParseFail{};
    nodes.push_back({k, std::move(text), a, b});
    return static_cast<int>(nodes.size() - 1);
  }
  bool skip() {
    const size_t b = i_;
    while (i_ < s_.size() && is_space(s_[i_])) ++i_;
    return i_ != b;
  }
  char peek() {
    skip();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  std::string_view peek_command() {
    skip();
    return command_at(s_, i_);
  }
  void expect(char c) {
    if (peek() != c) throw ParseFail{};
    ++i_;
  }
  struct Deeper {
    Parser& p;
    explicit Deeper(Parser& p) : p(p) {
      if (++p.depth_ > kMaxNesting) throw ParseFail{};
    }
    ~Deeper() { --p.depth_; }
  };

  int expr() {
    Deeper guard(*this);
    int left = unary();
    for (;;) {
      const char c = peek();
      if (c == '+') {
        ++i_;
        left = add(Kind::Add, {}, left, unary());
      } else if (c == '-') {
        ++i_;
        left = add(Kind::Add, {}, left, add(Kind::Neg, {}, unary()));
      } else {
        return left;
      }
    }
  }
  int unary() {
    Deeper guard(*this);
    const char c = peek();
    if (c == '-') {
      ++i_;
      return add(Kind::Neg, {}, unary());
    }
    if (c == '+') {
      ++i_;
      return unary();
    }
    return term(power());
  }
  // Continues a product whose first factor is `left`.
  int term(int left) {
    for (;;) {
      const char c = peek();
      const std::string_view cmd = peek_command();
      if (c == '*' || cmd == "cdot" || cmd == "times") {
        i_ += c == '*' ? 1 : 1 + cmd.size();
        left = add(Kind::Mul, {}, left, signed_power());
      } else if (c == '/' || cmd == "div") {
        i_ += c == '/' ? 1 : 1 + cmd.size();
        left = add(Kind::Div, {}, left, signed_power());
      } else if (starts_primary()) {
        if (nodes[left].kind == Kind::Num && is_digit_or_dot(peek())) throw ParseFail{};  // "2 3"
        left = add(Kind::Mul, {}, left, power());
      } else {
        return left;
      }
    }
  }
  int signed_power() {
    Deeper guard(*this);
    if (peek() == '-') {
      ++i_;
      return add(Kind::Neg, {}, signed_power());
    }
    return power();
  }
  static bool is_digit_or_dot(char c) { return is_digit(c) || c == '.'; }
  bool starts_primary() {
    const char c = peek();
    if (is_digit_or_dot(c) || is_alpha(c) || c == '(' || c == '{') return true;
    if (c == '\\') {
      const std::string_view cmd = peek_command();
      return !cmd.empty() && cmd != "cdot" && cmd != "times" && cmd != "div" && cmd != "pm" && cmd != "mp";
    }
    return false;
  }
  int power() {
    int base = primary();
    for (;;) {
      const char c = peek();
      if (c == '!') {
        ++i_;
        base = add(Kind::Fact, {}, base);
      } else if (c == '^') {
        ++i_;
        base = add(Kind::Pow, {}, base, exponent());
      } else {
        return base;
      }
    }
  }
  int exponent() {
    Deeper guard(*this);
    const char c = peek();
    if (c == '{') return group('{', '}');
    if (c == '-') {
      ++i_;
      return add(Kind::Neg, {}, exponent());
    }
    if (is_digit(c)) return add(Kind::Num, std::string(1, s_[i_++]));
    if (is_alpha(c)) return add(Kind::Sym, std::string(1, s_[i_++]));
    if (c == '\\') return primary();
    throw ParseFail{};
  }
  int group(char open, char close) {
    expect(open);
    const int r = expr();
    expect(close);
    return r;
  }
  // One LaTeX argument: {..} or a single character or a command.
  int argument() {
    const char c = peek();
    if (c == '{') return group('{', '}');
    if (is_digit(c)) return add(Kind::Num, std::string(1, s_[i_++]));
    if (is_alpha(c)) return add(Kind::Sym, std::string(1, s_[i_++]));
    if (c == '\\') return primary();
    throw ParseFail{};
  }
  // The raw text of a {..} group, spaces removed.
  std::string raw_group() {
    if (peek() != '{') {
      if (i_ < s_.size() && (is_alpha(s_[i_]) || is_digit(s_[i_]))) return std::string(1, s_[i_++]);
      throw ParseFail{};
    }
    const size_t close = match_brace(s_, i_);
    if (close == std::string_view::npos) throw ParseFail{};
    std::string out;
    for (size_t k = i_ + 1; k < close; ++k)
      if (!is_space(s_[k])) out += s_[k];
    i_ = close + 1;
    return out;
  }
  std::string subscript() {
    if (peek() != '_') return {};
    ++i_;
    skip();
    return "_" + raw_group();
  }
  bool integer_literal(int n) const {
    if (nodes[n].kind != Kind::Num) return false;
    return nodes[n].text.find('.') == std::string::npos;
  }
  int number() {
    const size_t b = i_;
    while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
    }
    std::string lit(s_.substr(b, i_ - b));
    if (lit == ".") throw ParseFail{};
    // Scientific notation 1.5e3, 2E-4: the literal times 10^k.
    if (i_ + 1 < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) ++j;
      const size_t digits = j;
      while (j < s_.size() && is_digit(s_[j])) ++j;
      if (j > digits && j - digits <= 3 && (j == s_.size() || !is_alpha(s_[j]))) {
        const std::string k(s_.substr(i_ + 1, j - i_ - 1));
        i_ = j;
        int e = add(Kind::Num, k.substr(k[0] == '-' || k[0] == '+' ? 1 : 0));
        if (k[0] == '-') e = add(Kind::Neg, {}, e);
        return add(Kind::Mul, {}, add(Kind::Num, lit), add(Kind::Pow, {}, add(Kind::Num, "10"), e));
      }
    }
    if (i_ < s_.size() && s_[i_] == '_') return add(Kind::Sym, lit + subscript());  // 52_8: a base-8 numeral
    const int n = add(Kind::Num, lit);
    // Mixed numbers: 1\frac{4}{5} and "7 3/4".
    const size_t save = i_;
    const size_t node_mark = nodes.size();
    const bool frac_follows = integer_literal(n) && peek_command() == "frac";
    i_ = save;
    if (frac_follows) {
      skip();
      i_ += 5;
      const int p = argument(), q = argument();
      if (integer_literal(p) && integer_literal(q)) return add(Kind::Add, {}, n, add(Kind::Div, {}, p, q));
      i_ = save;
      nodes.resize(node_mark);
    } else if (integer_literal(n) && i_ < s_.size() && s_[i_] == ' ' && i_ + 1 < s_.size() && is_digit(s_[i_ + 1])) {
      ++i_;
      const size_t b2 = i_;
      while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
      const std::string p(s_.substr(b2, i_ - b2));
      if (i_ < s_.size() && s_[i_] == '/') {
        const size_t b3 = ++i_;
        while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
        if (i_ > b3 && (i_ == s_.size() || !is_alpha(s_[i_])))
          return add(Kind::Add, {}, n, add(Kind::Div, {}, add(Kind::Num, p), add(Kind::Num, std::string(s_.substr(b3, i_ - b3)))));
      }
      i_ = save;
      nodes.resize(node_mark);
    }
    return n;
  }

  int primary() {
    Deeper guard(*this);
    const char c = peek();
    if (is_digit_or_dot(c)) return number();
    if (is_alpha(c)) {
      if (i_ + 2 < s_.size() && is_alpha(s_[i_ + 1]) && is_alpha(s_[i_ + 2])) throw ParseFail{};  // a word
      std::string name(1, s_[i_++]);
      return add(Kind::Sym, name + subscript());
    }
    if (c == '(') return group('(', ')');
    if (c == '{') return group('{', '}');
    if (c == '|') {
      ++i_;
      const int inner = expr();
      expect('|');
      return add(Kind::Func, "abs", inner);
    }
    if (c != '\\') throw ParseFail{};
    const std::string cmd(command_at(s_, i_));
    if (cmd.empty()) throw ParseFail{};
    i_ += 1 + cmd.size();
    if (cmd == "frac") {
      const int p = argument();
      const int q = argument();
      return add(Kind::Div, {}, p, q);
    }
    if (cmd == "binom") {
      const int p = argument();
      const int q = argument();
      return add(Kind::Binom, {}, p, q);
    }
    if (cmd == "sqrt") {
      if (peek() == '[') {
        const int n = group('[', ']');
        return add(Kind::Root, {}, n, argument());
      }
      return add(Kind::Sqrt, {}, argument());
    }
    static const std::set<std::string> kFunctions = {
        "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
        "log", "ln", "exp", "lg", "det", "gcd", "lcm", "max", "min", "arg"};
    if (kFunctions.count(cmd)) {
      std::string name = "\\" + cmd + subscript();
      int exp = -1;
      if (peek() == '^') {
        ++i_;
        exp = exponent();
      }
      if (name.size() == cmd.size() + 1) name += subscript();  // \log^2_3 as well as \log_3^2
      int arg;
      const char a = peek();
      if (a == '(' || a == '{') {
        arg = group(a, a == '(' ? ')' : '}');
      } else {  // \cot x, \sin 2x: a run of numbers, letters and symbols
        arg = power();
        while (is_alpha(peek()) || (peek() == '\\' && kSymbols().count(std::string(peek_command()))))
          arg = add(Kind::Mul, {}, arg, power());
      }
      int f = add(Kind::Func, name, arg);
      if (exp >= 0) f = add(Kind::Pow, {}, f, exp);
      return f;
    }
    if (kSymbols().count(cmd)) return add(Kind::Sym, "\\" + cmd + subscript());
    static const std::set<std::string> kDecorated = {"mathbb", "overline", "bar", "vec", "hat", "widehat",
                                                     "overrightarrow", "mathcal", "operatorname", "tilde"};
    if (kDecorated.count(cmd)) {
      skip();
      return add(Kind::Sym, "\\" + cmd + "{" + raw_group() + "}");
    }
    throw ParseFail{};
  }

  static const std::set<std::string>& kSymbols() {
    static const std::set<std::string> s = {
        "pi",    "infty", "alpha", "beta",   "gamma",  "delta",  "epsilon", "varepsilon", "zeta",  "eta",
        "theta", "vartheta", "iota", "kappa", "lambda", "mu",    "nu",      "xi",         "rho",   "sigma",
        "tau",   "upsilon", "phi",  "varphi", "chi",    "psi",    "omega",   "Gamma",      "Delta", "Theta",
        "Lambda", "Xi",    "Pi",    "Sigma",  "Phi",    "Psi",    "Omega",   "ell"};
    return s;
  }
};

Rat literal_value(const std::string& lit) {
  i128 n = 0, d = 1;
  bool frac = false;
  for (char ch : lit) {
    if (ch == '.') {
      frac = true;
      continue;
    }
    n = ck_add(ck_mul(n, 10), ch - '0');
    if (frac) d = ck_mul(d, 10);
  }
  return Rat::make(n, d);
}

Poly rat_pow(const Poly& base, long e, Budget& budget);

// Exact evaluation; throws Overflow (128 bits exceeded) or ParseFail.
class Exact {
 public:
  Exact(const std::vector<Node>& nodes, Budget& budget) : n_(nodes), budget_(budget) {}
  Poly eval(int id) {
    const Node& nd = n_[id];
    budget_.spend();
    switch (nd.kind) {
      case Kind::Num: return Poly::constant(literal_value(nd.text));
      case Kind::Sym: return Poly::symbol(nd.text);
      case Kind::Add: return eval(nd.a) + eval(nd.b);
      case Kind::Neg: return negate(eval(nd.a));
      case Kind::Mul: return mul(eval(nd.a), eval(nd.b), budget_);
      case Kind::Div: return divide(eval(nd.a), eval(nd.b));
      case Kind::Pow: return power(eval(nd.a), eval(nd.b));
      case Kind::Sqrt: return sqrt_of(eval(nd.a));
      case Kind::Root: return root_of(eval(nd.a), eval(nd.b));
      case Kind::Func: {
        Poly arg = eval(nd.a);
        if (nd.text == "abs" && arg.is_constant()) return arg.constant_value().n < 0 ? negate(arg) : arg;
        return Poly::symbol("@" + nd.text + "(" + arg.key() + ")");
      }
      case Kind::Fact: return factorial(eval(nd.a));
      case Kind::Binom: return binom(eval(nd.a), eval(nd.b));
    }
    throw ParseFail{};
  }

 private:
  const std::vector<Node>& n_;
  Budget& budget_;

  static Poly opaque(const std::string& what, const Poly& a, const Poly& b) {
    return Poly::symbol("@" + what + "[" + a.key() + "|" + b.key() + "]");
  }
  Poly divide(const Poly& a, const Poly& b) {
    if (b.terms.empty()) throw ParseFail{};
    if (b.terms.size() == 1) return mul(a, inverse_term(b), budget_);
    if (a.terms.empty()) return a;
    // A sum in the denominator: an opaque quotient, scaled so the first
    // denominator term has coefficient 1.
    const Poly s = Poly::constant(inverse(b.terms.begin()->second.second));
    return opaque("frac", mul(a, s, budget_), mul(b, s, budget_));
  }
  Poly power(const Poly& base, const Poly& e) {
    if (!e.is_constant()) return opaque("pow", base, e);
    const Rat r = e.constant_value();
    if (r.is_int()) {
      if (r.n > kMaxExponent || r.n < -kMaxExponent) throw ParseFail{};
      return rat_pow(base, static_cast<long>(r.n), budget_);
    }
    if (r.d == 2 && base.is_constant() && base.constant_value().n >= 0) {
      if (r.n > kMaxExponent || r.n < -kMaxExponent) throw ParseFail{};
      return rat_pow(sqrt_of(base), static_cast<long>(r.n), budget_);
    }
    return opaque("pow", base, e);
  }
  Poly sqrt_of(const Poly& x) {
    if (x.is_constant()) {
      const Rat v = x.constant_value();
      if (v.n == 0) return x;
      if (v.n > 0) {
        i128 s, r;
        if (square_free(ck_mul(v.n, v.d), s, r)) {  // sqrt(n/d) = sqrt(n d) / d
          Mono m;
          m.rad = r;
          Poly p;
          p.add_term(m, Rat::make(s, v.d));
          return p;
        }
      }
    }
    return Poly::symbol("@sqrt(" + x.key() + ")");
  }
  Poly root_of(const Poly& n, const Poly& x) {
    if (n.is_constant() && n.constant_value().is_int() && n.constant_value().n == 2) return sqrt_of(x);
    if (n.is_constant() && x.is_constant() && n.constant_value().is_int()) {
      const i128 k = n.constant_value().n;
      const Rat v = x.constant_value();
      if (k >= 3 && k <= 9 && v.is_int()) {  // exact integer roots only
        const i128 mag = ck_abs(v.n);
        if (v.n >= 0 || k % 2 == 1) {
          const double guess = std::round(std::pow(static_cast<double>(mag), 1.0 / static_cast<double>(k)));
          for (i128 c = static_cast<i128>(guess) - 1; c <= static_cast<i128>(guess) + 1; ++c) {
            if (c < 0) continue;
            i128 p = 1;
            try {
              for (i128 t = 0; t < k; ++t) p = ck_mul(p, c);
            } catch (const Overflow&) {
              break;
            }
            if (p == mag) return Poly::constant(Rat{v.n < 0 ? -c : c, 1});
          }
        }
      }
    }
    return opaque("root", n, x);
  }
  Poly factorial(const Poly& x) {
    if (x.is_constant() && x.constant_value().is_int() && x.constant_value().n >= 0 && x.constant_value().n <= 33) {
      i128 f = 1;
      for (i128 k = 2; k <= x.constant_value().n; ++k) f = ck_mul(f, k);
      return Poly::constant(Rat{f, 1});
    }
    return Poly::symbol("@fact(" + x.key() + ")");
  }
  Poly binom(const Poly& n, const Poly& k) {
    if (n.is_constant() && k.is_constant() && n.constant_value().is_int() && k.constant_value().is_int()) {
      const i128 nn = n.constant_value().n, kk = k.constant_value().n;
      if (nn >= 0 && kk >= 0 && kk <= nn && nn <= 200) {
        i128 r = 1;
        const i128 kmin = std::min(kk, nn - kk);
        for (i128 t = 1; t <= kmin; ++t) r = ck_mul(r, nn - kmin + t) / t;
        return Poly::constant(Rat{r, 1});
      }
      if (nn >= 0 && kk > nn) return Poly{};
    }
    return opaque("binom", n, k);
  }
};

Poly rat_pow(const Poly& base, long e, Budget& budget) {
  if (e == 0) return Poly::constant(Rat{1, 1});
  if (e < 0) {
    if (base.terms.size() != 1) return Poly::symbol("@pow[" + base.key() + "|" + std::to_string(e) + "]");
    return rat_pow(inverse_term(base), -e, budget);
  }
  if (base.terms.size() > 1 && e > 16) throw ParseFail{};
  Poly result = Poly::constant(Rat{1, 1}), b = base;
  while (e > 0) {  // square and multiply
    if (e & 1) result = mul(result, b, budget);
    e >>= 1;
    if (e) b = mul(b, b, budget);
  }
  return result;
}

// Numeric fallback (after an overflow): long double, numbers only.
long double eval_float(const std::vector<Node>& n, int id, Budget& budget) {
  const Node& nd = n[id];
  budget.spend();
  auto f = [&](int k) { return eval_float(n, k, budget); };
  long double r;
  switch (nd.kind) {
    case Kind::Num: r = std::strtold(nd.text.c_str(), nullptr); break;
    case Kind::Add: r = f(nd.a) + f(nd.b); break;
    case Kind::Neg: r = -f(nd.a); break;
    case Kind::Mul: r = f(nd.a) * f(nd.b); break;
    case Kind::Div: r = f(nd.a) / f(nd.b); break;
    case Kind::Pow: r = std::pow(f(nd.a), f(nd.b)); break;
    case Kind::Sqrt: r = std::sqrt(f(nd.a)); break;
    case Kind::Root: r = std::pow(f(nd.b), 1.0L / f(nd.a)); break;
    case Kind::Fact: r = std::tgamma(f(nd.a) + 1); break;
    default: throw ParseFail{};
  }
  if (!std::isfinite(r)) throw ParseFail{};
  return r;
}

// "e:<poly>" (exact) or "f:<10 significant digits>" (overflow), or nullopt.
std::optional<std::string> expression_key(std::string_view s, Poly* poly_out = nullptr) {
  Parser p(s);
  int root;
  try {
    root = p.parse_all();
  } catch (const ParseFail&) {
    return std::nullopt;
  }
  Budget budget;
  try {
    Exact ex(p.nodes, budget);
    Poly v = ex.eval(root);
    if (poly_out) *poly_out = v;
    return "e:" + v.key();
  } catch (const ParseFail&) {
    return std::nullopt;
  } catch (const Overflow&) {
  }
  if (poly_out) return std::nullopt;
  try {
    Budget b2;
    const long double v = eval_float(p.nodes, root, b2);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9Le", v);
    if (v == 0) return std::string("e:0");
    return std::string("f:") + buf;
  } catch (const ParseFail&) {
    return std::nullopt;
  }
}

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
  static const std::set<std::string_view> kWrappers = {"text",   "textbf", "textit", "textrm", "mathrm", "mathbf",
                                                       "mathit", "mbox",   "boxed",  "textnormal", "emph", "mathsf"};
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
      "unit", "units", "degree", "degrees", "deg", "radian", "radians", "cm", "centimeter", "centimeters", "mm",
      "millimeters", "km", "kilometers", "meter", "meters", "metre", "metres", "inch", "inches", "foot", "feet",
      "ft", "yard", "yards", "yd", "mile", "miles", "mph", "kmh", "hour", "hours", "hr", "hrs", "minute",
      "minutes", "mins", "second", "seconds", "secs", "day", "days", "week", "weeks", "month", "months", "year",
      "years", "dollar", "dollars", "cent", "cents", "pound", "pounds", "lb", "lbs", "kg", "kilograms", "gram",
      "grams", "liter", "liters", "litre", "litres", "ml", "gallon", "gallons", "ounce", "ounces", "oz", "square",
      "sq", "cubic", "percent", "point", "points", "acre", "acres", "mm", "people", "students", "ways"};
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
        if (core[k] == '}') ++depth;
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
  for (auto [from, to] : {std::pair{"dfrac", "\\frac"}, std::pair{"tfrac", "\\frac"}, std::pair{"cfrac", "\\frac"},
                          std::pair{"dbinom", "\\binom"}, std::pair{"tbinom", "\\binom"}, std::pair{"leq", "\\le"},
                          std::pair{"geq", "\\ge"}, std::pair{"neq", "\\ne"}, std::pair{"leqslant", "\\le"},
                          std::pair{"geqslant", "\\ge"}, std::pair{"varnothing", "\\emptyset"},
                          std::pair{"bmatrix", "pmatrix"}})
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
        if (j == s.size() || !(is_digit(s[j]) || is_alpha(s[j]) || s[j] == '{' || s[j] == '\\' || s[j] == '-' ||
                               s[j] == '('))
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
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') --depth;
    else if (depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      if (sep.size() > 1 && sep[0] == '\\' && is_alpha(sep[1]) && i + sep.size() < s.size() && is_alpha(s[i + sep.size()])) continue;
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
    if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
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
    if (s[i + 1] == '{') ++depth;
    else if (s[i + 1] == '}' && --depth == 0) return i + 2 == s.size();
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
    static const std::set<std::string_view> kGreek = {"alpha", "beta", "gamma", "theta", "phi", "lambda", "mu", "omega"};
    if (!kGreek.count(cmd)) return s;
    i = 1 + cmd.size();
  } else {
    return s;
  }
  while (i < s.size() && s[i] == ' ') ++i;
  std::string_view rest;
  if (i < s.size() && s[i] == '=') rest = s.substr(i + 1);
  else if (command_at(s, i) == "in") rest = s.substr(i + 3);
  else return s;
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
      } catch (const Overflow&) {
      }
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

std::optional<std::string> extract_answer(std::string_view text) { return DefaultExtractor{}.extract(text); }
std::string canonical_answer(std::string_view answer) { return MathEquivalence{}.canonical(answer); }
bool answers_equal(std::string_view a, std::string_view b) { return MathEquivalence{}.equal(a, b); }

// ============================================================== selection ==

StepAggregate parse_step_aggregate(std::string_view name) {
  if (name == "min") return StepAggregate::Min;
  if (name == "prod" || name == "product") return StepAggregate::Prod;
  if (name == "last") return StepAggregate::Last;
  if (name == "mean") return StepAggregate::Mean;
  throw InputError("unknown aggregate '" + std::string(name) + "' (expected min, prod, last or mean)");
}

double aggregate_steps(const std::vector<double>& scores, StepAggregate how) {
  if (scores.empty()) return std::numeric_limits<double>::quiet_NaN();
  switch (how) {
    case StepAggregate::Min: return *std::min_element(scores.begin(), scores.end());
    case StepAggregate::Last: return scores.back();
    case StepAggregate::Prod: {
      double p = 1.0;
      for (double v : scores) p *= v;
      return p;
    }
    case StepAggregate::Mean: {
      double m = 0.0;
      for (double v : scores) m += v;
      return m / static_cast<double>(scores.size());
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

Selection select_answer(const std::vector<Candidate>& candidates, const SelectionOptions& options) {
  static const DefaultExtractor kExtractor;
  static const MathEquivalence kEquivalence;
  const AnswerExtractor& extractor = options.extractor ? *options.extractor : kExtractor;
  const AnswerEquivalence& equivalence = options.equivalence ? *options.equivalence : kEquivalence;

  Selection sel;
  std::map<std::string, size_t> group_of;
  std::vector<bool> has_score;  // per group: some member has a finite score
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    std::optional<std::string> ans = c.answer ? c.answer : extractor.extract(c.text);
    double score = c.score ? *c.score : aggregate_steps(c.step_scores, options.aggregate);
    if (!std::isfinite(score)) score = nan;
    sel.answers.push_back(ans);
    sel.scores.push_back(score);
    if (!std::isnan(score) && (sel.best_index < 0 || score > sel.scores[static_cast<size_t>(sel.best_index)]))
      sel.best_index = static_cast<long>(i);
    if (!ans) continue;
    const std::string key = equivalence.canonical(*ans);
    auto [it, fresh] = group_of.emplace(key, sel.groups.size());
    if (fresh) {
      sel.groups.push_back(AnswerGroup{key, *ans, {}, 0.0});
      has_score.push_back(false);
    }
    AnswerGroup& g = sel.groups[it->second];
    g.members.push_back(i);
    if (!std::isnan(score)) {
      g.weight += score;
      has_score[it->second] = true;
    }
  }
  for (size_t g = 0; g < sel.groups.size(); ++g) {
    if (sel.majority_group < 0 ||
        sel.groups[g].members.size() > sel.groups[static_cast<size_t>(sel.majority_group)].members.size())
      sel.majority_group = static_cast<long>(g);
    if (has_score[g] &&
        (sel.weighted_group < 0 || sel.groups[g].weight > sel.groups[static_cast<size_t>(sel.weighted_group)].weight))
      sel.weighted_group = static_cast<long>(g);
  }
  if (sel.majority_group >= 0) sel.majority = sel.groups[static_cast<size_t>(sel.majority_group)].answer;
  if (sel.weighted_group >= 0) sel.weighted = sel.groups[static_cast<size_t>(sel.weighted_group)].answer;
  if (sel.best_index >= 0) sel.best = sel.answers[static_cast<size_t>(sel.best_index)];
  return sel;
}

}  // namespace stepverify
