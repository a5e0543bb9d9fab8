// Internal: the seam between `stepverify eval processbench --model` and the
// verifier. cmd_eval.cpp calls score_with_model; it is defined next to the
// verifier-backed commands (the eval code itself never loads a model).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace stepverify {
class ProcessGroup;
struct GenerativeOptions;
}  // namespace stepverify

namespace stepverify::cli {

/// Loads the verifier in `model_dir` (spec: a preset name or spec file, empty
/// for the default resolution of VerifierOptions::spec; dtype: a --dtype
/// value) and returns, for each
/// (problem, steps) pair, one step score per step (Scores::step_scores of the
/// first step-level head), in input order. Throws a stepverify::Error on a bad
/// model or input. Called once per run with every record. Over a group of
/// ranks, each scores the chunks of 64 records whose index is its rank
/// modulo the world (the batches one process forms) and rank 0 returns every
/// score (the others: nothing).
extern std::vector<std::vector<double>> score_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps, ProcessGroup& group);

/// The same for a generative verifier (GenerativeVerifier, spec: a preset or
/// a generative spec file): a step's score is the share of the chains that
/// call it correct, 1 where no chain gave it a verdict (not flagged). Record i
/// samples with seed options.sampling.seed + (i << 20); over a group, rank r
/// judges the records i with i % world == r.
extern std::vector<std::vector<double>> judge_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype, const GenerativeOptions& options,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps, ProcessGroup& group);

}  // namespace stepverify::cli
