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

#include "stepverify/session.h"
#include "stepverify/transformer.h"
#include "stepverify/verifier.h"

using namespace stepverify;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Text of about `target` tokens, from arithmetic words.
std::string text_of(const Tokenizer& tok, int64_t target, int seed) {
  static const char* words[] = {"eggs", "coins", "apples", "she", "buys", "sells", "each", "then", "so", "total",
                                "left", "more", "twice", "half", "the", "answer", "is", "and", "with", "of"};
  EncodeOptions raw;
  raw.add_special_tokens = false;
  std::string s;
  for (int i = 0; static_cast<int64_t>(tok.encode(s, raw).size()) < target; ++i) {
    s += (s.empty() ? "" : " ") + std::string(words[(i * 7 + seed * 13) % 20]);
    if (i % 5 == 4) s += " " + std::to_string((i * 37 + seed) % 100);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shared = "../shared";
  int64_t layers = 8, hidden = 512;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--shared")) shared = argv[++i];
    else if (!std::strcmp(argv[i], "--layers")) layers = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--hidden")) hidden = std::atoll(argv[++i]);
  }
  namespace fs = std::filesystem;
  const fs::path tok_src = fs::path(shared) / "fixtures/hf/llama_gqa";
  if (!fs::exists(tok_src / "tokenizer.model")) {
    std::cerr << "bench/incremental: needs " << tok_src.string() << "/tokenizer.model (pass --shared DIR)\n";
    return 2;
  }
  // Build the checkpoint: random backbone + a 2-class token-classification head.
  const fs::path dir = fs::temp_directory_path() / "stepverify_bench_incremental";
  fs::create_directories(dir);
  for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(tok_src / f, dir / f, fs::copy_options::overwrite_existing);
  nlohmann::json cfg = {{"architectures", {"LlamaForTokenClassification"}},
                        {"vocab_size", 1000},
                        {"hidden_size", hidden},
                        {"intermediate_size", hidden * 11 / 4},
                        {"num_hidden_layers", layers},
                        {"num_attention_heads", hidden / 64},
                        {"num_key_value_heads", hidden / 64},
                        {"max_position_embeddings", 2048},
                        {"num_labels", 2},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2}};
  std::ofstream(dir / "config.json") << cfg.dump();
  {
    auto config = ModelConfig::from_json(cfg.dump());
    auto model = Model::random(config, 7);
    std::vector<at::Tensor> keep;
    std::vector<TensorData> tensors;
    for (const auto& item : model->transformer().named_parameters()) {
      keep.push_back(item.value().detach().contiguous());
      tensors.push_back({item.key(), DType::F32, keep.back().sizes().vec(), keep.back().data_ptr()});
    }
    keep.push_back(torch::randn({2, hidden}) * 0.05);
    tensors.push_back({"score.weight", DType::F32, {2, hidden}, keep.back().data_ptr()});
    save_safetensors(dir / "model.safetensors", tensors);
  }
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;  // measure the session alone
  auto v = Verifier::load(dir, vo);
  const auto& tok = v->model().tokenizer();
  const std::string question = text_of(tok, 200, 1);
  std::vector<std::string> steps;
  for (int k = 0; k < 8; ++k) steps.push_back(text_of(tok, 40, k + 2));
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
  const int64_t unique = static_cast<int64_t>(v->render(question, steps, true).ids.size());
  double max_diff = 0;
  for (size_t i = 0; i < steps.size(); ++i) max_diff = std::max(max_diff, std::abs(scores_b[i] - last_a[i]));

  fmt::print("verifier: random Llama {} layers, hidden {}; question {} tokens, {} steps, {} unique tokens\n", layers,
             hidden, v->render(question, {}, true).ids.size(), steps.size(), unique);
  fmt::print("{:<34} {:>10} {:>10}\n", "", "tokens", "seconds");
  fmt::print("{:<34} {:>10} {:>10.3f}\n", "(a) re-score prefix at each step", tokens_a, secs_a);
  fmt::print("{:<34} {:>10} {:>10.3f}\n", "(b) session (KV cache)", tokens_b, secs_b);
  fmt::print("speedup {:.2f}x, (b) computes {:.3f}x the unique tokens, max |score(a) - score(b)| = {:.2e}\n",
             secs_a / secs_b, static_cast<double>(tokens_b) / unique, max_diff);
  nlohmann::json out = {{"speedup", secs_a / secs_b},
                        {"tokens_over_unique", static_cast<double>(tokens_b) / unique},
                        {"tokens_rescoring", tokens_a},
                        {"tokens_session", tokens_b},
                        {"unique_tokens", unique},
                        {"seconds_rescoring", secs_a},
                        {"seconds_session", secs_b},
                        {"max_score_diff", max_diff}};
  std::cout << out.dump() << std::endl;
  fs::remove_all(dir);
  return 0;
}
