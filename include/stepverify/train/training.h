// stepverify/train/training.h: training causal LMs and verifier heads on libtorch.
//
//   // A policy: next-token loss on the solution tokens.
//   auto lm = stepverify::new_transformer(config, /*seed=*/1, /*with_lm_head=*/true);
//   stepverify::TrainOptions o;  o.steps = 2000;  o.learning_rate = 3e-3;
//   auto report = stepverify::train_causal_lm(*lm, examples, eval_examples, o);
//   stepverify::save_checkpoint("models/policy", *lm, "tokenizer_dir");
//
//   // A verifier: heads (and the last layers) over a backbone checkpoint.
//   auto spec = stepverify::VerifierSpec::from_file("my_spec.json");     // linear heads: prm, orm, ovm, sorm
//   stepverify::VerifierTrainer t("models/policy", spec, "models/verifier");
//   stepverify::VerifierTrainOptions vo;  vo.last_layers = 2;
//   t.train(data, eval_data, vo);
//   t.save();                                   // loads back with Verifier::load("models/verifier")
//
// Optimisation (shared by every trainer): AdamW (decay on matrices only),
// linear warmup then cosine decay to a floor, gradient clipping, gradient
// accumulation, periodic evaluation, seeded initialisation and batch order,
// and a progress bar with loss and rate on stderr.
//
// Verifier losses. A head's `meaning` (verifier_spec.h) picks its targets and
// read positions; its activation picks the loss (softmax: cross-entropy with
// soft targets; sigmoid: BCE; none: MSE; tanh: MSE to 2y - 1). As used:
//  * "prm": cross-entropy at each step's read position against the step
//    label; labels in [0, 1] are soft targets (BCE to a Monte Carlo fraction),
//    0/1 labels are the hard cross-entropy. A softmax head with 2 classes or
//    a sigmoid head with 1 output.
//  * "orm": BCE of the outcome (is_correct) at the solution's read position.
//  * "ovm": MSE between the head's value and the outcome at every step end
//    (OVM: outcome supervision, read as the value of a partial solution).
//  * "sorm": BCE against stepwise labels from rollouts (labeling.h, sorm_labels).
// Examples lacking a head's target skip that head.
//
// Thread safety: a trainer is used by one thread at a time.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "stepverify/config.h"
#include "stepverify/train/datasets.h"
#include "stepverify/transformer.h"
#include "stepverify/verifier.h"
#include "stepverify/verifier_spec.h"

