// The built-in arithmetic domain: generator and exact checker.
#include "demo/arithmetic.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "stepverify/errors.h"
#include "train/batching.h"

namespace stepverify::arithmetic {
namespace {

// splitmix64: the same numbers on every platform (std distributions are not).
struct Rng {
  uint64_t s;
  uint64_t next() { return detail::splitmix64(s); }
  int64_t uniform(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % uint64_t(hi - lo + 1)); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[next() % v.size()];
  }
};

struct Person {
  std::string name, pronoun;
};
const std::vector<Person> kPeople = {{"Ana", "She"}, {"Ben", "He"},   {"Cara", "She"}, {"Dev", "He"},
                                     {"Eli", "He"},  {"Fay", "She"},  {"Gus", "He"},   {"Hana", "She"},
                                     {"Ivo", "He"},  {"Jade", "She"}, {"Kai", "He"},   {"Lena", "She"}};
const std::vector<std::string> kItems = {"apples", "coins", "cards",  "marbles", "stickers",
                                         "books",  "pens",  "shells", "stamps",  "beads"};
const std::vector<std::string> kBoxes = {"boxes", "bags", "packs", "jars"};

std::string eq(int64_t a, char op, int64_t b, int64_t c) { return fmt::format("{} {} {} = {}", a, op, b, c); }

constexpr int64_t kCap = 200;  // every value of a reference solution stays at or below this

// The signed change of the running quantity an additive event makes.
int64_t delta(const Operation& op) {
  return op.kind == '+' ? op.amount : op.kind == '-' ? -op.amount : op.count * op.amount;
}

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

void add_value(std::vector<int64_t>& values, int64_t x) {
  if (!contains(values, x)) values.push_back(x);
}

// The maximal runs [from, to) of additive events; each but the last ends at
// the multiplication ops[to]. The events of a run may come in any order.
std::vector<std::pair<size_t, size_t>> additive_runs(const std::vector<Operation>& ops) {
  std::vector<std::pair<size_t, size_t>> runs;
  size_t from = 0;
  for (size_t i = 0; i <= ops.size(); ++i)
    if (i == ops.size() || ops[i].kind == '*') {
      runs.emplace_back(from, i);
      from = i + 1;
    }
  return runs;
}

// The values of a problem's correct solutions, after the reference's results:
// the group products, the start of each run plus each subset of its changes
// (the results of every order), and the multiplications.
void fill_values(Problem& p) {
  const auto& ops = p.operations;
  int64_t v = p.start;
  for (const auto& [from, to] : additive_runs(ops)) {
    for (size_t j = from; j < to; ++j)
      if (ops[j].kind == 'g') add_value(p.values, ops[j].count * ops[j].amount);
    for (uint64_t mask = 1; mask < (uint64_t{1} << (to - from)); ++mask) {
      int64_t x = v;
      for (size_t j = from; j < to; ++j)
        if (mask >> (j - from) & 1) x += delta(ops[j]);
      add_value(p.values, x);
    }
    for (size_t j = from; j < to; ++j) v += delta(ops[j]);
    if (to < ops.size()) {
      v *= ops[to].amount;
      add_value(p.values, v);
    }
  }
}

Problem generate_one(Rng& rng, int level, const std::string& id) {
  static const std::array<int64_t, 3> kMax = {10, 15, 20};
  const int64_t top = kMax[level - 1];
  Problem p;
  p.id = id;
  p.level = level;
  const Person& who = rng.pick(kPeople);
  Person other = rng.pick(kPeople);
  while (other.name == who.name) other = rng.pick(kPeople);
  const std::string item = rng.pick(kItems);
  std::string other_item = rng.pick(kItems);
  while (other_item == item) other_item = rng.pick(kItems);

  int64_t v = rng.uniform(2, top);
  p.start = v;
  p.operands.push_back(v);
  std::vector<std::string> sentences = {fmt::format("{} has {} {}.", who.name, v, item)};
  const int ops = level;
  for (int i = 0; i < ops; ++i) {
    const std::string& pr = i == 0 ? who.name : who.pronoun;
    for (;;) {
      const int kind = static_cast<int>(rng.uniform(0, 3));
      if (kind == 0) {  // add
        const int64_t b = rng.uniform(2, top);
        if (v + b > kCap) continue;
        sentences.push_back(rng.uniform(0, 1) ? fmt::format("{} buys {} more {}.", pr, b, item)
                                              : fmt::format("{} finds {} more {}.", pr, b, item));
        p.steps.push_back(eq(v, '+', b, v + b));
        p.operands.push_back(b);
        p.operations.push_back({'+', b, 0});
        v += b;
      } else if (kind == 1) {  // subtract
        if (v < 3) continue;
        const int64_t b = rng.uniform(1, std::min(top, v - 1));
        sentences.push_back(rng.uniform(0, 1) ? fmt::format("{} gives {} {} to {}.", pr, b, item, other.name)
                                              : fmt::format("{} loses {} {}.", pr, b, item));
        p.steps.push_back(eq(v, '-', b, v - b));
        p.operands.push_back(b);
        p.operations.push_back({'-', b, 0});
        v -= b;
      } else if (kind == 2) {  // double or triple
        const int64_t m = rng.uniform(2, 3);
        if (v * m > kCap) continue;
        sentences.push_back(fmt::format("{} {} the {}.", pr, m == 2 ? "doubles" : "triples", item));
        p.steps.push_back(eq(v, '*', m, v * m));
        p.operands.push_back(m);
        p.operations.push_back({'*', m, 0});
        v *= m;
      } else {  // groups: a product reused by the next step
        const int64_t c = rng.uniform(2, 2 + 2 * level), d = rng.uniform(2, 4 + 3 * level);
        if (v + c * d > kCap) continue;
        sentences.push_back(fmt::format("{} gets {} {} with {} {} each.", pr, c, rng.pick(kBoxes), d, item));
        p.steps.push_back(eq(c, '*', d, c * d));
        p.values.push_back(c * d);
        p.steps.push_back(eq(v, '+', c * d, v + c * d));
        p.operands.push_back(c);
        p.operands.push_back(d);
        p.operations.push_back({'g', d, c});
        v += c * d;
      }
      p.values.push_back(v);
      break;
    }
  }
  fill_values(p);
  if (level >= 2 || rng.uniform(0, 1)) {
    const int64_t e = rng.uniform(2, top);
    p.distractors.push_back(e);
    const auto at = static_cast<size_t>(rng.uniform(1, static_cast<int64_t>(sentences.size()) - 1));
    sentences.insert(sentences.begin() + static_cast<std::ptrdiff_t>(at),
                     fmt::format("{} has {} {}.", other.name, e, other_item));
  }
  sentences.push_back(fmt::format("How many {} does {} have now?", item, who.name));
  for (size_t i = 0; i < sentences.size(); ++i) p.question += (i ? " " : "") + sentences[i];
  p.answer = v;
  p.steps.push_back(fmt::format("The answer is {}", v));
  return p;
}

// Parses a signed integer at s[i..], advancing i; false when none.
bool parse_int(const std::string& s, size_t& i, int64_t& out) {
  while (i < s.size() && s[i] == ' ') ++i;
  const size_t start = i;
  if (i < s.size() && s[i] == '-') ++i;
  const size_t digits = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  // At most 9 digits, so that products of two operands fit in int64.
  if (i == digits || i - digits > 9) return false;
  return std::from_chars(s.data() + start, s.data() + i, out).ec == std::errc();
}

struct Equation {
  int64_t a, b, c;
  char op;
};

std::optional<Equation> parse_equation(const std::string& step) {
  Equation e{};
  size_t i = 0;
  if (!parse_int(step, i, e.a)) return std::nullopt;
  while (i < step.size() && step[i] == ' ') ++i;
  if (i >= step.size() || (step[i] != '+' && step[i] != '-' && step[i] != '*')) return std::nullopt;
  e.op = step[i++];
  if (!parse_int(step, i, e.b)) return std::nullopt;
  while (i < step.size() && step[i] == ' ') ++i;
  if (i >= step.size() || step[i] != '=') return std::nullopt;
  ++i;
  if (!parse_int(step, i, e.c)) return std::nullopt;
  while (i < step.size() && (step[i] == ' ' || step[i] == '.')) ++i;
  if (i != step.size()) return std::nullopt;
  return e;
}

}  // namespace

