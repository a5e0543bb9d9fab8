// stepverify/generative.h: generative verifiers (ThinkPRM arXiv 2504.16828,
// GenPRM arXiv 2504.00891): a causal LM writes a verification chain that
// judges each step ("Step 2: ... \boxed{incorrect}"), then answers a fixed
// question; the score is P(yes) / (P(yes) + P(no)) at that answer.
//
//   auto v = stepverify::GenerativeVerifier::load("ThinkPRM-1.5B");     // spec: the thinkprm preset
//   stepverify::GenerativeOptions o;  o.chains = 4;  o.sampling.temperature = 0.6;
//   auto r = v->verify("What is 7 * 8?", {"7 * 8 = 54.", "The answer is 54."}, o);
//   // r.score (mean over the chains), r.step_scores (share of chains calling each step correct),
//   // r.chains[i].verdicts (per step: correct, incorrect or missing), r.generated_tokens
//
// Scores scale with verifier compute: more chains (or longer ones) average
// out a chain's mistakes. Every generated token is counted, so a search's
// budget can include them.
//
// Thread safety: a loaded GenerativeVerifier is immutable; verify() and
// judge() are const and may run on several threads at once (each call owns
// its caches and its generator).
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stepverify/model.h"
#include "stepverify/sampling.h"

namespace stepverify {

/// How a generative verifier is prompted and read. JSON form (a file, or
/// `generative.json` beside the checkpoint): the same field names.
struct STEPVERIFY_API GenerativeSpec {
  std::string name;
  /// The whole prompt, chat markup included; "{question}" and "{steps}" are
  /// replaced (each once). It ends where the model starts writing its chain.
  std::string prompt_template = "{question}\n{steps}\nVerification:\n";
  /// One step of "{steps}": "{n}" is its 1-based number, "{step}" its text.
  std::string step_format = "Step {n}: {step}";
  std::string step_joiner = "\n";  ///< between formatted steps
  /// A step's verdict in the chain: the k-th verdict (either kind, in order
  /// of appearance) is step k's; a step with none is reported missing.
  std::string correct_verdict = "\\boxed{correct}";
  std::string incorrect_verdict = "\\boxed{incorrect}";
  /// Where the chain ends and the final question begins: the chain is cut at
  /// the first occurrence of this text (if the model wrote it), then this
  /// text is appended and the next-token logits give P(yes) and P(no).
  std::string final_question = "\nIs the solution correct?";
  /// The answers; each is encoded alone (no special tokens) and its first
  /// token that is more than white space is read. The read is on the text prompt + chain + final_question
  /// tokenized again, as ThinkPRM's harness builds it.
  std::string yes = " Yes";
  std::string no = " No";
  /// Also ends a chain (besides EOS and max_tokens; empty: none), e.g. a
  /// thinking model's "</think>".
  std::string stop;
  /// Encode the prompt with the tokenizer's special tokens (BOS).
  bool add_special_tokens = true;

