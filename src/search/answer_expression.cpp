// Exact evaluation of answer expressions for MathEquivalence: checked 128-bit
// arithmetic, polynomials, the LaTeX expression parser and its evaluator.
// The rules are written in include/stepverify/answer.h; this file follows them.
#include "search/answer_expression.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <vector>

#include "search/answer_internal.h"

namespace stepverify::detail {

// ------------------------------------------------------ exact arithmetic --

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
  if (n <= 0 || n > 100000000LL) return false;  // 1e4 trial divisions at most
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
    int ne = m.syms[name] + e;
    if (name == "i") {  // the imaginary unit: i^2 = -1
      const int q = ((ne % 4) + 4) % 4;
      if (q >= 2) coef = -coef;
      ne = q % 2;
    }
    if (ne == 0)
      m.syms.erase(name);
    else if (std::abs(ne) > 4 * kMaxExponent)
      throw ParseFail{};
    else
      m.syms[name] = ne;
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

namespace {

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
    // Chains ("1+1+...", "x!!!...") are left-deep trees the evaluators
    // recurse through: their depth is capped like bracket nesting.
    const int d =
        1 + std::max(a >= 0 ? depth_of_[static_cast<size_t>(a)] : 0, b >= 0 ? depth_of_[static_cast<size_t>(b)] : 0);
    if (d > 4 * kMaxNesting) throw ParseFail{};
    nodes.push_back({k, std::move(text), a, b});
    depth_of_.push_back(d);
    return static_cast<int>(nodes.size() - 1);
  }
  std::vector<int> depth_of_;  // tree depth of each node
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
        // A number right after a number is no product: "2 3", "4 4/9 2".
        if (is_digit_or_dot(peek()) && ends_in_digit()) throw ParseFail{};
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
  // Whether the text parsed so far ends in a digit (spaces skipped).
  bool ends_in_digit() const {
    size_t k = i_;
    while (k > 0 && is_space(s_[k - 1])) --k;
    return k > 0 && is_digit(s_[k - 1]);
  }
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
          return add(Kind::Add, {}, n,
                     add(Kind::Div, {}, add(Kind::Num, p), add(Kind::Num, std::string(s_.substr(b3, i_ - b3)))));
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
    static const std::set<std::string> kFunctions = {"sin",    "cos",  "tan",  "cot",  "sec", "csc", "arcsin", "arccos",
                                                     "arctan", "sinh", "cosh", "tanh", "log", "ln",  "exp",    "lg",
                                                     "det",    "gcd",  "lcm",  "max",  "min", "arg"};
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
    static const std::set<std::string> kDecorated = {"mathbb",  "overline",       "bar",     "vec",          "hat",
                                                     "widehat", "overrightarrow", "mathcal", "operatorname", "tilde"};
    if (kDecorated.count(cmd)) {
      skip();
      return add(Kind::Sym, "\\" + cmd + "{" + raw_group() + "}");
    }
    throw ParseFail{};
  }

  static const std::set<std::string>& kSymbols() {
    static const std::set<std::string> s = {
        "pi",     "infty",    "alpha", "beta",   "gamma",  "delta", "epsilon", "varepsilon", "zeta",  "eta",
        "theta",  "vartheta", "iota",  "kappa",  "lambda", "mu",    "nu",      "xi",         "rho",   "sigma",
        "tau",    "upsilon",  "phi",   "varphi", "chi",    "psi",   "omega",   "Gamma",      "Delta", "Theta",
        "Lambda", "Xi",       "Pi",    "Sigma",  "Phi",    "Psi",   "Omega",   "ell"};
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
      case Kind::Num:
        return Poly::constant(literal_value(nd.text));
      case Kind::Sym:
        return Poly::symbol(nd.text);
      case Kind::Add:
        return eval(nd.a) + eval(nd.b);
      case Kind::Neg:
        return negate(eval(nd.a));
      case Kind::Mul:
        return mul(eval(nd.a), eval(nd.b), budget_);
      case Kind::Div:
        return divide(eval(nd.a), eval(nd.b));
      case Kind::Pow:
        return power(eval(nd.a), eval(nd.b));
      case Kind::Sqrt:
        return sqrt_of(eval(nd.a));
      case Kind::Root:
        return root_of(eval(nd.a), eval(nd.b));
      case Kind::Func: {
        Poly arg = eval(nd.a);
        if (nd.text == "abs" && arg.is_constant()) return arg.constant_value().n < 0 ? negate(arg) : arg;
        return Poly::symbol("@" + nd.text + "(" + arg.key() + ")");
      }
      case Kind::Fact:
        return factorial(eval(nd.a));
      case Kind::Binom:
        return binom(eval(nd.a), eval(nd.b));
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
      // A number to a power stops at 128 bits (Overflow); a polynomial at kMaxExponent.
      const long limit = base.is_constant() ? 4096 : kMaxExponent;
      if (r.n > limit || r.n < -limit) throw ParseFail{};
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

// ------------------------------------------------------------ numbers --

// A decimal literal ("12", "0.5", ".25") as long double, whatever the C
// locale's decimal point (strtold would follow LC_NUMERIC).
long double literal_float(const std::string& lit) {
  long double mant = 0;
  int exp10 = 0, digits = 0;
  bool frac = false;
  for (char ch : lit) {
    if (ch == '.') {
      frac = true;
      continue;
    }
    if (!is_digit(ch)) throw ParseFail{};
    if (digits < 19) {
      mant = mant * 10 + (ch - '0');
      if (mant != 0) ++digits;
      if (frac) --exp10;
    } else if (!frac) {
      ++exp10;  // digits past the 19th only scale the value
    }
  }
  return mant * std::pow(10.0L, static_cast<long double>(exp10));
}

constexpr long double kPi = 3.141592653589793238462643383279502884L;
constexpr long double kE = 2.718281828459045235360287471352662498L;

uint64_t fnv1a(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ (seed * 0x9E3779B97F4A7C15ULL);
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 32;
  return h;
}

// A base numeral such as 204_5 (a symbol that starts with a digit).
bool is_numeral(const std::string& name) { return !name.empty() && is_digit(name[0]); }

// A symbol's value at point k: the constants \pi, e, i; a base numeral (the
// same at every point); a variable (a value in [0.35, 1.65) hashed from its
// name and k). nullopt for \infty and the opaque symbols of exact arithmetic.
std::optional<Complex> symbol_value(const std::string& name, int k, bool* variable, bool* numerals = nullptr) {
  if (name == "\\pi") return Complex(kPi);
  if (name == "e") return Complex(kE);
  if (name == "i") return Complex(0, 1);
  if (name.empty() || name[0] == '@' || name == "\\infty") return std::nullopt;
  const bool numeral = is_numeral(name);
  if (!numeral && variable) *variable = true;
  if (numeral && numerals) *numerals = true;
  const uint64_t h = fnv1a(name, numeral ? 0 : static_cast<uint64_t>(k) + 1);
  return Complex(0.35L + 1.3L * static_cast<long double>(h >> 11) / 9007199254740992.0L);
}

Complex checked(Complex z) {
  if (!std::isfinite(z.real()) || !std::isfinite(z.imag())) throw ParseFail{};
  return Complex(z.real() + 0.0L, z.imag() + 0.0L);  // no negative zeros: sqrt(-4) is 2i, not -2i
}

bool is_integral(Complex z, long double limit) {
  return z.imag() == 0 && std::fabs(z.real()) <= limit && std::floor(z.real()) == z.real();
}

Complex int_pow(Complex base, long e) {
  if (e < 0) {
    if (base == Complex(0)) throw ParseFail{};
    return Complex(1) / int_pow(base, -e);
  }
  Complex r(1);
  while (e > 0) {
    if (e & 1) r *= base;
    e >>= 1;
    if (e) base *= base;
  }
  return r;
}

Complex real_or_principal_root(Complex x, long double n) {
  if (x.imag() == 0 && n == std::floor(n) && n >= 1) {
    if (x.real() >= 0) return Complex(std::pow(x.real(), 1 / n));
    if (std::fmod(n, 2.0L) == 1) return Complex(-std::pow(-x.real(), 1 / n));  // odd root of a negative number
  }
  return std::pow(x, Complex(1) / Complex(n));
}

long double gamma_of(long double x) {
  const long double g = std::tgamma(x);
  if (!std::isfinite(g)) throw ParseFail{};
  return g;
}

// Evaluation in complex long double at point k; throws ParseFail for what has
// no number (\infty, gcd, a pole, an overflow).
class Numeric {
 public:
  Numeric(const std::vector<Node>& nodes, int k, Budget& budget) : n_(nodes), k_(k), budget_(budget) {}
  bool variables = false;
  bool numerals = false;

  Complex eval(int id) {
    const Node& nd = n_[id];
    budget_.spend();
    switch (nd.kind) {
      case Kind::Num:
        return checked(Complex(literal_float(nd.text)));
      case Kind::Sym: {
        auto v = symbol_value(nd.text, k_, &variables, &numerals);
        if (!v) throw ParseFail{};
        return *v;
      }
      case Kind::Add: {
        const Complex a = eval(nd.a), b = eval(nd.b), r = a + b;
        // A sum that cancels to rounding error is zero.
        if (std::abs(r) <= 1e-15L * std::max(std::abs(a), std::abs(b))) return Complex(0);
        return checked(r);
      }
      case Kind::Neg:
        return checked(-eval(nd.a));
      case Kind::Mul:
        return checked(eval(nd.a) * eval(nd.b));
      case Kind::Div: {
        const Complex a = eval(nd.a), b = eval(nd.b);
        if (b == Complex(0)) throw ParseFail{};
        return checked(a / b);
      }
      case Kind::Pow: {
        const Complex a = eval(nd.a), b = eval(nd.b);
        if (is_integral(b, 4096)) return checked(int_pow(a, static_cast<long>(b.real())));
        if (a == Complex(0)) {
          if (b.real() > 0) return Complex(0);
          throw ParseFail{};
        }
        if (b.imag() == 0 && a.imag() == 0 && a.real() < 0) {  // (-8)^{1/3}: the real root
          const long double inv = 1 / b.real();
          if (std::fabs(inv - std::round(inv)) < 1e-12L) return checked(real_or_principal_root(a, std::round(inv)));
        }
        return checked(std::pow(a, b));
      }
      case Kind::Sqrt:
        return checked(std::sqrt(eval(nd.a)));
      case Kind::Root: {
        const Complex n = eval(nd.a), x = eval(nd.b);
        if (!is_integral(n, 1000) || n.real() < 1) return checked(std::pow(x, Complex(1) / n));
        return checked(real_or_principal_root(x, n.real()));
      }
      case Kind::Func:
        return checked(function(nd.text, eval(nd.a)));
      case Kind::Fact: {
        const Complex x = eval(nd.a);
        if (x.imag() != 0 || x.real() < 0 || x.real() > 1700) throw ParseFail{};
        return Complex(gamma_of(x.real() + 1));
      }
      case Kind::Binom: {
        const Complex a = eval(nd.a), b = eval(nd.b);
        if (!is_integral(a, 1000) || !is_integral(b, 1000)) throw ParseFail{};
        const long double nn = a.real(), kk = b.real();
        if (nn < 0 || kk < 0) throw ParseFail{};
        if (kk > nn) return Complex(0);
        long double r = 1;
        for (long double t = 1; t <= std::min(kk, nn - kk); ++t) r = r * (nn - std::min(kk, nn - kk) + t) / t;
        return checked(Complex(std::round(r)));
      }
    }
    throw ParseFail{};
  }

 private:
  const std::vector<Node>& n_;
  int k_;
  Budget& budget_;

  static Complex function(const std::string& name, Complex x) {
    if (name == "abs") return Complex(std::abs(x));
    std::string f = name.substr(1), base;
    if (const size_t u = f.find('_'); u != std::string::npos) {
      base = f.substr(u + 1);
      f = f.substr(0, u);
    }
    if (f == "log" && !base.empty()) {            // \log_b x
      const long double b = literal_float(base);  // ParseFail unless a plain number
      if (b <= 0 || b == 1 || x == Complex(0)) throw ParseFail{};
      return std::log(x) / std::log(b);
    }
    if (!base.empty()) throw ParseFail{};
    if (f == "sin") return std::sin(x);
    if (f == "cos") return std::cos(x);
    if (f == "tan") return std::tan(x);
    if (f == "cot") return Complex(1) / std::tan(x);
    if (f == "sec") return Complex(1) / std::cos(x);
    if (f == "csc") return Complex(1) / std::sin(x);
    if (f == "arcsin") return std::asin(x);
    if (f == "arccos") return std::acos(x);
    if (f == "arctan") return std::atan(x);
    if (f == "sinh") return std::sinh(x);
    if (f == "cosh") return std::cosh(x);
    if (f == "tanh") return std::tanh(x);
    if (x == Complex(0) && (f == "ln" || f == "log" || f == "lg")) throw ParseFail{};
    if (f == "ln" || f == "log") return std::log(x);  // \log is the natural logarithm (as in SymPy)
    if (f == "lg") return std::log10(x);
    if (f == "exp") return std::exp(x);
    throw ParseFail{};  // det, gcd, lcm, max, min, arg: no numeric value here
  }
};

std::string number_part(long double v) {
  if (v == 0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9Le", v);
  std::string out(buf);
  for (char& c : out)
    if (c == ',') c = '.';  // a locale's decimal comma: keys do not depend on LC_NUMERIC
  return out;
}

}  // namespace

std::string number_text(Complex z) {
  long double re = z.real(), im = z.imag();
  const long double m = std::max(std::fabs(re), std::fabs(im));
  if (m == 0) return "0";
  if (std::fabs(re) < m * 1e-12L) re = 0;
  if (std::fabs(im) < m * 1e-12L) im = 0;
  std::string out = number_part(re);
  if (im != 0) out += (im > 0 ? "+" : "") + number_part(im) + "i";
  return out;
}

std::optional<Value> evaluate(std::string_view s) {
  Parser p(s);
  int root;
  try {
    root = p.parse_all();
  } catch (const ParseFail&) {
    return std::nullopt;
  }
  Value v;
  try {
    Budget budget;
    Exact ex(p.nodes, budget);
    v.exact = ex.eval(root);
  } catch (const ParseFail&) {
  } catch (const Overflow&) {}
  try {
    for (int k = 0; k < kPoints; ++k) {
      Budget budget;
      Numeric num(p.nodes, k, budget);
      v.at[static_cast<size_t>(k)] = num.eval(root);
      v.variables = num.variables;
      v.numerals = num.numerals;
    }
    v.numeric = true;
  } catch (const ParseFail&) {
    v.numeric = false;
  }
  if (!v.exact && !v.numeric) return std::nullopt;
  return v;
}

std::optional<std::string> value_key(const Value& v) {
  if (v.numerals) {  // 204_5: a numeral of its base, compared as written
    if (v.exact) return "e:" + v.exact->key();
    return std::nullopt;
  }
  if (v.numeric && !v.variables) {
    if (v.exact && v.exact->is_constant() && v.exact->constant_value().is_int()) {
      const i128 n = v.exact->constant_value().n;
      if (n >= 10000000000LL || n <= -10000000000LL) return "e:" + i128_str(n);  // exact beyond 10 digits
    }
    return "n:" + number_text(v.at[0]);
  }
  if (v.numeric) {
    std::string key = "v:";
    bool same = true;
    for (const Complex& z : v.at) {
      key += number_text(z) + ";";
      same = same && number_text(z) == number_text(v.at[0]);
    }
    if (same) return "n:" + number_text(v.at[0]);  // \sin^2 x + \cos^2 x: a constant
    return key;
  }
  if (v.exact) return "e:" + v.exact->key();
  return std::nullopt;
}

std::optional<std::string> expression_key(std::string_view s) {
  const auto v = evaluate(s);
  if (!v) return std::nullopt;
  return value_key(*v);
}

std::optional<Complex> poly_value(const Poly& p, int k) {
  Complex sum(0);
  for (const auto& [key, term] : p.terms) {
    const auto& [mono, coef] = term;
    Complex t(static_cast<long double>(coef.n) / static_cast<long double>(coef.d));
    if (mono.rad != 1) t *= std::sqrt(static_cast<long double>(mono.rad));
    for (const auto& [name, e] : mono.syms) {
      const auto v = symbol_value(name, k, nullptr);
      if (!v) return std::nullopt;
      t *= int_pow(*v, e);
    }
    sum += t;
  }
  return sum;
}

}  // namespace stepverify::detail
