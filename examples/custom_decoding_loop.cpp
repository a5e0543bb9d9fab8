// An application-owned decoding loop that asks a verifier's PRM head about
// every step and keeps the best branches. The application samples tokens
// itself; stepverify only scores, each step appended to the branch's scoring
// session (its KV prefix is reused, never re-scored).
//
//   example_custom_decoding_loop POLICY_DIR VERIFIER_DIR QUESTION [GOLD_ANSWER]
//   example_custom_decoding_loop models/policy models/verifier \
//     "Dev has 19 shells. He triples the shells. How many shells does Dev have now?" 57
//
// A branch ends at its answer step (a step that states a final answer, e.g.
// "The answer is 57"; a bare number is not an answer); the loop stops when the best branch
// has ended. It prints each depth's best step, the chosen solution, its
// answer and, with a gold answer, whether the answer is right.
#include <algorithm>
#include <iostream>

#include <torch/torch.h>

#include <stepverify/core.h>

using namespace stepverify;

namespace {

constexpr const char* kHead = "prm";  // the verifier head that ranks steps
constexpr int kWidth = 2;             // branches kept after each step
constexpr int kSamples = 3;           // steps sampled per branch
constexpr int kMaxDepth = 8;          // steps before the search gives up

// The application's own sampler: one step (up to a newline) continuing `prompt`.
std::string sample_step(const Model& lm, const std::string& prompt, at::Generator& gen) {
  auto ids = lm.tokenizer().encode(prompt);
  auto cache = lm.new_cache();
  ForwardInput in;
  in.input_ids = to_batch(ids);
  in.cache = &cache;
  std::vector<int64_t> out;
  for (int t = 0; t < 24; ++t) {
    auto h = lm.forward(in).hidden;
    auto probs = torch::softmax(lm.logits(h.select(1, h.size(1) - 1))[0] / 0.8, -1);
    const int64_t next = at::multinomial(probs, 1, false, gen).item<int64_t>();
    if (next == lm.tokenizer().special_tokens().eos_id.value_or(-1)) break;
    out.push_back(next);
    const std::string text = lm.tokenizer().decode(out, {true});
    if (text.find('\n') != std::string::npos) return text.substr(0, text.find('\n'));
    in.input_ids = to_batch({next});
  }
  return lm.tokenizer().decode(out, {true});
}

struct Branch {
  std::vector<std::string> steps;
  std::unique_ptr<ScoringSession> session;                             // the verifier's KV prefix of this branch
  std::vector<double> prm;                                             // the PRM's score of each step
  std::optional<std::string> answer;                                   // set once the branch has stated its answer
  double score() const { return aggregate(prm, Aggregate::Product); }  // P(every step is right)
};

}  // namespace

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " POLICY_DIR VERIFIER_DIR QUESTION [GOLD_ANSWER]\n";
    return 2;
  }
  try {
    auto policy = Model::load(argv[1]);
    auto verifier = Verifier::load(argv[2]);
    const auto& heads = verifier->head_names();
    if (std::find(heads.begin(), heads.end(), kHead) == heads.end())
      throw ConfigError(std::string(argv[2]) + ": the verifier has no head '" + kHead + "'");
    const std::string question = argv[3];
    const PolicyPrompt prompt;  // "{question}\n", each step then "\n": how the policy was trained
    ExtractOptions stated;      // an answer step states its answer ("The answer is 57", \boxed{57}, ...)
    stated.whole = false;       // "19 + 4 = 23" reads as the value 23, but states no final answer
    stated.math_span = false;
    stated.last_number = false;
    const DefaultExtractor answer_of(stated);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);

    std::vector<Branch> beams;
    beams.push_back({{}, verifier->session(question), {}, std::nullopt});
    for (int depth = 0; depth < kMaxDepth && !beams.front().answer; ++depth) {
      std::vector<Branch> next;
      for (auto& b : beams) {
        if (b.answer) {  // ended: competes as it is
          next.push_back(std::move(b));
          continue;
        }
        for (int k = 0; k < kSamples; ++k) {
          std::string step = sample_step(*policy, prompt.render(question, b.steps), gen);
          if (step.find_first_not_of(" \t") == std::string::npos) continue;  // empty: not a step
          Branch child{b.steps, b.session->fork(), b.prm, std::nullopt};
          child.steps.push_back(step);
          child.prm.push_back(child.session->append_step(step).at(kHead));  // scores only the new tokens
          child.answer = answer_of.extract(step);
          next.push_back(std::move(child));
        }
      }
      if (next.empty()) break;
      std::stable_sort(next.begin(), next.end(),
                       [](const Branch& a, const Branch& b) { return a.score() > b.score(); });
      if (next.size() > kWidth) next.resize(kWidth);
      beams = std::move(next);
      std::cout << "depth " << depth + 1 << ": best step \"" << beams.front().steps.back() << "\" " << kHead << " "
                << beams.front().prm.back() << "\n";
    }
    const Branch& best = beams.front();
    std::cout << "solution (" << kHead << " product " << best.score() << "):\n";
    for (size_t i = 0; i < best.steps.size(); ++i)
      std::cout << "  " << best.steps[i] << "    [" << kHead << " " << best.prm[i] << "]\n";
    std::cout << "answer: " << best.answer.value_or("(none)") << "\n";
    if (argc > 4)
      std::cout << "correct: " << (best.answer && answers_equal(*best.answer, argv[4]) ? "yes" : "no") << "\n";
  } catch (const Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
