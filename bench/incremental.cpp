// bench/incremental: scoring a solution step by step, (a) by re-scoring the
// whole prefix after each step as the Python frameworks do, (b) with a
// ScoringSession that computes only the new tokens.
//
//   build/bench/incremental [--shared DIR] [--layers N] [--hidden H]
//
// The verifier is a random-weight LlamaForTokenClassification (trl preset)
// built here, with the sentencepiece tokenizer of the llama_gqa fixture. The
// question is ~200 tokens and each of the 8 steps ~40 tokens. The last line is
// one JSON object with `speedup` and `tokens_over_unique`.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench_models.h"
#include "stepverify/runtime.h"
#include "stepverify/session.h"

using namespace stepverify;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  std::string shared = "../shared";
  int64_t layers = 8, hidden = 512;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--shared"))
      shared = argv[++i];
    else if (!std::strcmp(argv[i], "--layers"))
      layers = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--hidden"))
      hidden = std::atoll(argv[++i]);
  }
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "stepverify_bench_incremental";
  if (!bench::write_random_verifier(shared, dir, layers, hidden)) {
    std::cerr << "bench/incremental: needs " << shared
              << "/fixtures/hf/llama_gqa/tokenizer.model (pass --shared DIR)\n";
    return 2;
  }
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;  // measure the session alone
  auto v = Verifier::load(dir, vo);
  const auto& tok = v->model().tokenizer();
  const std::string question = bench::text_of(tok, 200, 1);
  std::vector<std::string> steps;
  for (int k = 0; k < 8; ++k) steps.push_back(bench::text_of(tok, 40, k + 2));
  v->score(question, {steps[0]});  // warm-up

  // (a) re-score the whole prefix after each step.
  int64_t tokens_a = 0;
  std::vector<double> last_a;
  auto t0 = Clock::now();
  for (size_t k = 1; k <= steps.size(); ++k) {
    auto r = v->score(question, std::vector<std::string>(steps.begin(), steps.begin() + k));
    tokens_a += r.tokens;
    last_a = r.step_scores;
  }
  const double secs_a = since(t0);

  // (b) one session, one step at a time.
  t0 = Clock::now();
  auto s = v->session(question);
  std::vector<double> scores_b;
  for (const auto& st : steps) scores_b.push_back(s->append_step(st).at("prm"));
  const double secs_b = since(t0);
  const int64_t tokens_b = s->tokens_computed();
  const int64_t unique = static_cast<int64_t>(v->input_template().render(question, steps, true).ids.size());
  double max_diff = 0;
  for (size_t i = 0; i < steps.size(); ++i) max_diff = std::max(max_diff, std::abs(scores_b[i] - last_a[i]));

  fmt::print("verifier: random Llama {} layers, hidden {}; question {} tokens, {} steps, {} unique tokens\n", layers,
             hidden, v->input_template().render(question, {}, true).ids.size(), steps.size(), unique);
  fmt::print("{:<34} {:>10} {:>10}\n", "", "tokens", "seconds");
  fmt::print("{:<34} {:>10} {:>10.3f}\n", "(a) re-score prefix at each step", tokens_a, secs_a);
  fmt::print("{:<34} {:>10} {:>10.3f}\n", "(b) session (KV cache)", tokens_b, secs_b);
  fmt::print("speedup {:.2f}x, (b) computes {:.3f}x the unique tokens, max |score(a) - score(b)| = {:.2e}\n",
             secs_a / secs_b, static_cast<double>(tokens_b) / unique, max_diff);
  nlohmann::json out = {{"speedup", secs_a / secs_b},   {"tokens_over_unique", static_cast<double>(tokens_b) / unique},
                        {"tokens_rescoring", tokens_a}, {"tokens_session", tokens_b},
                        {"unique_tokens", unique},      {"seconds_rescoring", secs_a},
                        {"seconds_session", secs_b},    {"max_score_diff", max_diff}};
  std::cout << out.dump() << std::endl;
  fs::remove_all(dir);
  return 0;
}
