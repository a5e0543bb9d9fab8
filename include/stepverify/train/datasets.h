// stepverify/train/datasets.h: readers and writers of step-labelled data.
//
//   auto trl = stepverify::read_trl_prm("prm_train.jsonl");          // prompt, completions, labels
//   auto ms  = stepverify::read_math_shepherd("math_shepherd.jsonl"); // input with ки, label with +/-
//   auto pb  = stepverify::read_processbench_steps("processbench/gsm8k.json");
//   auto oc  = stepverify::read_outcome_labelled("solutions.jsonl");   // question, solution|steps, is_correct
//   stepverify::write_trl_prm("out.jsonl", trl);
//
// Every reader returns VerifierExample values (defined here) ready for
// VerifierTrainer (training.h). This header is plain C++ (no torch header). Labels are 1.0 (good) and 0.0 (bad) per step. A bad line
// throws FormatError naming the file, line and field.
//
// Formats:
//  * TRL PRM (trl.PRMTrainer): {"prompt": str, "completions": [str], "labels": [bool]}.
//  * Math-Shepherd: {"input": "Q Step 1: ... ки\nStep 2: ... ки", "label":
//    the same text with each ки replaced by + or -}. The question is the text
//    before "Step 1:" (else before the first step); steps end at each tag.
//  * ProcessBench: {"id", "problem", "steps": [str], "label": int (first wrong
//    step, -1 none), "final_answer_correct"?: bool} in a JSON array or JSONL;
//    steps before the label are 1, the label and later steps 0; the outcome
//    is label == -1 (a process label: final_answer_correct is not read).
//  * Outcome-labelled: {"question", "solution": str (steps on lines) or
//    "steps": [str], "is_correct": bool}; no step labels, an outcome.
//
// Thread safety: reentrant.
#pragma once

#include "stepverify/export.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace stepverify {

/// One labelled solution for verifier training.
struct STEPVERIFY_API VerifierExample {
  std::string id;  ///< where it came from (for messages and outputs)
  std::string question;
  std::vector<std::string> steps;
  std::vector<double> step_labels;  ///< PRM targets per step, in [0, 1] (empty: none)
  std::vector<double> sorm_labels;  ///< SORM targets per step (empty: the step labels)
  std::optional<double> outcome;    ///< 1 correct, 0 wrong (ORM and OVM targets)
};

STEPVERIFY_API std::vector<VerifierExample> read_trl_prm(const std::filesystem::path& path);
STEPVERIFY_API std::vector<VerifierExample> read_math_shepherd(const std::filesystem::path& path);
STEPVERIFY_API std::vector<VerifierExample> read_processbench_steps(const std::filesystem::path& path);
STEPVERIFY_API std::vector<VerifierExample> read_outcome_labelled(const std::filesystem::path& path);

/// Writes the TRL PRM format (labels >= 0.5 are true). Throws InputError on
/// an example without step labels.
STEPVERIFY_API void write_trl_prm(const std::filesystem::path& path, const std::vector<VerifierExample>& examples);

}  // namespace stepverify
