// An application-owned decoding loop that asks a verifier about every step and
// prunes weak branches. The app samples tokens itself; stepverify only scores.
//
//   example_custom_decoding_loop POLICY_DIR VERIFIER_DIR "What is 12 + 5?"
#include <algorithm>
#include <iostream>

#include <torch/torch.h>

#include <stepverify/stepverify.h>

using namespace stepverify;

// The app's own sampler: one step (up to a newline) continuing `prompt`.
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
  std::unique_ptr<ScoringSession> session;  // the verifier's KV prefix of this branch
  double score = 1.0;
};

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();          // torch at 1 thread, OpenBLAS on all cores
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " POLICY_DIR VERIFIER_DIR QUESTION\n";
    return 2;
  }
  try {
    auto policy = Model::load(argv[1]);
    auto verifier = Verifier::load(argv[2]);
    const std::string question = argv[3];
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    std::vector<Branch> beams;
    beams.push_back({{}, verifier->session(question), 1.0});
    for (int depth = 0; depth < 3; ++depth) {
      std::vector<Branch> next;
      for (auto& b : beams) {
        std::string prompt = question + "\n";
        for (const auto& s : b.steps) prompt += s + "\n";
        for (int k = 0; k < 3; ++k) {
          std::string step = sample_step(*policy, prompt, gen);
          if (step.find_first_not_of(" \t") == std::string::npos) continue;  // empty: not a step
          Branch child{b.steps, b.session->fork(), 0};
          child.steps.push_back(step);
          child.score = child.session->append_step(step).begin()->second;  // only the new tokens
          next.push_back(std::move(child));
        }
      }
      // Prune: keep the two best branches.
      std::sort(next.begin(), next.end(), [](const Branch& a, const Branch& b) { return a.score > b.score; });
      if (next.size() > 2) next.resize(2);
      if (next.empty()) break;
      beams = std::move(next);
      std::cout << "depth " << depth + 1 << ": best step \"" << beams[0].steps.back() << "\" score "
                << beams[0].score << "\n";
    }
    std::cout << "best branch:\n";
    for (const auto& s : beams[0].steps) std::cout << "  " << s << "\n";
  } catch (const Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
