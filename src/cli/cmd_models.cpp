// stepverify models: retrains the shipped demo models from scratch (seeded).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "demo/demo.h"

namespace stepverify::cli {

Run add_models(CLI::App& app) {
  app.description("Train the demo tokenizer, policy and verifier (PRM, ORM, OVM, SORM heads) from scratch");
  auto o = std::make_shared<DemoModelsOptions>();
  // The kinds of solution an LM stage trains on (DemoModelsOptions::policy_solutions).
  const std::vector<std::string> solution_kinds = {"commuted", "reordered", "reference"};
  app.add_option("--out", o->out_dir, "output directory (default: models)");
  app.add_option("--seed", o->seed, "seed (default 0)");
  app.add_option("--policy-from", o->policy_from,
                 "reuse the tokenizer and policy in this directory (retrain the verifier only)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--policy-steps", o->policy_training.steps, "policy optimizer steps");
  auto continue_steps =
      app.add_option("--policy-continue-steps", o->policy_continue_steps,
                     "further next-token steps of the trained policy that become the policy (default 1600; with "
                     "--policy-from 0 unless given)");
  app.add_option("--policy-continue-solutions", o->policy_continue_solutions,
                 "what the policy's continuation trains on: reordered (default), commuted or reference")
      ->check(CLI::IsMember(solution_kinds));
  app.add_option("--backbone-solutions", o->backbone_solutions,
                 "what the verifier backbone's continuation trains on: commuted (default), reordered or reference")
      ->check(CLI::IsMember(solution_kinds));
  auto reference_order = std::make_shared<bool>(false);  // wins over --policy-solutions
  app.add_flag("--reference-order", *reference_order, "the same as --policy-solutions reference");
  app.add_option("--policy-solutions", o->policy_solutions,
                 "what the policy trains on: commuted (default), reordered or reference")
      ->check(CLI::IsMember(solution_kinds));
  app.add_option("--verifier-steps", o->verifier_training.steps, "verifier optimizer steps");
  app.add_option("--backbone-from", o->backbone_from, "this checkpoint is the verifier's backbone (no continuation)")
      ->check(CLI::ExistingDirectory);
  app.add_flag("--keep-backbone", o->keep_backbone, "keep the continued backbone in OUT/.verifier_backbone");
  app.add_option("--verifier-lr", o->verifier_training.learning_rate, "verifier peak learning rate");
  app.add_option("--verifier-lm-weight", o->verifier_lm_weight, "joint next-token loss on correct solutions (0: none)");
  app.add_option("--verifier-last-layers", o->verifier_last_layers,
                 "backbone layers the verifier trains (-1 all, 0 heads only)");
  app.add_option("--backbone-steps", o->verifier_backbone_steps,
                 "further next-token steps of the policy that become the verifier's backbone (0: the policy)");
  app.add_option("--verifier-problems", o->verifier_problems, "problems whose policy samples train the verifier");
  app.add_option("--samples", o->samples_per_problem, "policy samples per verifier problem");
  app.add_option("--rollouts", o->rollouts, "Monte Carlo rollouts per step prefix");
  app.add_option("--prm-labels", o->prm_labels, "PRM targets: soft (share of rollouts reaching the answer) or hard")
      ->check(CLI::IsMember({"soft", "hard"}));
  app.add_option("--policy-eval", o->policy_eval_examples, "problems held back to measure the policy's loss");
  app.add_option("--train-problems", o->train_problems, "generated training problems");
  add_load_flags(app, o->load);  // the dtype the models load, sample, label and train in
  return [=] {
    auto opts = *o;
    if (*reference_order) opts.policy_solutions = "reference";
    // --policy-from retrains the verifier over the given policy as it is,
    // unless a continuation is asked for.
    if (!opts.policy_from.empty() && continue_steps->count() == 0) opts.policy_continue_steps = 0;
    const auto r = train_demo_models(opts, std::cerr);
    std::cout << r.to_json() << "\n";
    return 0;
  };
}

}  // namespace stepverify::cli
