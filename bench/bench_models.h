// Shared by the benchmark programs: a random-weight verifier checkpoint with the
// sentencepiece tokenizer of the llama_gqa fixture, and filler text of a given
// token length.
#pragma once

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "stepverify/search.h"
#include "stepverify/transformer.h"
#include "stepverify/verifier.h"

namespace stepverify::bench {

// Text of about `target` tokens, from arithmetic words.
inline std::string text_of(const Tokenizer& tok, int64_t target, int seed) {
  static const char* words[] = {"eggs", "coins", "apples", "she",  "buys", "sells",  "each", "then", "so",   "total",
                                "left", "more",  "twice",  "half", "the",  "answer", "is",   "and",  "with", "of"};
  EncodeOptions raw;
  raw.add_special_tokens = false;
  std::string s;
  for (int i = 0; static_cast<int64_t>(tok.encode(s, raw).size()) < target; ++i) {
    s += (s.empty() ? "" : " ") + std::string(words[(i * 7 + seed * 13) % 20]);
    if (i % 5 == 4) s += " " + std::to_string((i * 37 + seed) % 100);
  }
  return s;
}

// Writes a random LlamaForTokenClassification verifier (trl preset) to `dir`,
// or with `causal_lm` a LlamaForCausalLM; false when the tokenizer fixture is
// missing.
inline bool write_random_verifier(const std::filesystem::path& shared, const std::filesystem::path& dir, int64_t layers,
                                  int64_t hidden, bool causal_lm = false) {
  namespace fs = std::filesystem;
  const fs::path tok_src = shared / "fixtures/hf/llama_gqa";
  if (!fs::exists(tok_src / "tokenizer.model")) return false;
  fs::create_directories(dir);
  for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(tok_src / f, dir / f, fs::copy_options::overwrite_existing);
  nlohmann::json cfg = {{"architectures", {causal_lm ? "LlamaForCausalLM" : "LlamaForTokenClassification"}},
                        {"vocab_size", 1000},
                        {"hidden_size", hidden},
                        {"intermediate_size", hidden * 11 / 4},
                        {"num_hidden_layers", layers},
                        {"num_attention_heads", hidden / 64},
                        {"num_key_value_heads", hidden / 64},
                        {"max_position_embeddings", 4096},
                        {"num_labels", 2},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2}};
  std::ofstream(dir / "config.json") << cfg.dump();
  auto model = Model::random(ModelConfig::from_json(cfg.dump()), 7);
  std::vector<at::Tensor> keep;
  std::vector<TensorData> tensors;
  for (const auto& item : model->transformer().named_parameters()) {
    keep.push_back(item.value().detach().contiguous());
    tensors.push_back({item.key(), DType::F32, keep.back().sizes().vec(), keep.back().data_ptr()});
  }
  if (!causal_lm) {
    keep.push_back(torch::randn({2, hidden}) * 0.05);
    tensors.push_back({"score.weight", DType::F32, {2, hidden}, keep.back().data_ptr()});
  }
  save_safetensors(dir / "model.safetensors", tensors);
  return true;
}

// Deterministic steps of about `step_tokens` tokens, the same at one depth
// for every parent, finished at `depth`: every scoring way expands the same tree.
struct ScriptedProposer : StepProposer {
  const Tokenizer* tok = nullptr;
  int depth = 4;
  int64_t step_tokens = 40;
  std::set<std::vector<std::string>> nodes;  // every distinct path proposed
  std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& steps, int k) override {
    std::vector<Proposal> out;
    for (int i = 0; i < k; ++i) {
      Proposal p;
      p.text = text_of(*tok, step_tokens, static_cast<int>(steps.size()) * 17 + i * 5 + 3);
      p.finished = static_cast<int>(steps.size()) + 1 >= depth;
      p.tokens = step_tokens;
      auto path = steps;
      path.push_back(p.text);
      nodes.insert(path);
      out.push_back(p);
    }
    return out;
  }
};

}  // namespace stepverify::bench
