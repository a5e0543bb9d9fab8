// bench/search: step-level beam search scored through forked sessions, against
// the same search re-scoring every prefix (as the Python frameworks do).
//
//   build/bench/search [--shared DIR] [--beam B] [--expansions K] [--depth D]
//
// The verifier is a random 25M-parameter Llama token classifier (trl preset);
// the proposer is scripted (deterministic ~40-token steps) so both runs expand
// the same tree. The last line is one JSON object with `speedup` and
// `tokens_over_unique`.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_models.h"
#include "stepverify/runtime.h"
#include "stepverify/search.h"

using namespace stepverify;

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  std::string shared = "../shared";
  int beam = 4, expansions = 4, depth = 4;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--shared"))
      shared = argv[++i];
    else if (!std::strcmp(argv[i], "--beam"))
      beam = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--expansions"))
      expansions = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--depth"))
      depth = std::atoi(argv[++i]);
  }
  const auto dir = std::filesystem::temp_directory_path() / "stepverify_bench_search";
  if (!bench::write_random_verifier(shared, dir, 8, 512)) {
    std::cerr << "bench/search: needs " << shared << "/fixtures/hf/llama_gqa/tokenizer.model (pass --shared DIR)\n";
    return 2;
  }
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;
  auto v = Verifier::load(dir, vo);
  const std::string question = bench::text_of(v->model().tokenizer(), 200, 1);
  SearchOptions o;
  o.beam_width = beam;
  o.expansions = expansions;
  o.max_steps = depth;

  bench::ScriptedProposer fast;
  fast.tok = &v->model().tokenizer();
  fast.depth = depth;
  auto a = beam_search(*v, fast, question, o);
  bench::ScriptedProposer slow = fast;
  slow.nodes.clear();
  o.scoring = stepverify::SearchScoring::Rescore;
  auto b = beam_search(*v, slow, question, o);

  int64_t unique = static_cast<int64_t>(v->input_template().render(question, {}, true).ids.size());
  for (const auto& path : fast.nodes) {
    std::vector<std::string> parent(path.begin(), path.end() - 1);
    unique += static_cast<int64_t>(v->input_template().render(question, path, true).ids.size()) -
              static_cast<int64_t>(v->input_template().render(question, parent, true).ids.size());
  }
  fmt::print(
      "beam {} x {} expansions ({} proposals at every step, the first included), depth {}: {} nodes, {} unique "
      "verifier tokens\n",
      beam, expansions, beam * expansions, depth, fast.nodes.size(), unique);
  fmt::print("{:<28} {:>10} {:>10}\n", "", "tokens", "seconds");
  fmt::print("{:<28} {:>10} {:>10.2f}\n", "re-scoring prefixes", b.verifier_tokens, b.seconds);
  fmt::print("{:<28} {:>10} {:>10.2f}\n", "sessions (KV cache)", a.verifier_tokens, a.seconds);
  fmt::print("speedup {:.2f}x; sessions compute {:.3f}x the unique tokens; same pick: {}\n", b.seconds / a.seconds,
             double(a.verifier_tokens) / unique, a.steps == b.steps ? "yes" : "no");
  nlohmann::json out = {{"speedup", b.seconds / a.seconds},
                        {"tokens_over_unique", double(a.verifier_tokens) / unique},
                        {"tokens_session", a.verifier_tokens},
                        {"tokens_rescoring", b.verifier_tokens},
                        {"unique_tokens", unique},
                        {"seconds_session", a.seconds},
                        {"seconds_rescoring", b.seconds},
                        {"same_pick", a.steps == b.steps}};
  std::cout << out.dump() << std::endl;
  std::filesystem::remove_all(dir);
  return 0;
}
