// demo/demo.h: the shipped demo models and the method comparison on them.
//
//   stepverify::DemoModelsOptions mo;  mo.out_dir = "models";
//   auto built = stepverify::train_demo_models(mo, std::cerr);    // tokenizer, policy, verifier; seeded
//
//   stepverify::DemoOptions o;  o.models_dir = "models";
//   auto r = stepverify::run_demo(o);
//   // r.methods["beam_prm"].accuracy, r.methods["majority@16"].verifier_tokens, r.first_error_f1
//
// Everything runs on the built-in arithmetic domain (arithmetic.h):
// train_demo_models trains a sentencepiece tokenizer, a small Llama policy
// (next-token loss on reference solutions), continues that LM's training into
// a stronger sibling, and trains one verifier with four heads over it (PRM on
// Monte Carlo hard labels, ORM and OVM on outcomes, SORM on Monte Carlo hard
// labels propagated backwards; every head reads the hidden state and the
// backbone's log-probabilities, HeadSpec::features: the PRM of the step and of
// the solution so far, the others of the solution so far), each measured
// against the domain's exact labels. run_demo compares, on held-out problems
// and at an equal budget of N proposals per problem: greedy, majority@N, ORM
// best-of-N, PRM weighted self-consistency@N, and step-level beam search
// guided by the PRM and by the OVM (beam_width x expansions = N proposals at
// every step, the first included); then, each problem at the proposals
// beam_prm made on it, lookahead search with the PRM and MCTS with the OVM
// and with the PRM as the value.
//
// Thread safety: reentrant; run_demo uses `threads` worker threads internally.
// The option and report structs are plain values.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "demo/arithmetic.h"
#include "stepverify/search.h"
#include "stepverify/train/training.h"

