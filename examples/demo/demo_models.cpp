// train_demo_models: tokenizer, policy and verifier of the built-in domain.
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "demo/demo.h"
#include "stepverify/steps.h"
#include "stepverify/errors.h"
#include "stepverify/train/labeling.h"
#include "stepverify/train/tokenizer_trainer.h"
#include "demo/demo_internal.h"

namespace stepverify {
namespace detail {

const char* demo_verifier_spec() {
  return R"({"name": "stepverify-arithmetic",
  "template": {"style": "tokens", "question_suffix": "\n", "step_separator": "\n", "bos": "auto"},
  "heads": [
    {"name": "prm", "meaning": "prm", "type": "linear", "weights": "prm", "activation": "softmax", "class_index": 1, "read": "step_end", "features": "hidden+logprob", "logprob_span": "step+solution"},
    {"name": "orm", "meaning": "orm", "type": "linear", "weights": "orm", "activation": "sigmoid", "read": "last", "features": "hidden+logprob", "logprob_span": "solution"},
    {"name": "ovm", "meaning": "ovm", "type": "linear", "weights": "ovm", "activation": "none", "read": "step_end", "features": "hidden+logprob", "logprob_span": "solution"},
    {"name": "sorm", "meaning": "sorm", "type": "linear", "weights": "sorm", "activation": "sigmoid", "read": "step_end", "features": "hidden+logprob", "logprob_span": "solution"}]})";
}

std::vector<std::vector<std::string>> sample_solutions(const Model& policy,
                                                       const std::vector<arithmetic::Problem>& problems, int n,
                                                       double temperature, uint64_t seed, int64_t* generated,
                                                       double top_p) {
  const auto& tok = policy.tokenizer();
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& p : problems) {
    prompts.push_back(tok.encode(PolicyPrompt{}.render(p.question)));
  }
  GenerationOptions g;
  g.num_samples = n;
  g.sampling.temperature = temperature;
  g.sampling.top_p = top_p;
  g.sampling.seed = seed;
  g.max_new_tokens = 96;
  auto outs = generate(policy, prompts, g);
  std::vector<std::vector<std::string>> sols;
  sols.reserve(outs.size());
  for (const auto& o : outs) {
    if (generated) *generated += static_cast<int64_t>(o.ids.size());
    sols.push_back(split_steps(o.text));
    if (sols.back().empty()) sols.back().push_back("(no step)");
  }
  return sols;
}

ProcessBenchResult first_error_metric(const std::vector<arithmetic::Problem>& problems,
                                      const std::vector<std::vector<std::string>>& solutions, int per_problem,
                                      const std::vector<Scores>& scores) {
  std::vector<ProcessBenchRecord> recs;
  for (size_t i = 0; i < solutions.size(); ++i) {
    const auto& p = problems[i / static_cast<size_t>(per_problem)];
    ProcessBenchRecord r;
    r.id = fmt::format("arith-{}", i);
    r.split = "arith";
    r.label = true_first_error(p, solutions[i]);
    r.steps = solutions[i];
    recs.push_back(std::move(r));
  }
  for (size_t i = 0; i < recs.size(); ++i) recs[i].step_scores = scores.at(i).heads.at("prm");
  return evaluate_processbench(recs);
}

int true_first_error(const arithmetic::Problem& problem, const std::vector<std::string>& steps) {
  const auto check = arithmetic::check_solution(problem, steps);
  if (check.first_error >= 0) return check.first_error;
  return check.answer_correct ? -1 : static_cast<int>(steps.size()) - 1;
}

std::vector<Scores> score_solutions(const Verifier& verifier, const std::vector<arithmetic::Problem>& problems,
                                    const std::vector<std::vector<std::string>>& solutions, int per_problem) {
  std::vector<Solution> sols;
  sols.reserve(solutions.size());
  for (size_t i = 0; i < solutions.size(); ++i)
    sols.push_back({problems[i / static_cast<size_t>(per_problem)].question, solutions[i]});
  return verifier.score_batch(sols);
}

}  // namespace detail

