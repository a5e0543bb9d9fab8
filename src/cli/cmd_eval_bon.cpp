// stepverify eval bon --input candidates.jsonl [--seed N] [--samples S] [--aggregate A]
//                     [--threshold T] [--bins B] [--json] [--markdown OUT.md]
//                     [--svg OUT.svg] [--reliability-svg OUT.svg]
//
// Accuracy against N for majority vote, weighted self-consistency and
// best-of-N under each aggregate, and, with step labels, step AUROC, the
// first-error metric and a reliability table (see stepverify/eval/bon.h for the
// input format, the rules and the tie-breaking). With --json stdout holds
// exactly one JSON object {"n": [...], "methods": {...}, "problems": int, ...};
// otherwise the Markdown report. A bad line (invalid JSON, a bad field, no
// candidate, no gold while a candidate lacks "correct") is reported on stderr
// with its line number and skipped. Notes and "wrote FILE" lines go to stderr.
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/distributed.h"
#include "stepverify/eval/bon.h"
#include "stepverify/errors.h"

namespace stepverify::cli {
namespace {

// The evaluation's options bind to BonOptions; these are the command's own.
struct BonArgs {
  BonOptions options;
  std::string input;
  bool json = false;
  std::string markdown, svg, reliability_svg;
  DistributedFlags dist;  ///< problems' curves computed across ranks; rank 0 reports
};

int run_bon(const BonArgs& a) {
  auto group = ProcessGroup::create(a.dist.resolve());
  std::ostringstream quiet;  // other ranks read the same lines and report nothing
  const std::vector<BonProblem> problems =
      read_bon_problems(a.input, group->is_root() ? static_cast<std::ostream*>(&std::cerr) : &quiet);
  if (problems.empty()) throw InputError("eval bon: no usable problem in " + a.input);
  BonOptions options = a.options;
  options.group = group.get();
  const BonResult result = evaluate_bon(problems, options);
  if (!group->is_root()) return 0;
  if (result.labeled_solutions > 0 && !result.reliability)
    std::cerr << "note: a labeled step score lies outside [0, 1]; no reliability table\n";
  if (result.labeled_solutions > 0 && !result.step_auroc)
    std::cerr << "note: every labeled step has the same label; no step AUROC\n";

  if (!a.markdown.empty()) write_file(a.markdown, bon_markdown(result));
  if (!a.svg.empty()) write_file(a.svg, bon_svg(result));
  if (!a.reliability_svg.empty()) {
    if (result.reliability)
      write_file(a.reliability_svg, reliability_svg(*result.reliability));
    else
      std::cerr << "note: no reliability table (no step labels with step scores in [0, 1]); " << a.reliability_svg
                << " not written\n";
  }
  if (a.json)
    std::cout << bon_json(result) << "\n";
  else
    std::cout << bon_markdown(result);
  std::cout.flush();
  return 0;
}

}  // namespace

Run add_eval_bon(CLI::App& eval) {
  auto a = std::make_shared<BonArgs>();
  CLI::App* bon = eval.add_subcommand(
      "bon",
      "Accuracy against N (majority, weighted self-consistency, best-of-N per aggregate), step AUROC, "
      "first-error metric and calibration of step scores");
  bon->add_option("--input", a->input,
                  "JSONL, one problem a line: {\"id\", \"gold\", \"candidates\": [{\"text\"|\"answer\", \"score\", "
                  "\"step_scores\", \"step_labels\", \"correct\"}]}")
      ->required();
  BonOptions& o = a->options;
  bon->add_option("--seed", o.seed, "seed of the subset draws")->capture_default_str();
  bon->add_option("--samples", o.samples, "subsets per problem and N when there are more")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  add_aggregate_flag(*bon, "--aggregate", o.aggregate,
                     "aggregate of step_scores for weighted and best when a candidate has no score");
  bon->add_option("--threshold", o.threshold, "first-error metric: a step is wrong below this")->capture_default_str();
  bon->add_option("--bins", o.reliability_bins, "reliability bins over [0, 1]")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  bon->add_flag("--json", a->json, "print one JSON object on stdout");
  add_distributed_flags(*bon, a->dist);
  bon->add_option("--markdown", a->markdown, "write the Markdown report");
  bon->add_option("--svg", a->svg, "write an SVG plot of accuracy against N per method");
  bon->add_option("--reliability-svg", a->reliability_svg, "write an SVG reliability diagram of step scores");
  return [a, bon] {
    if (bon->parsed()) return run_bon(*a);
    return 0;
  };
}

}  // namespace stepverify::cli