namespace stepverify {

/// Seeds of the demo's problem sets, never shared: training problems
/// (kDemoTrainSeed + DemoModelsOptions::seed), the dev set (the held-out
/// problems `stepverify models` measures on, and on which the recipes,
/// aggregates and options were chosen) and the test set (what the README
/// reports; used for nothing else).
inline constexpr uint64_t kDemoTrainSeed = 1;
inline constexpr uint64_t kDemoDevSeed = 1000;
inline constexpr uint64_t kDemoTestSeed = 3000;

/// The demo's held-out problem sets.
enum class DemoSet {
  Test,  ///< reported; never used to choose anything
  Dev,   ///< for choosing recipes and options (its first 200: the problems of the README's earlier tables)
};
/// "test" or "dev".
const char* demo_set_name(DemoSet set);

/// TrainOptions with these steps, peak learning rate and warmup (batch 32,
/// in 2 data-parallel shards on any machine, so runs match across machines).
inline TrainOptions train_options(int64_t steps, double learning_rate, int64_t warmup_steps) {
  TrainOptions o;
  o.threads = 2;
  o.steps = steps;
  o.learning_rate = learning_rate;
  o.warmup_steps = warmup_steps;
  return o;
}

/// Options of train_demo_models (the defaults are what `make models` runs).
struct DemoModelsOptions {
  std::filesystem::path out_dir = "models";  ///< writes out_dir/policy and out_dir/verifier
  uint64_t seed = 0;                         ///< initialisation, batch order and sampling
  /// When set, the tokenizer and policy are copied from this directory instead
  /// of trained (only the verifier is retrained); their accuracies are still measured.
  /// A reused policy is still continued when policy_continue_steps > 0 (into
  /// out_dir/policy; `stepverify models --policy-from` sets it to 0 unless
  /// --policy-continue-steps is given).
  std::filesystem::path policy_from;
  int64_t train_problems = 40000;   ///< generated training problems
  int tokenizer_vocab = 640;        ///< sentencepiece vocabulary (256 byte pieces included)
  int64_t hidden_size = 128;        ///< policy and verifier width
  int64_t layers = 4;               ///< transformer layers
  int64_t heads = 4;                ///< attention heads
  int64_t kv_heads = 2;             ///< key/value heads (grouped-query attention)
  int64_t intermediate_size = 384;  ///< MLP width
  TrainOptions policy_training = train_options(2200, 3e-3, 100);
  /// The solutions the policy (and its continuation) trains on: "commuted"
  /// (the reference with the operands of + and * in a random order,
  /// arithmetic::equivalent_solution without reordering; the shipped policy),
  /// "reordered" (arithmetic::equivalent_solution: the events of a run in a
  /// random order too) or "reference" (as written).
  std::string policy_solutions = "commuted";
  int64_t policy_eval_examples = 500;  ///< training problems held back to measure the policy's loss
  /// The policy is its next-token training continued for this many further
  /// steps (0: as first trained or reused). A continuation from a trained or
  /// reused policy moves its accuracy in small steps, without retraining it.
  int64_t policy_continue_steps = 1600;
  /// What the continuation trains on (the kinds of policy_solutions). A policy
  /// first trained on one order per solution learns the arithmetic fast; one
  /// continued on every order then samples several correct paths to an
  /// answer, as a language model's reasoning does.
  std::string policy_continue_solutions = "reordered";
  TrainOptions policy_continue_training = train_options(0, 1.5e-3, 50);  ///< its schedule (steps above)
  int64_t verifier_problems = 1200;  ///< training problems whose policy samples label the verifier
  int samples_per_problem = 8;       ///< policy samples per verifier problem (temperature 1)
  int rollouts = 4;                  ///< Monte Carlo rollouts per step prefix
  /// PRM targets: "soft" (share of rollouts reaching the answer) or "hard"
  /// (1 when any rollout does), as Math-Shepherd defines them.
  std::string prm_labels = "hard";
  /// The verifier's backbone is the policy with its next-token training
  /// continued for this many further steps (0: the policy itself). A stronger
  /// model of the same family checks the policy's arithmetic better than the
  /// policy does it.
  int64_t verifier_backbone_steps = 2200;
  /// What the backbone's continuation trains on (the kinds of policy_solutions).
  std::string backbone_solutions = "commuted";
  TrainOptions verifier_backbone_training = train_options(0, 1.5e-3, 50);  ///< its schedule (steps above)
  /// Keeps the continued backbone in out_dir/.verifier_backbone (removed by default).
  bool keep_backbone = false;
  /// When set, this checkpoint is the verifier's backbone (no continuation).
  std::filesystem::path backbone_from;
  TrainOptions verifier_training = train_options(1000, 3e-3, 50);
  int verifier_last_layers = 0;   ///< backbone layers the verifier trains (-1 all, 0 heads only)
  double verifier_lm_weight = 0;  ///< joint next-token loss on correct solutions (VerifierTrainOptions::lm_weight)
  int64_t eval_problems = 200;    ///< held-out problems for the printed figures
  /// How the trained models load for sampling, labeling and evaluation, and
  /// the dtype the continuations and the verifier train in (float32 or
  /// bfloat16). The policy trained from scratch trains in float32 (its random
  /// start needs float32 optimizer steps), is saved in float32 and loads in this dtype.
  LoadOptions load;
};

/// The figures train_demo_models prints (also written to out_dir/training.json).
struct DemoModelsReport {
  double policy_loss_first = 0, policy_loss_final = 0, policy_seconds = 0;
  std::string policy_solutions, policy_continue_solutions, backbone_solutions;  ///< the kinds trained on
  int64_t policy_continue_steps = 0;                                            ///< extra LM steps that made the policy
  double policy_continue_seconds = 0;
  double policy_greedy_accuracy = 0;  ///< held-out, temperature 0
  double policy_sample_accuracy = 0;  ///< held-out, one sample at temperature 1
  int64_t verifier_solutions = 0;     ///< labelled policy samples
  double mc_hard_agreement = 0;       ///< hard MC label == exact prefix label, share of steps
  double mc_soft_mean_correct = 0;    ///< mean soft label of exactly-correct prefixes
  double mc_soft_mean_wrong = 0;      ///< mean soft label of wrong prefixes
  int64_t rollouts = 0;
  double labeling_seconds = 0;
  int64_t backbone_steps = 0;  ///< extra LM steps of the verifier's backbone
  double backbone_loss_final = NAN, backbone_seconds = 0;
  double backbone_greedy_accuracy = NAN;  ///< held-out, the continued LM itself
  double verifier_loss_first = 0, verifier_loss_final = 0, verifier_seconds = 0;
  double prm_first_error_f1 = 0;  ///< ProcessBench metric vs exact labels, threshold 0.5
  double total_seconds = 0;
  std::string to_json() const;
};

/// The training problems of train_demo_models(options): options.train_problems
/// problems of seed kDemoTrainSeed + options.seed, less the first
/// options.eval_problems problems of the dev set.
std::vector<arithmetic::Problem> training_problems(const DemoModelsOptions& options);

/// The first `count` problems of `set` that the models trained with `trained`
/// never saw (training_problems(trained) holds none of them verbatim), for
/// any count.
std::vector<arithmetic::Problem> held_out_problems(DemoSet set, int64_t count, const DemoModelsOptions& trained = {});

/// Trains the tokenizer, the policy and the verifier into options.out_dir,
/// printing progress and figures to `log`.
DemoModelsReport train_demo_models(const DemoModelsOptions& options, std::ostream& log);

/// Options of run_demo.
struct DemoOptions {
  std::filesystem::path models_dir = "models";  ///< holds policy/ and verifier/
  LoadOptions load;                             ///< how the policy and the verifier load (dtype: float32 or bfloat16)
  DemoSet set = DemoSet::Test;                  ///< which held-out problems (held_out_problems)
  int64_t problems = 200;                       ///< held-out problems
  /// How the models were trained (the shipped ones: the defaults); held-out
  /// problems found among their training problems are skipped.
  DemoModelsOptions trained;
  int n = 16;          ///< proposals per problem for every method
  int beam_width = 4;  ///< beams kept (beam_width * expansions == n)
  int expansions = 4;  ///< proposals per beam and step
  /// Beam search proposes beam_width * expansions at every step, the first
  /// included (SearchOptions::constant_step_budget); false: `expansions` per
  /// live beam, so the first step proposes only `expansions`.
  bool constant_step_budget = true;
  double temperature = 1.0;  ///< sampling temperature of the policy
  double top_p = 1.0;        ///< nucleus sampling of the policy (1: off)
  uint64_t seed = 0;         ///< sampling seed
  int threads = 2;           ///< worker threads for the searches
  /// PRM step scores -> the score of a solution (weighted SC) or of a beam.
  Aggregate prm_aggregate = Aggregate::Product;
  /// OVM step values -> the score of a beam. "last": the value of the
  /// partial solution, as OVM reads it (the comparison with min is in README.md).
  Aggregate ovm_aggregate = Aggregate::Last;
  /// implicit_prm_best_of_N: its step rewards -> a solution's score. min
  /// (the weakest step) was chosen on the dev set over sum (the whole
  /// solution's implicit reward) and mean.
  Aggregate implicit_aggregate = Aggregate::Min;
  /// lookahead_prm: greedy steps rolled out from each candidate to rank it.
  int lookahead_steps = 1;
  /// mcts_ovm, mcts_prm: proposals per expanded node (each problem's budget
  /// is the proposals beam_prm made on it).
  int mcts_expansions = 4;
  /// mcts_ovm, mcts_prm: PUCT, priors, evaluation (iterations: the budget
  /// binds first). c_puct 2 was chosen on the dev set over 0.5, 1 and 4.
  MctsOptions mcts = [] {
    MctsOptions m;
    m.c_puct = 2;
    m.iterations = 100000;
    return m;
  }();
  /// mcts_ovm, mcts_prm: the final pick (by value: the best-scored finished
  /// solution; on the dev set within a problem of MostVisited).
  FinalPick mcts_pick = FinalPick::BestScore;
  /// When set, the N samples per problem are written here in the `eval bon`
  /// format (question, solution text, ORM score, PRM step scores, exact step
  /// labels, gold answer).
  std::filesystem::path candidates_out;
};

/// One method's figures.
struct DemoMethod {
  double accuracy = 0;
  int64_t verifier_tokens = 0;   ///< tokens the verifier ran through its backbone
  int64_t generated_tokens = 0;  ///< tokens the policy generated
  double seconds = 0;            ///< wall time, sampling included
};

/// A solution shown step by step.
struct DemoExample {
  std::string question;
  std::vector<std::string> steps;
  std::vector<double> prm;    ///< PRM score per step
  std::vector<bool> correct;  ///< exact label per step
  int true_first_error = -1;
  int predicted_first_error = -1;  ///< first PRM score below 0.5
};

struct DemoReport {
  std::vector<std::string> order;  ///< method names in display order
  std::map<std::string, DemoMethod> methods;
  double first_error_f1 = 0;  ///< PRM on the sampled solutions vs exact labels
  double first_error_error_accuracy = 0;
  double first_error_correct_accuracy = 0;
  int64_t first_error_solutions = 0;
  int64_t problems = 0;
  std::string set;  ///< "test" or "dev"
  int n = 0;
  double seconds = 0;
  DemoExample example;
  std::string to_json() const;
};

/// Runs the comparison. Throws IoError when the models are missing.
DemoReport run_demo(const DemoOptions& options);

}  // namespace stepverify
