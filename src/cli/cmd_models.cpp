// stepverify models: retrains the shipped demo models from scratch (seeded).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "stepverify/demo.h"

namespace stepverify::cli {

Run add_models(CLI::App& app) {
  app.description("Train the demo tokenizer, policy and verifier (PRM, ORM, OVM, SORM heads) from scratch");
  auto o = std::make_shared<DemoModelsOptions>();
  auto out = std::make_shared<std::string>("models");
  app.add_option("--out", *out, "output directory (default: models)");
  app.add_option("--seed", o->seed, "seed (default 0)");
  app.add_option("--policy-steps", o->policy_training.steps, "policy optimizer steps");
  app.add_option("--verifier-steps", o->verifier_training.steps, "verifier optimizer steps");
  app.add_option("--verifier-problems", o->verifier_problems, "problems whose policy samples train the verifier");
  app.add_option("--samples", o->samples_per_problem, "policy samples per verifier problem");
  app.add_option("--rollouts", o->rollouts, "Monte Carlo rollouts per step prefix");
  app.add_option("--policy-eval", o->policy_eval_examples, "problems held back to measure the policy's loss");
  app.add_option("--train-problems", o->train_problems, "generated training problems");
  return [=] {
    auto opts = *o;
    opts.out_dir = *out;
    const auto r = train_demo_models(opts, std::cerr);
    std::cout << r.to_json() << "\n";
    return 0;
  };
}

}  // namespace stepverify::cli
