// stepverify eval processbench (--scores FILE.jsonl | --model DIR [--spec S] --data FILE_OR_DIR)
//                              [--threshold T | --calibrate-on SPLIT] [--json]
//                              [--predictions OUT.jsonl] [--markdown OUT.md] [--svg OUT.svg]
//
// ProcessBench's first-error metric per split and its average (see
// stepverify/eval/evaluation.h). --scores reads records that already carry
// "step_scores" (the output of `stepverify score` on ProcessBench, or of
// --predictions, or `stepverify judge`'s "judge" scores); --model scores the records of --data with a verifier via
// score_with_model (cli/eval_model.h), or with --generative judges them with a
// generative verifier (judge_with_model). With --json stdout holds exactly one
// JSON object {"splits": {...}, "average_f1": x}; otherwise a table. Notes and
// "wrote FILE" lines go to stderr.
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/eval_model.h"
#include "cli/flags.h"
#include "stepverify/distributed.h"
#include "stepverify/errors.h"
#include "stepverify/generative.h"
#include "util/files.h"
#include "stepverify/eval/evaluation.h"

namespace stepverify::cli {

void write_file(const std::string& path, const std::string& text) {
  detail::write_file_atomic(path, text);
  std::cerr << "wrote " << path << "\n";
}

namespace {

// The metric's options bind to ProcessBenchOptions; these are the command's own.
struct ProcessBenchArgs {
  ProcessBenchOptions options;
  std::string scores, model, spec, data, dtype = "fp32";
  bool json = false;
  std::string predictions, markdown, svg;
  DistributedFlags dist;    ///< --model: records scored across ranks; rank 0 reports
  bool generative = false;  ///< --generative: the model is a generative verifier (judge's chains)
  GenerativeOptions gen;    ///< --chains, --max-tokens, --temperature, --top-k, --top-p, --seed
};

int run_processbench(const ProcessBenchArgs& a) {
  std::vector<ProcessBenchRecord> records;
  if (!a.scores.empty()) {
    ProcessBenchReadOptions ro;
    ro.require_step_scores = true;
    records = read_processbench_records(a.scores, ro);
  } else if (!a.model.empty()) {
    auto group = ProcessGroup::create(a.dist.resolve());
    records = read_processbench_records(a.data);
    const auto scorer = [&](const std::vector<std::pair<std::string, std::vector<std::string>>>& problems) {
      return a.generative ? judge_with_model(a.model, a.spec, a.dtype, a.gen, problems, *group)
                          : score_with_model(a.model, a.spec, a.dtype, problems, *group);
    };
    if (!group->is_root()) {  // scores its share; rank 0 evaluates and reports
      std::vector<std::pair<std::string, std::vector<std::string>>> batch;
      for (const auto& r : records) batch.emplace_back(r.problem, r.steps);
      scorer(batch);
      return 0;
    }
    score_processbench_records(records, scorer);
  } else {
    throw InputError("eval processbench: give --scores FILE.jsonl, or --model DIR with --data FILE_OR_DIR");
  }
  if (records.empty()) throw InputError("eval processbench: no record in the input");

  const auto result = evaluate_processbench(records, a.options);
  for (const auto& m : result.splits) {
    if (m.n_error == 0 || m.n_correct == 0)
      std::cerr << "note: split " << m.split << " has no record with label " << (m.n_error == 0 ? "!= -1" : "-1")
                << "; its accuracy there counts as 0 and its F1 is 0\n";
  }

  if (!a.predictions.empty()) write_file(a.predictions, processbench_predictions_jsonl(records, result));
  if (!a.markdown.empty()) write_file(a.markdown, processbench_markdown(result));
  if (!a.svg.empty()) write_file(a.svg, processbench_svg(result));
  if (a.json)
    std::cout << processbench_json(result) << "\n";
  else
    std::cout << processbench_text(result);
  std::cout.flush();
  return 0;
}

}  // namespace

Run add_eval(CLI::App& app) {
  app.description("Evaluate a verifier on a benchmark");
  app.require_subcommand(1);
  auto a = std::make_shared<ProcessBenchArgs>();
  CLI::App* pb = app.add_subcommand(
      "processbench", "ProcessBench: error accuracy, correct accuracy and F1 of first-error predictions, per split");
  auto* scores = pb->add_option("--scores", a->scores,
                                "JSONL of scored records: ProcessBench fields (id, label, ...) plus step_scores, or the output of judge");
  auto* model = pb->add_option("--model", a->model, "verifier checkpoint directory (scores --data with it)");
  auto* spec = pb->add_option("--spec", a->spec, "with --model: a preset name or a spec JSON file");
  pb->add_option("--dtype", a->dtype, "with --model: fp32 (default), bf16 or fp16 (CUDA only)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  auto* data = pb->add_option("--data", a->data, "with --model: a ProcessBench JSON/JSONL file or a directory of them");
  auto* thr = pb->add_option("--threshold", a->options.threshold, "a step is wrong when its score is below this")
                  ->capture_default_str();
  auto* cal = pb->add_option("--calibrate-on", a->options.calibrate_on,
                             "choose the threshold maximising F1 on this split, then apply it to every split");
  auto* gen = pb->add_flag("--generative", a->generative,
                           "with --model: a generative verifier (its --spec a generative preset or file); a step's "
                           "score is the share of chains calling it correct (1 where none judged it)");
  for (auto* opt : add_generative_flags(*pb, a->gen, "with --generative: ")) opt->needs(gen);
  gen->needs(model);
  pb->add_flag("--json", a->json, "print one JSON object on stdout");
  add_distributed_flags(*pb, a->dist);
  pb->add_option("--predictions", a->predictions, "write per-record predictions (JSONL; valid --scores input)");
  pb->add_option("--markdown", a->markdown, "write a Markdown table");
  pb->add_option("--svg", a->svg, "write an SVG bar chart of F1 per split");
  thr->excludes(cal);
  scores->excludes(model);
  scores->excludes(data);
  scores->excludes(spec);
  model->needs(data);
  data->needs(model);
  spec->needs(model);
  Run bon = add_eval_bon(app);
  return [a, pb, bon] {
    if (pb->parsed()) return run_processbench(*a);
    return bon();
  };
}

}  // namespace stepverify::cli
