// stepverify judge --model DIR [--spec thinkprm|FILE] --input IN.jsonl --output OUT.jsonl
//                  [--chains K] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
//
// A generative verifier (generative.h) writes K verification chains for each
// input line {"question" (or "problem"): str, "steps": [str]}; the line is
// written back with "judge": {"score", "step_scores" (null where no chain
// gave the step a verdict), "chains": [{"text", "verdicts", "p_yes", "p_no",
// "score", "tokens", "truncated"}], "generated_tokens", "prompt_tokens"}.
// Item i (0-based among the valid lines) samples with seed S + (i << 20), so
// its chains do not depend on the other lines or on the world size. A bad
// line (no steps, an empty step, a prompt that leaves no room for a chain) is
// reported with its line number and skipped (--strict: fatal); an item whose
// chain cannot be read is written with "judge": {"error": why}.
//
// Sharded: with --world-size N (or torchrun's environment) rank r judges the
// items i with i % N == r; rank 0 writes every line in input order.
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/errors.h"
#include "stepverify/generative.h"
#include "util/jsonl.h"

namespace stepverify::cli {
namespace {

using ojson = nlohmann::ordered_json;

ojson to_json(const GenerativeResult& r) {
  ojson step_scores = ojson::array();
  for (double s : r.step_scores) step_scores.push_back(std::isnan(s) ? ojson(nullptr) : ojson(s));
  ojson chains = ojson::array();
  for (const auto& c : r.chains) {
    ojson verdicts = ojson::array();
    for (Verdict v : c.verdicts) verdicts.push_back(to_string(v));
    chains.push_back({{"text", c.text},
                      {"verdicts", verdicts},
                      {"p_yes", c.p_yes},
                      {"p_no", c.p_no},
                      {"score", c.score},
                      {"tokens", c.tokens},
                      {"truncated", c.truncated}});
  }
  return {{"score", r.score},
          {"step_scores", step_scores},
          {"chains", chains},
          {"generated_tokens", r.generated_tokens},
          {"prompt_tokens", r.prompt_tokens}};
}

}  // namespace

Run add_judge(CLI::App& app) {
  app.description("Judge solutions with a generative verifier (verification chains, then P(yes)); JSONL in, out");
  auto model = std::make_shared<std::string>();
  auto vo = std::make_shared<GenerativeVerifierOptions>();
  auto files = std::make_shared<JsonlFiles>();
  auto o = std::make_shared<GenerativeOptions>();
  app.add_option("--model", *model, "the generative verifier's checkpoint directory (a causal LM)")->required();
  app.add_option("--spec", vo->spec,
                 "a preset (thinkprm) or a generative spec JSON file (default: generative.json beside the "
                 "checkpoint, else thinkprm)");
  add_jsonl_flags(app, *files);
  add_generative_flags(app, *o);
  add_load_flags(app, vo->load);
  auto dist = std::make_shared<DistributedFlags>();
  add_distributed_flags(app, *dist);
  return [=] {
    auto group = ProcessGroup::create(dist->resolve());
    auto verifier = GenerativeVerifier::load(*model, *vo);
    auto in = open_input(*files);
    detail::check_output_not_input(files->output, {files->input});  // on every rank, before any work
    std::unique_ptr<detail::AtomicFile> output;                     // rank 0 writes
    if (group->is_root()) output = std::make_unique<detail::AtomicFile>(files->output);
    std::ostringstream quiet;  // other ranks read the same lines and report nothing
    std::vector<std::pair<ojson, Solution>> items;
    const auto counts = detail::for_each_jsonl<ojson>(
        in, files->input, bad_lines(*files),
        [&](ojson& j, const std::string&) {
          Solution s = parse_solution(j);
          verifier->check(s.question, s.steps, *o);  // no steps, an empty step, too long: reported with the line
          items.emplace_back(std::move(j), std::move(s));
        },
        group->is_root() ? static_cast<std::ostream*>(&std::cerr) : &quiet);
    const auto t0 = std::chrono::steady_clock::now();
    const bool progress = group->is_root() && items.size() > 1 && ::isatty(2);
    const auto texts = run_sharded(*group, items.size(), [&](size_t i) {
      auto& [j, s] = items[i];
      ojson line = j;
      try {
        line["judge"] = to_json(verifier->verify(s.question, s.steps, item_options(*o, i)));
      } catch (const InputError& e) {
        // A chain that could not be read (its text re-tokenized past the
        // context): the line is kept, with the reason; the job goes on.
        line["judge"] = {{"error", e.what()}};
        std::cerr << fmt::format("{}: item {}: {}\n", files->input, i, e.what());
      }
      if (progress) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::cerr << fmt::format("\rjudged {}/{} solutions ({:.1f} s)", i + 1, items.size(), secs) << std::flush;
      }
      return line.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
    });
    if (progress) std::cerr << "\n";
    if (!group->is_root()) return counts.good == 0 && counts.bad > 0 ? 1 : 0;
    for (const auto& t : texts) output->stream() << t;
    output->commit();
    return jsonl_status(counts, "judged");
  };
}

}  // namespace stepverify::cli
