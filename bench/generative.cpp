// bench/generative: a generative verifier's K chains decoded together in one
// batch, against the same K chains decoded one after another; and the read
// after each chain (P(yes) / P(no)), which reuses the positions decoding
// computed, against re-running prompt + chain + question from scratch (as
// ThinkPRM's harness does).
//
//   build/bench/generative [--shared DIR] [--chains K] [--tokens N] [--layers L] [--hidden H]
//
// The verifier is a random Llama causal LM (8 layers, hidden 1024: ~100M
// parameters) with the llama_gqa fixture's tokenizer; its chains never stop
// early, so every chain decodes N tokens. The last line is one JSON object.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_models.h"
#include "stepverify/generative.h"
#include "stepverify/runtime.h"

using namespace stepverify;

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  std::string shared = "../shared";
  int chains = 4;
  int64_t tokens = 64, layers = 8, hidden = 1024;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--shared"))
      shared = argv[++i];
    else if (!std::strcmp(argv[i], "--chains"))
      chains = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--tokens"))
      tokens = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--layers"))
      layers = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--hidden"))
      hidden = std::atoll(argv[++i]);
  }
  const auto dir = std::filesystem::temp_directory_path() / "stepverify_bench_generative";
  if (!bench::write_random_verifier(shared, dir, layers, hidden, /*causal_lm=*/true)) {
    std::cerr << "bench/generative: needs " << shared << "/fixtures/hf/llama_gqa/tokenizer.model (pass --shared DIR)\n";
    return 2;
  }
  GenerativeSpec spec;
  spec.name = "bench";
  spec.prompt_template = "Problem: {question}\nSolution:\n{steps}\nCheck:";
  GenerativeVerifier v(Model::load(dir), spec);
  const auto& tok = v.model().tokenizer();
  const std::string question = bench::text_of(tok, 120, 1);
  std::vector<std::string> steps;
  for (int s = 0; s < 4; ++s) steps.push_back(bench::text_of(tok, 45, 2 + s));
  GenerativeOptions o;
  o.chains = chains;
  o.max_tokens = tokens;
  o.sampling.temperature = 1.0;
  const auto seconds = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  v.verify(question, steps, [&] {  // warm-up
    auto w = o;
    w.chains = 1;
    w.max_tokens = 4;
    return w;
  }());
  GenerativeResult together;
  const double t_together = seconds([&] { together = v.verify(question, steps, o); });
  std::vector<GenerativeResult> alone(static_cast<size_t>(chains));
  const double t_alone = seconds([&] {
    for (int k = 0; k < chains; ++k) {
      auto one = o;
      one.chains = 1;
      one.sampling.seed = static_cast<uint64_t>(k) + 1;
      alone[static_cast<size_t>(k)] = v.verify(question, steps, one);
    }
  });
  // The read from scratch, per chain (what a harness that re-tokenizes and
  // re-runs does after every chain).
  const double t_full_read = seconds([&] {
                               for (const auto& c : together.chains) v.judge(question, steps, c.text);
                             }) /
                             chains;
  const double t_one_chain = t_alone / chains;
  fmt::print("generative verifier: {} layers, hidden {}, prompt {} tokens, {} chains x {} tokens\n", layers, hidden,
             together.prompt_tokens, chains, tokens);
  fmt::print("  {} chains in one batch:            {:.2f} s ({:.1f} chain tokens/s)\n", chains, t_together,
             together.generated_tokens / t_together);
  fmt::print("  {} calls of 1 chain (each prefills): {:.2f} s ({:.1f} chain tokens/s)\n", chains, t_alone,
             chains * tokens / t_alone);
  fmt::print("  speedup:                          {:.2f}x\n", t_alone / t_together);
  fmt::print("  a read from scratch:              {:.3f} s per chain, {:.0f}% of one chain's verify ({:.2f} s)\n",
             t_full_read, 100 * t_full_read / t_one_chain, t_one_chain);
  nlohmann::json j = {{"chains", chains},
                      {"tokens", tokens},
                      {"prompt_tokens", together.prompt_tokens},
                      {"seconds_batched", t_together},
                      {"seconds_sequential", t_alone},
                      {"batching_speedup", t_alone / t_together},
                      {"full_read_seconds", t_full_read},
                      {"full_read_over_chain", t_full_read / t_one_chain}};
  std::cout << j.dump() << "\n";
  return 0;
}