std::vector<Problem> generate_problems(int64_t count, const ProblemOptions& options) {
  if (options.min_level < 1 || options.max_level > 3 || options.min_level > options.max_level)
    throw ConfigError(fmt::format("arithmetic: levels must satisfy 1 <= min_level ({}) <= max_level ({}) <= 3",
                                  options.min_level, options.max_level));
  if (count < 0) throw ConfigError("arithmetic: negative problem count");
  Rng rng{options.seed * 0x2545F4914F6CDD1Dull + 1};
  std::vector<Problem> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int level = static_cast<int>(rng.uniform(options.min_level, options.max_level));
    out.push_back(generate_one(rng, level, fmt::format("arith-{}-{}", options.seed, i)));
  }
  return out;
}

std::vector<std::string> equivalent_solution(const Problem& problem, uint64_t seed, bool reorder) {
  Rng rng{seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull};
  std::vector<std::string> out;
  // One equation with the operands of + and * in a random order.
  auto emit = [&](int64_t a, char op, int64_t b, int64_t c) {
    if (op != '-' && rng.uniform(0, 1)) std::swap(a, b);
    out.push_back(eq(a, op, b, c));
  };
  if (!reorder || problem.operations.empty()) {  // the reference with operands swapped
    for (const auto& step : problem.steps) {
      if (const auto e = parse_equation(step))
        emit(e->a, e->op, e->b, e->c);
      else
        out.push_back(step);
    }
    return out;
  }
  const auto& ops = problem.operations;
  int64_t v = problem.start;
  for (const auto& [from, to] : additive_runs(ops)) {
    // A random order of the run that keeps the quantity in [0, kCap].
    std::vector<size_t> order(to - from);
    std::iota(order.begin(), order.end(), from);
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::vector<size_t> o = order;
      for (size_t k = o.size(); k > 1; --k) std::swap(o[k - 1], o[static_cast<size_t>(rng.uniform(0, int64_t(k) - 1))]);
      int64_t x = v;
      bool ok = true;
      for (size_t j : o) {
        x += delta(ops[j]);
        ok = ok && x >= 0 && x <= kCap;
      }
      if (ok) {
        order = o;
        break;
      }
    }
    for (size_t j : order) {
      const auto& op = ops[j];
      if (op.kind == 'g') {
        emit(op.count, '*', op.amount, op.count * op.amount);
        emit(v, '+', op.count * op.amount, v + op.count * op.amount);
      } else {
        emit(v, op.kind, op.amount, v + delta(op));
      }
      v += delta(op);
    }
    if (to < ops.size()) {
      emit(v, '*', ops[to].amount, v * ops[to].amount);
      v *= ops[to].amount;
    }
  }
  out.push_back(fmt::format("The answer is {}", v));
  return out;
}

