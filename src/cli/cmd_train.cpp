// stepverify train {verifier,lm} and stepverify label: training and Monte
// Carlo step labels from the command line.
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/steps.h"
#include "stepverify/train/datasets.h"
#include "stepverify/errors.h"
#include "stepverify/train/labeling.h"
#include "stepverify/train/training.h"
#include "util/files.h"
#include "util/jsonl.h"

namespace stepverify::cli {
namespace {

void add_train_options(CLI::App& app, TrainOptions& o) {
  app.add_option("--steps", o.steps, "optimizer steps");
  app.add_option("--batch", o.batch_size, "examples per micro-batch");
  app.add_option("--accumulation", o.accumulation, "micro-batches per optimizer step");
  app.add_option("--lr", o.learning_rate, "peak learning rate");
  app.add_option("--warmup", o.warmup_steps, "warmup steps");
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay");
  app.add_option("--clip", o.clip_grad_norm, "gradient norm clip (0: none)");
  app.add_option("--eval-every", o.eval_every, "steps between evaluations");
  app.add_option("--seed", o.seed, "seed");
  app.add_option("--threads", o.threads,
                 "data-parallel shards of each micro-batch, one thread each (0: one per hardware thread)");
}

std::vector<VerifierExample> read_examples(const std::string& path, const std::string& format) {
  if (format == "trl") return read_trl_prm(path);
  if (format == "math-shepherd") return read_math_shepherd(path);
  if (format == "processbench") return read_processbench_steps(path);
  if (format == "outcome") return read_outcome_labelled(path);
  throw ConfigError("--format must be trl, math-shepherd, processbench or outcome (got '" + format + "')");
}

}  // namespace

Run add_train(CLI::App& app) {
  app.description("Train verifier heads over a backbone, or a causal LM");
  app.require_subcommand(1);
  auto* v = app.add_subcommand("verifier", "Train the heads of a spec (linear heads) over a backbone checkpoint");
  auto vo = std::make_shared<VerifierTrainOptions>();
  auto backbone = std::make_shared<std::string>(), spec = std::make_shared<std::string>(),
       data = std::make_shared<std::string>(), eval = std::make_shared<std::string>(),
       format = std::make_shared<std::string>("trl"), out = std::make_shared<std::string>();
  v->add_option("--backbone", *backbone, "backbone checkpoint directory (with its tokenizer)")->required();
  v->add_option("--spec", *spec, "spec JSON file of the verifier (linear heads)")->required();
  v->add_option("--data", *data, "training data")->required();
  v->add_option("--eval", *eval, "evaluation data (same format)");
  v->add_option("--format", *format, "trl | math-shepherd | processbench | outcome (default trl)");
  v->add_option("--out", *out, "output checkpoint directory")->required();
  v->add_option("--last-layers", vo->last_layers, "backbone layers trained (-1 all, 0 heads only)");
  add_train_options(*v, vo->train);

  auto vload = std::make_shared<LoadOptions>();
  add_load_flags(*v, *vload);  // the backbone's dtype in training and in the saved verifier
  // Data-parallel over ranks: gradients averaged by allreduce, rank 0 writes.
  auto vdist = std::make_shared<DistributedFlags>();
  add_distributed_flags(*v, *vdist);
  auto* l = app.add_subcommand("lm", "Next-token training of a causal LM on prompt/completion pairs");
  auto lm_init = std::make_shared<std::string>(), lm_data = std::make_shared<std::string>(),
       lm_eval = std::make_shared<std::string>(), lm_out = std::make_shared<std::string>();
  auto lo = std::make_shared<TrainOptions>();
  l->add_option("--init", *lm_init, "checkpoint to start from (with its tokenizer)")->required();
  l->add_option("--data", *lm_data, "JSONL with \"prompt\" and \"completion\"; the loss covers the completion")
      ->required();
  l->add_option("--eval", *lm_eval, "evaluation JSONL");
  l->add_option("--out", *lm_out, "output checkpoint directory")->required();
  add_train_options(*l, *lo);
  auto lmload = std::make_shared<LoadOptions>();
  add_load_flags(*l, *lmload);  // the model's dtype in training and in the saved checkpoint
  auto ldist = std::make_shared<DistributedFlags>();
  add_distributed_flags(*l, *ldist);

  return [=] {
    if (v->parsed()) {
      auto group = ProcessGroup::create(vdist->resolve());
      vo->train.group = group.get();
      VerifierTrainer t(*backbone, VerifierSpec::from_file(*spec), *out, vo->train.seed, vload->dtype, group.get());
      const auto train = read_examples(*data, *format);
      const auto ev = eval->empty() ? std::vector<VerifierExample>{} : read_examples(*eval, *format);
      std::cerr << fmt::format("{} training examples, {} evaluation examples\n", train.size(), ev.size());
      auto rep = t.train(train, ev, *vo);
      t.save();
      if (!group->is_root()) return 0;
      std::cerr << fmt::format("loss {:.4f} -> {:.4f} in {:.0f} s; saved {}\n", rep.first_loss, rep.final_loss,
                               rep.seconds, *out);
      return 0;
    }
    detail::check_output_dir(*lm_out, {*lm_init});
    auto group = ProcessGroup::create(ldist->resolve());
    lo->group = group.get();
    auto model = Model::load(*lm_init, *lmload);
    const auto& tok = model->tokenizer();
    auto read = [&](const std::string& path) {
      std::vector<LmExample> ex;
      std::ifstream in(path);
      if (!in) throw IoError(path + ": cannot open");
      const auto eos = tok.special_tokens().eos_id;
      detail::for_each_jsonl<nlohmann::json>(
          in, path, detail::BadLine::Throw, [&](const nlohmann::json& j, const std::string&) {
            if (!j.is_object() || !j.contains("prompt") || !j.contains("completion") || !j["prompt"].is_string() ||
                !j["completion"].is_string())
              throw FormatError("needs \"prompt\" and \"completion\" strings");
            LmExample e;
            e.ids = tok.encode(j["prompt"].get<std::string>());
            e.prompt_tokens = static_cast<int64_t>(e.ids.size());
            EncodeOptions raw;
            raw.add_special_tokens = false;
            auto c = tok.encode(j["completion"].get<std::string>(), raw);
            e.ids.insert(e.ids.end(), c.begin(), c.end());
            if (eos) e.ids.push_back(*eos);
            ex.push_back(std::move(e));
          });
      return ex;
    };
    auto t = trainable_copy(*model, true, lmload->dtype);
    auto rep = train_causal_lm(*t, read(*lm_data), lm_eval->empty() ? std::vector<LmExample>{} : read(*lm_eval), *lo);
    if (!group->is_root()) return 0;  // rank 0 writes
    save_checkpoint(*lm_out, *t, *lm_init);
    std::cerr << fmt::format("loss {:.4f} -> {:.4f} in {:.0f} s; saved {}\n", rep.first_loss, rep.final_loss,
                             rep.seconds, *lm_out);
    return 0;
  };
}

Run add_label(CLI::App& app) {
  app.description(
      "Step labels by Monte Carlo rollouts (Math-Shepherd hard/soft, OmegaPRM binary search, SORM), "
      "written in the TRL PRM format");
  auto policy = std::make_shared<std::string>(), input = std::make_shared<std::string>(),
       output = std::make_shared<std::string>(), method = std::make_shared<std::string>("mc");
  auto lo = std::make_shared<LabelOptions>();
  auto ro = std::make_shared<LmRolloutOptions>();
  app.add_option("--policy", *policy, "causal LM checkpoint that completes partial solutions")->required();
  app.add_option("--input", *input,
                 "JSONL: \"question\", \"steps\" (or \"solution\", steps on lines), \"gold\" (or \"answer\")")
      ->required();
  app.add_option("--output", *output, "TRL PRM JSONL (prompt, completions, labels) plus soft_labels / sorm_labels")
      ->required();
  app.add_option("--method", *method, "mc (Math-Shepherd) | binary (OmegaPRM first error) (default mc)");
  app.add_option("--rollouts", lo->rollouts, "rollouts per prefix (default 8)");
  app.add_option("--requests-per-call", lo->requests_per_call,
                 "mc: prefixes rolled out together, one seeded call (the unit dealt to ranks; default 256)");
  app.add_option("--temperature", ro->generation.sampling.temperature, "rollout temperature (default 1)");
  app.add_option("--max-new-tokens", ro->generation.max_new_tokens, "rollout length limit (default 128)");
  app.add_option("--seed", ro->generation.sampling.seed, "rollout seed");
  app.add_option("--prompt-template", ro->prompt.prompt_template,
                 "prompt; {question} replaced (default \"{question}\\n\")");
  auto load = std::make_shared<LoadOptions>();
  add_load_flags(app, *load);
  auto dist = std::make_shared<DistributedFlags>();
  add_distributed_flags(app, *dist);
  return [=] {
    if (*method != "mc" && *method != "binary") throw ConfigError("--method must be mc or binary");
    detail::check_output_not_input(*output, {*input});
    // Sharded over ranks (a world of 1: this process): rollout calls (mc) or
    // solutions (binary) are dealt round-robin, each seeded by its index, and
    // rank 0 writes the one output, the same bytes as one process's.
    auto group = ProcessGroup::create(dist->resolve());
    std::vector<LabelProblem> problems;
    {
      std::ifstream in(*input);
      if (!in) throw IoError(*input + ": cannot open");
      detail::for_each_jsonl<nlohmann::json>(in, *input, detail::BadLine::Throw,
                                             [&](const nlohmann::json& j, const std::string& where) {
                                               if (!j.is_object()) throw FormatError(where + ": not a JSON object");
                                               LabelProblem p;
                                               if (!j.contains("question") || !j["question"].is_string())
                                                 throw FormatError(where + ": \"question\" is missing");
                                               p.question = j["question"];
                                               if (j.contains("steps") && j["steps"].is_array())
                                                 p.steps = j["steps"].get<std::vector<std::string>>();
                                               else if (j.contains("solution") && j["solution"].is_string())
                                                 p.steps = split_steps(j["solution"]);
                                               else
                                                 throw FormatError(where + ": \"steps\" or \"solution\" is missing");
                                               const char* key = j.contains("gold") ? "gold" : "answer";
                                               if (!j.contains(key))
                                                 throw FormatError(where + ": \"gold\" (or \"answer\") is missing");
                                               p.gold = j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
                                               if (p.steps.empty()) throw FormatError(where + ": no steps");
                                               problems.push_back(std::move(p));
                                             });
    }
    LmRolloutPolicy roller(Model::load(*policy, *load), *ro);
    lo->progress = group->is_root();
    lo->group = group.get();
    std::vector<VerifierExample> out;
    std::vector<nlohmann::json> extra;
    if (*method == "mc") {
      const auto labels = monte_carlo_labels(roller, problems, *lo);
      for (size_t i = 0; i < problems.size(); ++i) {
        VerifierExample e;
        e.question = problems[i].question;
        e.steps = problems[i].steps;
        for (int h : labels[i].hard) e.step_labels.push_back(h);
        out.push_back(std::move(e));
        extra.push_back({{"soft_labels", labels[i].soft}, {"sorm_labels", sorm_labels(labels[i].hard)}});
      }
    } else {
      // Each solution's search draws as call (i << 20) onward: per item, not per rank.
      const auto results = run_sharded(*group, problems.size(), [&](size_t i) {
        roller.seek(static_cast<uint64_t>(i) << 20);
        const auto r = find_first_error(roller, problems[i], *lo);
        return nlohmann::json{{"labels", r.labels}, {"first_error", r.first_error}, {"rollout_batches", r.batches}}
            .dump();
      });
      int64_t batches = 0;
      for (size_t i = 0; i < problems.size() && group->is_root(); ++i) {
        const auto r = nlohmann::json::parse(results[i]);
        batches += r["rollout_batches"].get<int64_t>();
        VerifierExample e;
        e.question = problems[i].question;
        e.steps = problems[i].steps;
        for (int h : r["labels"].get<std::vector<int>>()) e.step_labels.push_back(h);
        out.push_back(std::move(e));
        extra.push_back({{"first_error", r["first_error"]}, {"rollout_batches", r["rollout_batches"]}});
      }
      if (group->is_root()) std::cerr << fmt::format("{} rollout batches for {} solutions\n", batches, problems.size());
    }
    double generated = static_cast<double>(roller.generated_tokens());
    group->allreduce_sum(&generated, 1);
    if (!group->is_root()) return 0;
    // The TRL lines, then the extra fields added to each; the output is
    // written once, complete.
    const std::string trl = *output + ".trl.partial";
    write_trl_prm(trl, out);
    std::ifstream back(trl);
    std::string text, line;
    for (size_t i = 0; std::getline(back, line); ++i) {
      auto j = nlohmann::ordered_json::parse(line);
      for (auto& [k, val] : extra[i].items()) j[k] = val;
      text += j.dump() + "\n";
    }
    back.close();
    std::filesystem::remove(trl);
    write_file(*output, text);
    std::cerr << fmt::format("{} solutions labelled, {} tokens generated\n", problems.size(),
                             static_cast<int64_t>(generated));
    return 0;
  };
}

}  // namespace stepverify::cli