namespace {

// Solutions as next-token examples (of the kind DemoModelsOptions::policy_solutions
// names); the first `eval_count` go to `eval`.
void lm_examples(const Tokenizer& tok, const std::vector<arithmetic::Problem>& problems, int64_t eval_count,
                 const std::string& kind, std::vector<LmExample>& train, std::vector<LmExample>& eval) {
  const auto eos = tok.special_tokens().eos_id.value_or(2);
  for (size_t i = 0; i < problems.size(); ++i) {
    const auto& p = problems[i];
    LmExample e;
    const auto prompt = tok.encode(PolicyPrompt{}.render(p.question));
    const auto steps = kind == "reference" ? p.steps : arithmetic::equivalent_solution(p, i, kind == "reordered");
    e.ids = tok.encode(PolicyPrompt{}.render(p.question, steps));
    if (e.ids.size() < prompt.size() || !std::equal(prompt.begin(), prompt.end(), e.ids.begin()))
      throw Error("demo models: a prompt does not tokenize as a prefix of its solution: " + p.question);
    e.ids.push_back(eos);
    e.prompt_tokens = static_cast<int64_t>(prompt.size());
    (static_cast<int64_t>(i) < eval_count ? eval : train).push_back(std::move(e));
  }
}

double accuracy(const std::vector<arithmetic::Problem>& problems, const std::vector<std::vector<std::string>>& sols) {
  int64_t right = 0;
  const size_t per = sols.size() / problems.size();
  for (size_t i = 0; i < sols.size(); ++i)
    right += arithmetic::check_solution(problems[i / per], sols[i]).answer_correct;
  return static_cast<double>(right) / static_cast<double>(sols.size());
}

// `from`'s next-token training continued `steps` further steps on the LM
// examples, saved to `out` (with the tokenizer files of `tokenizer_dir`).
TrainReport continue_lm(const Model& from, const std::vector<LmExample>& train, const std::vector<LmExample>& eval,
                        TrainOptions schedule, int64_t steps, uint64_t seed, const std::filesystem::path& out,
                        const std::filesystem::path& tokenizer_dir, c10::ScalarType dtype) {
  auto lm = trainable_copy(from, true, dtype);
  schedule.steps = steps;
  schedule.seed = seed;
  schedule.eval_every = steps / 4;
  auto rep = train_causal_lm(*lm, train, eval, schedule);
  save_checkpoint(out, *lm, tokenizer_dir);
  return rep;
}

}  // namespace

std::vector<arithmetic::Problem> training_problems(const DemoModelsOptions& o) {
  arithmetic::ProblemOptions po;
  po.seed = kDemoDevSeed;
  std::set<std::string> held;
  for (const auto& p : arithmetic::generate_problems(o.eval_problems, po)) held.insert(p.question);
  po.seed = kDemoTrainSeed + o.seed;
  std::vector<arithmetic::Problem> kept;
  for (auto& p : arithmetic::generate_problems(o.train_problems, po))
    if (!held.count(p.question)) kept.push_back(std::move(p));
  return kept;
}

