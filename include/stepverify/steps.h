// stepverify/steps.h: a solution as text steps, and the prompt a policy model
// continues with them.
//
//   stepverify::PolicyPrompt p;                                // "{question}\n", steps end with "\n"
//   std::string text = p.render("What is 2 + 3?", {"2 + 3 = 5"});  // "What is 2 + 3?\n2 + 3 = 5\n"
//   auto steps = stepverify::split_steps("2 + 3 = 5\n\nThe answer is 5\n");  // two steps
//
// Thread safety: plain values and pure functions.
#pragma once

#include "stepverify/export.h"

#include <string>
#include <vector>

namespace stepverify {

/// Splits a solution into steps at `delimiter`; pieces that are only
/// whitespace are dropped. An empty delimiter keeps the text as one step.
STEPVERIFY_API std::vector<std::string> split_steps(const std::string& text, const std::string& delimiter = "\n");

/// The text a policy model is prompted with for a partial solution: the
/// template with "{question}" replaced, then each step followed by the
/// delimiter. The sampler, the rollout policy and the demo build prompts with it.
struct STEPVERIFY_API PolicyPrompt {
  /// The prompt before the first step; its first "{question}" is replaced by the question.
  std::string prompt_template = "{question}\n";
  /// Text that ends each step (and marks the end of a sampled step).
  std::string step_delimiter = "\n";

  /// template(question) + steps[0] + delimiter + steps[1] + delimiter + ...
  std::string render(const std::string& question, const std::vector<std::string>& steps = {}) const;
};

}  // namespace stepverify
