// demo/arithmetic.h: a built-in reasoning domain with exact step labels.
//
//   stepverify::arithmetic::ProblemOptions po;  po.seed = 7;
//   auto problems = stepverify::arithmetic::generate_problems(200, po);
//   const auto& p = problems[0];
//   // p.question: "Ana has 23 apples. Ben has 41 cards. Ana buys 17 more apples. She gives 8 apples
//   //              to Ben. How many apples does Ana have now?"  (the shape; numbers vary by level)
//   // p.steps:    {"23 + 17 = 40", "40 - 8 = 32", "The answer is 32"}
//   auto check = stepverify::arithmetic::check_solution(p, {"23 + 17 = 40", "40 - 7 = 33", "The answer is 33"});
//   // check.step_correct = {true, false, false}; check.first_error = 1; check.answer_correct = false
//
// Multi-step word problems over one running quantity: purchases, gifts,
// doublings, and groups ("3 boxes with 6 apples each", an intermediate product
// reused in the next step), with a distractor quantity about someone else.
// Each step of a solution is one equation "a op b = c" and the last is
// "The answer is N". Because every step can be checked exactly, the domain
// gives true process labels: Monte Carlo labels and trained verifiers can be
// measured against the truth.
//
// A problem has several correct solutions, as real ones do: the gains and
// losses between two doublings may be applied in any order (each order has
// its own intermediate results, carries and borrows), and the operands of +
// and * in either order. equivalent_solution draws one of them.
//
// The exact step check: a step is correct when it parses as "a op b = c"
// with op one of + - *, the arithmetic is exact, a and b are quantities of the
// problem (the numbers the reference solution uses, or results of earlier
// steps of this solution), and c is one of the problem's `values` (a result
// some correct solution reaches: the step stays on a path to the answer). The
// final step is correct when its number equals the answer. A step after a
// wrong one is checked by the same rule, but process labels (prefix_correct)
// are false from the first error on.
//
// Thread safety: free functions over values; reentrant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stepverify::arithmetic {

/// One event of a story, in the question's order.
struct Operation {
  /// '+' gain `amount`; '-' loss of `amount`; '*' the quantity multiplied by
  /// `amount` (doubles, triples); 'g' `count` groups of `amount` gained.
  char kind = '+';
  int64_t amount = 0;
  int64_t count = 0;  ///< groups of kind 'g'
};

/// One problem with its reference solution.
struct Problem {
  std::string id;  ///< "arith-{seed}-{index}"
  std::string question;
  std::vector<std::string> steps;  ///< reference solution, final step "The answer is N"
  int64_t answer = 0;
  int level = 1;                  ///< difficulty 1..3
  std::vector<int64_t> operands;  ///< numbers the reference solution uses
  /// Every result a correct solution reaches: the reference steps' results
  /// first, then those of the other orders (start of a run of gains and losses
  /// plus any subset of them) and the group products.
  std::vector<int64_t> values;
  std::vector<int64_t> distractors;   ///< numbers of the question the solution must not use
  int64_t start = 0;                  ///< the quantity the story starts from
  std::vector<Operation> operations;  ///< the story's events in order (empty for hand-made problems)
};

/// Options of the generator.
struct ProblemOptions {
  uint64_t seed = 0;  ///< same seed, same problems
  int min_level = 1;  ///< levels are drawn uniformly in [min_level, max_level]
  int max_level = 3;
};

/// Level 1: 1 operation, given numbers up to 10; level 2: 2 operations, up to
/// 15, a distractor; level 3: 3 operations, up to 20, a distractor. (A group
/// operation takes two steps: the product, then the sum.) Every value of a
/// solution stays in [0, 200]. Throws ConfigError on levels outside 1..3.
std::vector<Problem> generate_problems(int64_t count, const ProblemOptions& options = {});

/// The verdict on one solution.
struct SolutionCheck {
  std::vector<bool> step_correct;    ///< each step by the exact rule
  std::vector<bool> prefix_correct;  ///< steps 0..i all correct (the process label)
  int first_error = -1;              ///< index of the first wrong step, -1 when none
  std::optional<int64_t> answer;     ///< the number of the final "The answer is" step
  bool finished = false;             ///< the last step states an answer
  bool answer_correct = false;       ///< finished with the right number
};

SolutionCheck check_solution(const Problem& problem, const std::vector<std::string>& steps);

/// A correct solution drawn at random (seeded): each run of gains, losses and
/// groups between two multiplications in a uniformly random order whose running
/// quantity stays in [0, 200] (the question's order when none other does), a
/// group's product just before it is added, and the two operands of each `+`
/// and `*` swapped with probability 1/2. It checks as correct by check_solution.
/// Training a policy on these gives it several paths to one answer, with
/// different intermediate results, as real models have, so that votes over
/// samples (self-consistency) can pool paths whose mistakes differ. With `reorder`
/// false, or for a problem without `operations`, the steps keep the reference's
/// order and only operands are swapped.
std::vector<std::string> equivalent_solution(const Problem& problem, uint64_t seed, bool reorder = true);

/// The number stated by a final step ("The answer is 32"), if any.
std::optional<int64_t> stated_answer(const std::string& step);

}  // namespace stepverify::arithmetic