std::optional<int64_t> stated_answer(const std::string& step) {
  static const std::string kLead = "The answer is";
  const auto at = step.find(kLead);
  if (at == std::string::npos) return std::nullopt;
  size_t i = at + kLead.size();
  int64_t v = 0;
  if (!parse_int(step, i, v)) return std::nullopt;
  while (i < step.size() && (step[i] == ' ' || step[i] == '.')) ++i;
  if (i != step.size()) return std::nullopt;
  return v;
}

SolutionCheck check_solution(const Problem& problem, const std::vector<std::string>& steps) {
  SolutionCheck r;
  std::vector<int64_t> known = problem.operands;
  bool prefix_ok = true;
  for (size_t i = 0; i < steps.size(); ++i) {
    bool ok = false;
    if (auto ans = stated_answer(steps[i])) {
      ok = *ans == problem.answer;
      if (i + 1 == steps.size()) {
        r.finished = true;
        r.answer = ans;
      }
    } else if (auto e = parse_equation(steps[i])) {
      const int64_t exact = e->op == '+' ? e->a + e->b : e->op == '-' ? e->a - e->b : e->a * e->b;
      ok = exact == e->c && contains(known, e->a) && contains(known, e->b) && contains(problem.values, e->c);
      known.push_back(e->c);
    }
    r.step_correct.push_back(ok);
    prefix_ok = prefix_ok && ok;
    r.prefix_correct.push_back(prefix_ok);
    if (!ok && r.first_error < 0) r.first_error = static_cast<int>(i);
  }
  r.answer_correct = r.finished && *r.answer == problem.answer;
  return r;
}

}  // namespace stepverify::arithmetic
