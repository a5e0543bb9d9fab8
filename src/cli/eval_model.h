// Internal: the seam between `stepverify eval processbench --model` and the
// verifier. cmd_eval.cpp calls score_with_model; it is defined next to the
// verifier-backed commands (the eval code itself never loads a model).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace stepverify::cli {

/// Loads the verifier in `model_dir` (spec: a preset name or spec file, empty
/// for the default resolution of VerifierOptions::spec; dtype: a --dtype
/// value) and returns, for each
/// (problem, steps) pair, one step score per step (Scores::step_scores of the
/// first step-level head), in input order. Throws a stepverify::Error on a bad
/// model or input. Called once per run with every record.
extern std::vector<std::vector<double>> score_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps);

}  // namespace stepverify::cli