std::string DemoModelsReport::to_json() const {
  nlohmann::ordered_json j;
  j["policy"] = {{"loss_first", policy_loss_first},
                 {"loss_final", policy_loss_final},
                 {"seconds", policy_seconds},
                 {"solutions", policy_solutions},
                 {"continue_solutions", policy_continue_solutions},
                 {"continued_lm_steps", policy_continue_steps},
                 {"continue_seconds", policy_continue_seconds},
                 {"greedy_accuracy", policy_greedy_accuracy},
                 {"sample_accuracy", policy_sample_accuracy}};
  j["labels"] = {{"solutions", verifier_solutions},
                 {"rollouts", rollouts},
                 {"seconds", labeling_seconds},
                 {"mc_hard_agreement", mc_hard_agreement},
                 {"mc_soft_mean_correct_prefix", mc_soft_mean_correct},
                 {"mc_soft_mean_wrong_prefix", mc_soft_mean_wrong}};
  j["verifier_backbone"] = {{"extra_lm_steps", backbone_steps},
                            {"solutions", backbone_solutions},
                            {"loss_final", backbone_loss_final},
                            {"seconds", backbone_seconds},
                            {"greedy_accuracy", backbone_greedy_accuracy}};
  j["verifier"] = {{"loss_first", verifier_loss_first},
                   {"loss_final", verifier_loss_final},
                   {"seconds", verifier_seconds},
                   {"prm_first_error_f1", prm_first_error_f1}};
  j["total_seconds"] = total_seconds;
  return j.dump(2);
}

