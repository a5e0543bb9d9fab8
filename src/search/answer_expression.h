// Internal to src/search/answer_*.cpp: exact arithmetic (128-bit rationals),
// polynomials over symbols and square roots, and the expression key that
// MathEquivalence builds on. The parser and evaluator live in
// answer_expression.cpp. Not installed.
#pragma once

#include <array>
#include <complex>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "stepverify/answer.h"

namespace stepverify::detail {

// ------------------------------------------------------ exact arithmetic --

using i128 = __int128;
struct Overflow {};   // exact arithmetic left 128 bits
struct ParseFail {};  // not a form the parser understands (or a cap was hit)

i128 ck_add(i128 a, i128 b);
i128 ck_mul(i128 a, i128 b);
i128 ck_abs(i128 a);
i128 gcd(i128 a, i128 b);
std::string i128_str(i128 v);

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
Rat operator+(Rat a, Rat b);
Rat operator-(Rat a);
Rat operator*(Rat a, Rat b);
Rat inverse(Rat a);

// Writes n = s^2 * r with r square-free; false when n is too big to factor.
bool square_free(i128 n, i128& s, i128& r);

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
    if (name.size() > 4096) throw ParseFail{};  // opaque names nest their arguments' keys: bounded
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

Poly operator+(const Poly& a, const Poly& b);
Poly negate(const Poly& a);
Mono mono_mul(const Mono& a, const Mono& b, Rat& coef);
Poly mul(const Poly& a, const Poly& b, Budget& budget);
// 1 / (single term); ParseFail for sums.
Poly inverse_term(const Poly& p);

// ------------------------------------------------------------- values --

// Expressions with variables are compared by their values at kPoints fixed
// points: each variable takes a value in [0.35, 1.65) hashed from its name
// (the same in every answer), \pi, e and i are the constants.
inline constexpr int kPoints = 4;
using Complex = std::complex<long double>;

struct Value {
  std::optional<Poly> exact;  // the exact value (opaque symbols where exact arithmetic stops); nullopt on overflow
  bool numeric = false;       // `at` holds the value at each point
  bool variables = false;     // depends on a letter other than the constants \pi, e, i
  bool numerals = false;      // holds a base numeral (204_5): keyed exactly, never by value
  std::array<Complex, kPoints> at{};
};

// Parses and evaluates an expression; nullopt when it does not parse or
// neither evaluation succeeds.
std::optional<Value> evaluate(std::string_view s);

// A number to 10 significant digits ("0" for zero; real and imaginary parts,
// a part below 1e-12 of the other dropped).
std::string number_text(Complex z);

// The key of a value: "n:<10 digits>" for a number (an exact integer of more
// than 10 digits: "e:<integer>"), "v:<values>" for an expression with
// variables, else "e:<exact polynomial>"; nullopt when there is none.
std::optional<std::string> value_key(const Value& v);

// value_key(evaluate(s)).
std::optional<std::string> expression_key(std::string_view s);

// The numeric value of a polynomial at point k; nullopt when it holds an
// opaque symbol or \infty.
std::optional<Complex> poly_value(const Poly& p, int k);

}  // namespace stepverify::detail
