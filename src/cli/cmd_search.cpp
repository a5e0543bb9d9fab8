// stepverify search --policy DIR --verifier DIR [--spec ...] --input problems.jsonl
//                   --method best-of-n|wsc|beam|dvts|lookahead|mcts [budget options] --output OUT.jsonl
//
// Each input line {"question"|"problem": str, "gold"|"answer"?: str, ...} is
// written back with "search": {"method", "steps", "answer", "score",
// "proposals", "generated_tokens", "verifier_tokens", "seconds", and, with a
// gold answer, "correct"}. A summary goes to stderr.
#include <unistd.h>

#include <fstream>
#include <optional>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/answer.h"
#include "stepverify/errors.h"
#include "util/jsonl.h"
#include "stepverify/sampler.h"
#include "stepverify/search.h"
#include "stepverify/verifier.h"

namespace stepverify::cli {

Run add_search(CLI::App& app) {
  app.description(
      "Verifier-guided search with a policy model: best-of-N, weighted SC, beam search, DVTS, lookahead search, "
      "MCTS");
  // Flags bind straight to the library's options; their defaults are the structs'.
  struct Args {
    std::string policy, verifier, spec, method = "beam", pick, evaluation = "verifier";
    JsonlFiles files;
    int n = 16;
  };
  auto a = std::make_shared<Args>();
  auto so = std::make_shared<SamplerOptions>();
  auto o = std::make_shared<SearchOptions>();
  app.add_option("--policy", a->policy, "causal LM checkpoint that proposes steps")->required();
  app.add_option("--verifier", a->verifier, "verifier checkpoint")->required();
  app.add_option("--spec", a->spec, "verifier spec: preset name or JSON file");
  add_jsonl_flags(app, a->files, "problems JSONL", "results JSONL");
  app.add_option("--method", a->method, "best-of-n, wsc, beam, dvts, lookahead or mcts")
      ->check(CLI::IsMember({"best-of-n", "wsc", "beam", "dvts", "lookahead", "mcts"}));
  app.add_option("--pick", a->pick,
                 "final pick: score (the best-scored solution), vote (weighted vote) or visits (mcts: the most "
                 "visited path); default: vote for wsc, visits for mcts, else score")
      ->check(CLI::IsMember({"score", "vote", "visits"}));
  app.add_option("--lookahead", o->lookahead_steps, "lookahead: greedy steps rolled out to rank each candidate");
  app.add_option("--c-puct", o->mcts.c_puct, "mcts: exploration weight of PUCT");
  app.add_option("--mcts-iterations", o->mcts.iterations, "mcts: selections at most");
  app.add_option("--mcts-parallel", o->mcts.parallel_leaves,
                 "mcts: leaves expanded together (one proposer call, one verifier forward) under virtual loss");
  app.add_option("--prior-temperature", o->mcts.prior_temperature,
                 "mcts: priors are a softmax of mean token log-probabilities / this");
  app.add_option("--evaluation", a->evaluation,
                 "mcts: how a new node is valued: verifier (the ranking head's aggregate) or rollout (a greedy "
                 "rollout to the end)")
      ->check(CLI::IsMember({"verifier", "rollout"}));
  app.add_option("--n", a->n, "samples for best-of-n and wsc");
  app.add_option("--beam-width", o->beam_width, "beams kept per step");
  app.add_option("--expansions", o->expansions, "proposals per beam and step");
  app.add_flag_callback(
      "--per-beam-budget", [o] { o->constant_step_budget = false; },
      "beam/dvts: `expansions` per live beam, the first step only `expansions` (default: beam_width x "
      "expansions at every step)");
  app.add_option("--subtrees", o->subtrees, "dvts: independent subtrees");
  app.add_option("--max-steps", o->max_steps, "steps before a solution is cut");
  app.add_option("--max-proposals", o->max_proposals, "budget in proposals (0: none)");
  app.add_option("--max-tokens", o->max_generated_tokens, "budget in generated tokens (0: none)");
  app.add_option("--max-verifier-tokens", o->max_verifier_tokens, "budget in verifier tokens (0: none)");
  app.add_option("--max-step-tokens", so->max_step_tokens, "tokens per step before it is cut");
  app.add_option("--temperature", so->sampling.temperature, "sampling temperature (0: greedy)");
  app.add_option("--top-k", so->sampling.top_k, "top-k sampling (0: off)");
  app.add_option("--top-p", so->sampling.top_p, "nucleus sampling mass");
  app.add_option("--seed", so->sampling.seed, "sampling seed");
  app.add_option("--step-delimiter", so->prompt.step_delimiter, "text that ends a step");
  app.add_option("--prompt-template", so->prompt.prompt_template, "policy prompt; {question} is replaced");
  app.add_option("--final-marker", so->final_marker, "a step containing this finishes the solution");
  app.add_option("--head", o->head, "verifier head that ranks (default: the first)");
  add_aggregate_flag(app, "--aggregate", o->aggregate, "rank partial solutions by");
  auto load = std::make_shared<LoadOptions>();
  add_load_flags(app, *load);  // the policy's and the verifier's
  return [a, so, o, load] {
    auto policy = Model::load(a->policy, *load);
    VerifierOptions vo;
    vo.load = *load;
    vo.spec = a->spec;
    auto verifier = Verifier::load(a->verifier, vo);
    SamplingProposer proposer(policy, *so);
    const std::string pick = !a->pick.empty()      ? a->pick
                             : a->method == "wsc"  ? "vote"
                             : a->method == "mcts" ? "visits"
                                                   : "score";
    o->final_pick = pick == "vote"     ? FinalPick::WeightedVote
                    : pick == "visits" ? FinalPick::MostVisited
                                       : FinalPick::BestScore;
    o->mcts.evaluation = a->evaluation == "rollout" ? MctsEvaluation::Rollout : MctsEvaluation::Verifier;

    auto in = open_input(a->files);
    auto output = open_output(a->files);
    std::ostream& out = output.stream();
    size_t done = 0, correct = 0, graded = 0;
    int64_t vtokens = 0;
    double seconds = 0;
    auto search_line = [&](nlohmann::ordered_json& j, const std::string&) {
      const auto& q = j.contains("question") ? j["question"] : j.at("problem");
      const std::string question = q.get<std::string>();
      SearchResult r;
      if (a->method == "beam")
        r = beam_search(*verifier, proposer, question, *o);
      else if (a->method == "dvts")
        r = dvts(*verifier, proposer, question, *o);
      else if (a->method == "lookahead")
        r = lookahead_search(*verifier, proposer, question, *o);
      else if (a->method == "mcts")
        r = mcts(*verifier, proposer, question, *o);
      else
        r = sample_and_rank(*verifier, proposer, question, a->n, *o);
      // Results go under "search", so no field of the input is overwritten.
      nlohmann::ordered_json res = {{"method", a->method},
                                    {"steps", r.steps},
                                    {"answer", r.answer},
                                    {"score", r.score},
                                    {"proposals", r.proposals},
                                    {"generated_tokens", r.generated_tokens},
                                    {"verifier_tokens", r.verifier_tokens},
                                    {"seconds", r.seconds}};
      // Gold: "gold", else "answer" (GSM8K's "#### N" and \boxed{} are extracted).
      std::optional<std::string> gold;
      for (const char* key : {"gold", "answer"})
        if (!gold && j.contains(key) && j[key].is_string()) {
          const std::string g = j[key].get<std::string>();
          gold = extract_answer(g).value_or(g);
        }
      if (gold) {
        const bool ok = !r.answer.empty() && answers_equal(r.answer, *gold);
        res["correct"] = ok;
        ++graded;
        correct += ok;
      }
      j["search"] = res;
      vtokens += r.verifier_tokens;
      seconds += r.seconds;
      ++done;
      out << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
      if (::isatty(2)) std::cerr << fmt::format("\rsearch {}: {} problems", a->method, done) << std::flush;
    };
    const auto counts = detail::for_each_jsonl<nlohmann::ordered_json>(in, a->files.input, bad_lines(a->files),
                                                                       search_line, &std::cerr);
    const size_t failed = counts.bad;
    if (::isatty(2)) std::cerr << "\n";
    std::cerr << fmt::format("{}: {} problems, {} verifier tokens, {:.1f} s", a->method, done, vtokens, seconds);
    if (graded) std::cerr << fmt::format(", accuracy {:.3f} ({}/{})", double(correct) / graded, correct, graded);
    if (failed) std::cerr << fmt::format(", {} lines skipped", failed);
    std::cerr << "\n";
    output.commit();
    return jsonl_status(counts, "searched");
  };
}

}  // namespace stepverify::cli