DemoModelsReport train_demo_models(const DemoModelsOptions& o, std::ostream& log) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  o.load.check();
  if (o.prm_labels != "soft" && o.prm_labels != "hard")
    throw ConfigError("demo models: prm_labels must be 'soft' or 'hard', not '" + o.prm_labels + "'");
  for (const auto& [field, kind] : {std::pair<const char*, const std::string&>{"policy_solutions", o.policy_solutions},
                                    {"policy_continue_solutions", o.policy_continue_solutions},
                                    {"backbone_solutions", o.backbone_solutions}})
    if (kind != "commuted" && kind != "reordered" && kind != "reference")
      throw ConfigError(
          fmt::format("demo models: {} must be 'commuted', 'reordered' or 'reference', not '{}'", field, kind));
  std::error_code same_ec;
  if (o.policy_continue_steps > 0 && !o.policy_from.empty() &&
      std::filesystem::equivalent(o.policy_from, o.out_dir / "policy", same_ec))
    throw ConfigError("demo models: continuing the policy in " + o.policy_from.string() +
                      " would overwrite it; write to another out_dir");
  DemoModelsReport rep;
  rep.policy_solutions = o.policy_solutions;
  rep.policy_continue_solutions = o.policy_continue_steps > 0 ? o.policy_continue_solutions : "";
  rep.backbone_solutions = o.backbone_from.empty() && o.verifier_backbone_steps > 0 ? o.backbone_solutions : "";
  const auto policy_dir = o.out_dir / "policy";
  const auto verifier_dir = o.out_dir / "verifier";

  // Problems: training, and the dev set's first problems (removed from training).
  const auto train = training_problems(o);
  arithmetic::ProblemOptions po;
  po.seed = kDemoDevSeed;
  const auto heldout = arithmetic::generate_problems(o.eval_problems, po);
  log << fmt::format("problems   {} training, {} held out\n", train.size(), heldout.size());

  // Next-token examples of each kind of solution (DemoModelsOptions::
  // policy_solutions and kin), tokenized once, on first use.
  std::map<std::string, std::pair<std::vector<LmExample>, std::vector<LmExample>>> lm_sets;
  auto lm_set = [&](const Tokenizer& tok, const std::string& kind) -> const auto& {
    auto [it, added] = lm_sets.try_emplace(kind);
    if (added) lm_examples(tok, train, o.policy_eval_examples, kind, it->second.first, it->second.second);
    return it->second;
  };
  if (!o.policy_from.empty()) {
    // Reuse a trained tokenizer and policy; only the verifier is retrained.
    std::filesystem::create_directories(policy_dir);
    if (!std::filesystem::equivalent(o.policy_from, policy_dir))
      for (const auto& f : std::filesystem::directory_iterator(o.policy_from))
        if (f.is_regular_file())
          std::filesystem::copy_file(f.path(), policy_dir / f.path().filename(),
                                     std::filesystem::copy_options::overwrite_existing);
    rep.policy_loss_first = rep.policy_loss_final = NAN;
    log << fmt::format("policy     reused from {}\n", o.policy_from.string());
  } else {
    // Tokenizer.
    std::vector<std::string> sentences;
    for (size_t i = 0; i < std::min<size_t>(train.size(), 5000); ++i) {
      sentences.push_back(train[i].question);
      for (const auto& s : train[i].steps) sentences.push_back(s);
    }
    SentencePieceTrainOptions so;
    so.vocab_size = o.tokenizer_vocab;
    train_sentencepiece(sentences, policy_dir, so);
    auto tok = load_sentencepiece_tokenizer(policy_dir);
    log << fmt::format("tokenizer  sentencepiece BPE, {} pieces\n", tok->size());

    // Policy.
    ModelConfig cfg;
    cfg.architecture = "LlamaForCausalLM";
    cfg.model_type = "llama";
    cfg.vocab_size = tok->size();
    cfg.hidden_size = o.hidden_size;
    cfg.intermediate_size = o.intermediate_size;
    cfg.num_hidden_layers = o.layers;
    cfg.num_attention_heads = o.heads;
    cfg.num_key_value_heads = o.kv_heads;
    cfg.head_dim = o.hidden_size / o.heads;
    cfg.max_position_embeddings = 256;
    cfg.rms_norm_eps = 1e-6;
    cfg.tie_word_embeddings = true;
    cfg.bos_token_id = tok->special_tokens().bos_id;
    if (auto e = tok->special_tokens().eos_id) cfg.eos_token_ids = {*e};
    const auto& [lm_train, lm_eval] = lm_set(*tok, o.policy_solutions);
    {
      double toks = 0;
      for (const auto& e : lm_train) toks += static_cast<double>(e.ids.size());
      log << fmt::format("data       {:.1f} tokens per training solution on average\n",
                         toks / std::max<size_t>(1, lm_train.size()));
    }
    log << fmt::format("policy     Llama {} layers, hidden {}, {} heads / {} kv heads; {} training solutions\n",
                       o.layers, o.hidden_size, o.heads, o.kv_heads, lm_train.size());
    auto lm = new_transformer(cfg, o.seed + 11, true);
    auto popt = o.policy_training;
    popt.seed = o.seed + 12;
    popt.eval_every = popt.steps / 5;
    auto lrep = train_causal_lm(*lm, lm_train, lm_eval, popt);
    save_checkpoint(policy_dir, *lm, policy_dir);
    lm.reset();
    rep.policy_loss_first = lrep.first_loss;
    rep.policy_loss_final = lrep.final_eval_loss;
    rep.policy_seconds = lrep.seconds;
  }
  auto policy = Model::load(policy_dir, o.load);
  rep.policy_continue_steps = o.policy_continue_steps;
  if (o.policy_continue_steps > 0) {
    const auto& [lm_train, lm_eval] = lm_set(policy->tokenizer(), o.policy_continue_solutions);
    const auto crep = continue_lm(*policy, lm_train, lm_eval, o.policy_continue_training, o.policy_continue_steps,
                                  o.seed + 13, policy_dir, policy_dir, o.load.dtype);
    policy.reset();
    policy = Model::load(policy_dir, o.load);
    rep.policy_continue_seconds = crep.seconds;
    rep.policy_loss_final = crep.final_eval_loss;
    log << fmt::format(
        "policy     next-token training continued {} steps on {} solutions: loss {:.3f} (held-out) in {:.0f} s\n",
        o.policy_continue_steps, o.policy_continue_solutions, crep.final_eval_loss, crep.seconds);
  }
  rep.policy_greedy_accuracy = accuracy(heldout, detail::sample_solutions(*policy, heldout, 1, 0.0, o.seed));
  rep.policy_sample_accuracy = accuracy(heldout, detail::sample_solutions(*policy, heldout, 4, 1.0, o.seed + 1));
  const std::string trained =
      std::isnan(rep.policy_loss_first)
          ? std::string()
          : fmt::format("loss {:.3f} -> {:.3f} (held-out) in {:.0f} s; ", rep.policy_loss_first, rep.policy_loss_final,
                        rep.policy_seconds + rep.policy_continue_seconds);
  log << fmt::format("policy     {}held-out accuracy greedy {:.1f}%, one sample at temperature 1 {:.1f}%\n", trained,
                     100 * rep.policy_greedy_accuracy, 100 * rep.policy_sample_accuracy);

  // Verifier data: policy samples on training problems, labelled by rollouts.
  const auto t_label = clock::now();
  std::vector<arithmetic::Problem> vprobs(
      train.end() - std::min<std::ptrdiff_t>(o.verifier_problems, static_cast<std::ptrdiff_t>(train.size())),
      train.end());
  auto samples = detail::sample_solutions(*policy, vprobs, o.samples_per_problem, 1.0, o.seed + 21);
  std::vector<LabelProblem> lp;
  for (size_t i = 0; i < samples.size(); ++i)
    lp.push_back({vprobs[i / static_cast<size_t>(o.samples_per_problem)].question, samples[i],
                  std::to_string(vprobs[i / static_cast<size_t>(o.samples_per_problem)].answer)});
  LmRolloutOptions ro;
  ro.generation.sampling.seed = o.seed + 22;
  ro.generation.max_new_tokens = 96;
  LmRolloutPolicy roller(policy, ro);
  LabelOptions lo;
  lo.rollouts = o.rollouts;
  lo.progress = true;
  const auto mc = monte_carlo_labels(roller, lp, lo);
  rep.labeling_seconds = std::chrono::duration<double>(clock::now() - t_label).count();
  std::vector<VerifierExample> vtrain;
  int64_t agree = 0, total = 0, n_ok = 0, n_bad = 0;
  double soft_ok = 0, soft_bad = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& p = vprobs[i / static_cast<size_t>(o.samples_per_problem)];
    const auto check = arithmetic::check_solution(p, samples[i]);
    for (size_t s = 0; s < samples[i].size(); ++s) {
      const bool exact = check.prefix_correct[s] && (s + 1 < samples[i].size() || check.answer_correct);
      agree += (mc[i].hard[s] != 0) == exact;
      ++total;
      (exact ? soft_ok : soft_bad) += mc[i].soft[s];
      ++(exact ? n_ok : n_bad);
    }
    rep.rollouts += mc[i].rollouts;
    VerifierExample e;
    e.id = p.id;
    e.question = p.question;
    e.steps = samples[i];
    if (o.prm_labels == "hard")
      e.step_labels.assign(mc[i].hard.begin(), mc[i].hard.end());
    else
      e.step_labels = mc[i].soft;
    e.outcome = check.answer_correct ? 1.0 : 0.0;
    e.sorm_labels = sorm_labels(mc[i].hard, check.answer_correct);
    vtrain.push_back(std::move(e));
  }
  rep.verifier_solutions = static_cast<int64_t>(vtrain.size());
  rep.backbone_steps = o.backbone_from.empty() ? o.verifier_backbone_steps : 0;
  rep.mc_hard_agreement = static_cast<double>(agree) / std::max<int64_t>(1, total);
  rep.mc_soft_mean_correct = soft_ok / std::max<int64_t>(1, n_ok);
  rep.mc_soft_mean_wrong = soft_bad / std::max<int64_t>(1, n_bad);
  log << fmt::format(
      "labels     {} policy solutions, {} rollouts in {:.0f} s; hard Monte Carlo label == exact label "
      "on {:.1f}% of steps; mean soft label {:.2f} on correct prefixes, {:.2f} on wrong ones\n",
      rep.verifier_solutions, rep.rollouts, rep.labeling_seconds, 100 * rep.mc_hard_agreement, rep.mc_soft_mean_correct,
      rep.mc_soft_mean_wrong);

  // Verifier: four heads over a copy of the policy backbone.
  std::vector<VerifierExample> veval;
  {
    const size_t n_eval = std::min<size_t>(200, vtrain.size() / 10);
    veval.assign(vtrain.begin(), vtrain.begin() + static_cast<std::ptrdiff_t>(n_eval));
    vtrain.erase(vtrain.begin(), vtrain.begin() + static_cast<std::ptrdiff_t>(n_eval));
  }
  // The verifier's backbone: the policy, or the policy's language-model
  // training continued (a stronger model of the same family).
  std::filesystem::path backbone_dir = policy_dir;
  const auto continued_dir = o.out_dir / ".verifier_backbone";
  if (!o.backbone_from.empty()) {
    backbone_dir = o.backbone_from;
    log << fmt::format("backbone   {}\n", o.backbone_from.string());
  } else if (o.verifier_backbone_steps > 0) {
    const auto& [lm_train, lm_eval] = lm_set(policy->tokenizer(), o.backbone_solutions);
    const auto brep = continue_lm(*policy, lm_train, lm_eval, o.verifier_backbone_training, o.verifier_backbone_steps,
                                  o.seed + 25, continued_dir, policy_dir, o.load.dtype);
    rep.backbone_seconds = brep.seconds;
    rep.backbone_loss_final = brep.final_eval_loss;
    auto backbone = Model::load(continued_dir, o.load);
    rep.backbone_greedy_accuracy = accuracy(heldout, detail::sample_solutions(*backbone, heldout, 1, 0.0, o.seed));
    log << fmt::format(
        "backbone   the policy's LM training continued {} steps on {} solutions: loss {:.3f} (held-out) "
        "in {:.0f} s; held-out greedy accuracy {:.1f}%\n",
        o.verifier_backbone_steps, o.backbone_solutions, rep.backbone_loss_final, rep.backbone_seconds,
        100 * rep.backbone_greedy_accuracy);
    backbone_dir = continued_dir;
  }
  VerifierTrainer vt(backbone_dir, VerifierSpec::from_json(detail::demo_verifier_spec(), "demo spec"), verifier_dir,
                     o.seed + 31, o.load.dtype);
  VerifierTrainOptions vo;
  vo.train = o.verifier_training;
  vo.train.seed = o.seed + 32;
  vo.train.eval_every = vo.train.steps / 4;
  vo.last_layers = o.verifier_last_layers;
  vo.lm_weight = o.verifier_lm_weight;
  auto vrep = vt.train(vtrain, veval, vo);
  vt.save();
  if (o.backbone_from.empty() && o.verifier_backbone_steps > 0 && !o.keep_backbone)
    std::filesystem::remove_all(continued_dir);
  rep.verifier_loss_first = vrep.first_loss;
  rep.verifier_loss_final = vrep.final_eval_loss;
  rep.verifier_seconds = vrep.seconds;
  VerifierOptions vload;
  vload.load = o.load;
  auto verifier = Verifier::load(verifier_dir, vload);
  auto held_samples = detail::sample_solutions(*policy, heldout, 4, 1.0, o.seed + 41);
  rep.prm_first_error_f1 =
      detail::first_error_metric(heldout, held_samples, 4, detail::score_solutions(*verifier, heldout, held_samples, 4))
          .average_f1;
  rep.total_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  log << fmt::format(
      "verifier   loss {:.3f} -> {:.3f} (held-out) in {:.0f} s; PRM first-error F1 {:.3f} on {} held-out "
      "policy solutions (exact labels)\n",
      rep.verifier_loss_first, rep.verifier_loss_final, rep.verifier_seconds, rep.prm_first_error_f1,
      held_samples.size());
  log << fmt::format("total      {:.0f} s\n", rep.total_seconds);
  std::ofstream f(o.out_dir / "training.json");
  f << rep.to_json() << "\n";
  return rep;
}

}  // namespace stepverify