  /// Parses JSON; ConfigError naming `source` and the field.
  static GenerativeSpec from_json(const std::string& text, const std::string& source = "generative spec");
  /// "thinkprm": ThinkPRM's prompt (launch/ThinkPRM-1.5B model card) in
  /// DeepSeek-R1-Distill-Qwen's chat markup, "\boxed{correct}" /
  /// "\boxed{incorrect}" verdicts, "Is the solution correct? Yes/No".
  /// ConfigError listing the presets when unknown.
  static GenerativeSpec preset(const std::string& name);
  static std::vector<std::string> preset_names();
  std::string to_json() const;
};

/// How chains are generated.
struct STEPVERIFY_API GenerativeOptions {
  /// k verification chains (their scores are averaged), decoded together in
  /// one batch. At temperature 0 they are all the same: one is decoded.
  int chains = 1;
  int64_t max_tokens = 1024;      ///< tokens per chain before it is cut (then read as it stands)
  SamplingParams sampling = [] {  ///< temperature (0: greedy), top-k, top-p, seed
    SamplingParams p;
    p.temperature = 0;
    return p;
  }();
};

/// A step's verdict in one chain.
enum class Verdict { Correct, Incorrect, Missing };
/// "correct", "incorrect" or "missing".
STEPVERIFY_API const char* to_string(Verdict v);

/// One verification chain.
struct STEPVERIFY_API VerificationChain {
  std::string text;               ///< the chain as generated (cut at final_question)
  std::vector<Verdict> verdicts;  ///< one per step
  double p_yes = 0, p_no = 0;     ///< next-token probabilities after final_question
  double score = 0;               ///< p_yes / (p_yes + p_no)
  int64_t tokens = 0;             ///< tokens generated
  bool truncated = false;         ///< cut at max_tokens
};

/// What verify() returns.
struct STEPVERIFY_API GenerativeResult {
  double score = 0;  ///< mean chain score
  /// Per step: the share of chains that gave a verdict calling it correct
  /// (NaN when no chain gave it one).
  std::vector<double> step_scores;
  std::vector<VerificationChain> chains;
  int64_t generated_tokens = 0;  ///< tokens decoded, over all chains (verifier compute for budgets)
  int64_t prompt_tokens = 0;     ///< the prompt's tokens (prefilled once)
};

/// Options of GenerativeVerifier::load.
struct STEPVERIFY_API GenerativeVerifierOptions {
  /// A preset name or a spec file; empty: generative.json beside the
  /// checkpoint, else the "thinkprm" preset.
  std::string spec;
  LoadOptions load;  ///< backbone load options (dtype, device)
};

class STEPVERIFY_API GenerativeVerifier {
 public:
  static std::shared_ptr<const GenerativeVerifier> load(const std::filesystem::path& dir,
                                                        const GenerativeVerifierOptions& options = {});
  /// Over a model already loaded (with its tokenizer).
  GenerativeVerifier(std::shared_ptr<const Model> model, GenerativeSpec spec);
  ~GenerativeVerifier();

  /// Generates options.chains chains and reads them. InputError on no steps,
  /// an empty step, or a prompt longer than the context.
  GenerativeResult verify(const std::string& question, const std::vector<std::string>& steps,
                          const GenerativeOptions& options = {}) const;
  /// The InputError verify() would throw before generating (no steps, an
  /// empty step, a prompt leaving no room for a chain, bad options), or none.
  void check(const std::string& question, const std::vector<std::string>& steps,
             const GenerativeOptions& options = {}) const;
  /// Reads a chain given as text (no generation): its verdicts and its
  /// yes/no score after (question, steps, chain) + final_question, the chain
  /// cut at final_question and at stop. verify() reads its chains the same
  /// way, reusing the positions its decoding already computed (the same read
  /// to float rounding).
  VerificationChain judge(const std::string& question, const std::vector<std::string>& steps,
                          const std::string& chain) const;
  /// The prompt (question, steps) renders to.
  std::string prompt(const std::string& question, const std::vector<std::string>& steps) const;
  /// The verdicts `chain` gives `steps` steps (the parsing rule of GenerativeSpec).
  std::vector<Verdict> verdicts(const std::string& chain, size_t steps) const;

  const GenerativeSpec& spec() const { return spec_; }
  const Model& model() const { return *model_; }

 private:
  struct Read;
  // The prompt's ids, after check()'s checks; *budget: tokens a chain may take.
  std::vector<int64_t> prompt_ids(const std::string& question, const std::vector<std::string>& steps,
                                  const GenerativeOptions& options, int64_t* budget) const;
  // The yes/no read after `ids` (prompt + chain + final question, tokenized
  // as one text). The positions that row `row` of `prefix` holds for the
  // same leading ids (`prefix_ids`) are reused; the rest is run.
  Read read(const std::vector<int64_t>& ids, const KVCache* prefix, int64_t row,
            const std::vector<int64_t>& prefix_ids) const;
  // A chain's verdicts and its read (the chain cut at final_question and stop).
  VerificationChain read_chain(const std::string& question, const std::vector<std::string>& steps,
                               const std::string& chain, const KVCache* prefix, int64_t row,
                               const std::vector<int64_t>& prefix_ids) const;
  std::shared_ptr<const Model> model_;
  GenerativeSpec spec_;
  int64_t yes_id_ = -1, no_id_ = -1;
};

}  // namespace stepverify
