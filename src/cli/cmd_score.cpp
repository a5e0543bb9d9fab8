// stepverify score --model DIR [--spec FILE|PRESET] --input IN.jsonl --output OUT.jsonl [--heads prm,orm,...]
//
// Each input line {"question": str, "steps": [str]} ("problem" is accepted for
// "question") is written back with "step_scores" (the first step-level head,
// one per step) and, when --heads is given or the verifier has no step-level
// head, "scores": {head: [per step] or float}. A bad line is reported on
// stderr with its line number; the other lines are still scored and written.
// The exit status is 1 when every line failed.
//
// Sharded: with --world-size N (or torchrun's environment) each rank scores
// the chunks of 64 valid lines whose index is its rank modulo N (the batches a
// single process forms, so the scores are the same bits), and rank 0 gathers
// them and writes the one output in input order.
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/errors.h"
#include "util/jsonl.h"
#include "stepverify/verifier.h"

namespace stepverify::cli {
namespace {

using ojson = nlohmann::ordered_json;

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Record {
  ojson json;
  RenderedInput rendered;  // tokenized once, when the line is checked
};

}  // namespace

Run add_score(CLI::App& app) {
  app.description("Score solutions step by step with a verifier; JSONL in, JSONL out");
  auto model = std::make_shared<std::string>();
  auto spec = std::make_shared<std::string>();
  auto files = std::make_shared<JsonlFiles>();
  auto heads = std::make_shared<std::string>();
  auto so = std::make_shared<ScoreOptions>();
  app.add_option("--model", *model, "verifier checkpoint directory")->required();
  app.add_option("--spec", *spec, "a preset name or a spec JSON file (default: stepverify.json or by architecture)");
  add_jsonl_flags(app, *files);
  app.add_option("--heads", *heads, "heads to run and report, comma-separated (e.g. prm,orm)");
  add_aggregate_flag(app, "--aggregate", so->aggregate, "aggregate of step scores for solution-level 'scores'");
  app.add_option("--batch-tokens", so->max_batch_tokens, "most tokens in one batched forward");
  auto load = std::make_shared<LoadOptions>();
  add_load_flags(app, *load);
  auto dist = std::make_shared<DistributedFlags>();
  add_distributed_flags(app, *dist);
  return [=] {
    auto group = ProcessGroup::create(dist->resolve());
    VerifierOptions vo;
    vo.load = *load;
    vo.spec = *spec;
    vo.heads = split_csv(*heads);
    auto verifier = Verifier::load(*model, vo);
    auto in = open_input(*files);
    detail::check_output_not_input(files->output, {files->input});  // on every rank, before any work
    std::unique_ptr<detail::AtomicFile> output;                     // rank 0 writes
    if (group->is_root()) output = std::make_unique<detail::AtomicFile>(files->output);
    std::ostringstream quiet;  // other ranks read the same lines and report nothing

    std::vector<Record> records;
    const auto counts = detail::for_each_jsonl<ojson>(
        in, files->input, bad_lines(*files),
        [&](ojson& j, const std::string&) {
          Record r;
          r.json = std::move(j);
          const Solution s = parse_solution(r.json);
          r.rendered = verifier->tokenize(s.question, s.steps);
          records.push_back(std::move(r));
        },
        group->is_root() ? static_cast<std::ostream*>(&std::cerr) : &quiet);

    const bool step_level = verifier->has_step_heads();
    const bool named = !vo.heads.empty();
    const bool progress = records.size() >= 20 && group->is_root();
    const auto t0 = std::chrono::steady_clock::now();
    const size_t chunk = 64;
    const size_t chunks = (records.size() + chunk - 1) / chunk;
    const auto texts = run_sharded(*group, chunks, [&](size_t c) {
      std::ostringstream out;
      const size_t start = c * chunk;
      const size_t end = std::min(records.size(), start + chunk);
      std::vector<RenderedInput> batch;
      for (size_t i = start; i < end; ++i) batch.push_back(std::move(records[i].rendered));
      auto scores = verifier->score_tokenized(batch, *so);
      for (size_t i = start; i < end; ++i) {
        const Scores& s = scores[i - start];
        ojson j = records[i].json;
        j["step_scores"] = s.step_scores;
        if (named || !step_level) {
          ojson all = ojson::object();
          for (const auto& name : verifier->head_names()) {
            if (s.heads.count(name))
              all[name] = s.heads.at(name);
            else
              all[name] = s.outcome.at(name);
          }
          j["scores"] = all;
        }
        out << j.dump(-1, ' ', false, ojson::error_handler_t::replace) << "\n";
      }
      if (progress) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::cerr << fmt::format("\rscoring {}/{} solutions ({:.1f}/s)", end, records.size(),
                                 end / std::max(secs, 1e-9))
                  << std::flush;
      }
      return out.str();
    });
    if (progress) std::cerr << "\n";
    if (!group->is_root()) return counts.good == 0 && counts.bad > 0 ? 1 : 0;  // rank 0 reports
    for (const auto& t : texts) output->stream() << t;
    output->commit();
    return jsonl_status(counts, "scored");
  };
}

}  // namespace stepverify::cli