namespace stepverify {

class ProcessGroup;  // stepverify/distributed.h

/// Options of the optimisation loop.
struct STEPVERIFY_API TrainOptions {
  int64_t steps = 1000;         ///< optimizer steps
  int64_t batch_size = 32;      ///< examples per micro-batch
  int accumulation = 1;         ///< micro-batches per optimizer step
  double learning_rate = 1e-3;  ///< peak learning rate
  double min_lr_ratio = 0.1;    ///< cosine floor as a share of the peak
  int64_t warmup_steps = 100;   ///< linear warmup from 0
  double weight_decay = 0.01;   ///< AdamW decay, applied to matrices only
  double beta1 = 0.9;           ///< AdamW first-moment decay
  double beta2 = 0.95;          ///< AdamW second-moment decay
  double clip_grad_norm = 1.0;  ///< global norm clip (0: none)
  int64_t eval_every = 0;       ///< steps between evaluations (0: only at the end)
  uint64_t seed = 0;            ///< batch order (and new parameters where a trainer creates them)
  bool progress = true;         ///< progress bar on stderr
  /// Batches of examples of similar length (sorted within windows of 50
  /// batches, then shuffled): less padding, same examples per epoch.
  bool group_by_length = true;
  /// Data-parallel shards: each micro-batch is split into this many parts
  /// whose losses and gradients are computed concurrently, one thread each
  /// (OpenBLAS at one thread meanwhile), and summed in shard order, each
  /// weighted by its share of the examples (as accumulation weighs
  /// micro-batches). 0: one per hardware thread. The count changes the
  /// arithmetic, not the examples: pin it for runs that must match across
  /// machines (speed-up figures in README.md).
  int threads = 0;
  /// Data-parallel over a process group (null: this process alone): every
  /// rank draws the same batches, computes the gradients of its contiguous
  /// slice of each micro-batch (split among its threads as above), and the
  /// gradients and losses are summed over the ranks by allreduce before the
  /// optimizer step, each weighted by its share of the examples; every rank
  /// ends with the same parameters. The rank count changes the arithmetic
  /// (sums in another order, within float tolerance of one process), not the
  /// examples. Not owned; callers write checkpoints on rank 0 only.
  ProcessGroup* group = nullptr;
};

/// One logged point of a run.
struct STEPVERIFY_API TrainPoint {
  int64_t step = 0;
  double loss = 0;         ///< mean training loss since the previous point
  double eval_loss = NAN;  ///< evaluation loss when evaluated at this step
  double learning_rate = 0;
};

/// What a run reports.
struct STEPVERIFY_API TrainReport {
  std::vector<TrainPoint> history;  ///< one point per evaluation (and the end)
  double first_loss = NAN;          ///< mean loss over the first optimizer step
  double final_loss = NAN;          ///< mean loss over the last 10% of steps
  double final_eval_loss = NAN;     ///< evaluation loss at the end (NaN without eval data)
  double seconds = 0;
  int64_t examples = 0;  ///< examples seen
};

/// The optimisation loop over any loss. `loss(batch)` returns the mean loss of
/// the examples whose indices are given (called with grad enabled; with
/// options.threads != 1 it is called concurrently from several threads on
/// disjoint shards of a batch, so it must be thread-safe, as the library's
/// losses are);
/// `eval()` returns an evaluation loss (called under NoGrad), may be empty;
/// `lengths` (one per example, optional) enables group_by_length.
STEPVERIFY_API TrainReport train_loop(const std::vector<at::Tensor>& parameters, int64_t num_examples,
                                      const std::function<at::Tensor(const std::vector<int64_t>&)>& loss,
                                      const std::function<double()>& eval, const TrainOptions& options,
                                      const std::vector<int64_t>& lengths = {});

/// A transformer for `config` with freshly initialised weights (normal with
/// std 0.02, norms 1), seeded; for training from scratch.
STEPVERIFY_API std::shared_ptr<TransformerImpl> new_transformer(const ModelConfig& config, uint64_t seed,
                                                                bool with_lm_head);

/// A trainable copy (separate q/k/v and gate/up parameters) of a loaded
/// model's weights, on the CPU, in `dtype` (float32, or bfloat16 for half the memory).
STEPVERIFY_API std::shared_ptr<TransformerImpl> trainable_copy(const Model& model, bool with_lm_head,
                                                               c10::ScalarType dtype = c10::kFloat);

/// One causal-LM example: the loss covers the predictions of ids[prompt_tokens..].
struct STEPVERIFY_API LmExample {
  std::vector<int64_t> ids;
  int64_t prompt_tokens = 0;
};

/// Next-token training (cross-entropy on the non-prompt tokens). Throws
/// InputError on an empty set or an example longer than the context.
STEPVERIFY_API TrainReport train_causal_lm(TransformerImpl& model, const std::vector<LmExample>& train,
                                           const std::vector<LmExample>& eval, const TrainOptions& options);

/// config.json text for `config` (Hugging Face field names).
STEPVERIFY_API std::string config_to_json(const ModelConfig& config);

/// Writes config.json and model.safetensors (every parameter in its own dtype:
/// F32, BF16 or F16; tied LM head omitted), copies the tokenizer files found in `tokenizer_dir`, and
/// adds `extra` tensors (heads) to the safetensors file.
STEPVERIFY_API void save_checkpoint(const std::filesystem::path& dir, TransformerImpl& model,
                                    const std::filesystem::path& tokenizer_dir,
                                    const std::map<std::string, at::Tensor>& extra = {});

/// Options of verifier training.
struct STEPVERIFY_API VerifierTrainOptions {
  TrainOptions train;  ///< the optimisation loop
  /// Backbone layers trained: -1 all (embeddings too), 0 heads only, k the
  /// last k layers and the final norm.
  int last_layers = -1;
  /// Loss weight per head name (absent: 1).
  std::map<std::string, double> head_weights;
  /// Weight of a next-token loss on the solution tokens of examples whose
  /// outcome is 1, trained jointly with the heads (Cobbe et al. 2021 train
  /// verifiers with a language-modelling objective beside the verification
  /// one); keeps the backbone a model of correct solutions. 0: none.
  double lm_weight = 0;
};

/// Trains the heads of a spec over a backbone checkpoint and saves a verifier
/// checkpoint that Verifier::load reads unchanged.
class STEPVERIFY_API VerifierTrainer {
 public:
  /// Copies the backbone at `backbone_dir` (a causal LM or any supported
  /// checkpoint; its tokenizer too) into `out_dir` with new heads (seeded;
  /// heads of type "linear" only) and `spec` as stepverify.json.
  /// `dtype`: the backbone's dtype in training and in the saved checkpoint.
  /// bfloat16 halves the memory of a real-size backbone; the heads keep
  /// float32 weights and read float32 inputs. Backbone layers trained in
  /// bfloat16 are updated in bfloat16 (no float32 master copy): with it,
  /// train the heads (VerifierTrainOptions::last_layers 0) or a few layers.
  /// With a `group` (data-parallel training, TrainOptions::group), rank 0
  /// writes out_dir and the others wait for it, and save() writes on rank 0
  /// only; every rank starts from the same seeded heads. Not owned.
  VerifierTrainer(const std::filesystem::path& backbone_dir, VerifierSpec spec, const std::filesystem::path& out_dir,
                  uint64_t seed = 0, c10::ScalarType dtype = c10::kFloat, ProcessGroup* group = nullptr);
  ~VerifierTrainer();
  TrainReport train(const std::vector<VerifierExample>& train, const std::vector<VerifierExample>& eval,
                    const VerifierTrainOptions& options);
  /// Writes the trained weights to out_dir (with a group: rank 0, then every rank waits for it).
  void save() const;
  /// The verifier as loaded from out_dir before training (renders inputs).
  const Verifier& renderer() const { return *renderer_; }
  /// The head parameters by head name: (weight [C, H], bias [C]).
  const std::map<std::string, std::pair<at::Tensor, at::Tensor>>& head_weights() const { return heads_; }

 private:
  std::filesystem::path out_dir_;
  VerifierSpec spec_;
  std::shared_ptr<const Verifier> renderer_;
  std::shared_ptr<TransformerImpl> backbone_;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> heads_;  // name -> (weight [C,H], bias [C])
  ProcessGroup* group_ = nullptr;
};

}  // namespace stepverify
