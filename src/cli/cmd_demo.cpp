// stepverify demo: loads a checkpoint (by default the llama_gqa fixture of the
// shared directory) and prints its tokenization and next-token predictions.
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "cli/commands.h"
#include "stepverify/errors.h"
#include "stepverify/model.h"
#include "stepverify/session.h"
#include "stepverify/verifier.h"

namespace stepverify::cli {

Run add_demo(CLI::App& app) {
  app.description("Load a checkpoint and show tokenization, next-token predictions and greedy decoding");
  auto shared = std::make_shared<std::string>("../shared");
  auto model_dir = std::make_shared<std::string>();
  auto text = std::make_shared<std::string>("Ana has 12 coins and buys 5 more, so");
  app.add_option("--shared", *shared, "shared directory holding fixtures/hf");
  app.add_option("--model", *model_dir, "checkpoint directory (default: SHARED/fixtures/hf/llama_gqa)");
  app.add_option("--text", *text, "prompt");
  return [=] {
    std::filesystem::path dir = model_dir->empty() ? std::filesystem::path(*shared) / "fixtures/hf/llama_gqa"
                                                   : std::filesystem::path(*model_dir);
    if (!std::filesystem::exists(dir / "config.json"))
      throw IoError(dir.string() + ": no checkpoint here (pass --model DIR or --shared DIR)");
    auto model = Model::load(dir);
    const auto& cfg = model->config();
    fmt::print("model      {} ({}), {} layers, hidden {}, {} heads / {} kv heads, {:.2f}M parameters\n",
               dir.string(), cfg.architecture, cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
               cfg.num_key_value_heads, model->num_parameters() / 1e6);
    fmt::print("tokenizer  {} with {} tokens\n", model->tokenizer().kind(), model->tokenizer().size());
    auto enc = model->tokenizer().encode_with_pieces(*text);
    fmt::print("text       \"{}\"\n", *text);
    fmt::print("tokens     ");
    for (size_t i = 0; i < enc.ids.size(); ++i) fmt::print("{}{}:{}", i ? " " : "", enc.pieces[i], enc.ids[i]);
    fmt::print("\n");
    if (!model->has_lm_head()) return 0;
    ForwardInput in;
    in.input_ids = to_batch(enc.ids);
    auto logits = model->logits(model->forward(in).hidden)[0];
    auto probs = torch::softmax(logits.select(0, logits.size(0) - 1), -1);
    auto top = probs.topk(5);
    fmt::print("next token after the prompt:\n");
    for (int64_t k = 0; k < 5; ++k) {
      const int64_t id = std::get<1>(top)[k].item<int64_t>();
      fmt::print("  {:>5.1f}%  {:>5}  {}\n", 100.0 * std::get<0>(top)[k].item<double>(), id,
                 model->tokenizer().id_to_piece(id));
    }
    auto gen = model->generate_greedy(enc.ids, 8);
    fmt::print("greedy     {}\n", model->tokenizer().decode(gen));
    fmt::print("(random-weight fixture: the tokens are exact, the words are noise; a trained demo model comes with\n"
               " the training issue)\n");

    // A process reward model scoring a solution, in one pass and step by step.
    const auto prm_dir = std::filesystem::path(*shared) / "fixtures/hf/qwen2_prm";
    if (!model_dir->empty() || !std::filesystem::exists(prm_dir / "config.json")) return 0;
    auto verifier = Verifier::load(prm_dir);
    const std::string question = "Janet has 16 eggs and eats 3. How many are left?";
    const std::vector<std::string> steps = {"Janet starts with 16 eggs.", "She eats 3, so 16 - 3 = 13.",
                                            "The answer is $\\boxed{13}$."};
    fmt::print("\nverifier   {} (preset {}, heads:", prm_dir.string(), verifier->spec().name);
    for (const auto& h : verifier->head_names()) fmt::print(" {}", h);
    fmt::print(")\nquestion   {}\n", question);
    auto scores = verifier->score(question, steps);
    auto session = verifier->session(question);
    for (size_t i = 0; i < steps.size(); ++i) {
      const double inc = session->append_step(steps[i]).at("prm");
      fmt::print("step {}     {:<32} reward {:.6f} (incremental {:.6f})\n", i + 1, steps[i], scores.step_scores[i], inc);
    }
    fmt::print("session    {} tokens cached, {} computed: each token once\n", session->cached_tokens(),
               session->tokens_computed());
    return 0;
  };
}

}  // namespace stepverify::cli
