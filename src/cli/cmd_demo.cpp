// stepverify demo: the method comparison on the shipped models, as a table
// (and one solution scored step by step) or as one JSON object.
#include <filesystem>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "demo/demo.h"

namespace stepverify::cli {

Run add_demo(CLI::App& app) {
  app.description(
      "Compare greedy, majority, ORM best-of-N, PRM weighted SC, PRM/OVM beam search, lookahead search and "
      "MCTS on the shipped models (held-out arithmetic problems, equal budget)");
  auto o = std::make_shared<DemoOptions>();
  auto json = std::make_shared<bool>(false);
  app.add_option("--models", o->models_dir, "directory holding policy/ and verifier/ (default: models)");
  app.add_option("--set", o->set, "held-out problems: test (reported; default) or dev (for choosing options)")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, DemoSet>{{"test", DemoSet::Test}, {"dev", DemoSet::Dev}}));
  app.add_option("--problems", o->problems, "held-out problems (default 200)");
  app.add_option("--models-seed", o->trained.seed,
                 "the `models --seed` the models were trained with (their training problems are never held out; "
                 "default 0, the shipped models')");
  app.add_option("--models-train-problems", o->trained.train_problems,
                 "the `models --train-problems` they were trained with (default 40000)");
  app.add_option("--n", o->n, "proposals per problem for every method (default 16)");
  app.add_option("--beam-width", o->beam_width, "beams kept (default 4)");
  app.add_option("--expansions", o->expansions, "proposals per beam and step (default 4)");
  app.add_flag_callback(
      "--per-beam-budget", [o] { o->constant_step_budget = false; },
      "beam search proposes `expansions` per live beam, the first step only `expansions` (default: "
      "beam_width x expansions at every step)");
  app.add_option("--temperature", o->temperature, "policy sampling temperature (default 1)");
  app.add_option("--top-p", o->top_p, "policy nucleus sampling (default 1: off)");
  app.add_option("--seed", o->seed, "sampling seed (default 0)");
  app.add_option("--threads", o->threads, "worker threads for the searches (default 2)");
  add_aggregate_flag(app, "--prm-aggregate", o->prm_aggregate, "PRM step scores -> solution and beam score");
  add_aggregate_flag(app, "--ovm-aggregate", o->ovm_aggregate,
                     "OVM step values -> beam score (last: the value of the partial solution, as OVM reads it)");
  add_aggregate_flag(
      app, "--implicit-aggregate", o->implicit_aggregate,
      "implicit PRM step rewards -> solution score (default min; sum: the whole solution's implicit reward)");
  app.add_option("--lookahead", o->lookahead_steps, "lookahead_prm: greedy steps rolled out per candidate (default 1)");
  app.add_option("--mcts-expansions", o->mcts_expansions, "mcts rows: proposals per expanded node (default 4)");
  app.add_option("--c-puct", o->mcts.c_puct, "mcts rows: exploration weight of PUCT (default 2)");
  app.add_option("--mcts-parallel", o->mcts.parallel_leaves,
                 "mcts rows: leaves expanded together under virtual loss (default 1)");
  app.add_option("--prior-temperature", o->mcts.prior_temperature,
                 "mcts rows: priors are a softmax of mean token log-probabilities / this (default 1)");
  app.add_option("--mcts-pick", o->mcts_pick, "mcts rows: the final pick, value (default) or visits")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, FinalPick>{{"visits", FinalPick::MostVisited}, {"value", FinalPick::BestScore}}));
  app.add_flag("--json", *json, "print the figures as one JSON object");
  add_load_flags(app, o->load);
  app.add_option("--candidates", o->candidates_out,
                 "write the N samples per problem with their scores (eval bon format)");
  return [=] {
    const DemoOptions& opts = *o;
    if (opts.beam_width * opts.expansions != opts.n)
      std::cerr << fmt::format("note: beam_width x expansions = {} proposals per step, not n = {}\n",
                               opts.beam_width * opts.expansions, opts.n);
    const auto r = run_demo(opts);
    if (*json) {
      std::cout << r.to_json() << "\n";
      return 0;
    }
    fmt::print(
        "{} held-out arithmetic problems ({} set), {} proposals per problem (beam search: {} beams, {} proposals "
        "per step{})\n\n",
        r.problems, r.set, r.n, opts.beam_width, opts.beam_width * opts.expansions,
        opts.constant_step_budget ? ", the first included" : fmt::format(" after the first's {}", opts.expansions));
    fmt::print("{:<24} {:>9} {:>16} {:>16} {:>9}\n", "method", "accuracy", "verifier tokens", "policy tokens",
               "seconds");
    for (const auto& name : r.order) {
      const auto& m = r.methods.at(name);
      fmt::print("{:<24} {:>8.1f}% {:>16} {:>16} {:>9.1f}\n", name, 100 * m.accuracy, m.verifier_tokens,
                 m.generated_tokens, m.seconds);
    }
    fmt::print(
        "\nPRM first-error detection on the {} sampled solutions against the exact labels (ProcessBench "
        "metric, threshold 0.5): F1 {:.3f} (error accuracy {:.3f}, correct accuracy {:.3f})\n",
        r.first_error_solutions, r.first_error_f1, r.first_error_error_accuracy, r.first_error_correct_accuracy);
    const auto& ex = r.example;
    if (!ex.steps.empty()) {
      fmt::print("\nOne sampled solution, scored step by step:\n  {}\n", ex.question);
      for (size_t i = 0; i < ex.steps.size(); ++i) {
        std::string flag;
        if (static_cast<int>(i) == ex.predicted_first_error) flag += "  <- first step the PRM rejects";
        if (static_cast<int>(i) == ex.true_first_error) flag += "  <- first wrong step (exact check)";
        fmt::print("  step {}  {:<28} PRM {:.3f}  {}{}\n", i + 1, ex.steps[i], ex.prm[i],
                   i < ex.correct.size() && ex.correct[i] ? "right" : "wrong", flag);
      }
    }
    fmt::print("\n{:.1f} s in all\n", r.seconds);
    return 0;
  };
}

}  // namespace stepverify::cli
