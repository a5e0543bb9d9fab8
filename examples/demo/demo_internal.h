// Internal: pieces shared by the demo model training and the demo run.
#pragma once

#include <string>
#include <vector>

#include "demo/arithmetic.h"
#include "stepverify/eval/evaluation.h"
#include "stepverify/generation.h"
#include "stepverify/verifier.h"

namespace stepverify::detail {

/// The verifier spec of the demo models: four linear heads over one backbone,
/// steps as text lines (token style: question, "\n", each step and "\n").
const char* demo_verifier_spec();

/// `n` solutions per problem sampled from the policy (problem-major), as steps.
std::vector<std::vector<std::string>> sample_solutions(const Model& policy,
                                                       const std::vector<arithmetic::Problem>& problems, int n,
                                                       double temperature, uint64_t seed,
                                                       int64_t* generated_tokens = nullptr, double top_p = 1.0);

/// Every solution scored in one batched pass (problem-major, per_problem each).
std::vector<Scores> score_solutions(const Verifier& verifier, const std::vector<arithmetic::Problem>& problems,
                                    const std::vector<std::vector<std::string>>& solutions, int per_problem);

/// PRM first-error detection against the exact labels: ProcessBench records
/// (split "arith") with the "prm" step scores at threshold 0.5. A solution
/// that never states an answer is wrong at its last step.
ProcessBenchResult first_error_metric(const std::vector<arithmetic::Problem>& problems,
                                      const std::vector<std::vector<std::string>>& solutions, int per_problem,
                                      const std::vector<Scores>& scores);

/// The true ProcessBench label of a solution (first wrong step, -1 none).
int true_first_error(const arithmetic::Problem& problem, const std::vector<std::string>& steps);

}  // namespace stepverify::detail
