// Training, label generation, data readers and the arithmetic domain.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>

#include "demo/arithmetic.h"
#include "stepverify/steps.h"
#include "stepverify/train/datasets.h"
#include "demo/demo.h"
#include "stepverify/errors.h"
#include "stepverify/generation.h"
#include "stepverify/train/labeling.h"
#include "stepverify/session.h"
#include "stepverify/train/tokenizer_trainer.h"
#include "stepverify/train/training.h"
#include "test_support.h"

using namespace stepverify;
using stepverify::test::TempDir;

TEST_CASE("arithmetic: generation is seeded and reference solutions check as correct", "[training]") {
  arithmetic::ProblemOptions o;
  o.seed = 5;
  const auto a = arithmetic::generate_problems(300, o), b = arithmetic::generate_problems(300, o);
  REQUIRE(a.size() == 300);
  int levels[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].question == b[i].question);
    const auto c = arithmetic::check_solution(a[i], a[i].steps);
    INFO(a[i].question);
    CHECK(c.first_error == -1);
    CHECK(c.answer_correct);
    CHECK(c.finished);
    CHECK(a[i].steps.size() >= static_cast<size_t>(a[i].level + 1));  // one step per operation, plus the answer
    CHECK(a[i].answer >= 0);
    CHECK(a[i].answer <= 200);
    ++levels[a[i].level];
  }
  CHECK(levels[1] > 50);
  CHECK(levels[2] > 50);
  CHECK(levels[3] > 50);

  // Equivalent solutions: seeded, correct by the checker, reaching the answer
  // through other intermediate results when the story has two additive events
  // in a run; about half the + and * equations have their operands swapped.
  int reorderable = 0, other_values = 0, equations = 0, swapped = 0, kept_order = 0, kept_order_swapped = 0;
  // Results of a solution's steps, in step order.
  const auto results = [](const std::vector<std::string>& steps) {
    std::vector<std::string> r;
    for (const auto& s : steps) r.push_back(s.substr(s.find('=') + 1));
    return r;
  };
  const auto commutes = [](const std::string& step) {
    return step.find(" + ") != std::string::npos || step.find(" * ") != std::string::npos;
  };
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].question);
    const auto e = arithmetic::equivalent_solution(a[i], i);
    CHECK(e == arithmetic::equivalent_solution(a[i], i));
    REQUIRE(e.size() == a[i].steps.size());
    CHECK(arithmetic::check_solution(a[i], e).first_error == -1);
    CHECK(e.back() == a[i].steps.back());
    const auto& ops = a[i].operations;
    bool run = false;  // two additive events with no multiplication between them
    for (size_t k = 1; k < ops.size(); ++k) run = run || (ops[k].kind != '*' && ops[k - 1].kind != '*');
    reorderable += run;
    if (run) other_values += results(e) != results(a[i].steps);
    if (!run) CHECK(results(e) == results(a[i].steps));
    // The second event applied first is on a path to the answer.
    if (ops.size() >= 2 && ops[0].kind != '*' && ops[1].kind != '*') {
      const auto change = [](const arithmetic::Operation& op) {
        return op.kind == '+' ? op.amount : op.kind == '-' ? -op.amount : op.count * op.amount;
      };
      CHECK(std::count(a[i].values.begin(), a[i].values.end(), a[i].start + change(ops[1])) >= 1);
    }
    for (size_t k = 0; k + 1 < e.size(); ++k) {
      equations += commutes(e[k]);
      // Swapped: the first operand is not the running quantity or product the reference writes first.
      if (commutes(e[k]) && std::find(a[i].steps.begin(), a[i].steps.end(), e[k]) == a[i].steps.end()) ++swapped;
    }
    // Without reordering: the reference's steps, only operands swapped.
    const auto c = arithmetic::equivalent_solution(a[i], i, false);
    CHECK(results(c) == results(a[i].steps));
    for (size_t k = 0; k < c.size(); ++k)
      if (a[i].steps[k].find(" - ") != std::string::npos || k + 1 == c.size()) CHECK(c[k] == a[i].steps[k]);
    for (size_t k = 0; k + 1 < c.size(); ++k) {
      kept_order += commutes(c[k]);
      kept_order_swapped += commutes(c[k]) && c[k] != a[i].steps[k];
    }
  }
  CHECK(reorderable > 60);
  CHECK(other_values > reorderable * 3 / 10);  // a run of two in the other order is half the draws
  CHECK(swapped > equations * 3 / 10);
  CHECK(kept_order_swapped > kept_order * 4 / 10);
  CHECK(kept_order_swapped < kept_order * 6 / 10);
  // The checker accepts another order of a hand-made problem and catches an event applied twice.
  arithmetic::Problem hand;
  hand.start = 10;
  hand.operands = {10, 5, 3};
  hand.operations = {{'+', 5, 0}, {'-', 3, 0}};
  hand.values = {15, 12, 7};
  hand.answer = 12;
  hand.steps = {"10 + 5 = 15", "15 - 3 = 12", "The answer is 12"};
  CHECK(arithmetic::check_solution(hand, {"10 - 3 = 7", "7 + 5 = 12", "The answer is 12"}).first_error == -1);
  CHECK(arithmetic::check_solution(hand, {"10 - 3 = 7", "7 + 3 = 10", "The answer is 10"}).first_error == 1);
  o.seed = 6;
  CHECK(arithmetic::generate_problems(1, o)[0].question != a[0].question);
  o.min_level = 0;
  CHECK_THROWS_AS(arithmetic::generate_problems(1, o), ConfigError);
}

TEST_CASE("arithmetic: the exact checker finds arithmetic slips, distractors and wrong answers", "[training]") {
  arithmetic::Problem p;
  p.question = "Ana has 23 apples. Ben has 41 cards. She buys 17 more apples. She gives 8 apples to Ben.";
  p.operands = {23, 17, 8};
  p.values = {40, 32};
  p.distractors = {41};
  p.answer = 32;
  p.steps = {"23 + 17 = 40", "40 - 8 = 32", "The answer is 32"};
  auto c = arithmetic::check_solution(p, {"23 + 17 = 40", "40 - 8 = 32", "The answer is 32"});
  CHECK(c.first_error == -1);
  CHECK(c.answer_correct);
  c = arithmetic::check_solution(p, {"23 + 17 = 40", "40 - 8 = 33", "The answer is 33"});  // slip
  CHECK(c.first_error == 1);
  CHECK(c.step_correct == std::vector<bool>{true, false, false});
  CHECK(c.prefix_correct == std::vector<bool>{true, false, false});
  CHECK_FALSE(c.answer_correct);
  c = arithmetic::check_solution(p, {"23 + 41 = 64", "64 - 8 = 56", "The answer is 56"});  // distractor
  CHECK(c.first_error == 0);
  c = arithmetic::check_solution(p, {"23 + 17 = 40", "The answer is 40"});  // stops early
  CHECK(c.first_error == 1);
  CHECK(c.finished);
  c = arithmetic::check_solution(p, {"23 + 17 = 40", "40 - 8 = 32"});  // never answers
  CHECK(c.first_error == -1);
  CHECK_FALSE(c.finished);
  CHECK_FALSE(c.answer_correct);
  c = arithmetic::check_solution(p, {"23 plus 17 is 40"});  // not an equation
  CHECK(c.first_error == 0);
  CHECK(arithmetic::stated_answer("The answer is 32.") == 32);
  CHECK_FALSE(arithmetic::stated_answer("The answer is 32 apples").has_value());
  CHECK(split_steps("a\n\nb\n") == std::vector<std::string>{"a", "b"});
}

namespace {

// A sentencepiece tokenizer trained on arithmetic text plus a few words.
std::filesystem::path make_tokenizer(const std::filesystem::path& dir) {
  std::vector<std::string> sentences = {"good step", "bad step", "Check the steps.", "good", "bad"};
  for (const auto& p : arithmetic::generate_problems(300, {})) {
    sentences.push_back(p.question);
    for (const auto& s : p.steps) sentences.push_back(s);
  }
  SentencePieceTrainOptions o;
  o.vocab_size = 420;
  train_sentencepiece(sentences, dir, o);
  return dir;
}

ModelConfig tiny_config(int64_t vocab) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 192;
  c.tie_word_embeddings = true;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// Rollouts scripted by prefix length: for a prefix of i steps the first
// hits[i - 1] of the n answers are the gold answer "7", the rest "8".
struct ScriptedPolicy : RolloutPolicy {
  std::vector<int> hits;
  int calls = 0;
  std::vector<std::string> rollout(const std::vector<RolloutRequest>& reqs, int n) override {
    ++calls;
    std::vector<std::string> out;
    for (const auto& r : reqs)
      for (int k = 0; k < n; ++k) out.push_back(k < hits.at(r.steps.size() - 1) ? "7" : "8");
    return out;
  }
};

// A sentencepiece tokenizer in root/tok and a tiny causal LM over it (seeded)
// in root/base: the backbone the verifier-training tests start from.
void write_toy_backbone(const std::filesystem::path& root, uint64_t seed) {
  make_tokenizer(root / "tok");
  auto tok = load_sentencepiece_tokenizer(root / "tok");
  auto lm = new_transformer(tiny_config(tok->size()), seed, true);
  save_checkpoint(root / "base", *lm, root / "tok");
}

// 96 solutions of three steps, each "good step" or "bad step" (seeded); a
// step's label is 1 while every step so far is good, the outcome 1 when all are.
std::vector<VerifierExample> good_bad_steps(uint64_t s) {
  std::vector<VerifierExample> data;
  for (int i = 0; i < 96; ++i) {
    VerifierExample e;
    e.question = "Check the steps.";
    bool all = true;
    for (int k = 0; k < 3; ++k) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      const bool good = (s >> 33) % 3 != 0;
      e.steps.push_back(good ? "good step" : "bad step");
      all = all && good;
      e.step_labels.push_back(all ? 1.0 : 0.0);
    }
    e.outcome = all ? 1.0 : 0.0;
    data.push_back(e);
  }
  return data;
}

// 80 steps of 16 examples at 1e-2 after 5 warmup steps, quietly.
VerifierTrainOptions toy_train_options() {
  VerifierTrainOptions o;
  o.train.steps = 80;
  o.train.batch_size = 16;
  o.train.learning_rate = 1e-2;
  o.train.warmup_steps = 5;
  o.train.progress = false;
  return o;
}

}  // namespace

TEST_CASE("tokenizer trainer: a sentencepiece model that tokenizes step by step like the whole", "[training]") {
  TempDir tmp;
  make_tokenizer(tmp.path);
  auto tok = load_sentencepiece_tokenizer(tmp.path);
  CHECK(tok->size() == 420);
  const std::string q = "Ana has 23 apples. How many apples does Ana have now?";
  const std::string step = "23 + 17 = 40";
  EncodeOptions raw;
  raw.add_special_tokens = false;
  auto whole = tok->encode(q + "\n" + step + "\n", raw);
  auto qi = tok->encode(q, raw), nl = tok->encode("\n", raw), si = tok->encode(step, raw);
  REQUIRE(nl.size() == 1);
  std::vector<int64_t> parts = qi;
  parts.insert(parts.end(), nl.begin(), nl.end());
  parts.insert(parts.end(), si.begin(), si.end());
  parts.insert(parts.end(), nl.begin(), nl.end());
  CHECK(whole == parts);
  CHECK(tok->decode(whole) == q + "\n" + step + "\n");
  CHECK(tok->encode("7")[0] == 1);  // BOS from tokenizer_config.json
  CHECK_THROWS_AS(train_sentencepiece({"a\nb"}, tmp.path / "x"), InputError);
  // The sentences reach the trainer from memory: the model records no corpus
  // file, and a second training gives the same bytes.
  make_tokenizer(tmp.path / "again");
  const auto model = stepverify::detail::read_file(tmp.path / "tokenizer.model");
  CHECK(model == stepverify::detail::read_file(tmp.path / "again" / "tokenizer.model"));
  CHECK(model.find("/tmp") == std::string::npos);
  CHECK(model.find("corpus") == std::string::npos);
}

TEST_CASE("training: a causal LM learns a toy mapping (loss falls, greedy accuracy >= 95%)", "[training]") {
  // ids: BOS=1, x in [3, 19), answer (x - 3 + 5) % 16 + 3. Prompt [1, x], target [y, 2].
  auto cfg = tiny_config(24);
  auto lm = new_transformer(cfg, 3, true);
  std::vector<LmExample> data;
  for (int rep = 0; rep < 8; ++rep)
    for (int64_t x = 3; x < 19; ++x) data.push_back({{1, x, (x - 3 + 5) % 16 + 3, 2}, 2});
  TrainOptions o;
  o.steps = 150;
  o.batch_size = 16;
  o.learning_rate = 1e-2;
  o.warmup_steps = 10;
  o.progress = false;
  auto rep = train_causal_lm(*lm, data, {data.begin(), data.begin() + 16}, o);
  CHECK(rep.final_loss < 0.2 * rep.first_loss);
  CHECK(rep.final_eval_loss < 0.1);
  CHECK(rep.history.back().step == 150);
  torch::NoGradGuard ng;
  int ok = 0;
  for (int64_t x = 3; x < 19; ++x) {
    ForwardInput in;
    in.input_ids = torch::tensor({int64_t{1}, x}).view({1, 2});
    auto h = lm->forward(in).hidden;
    auto logits = at::linear(h.select(1, 1), lm->model->embed_tokens->weight);
    ok += logits.argmax(-1).item<int64_t>() == (x - 3 + 5) % 16 + 3;
  }
  CHECK(ok >= 16 * 95 / 100);
  // Bad input is refused with the example named.
  std::vector<LmExample> bad = {{{1}, 0}};
  CHECK_THROWS_AS(train_causal_lm(*lm, bad, {}, o), InputError);
}

TEST_CASE("training: data-parallel shards give the one-thread gradients, the same bits every run", "[training]") {
  // Least squares over 37 examples, a per-example mean loss: the shard-weighted
  // sum of shard means is the batch mean, so every shard count follows the
  // one-thread run (up to rounding), and a fixed count repeats to the bit.
  auto quiet = [](int64_t steps, int64_t batch, int threads) {
    TrainOptions o;
    o.steps = steps;
    o.batch_size = batch;
    o.threads = threads;
    o.progress = false;
    return o;
  };
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto X = torch::randn({37, 5}, gen), y = torch::randn({37}, gen);
  auto fit = [&](int threads, int accumulation, std::vector<int64_t>* seen = nullptr) {
    auto w = torch::zeros({5}, torch::requires_grad());
    auto b = torch::zeros({1}, torch::requires_grad());
    auto o = quiet(30, 8, threads);
    o.accumulation = accumulation;
    o.learning_rate = 0.05;
    o.warmup_steps = 3;
    std::mutex mu;
    auto loss = [&](const std::vector<int64_t>& idx) {
      if (seen) {
        std::lock_guard<std::mutex> lock(mu);
        seen->push_back(static_cast<int64_t>(idx.size()));
      }
      const auto rows = torch::tensor(idx, torch::kLong);
      return ((X.index_select(0, rows).matmul(w) + b - y.index_select(0, rows)).pow(2)).mean();
    };
    const auto rep = train_loop({w, b}, 37, loss, {}, o);
    CHECK(rep.final_loss < rep.first_loss);
    return torch::cat({w.detach(), b.detach()});
  };
  std::vector<int64_t> sizes;
  const auto one = fit(1, 1);
  const auto two = fit(2, 1, &sizes);
  CHECK(torch::allclose(one, two, 1e-5, 1e-6));
  CHECK(torch::equal(two, fit(2, 1)));
  CHECK(torch::allclose(fit(1, 2), fit(3, 2), 1e-5, 1e-6));
  CHECK(torch::allclose(one, fit(64, 1), 1e-5, 1e-6));  // more shards than examples: one example each
  REQUIRE(sizes.size() == 60);                          // 30 steps x 2 shards of a batch of 8
  for (auto n : sizes) CHECK(n == 4);

  // A shard whose loss is not finite stops the run, naming the step.
  auto w = torch::zeros({1}, torch::requires_grad());
  auto bad = [&](const std::vector<int64_t>& idx) {
    const bool has3 = std::find(idx.begin(), idx.end(), 3) != idx.end();
    return has3 ? (w * std::numeric_limits<float>::infinity()).sum() : (w * w).sum();
  };
  CHECK_THROWS_WITH(train_loop({w}, 4, bad, {}, quiet(5, 4, 2)), Catch::Matchers::Contains("not finite at step 0"));
}

TEST_CASE("training: saved checkpoints reload exactly and generate() matches greedy decoding", "[training]") {
  TempDir tmp;
  make_tokenizer(tmp.path / "tok");
  auto tok = load_sentencepiece_tokenizer(tmp.path / "tok");
  auto lm = new_transformer(tiny_config(tok->size()), 9, true);
  save_checkpoint(tmp.path / "lm", *lm, tmp.path / "tok");
  auto model = Model::load(tmp.path / "lm");
  torch::NoGradGuard ng;
  for (auto& item : lm->named_parameters()) {
    if (item.key() == "lm_head.weight") continue;
    INFO(item.key());
    CHECK(torch::equal(item.value(), model->transformer().named_parameters()[item.key()].to(torch::kFloat)));
  }
  // Left-padded batches of different lengths decode as each prompt alone.
  std::vector<std::vector<int64_t>> prompts = {tok->encode("Ana has 3 apples."), tok->encode("Ben"),
                                               tok->encode("Cara has 12 coins and 7 cards.")};
  GenerationOptions g;
  g.sampling.temperature = 0;
  g.max_new_tokens = 12;
  g.stop_at_eos = false;
  auto outs = generate(*model, prompts, g);
  for (size_t i = 0; i < prompts.size(); ++i) {
    CHECK(outs[i].ids == model->generate_greedy(prompts[i], 12));  // the 12 new tokens
  }
  g.sampling.temperature = 1;
  g.sampling.seed = 4;
  auto s1 = generate(*model, prompts, g), s2 = generate(*model, prompts, g);
  for (size_t i = 0; i < prompts.size(); ++i) CHECK(s1[i].ids == s2[i].ids);
  CHECK_THROWS_AS(generate(*model, {{}}, g), InputError);
}

TEST_CASE("training: a verifier with four heads learns step labels and reloads exactly", "[training]") {
  TempDir tmp;
  write_toy_backbone(tmp.path, 10);
  auto spec = VerifierSpec::from_json(R"({"name": "toy", "template": {"style": "tokens", "question_suffix": "\n",
    "step_separator": "\n"}, "heads": [
    {"name": "prm", "meaning": "prm", "type": "linear", "weights": "prm", "activation": "softmax", "read": "step_end"},
    {"name": "orm", "meaning": "orm", "type": "linear", "weights": "orm", "activation": "sigmoid", "read": "last"},
    {"name": "ovm", "meaning": "ovm", "type": "linear", "weights": "ovm", "activation": "none", "read": "step_end"},
    {"name": "sorm", "meaning": "sorm", "type": "linear", "weights": "sorm", "activation": "sigmoid", "read": "step_end"}]})");
  VerifierTrainer trainer(tmp.path / "base", spec, tmp.path / "v", 1);
  auto data = good_bad_steps(12345);
  auto o = toy_train_options();
  auto rep = trainer.train(data, {data.begin(), data.begin() + 16}, o);
  CHECK(rep.final_loss < 0.5 * rep.first_loss);
  trainer.save();
  // The saved heads are the trained ones, bit for bit.
  auto ckpt = Checkpoint::open(tmp.path / "v");
  for (const auto& [name, wb] : trainer.head_weights()) {
    INFO(name);
    CHECK(torch::equal(to_tensor(ckpt->tensor(name + ".weight")), wb.first.detach()));
    CHECK(torch::equal(to_tensor(ckpt->tensor(name + ".bias")), wb.second.detach()));
  }
  auto v = Verifier::load(tmp.path / "v");
  CHECK(v->head_names() == std::vector<std::string>{"prm", "orm", "ovm", "sorm"});
  int right = 0, total = 0;
  for (const auto& e : data) {
    auto sc = v->score(e.question, e.steps);
    for (size_t k = 0; k < e.steps.size(); ++k) {
      right += (sc.heads.at("prm")[k] > 0.5) == (e.step_labels[k] > 0.5);
      ++total;
    }
    CHECK(sc.heads.at("ovm").size() == 3);
    CHECK(sc.heads.at("sorm").size() == 3);
  }
  CHECK(right >= total * 9 / 10);

  // Each outcome and value head learns too, on held-out solutions (another
  // seed). ORM and OVM rank solutions by outcome: the share of (right, wrong)
  // pairs they order correctly (AUROC, counted here pair by pair; chance is
  // 0.5) must reach 0.9. SORM labels each step (chance: the majority rate,
  // about 0.53 here) right on at least 90% of steps.
  const auto held_out = good_bad_steps(987654321);
  std::vector<double> orm_right, orm_wrong, ovm_right, ovm_wrong;
  int sorm_right = 0, sorm_total = 0;
  for (const auto& e : held_out) {
    const auto sc = v->score(e.question, e.steps);
    const bool good = *e.outcome > 0.5;
    (good ? orm_right : orm_wrong).push_back(sc.outcome.at("orm"));
    (good ? ovm_right : ovm_wrong).push_back(sc.heads.at("ovm").back());
    for (size_t k = 0; k < e.steps.size(); ++k) {
      sorm_right += (sc.heads.at("sorm")[k] > 0.5) == (e.step_labels[k] > 0.5);
      ++sorm_total;
    }
  }
  auto pairs_ordered = [](const std::vector<double>& pos, const std::vector<double>& neg) {
    double n = 0;
    for (double p : pos)
      for (double q : neg) n += p > q ? 1.0 : p == q ? 0.5 : 0.0;
    return n / static_cast<double>(pos.size() * neg.size());
  };
  REQUIRE(!orm_right.empty());
  REQUIRE(!orm_wrong.empty());
  CHECK(pairs_ordered(orm_right, orm_wrong) >= 0.9);
  CHECK(pairs_ordered(ovm_right, ovm_wrong) >= 0.9);
  CHECK(sorm_right >= sorm_total * 9 / 10);
  // A target outside [0, 1] or a label count that does not match is refused.
  data[0].step_labels = {0.5, 2.0, 1.0};
  CHECK_THROWS_AS(trainer.train(data, {}, o), InputError);
  data[0].step_labels = {1.0};
  CHECK_THROWS_AS(trainer.train(data, {}, o), InputError);
}

TEST_CASE("training in bf16: float32 heads over a bf16 backbone learn, saved in bf16", "[training][bf16]") {
  TempDir tmp;
  write_toy_backbone(tmp.path, 10);
  auto spec = VerifierSpec::from_json(R"({"name": "toy", "template": {"style": "tokens", "question_suffix": "\n",
    "step_separator": "\n"}, "heads": [
    {"name": "prm", "meaning": "prm", "type": "linear", "weights": "prm", "activation": "softmax", "read": "step_end",
     "features": "hidden+logprob"}]})");
  const auto data = good_bad_steps(777);
  auto o = toy_train_options();
  o.last_layers = 0;  // heads only: the bf16 backbone stays as loaded
  // The same heads-only training in float32 is the reference: bf16 learns as much.
  VerifierTrainer reference(tmp.path / "base", spec, tmp.path / "v32", 1);
  const auto want = reference.train(data, {}, o);
  VerifierTrainer trainer(tmp.path / "base", spec, tmp.path / "v", 1, torch::kBFloat16);
  auto rep = trainer.train(data, {}, o);
  INFO("float32 loss " << want.first_loss << " -> " << want.final_loss << ", bf16 " << rep.first_loss << " -> "
                       << rep.final_loss);
  CHECK(rep.final_loss < rep.first_loss - 0.1);
  CHECK(std::abs(rep.final_loss - want.final_loss) < 0.05);
  CHECK(trainer.head_weights().at("prm").first.scalar_type() == torch::kFloat);
  trainer.save();
  auto ckpt = Checkpoint::open(tmp.path / "v");
  CHECK(ckpt->tensor("model.layers.0.mlp.up_proj.weight").dtype == DType::BF16);
  CHECK(ckpt->tensor("prm.weight").dtype == DType::F32);
  VerifierOptions vo;
  vo.load.dtype = torch::kBFloat16;
  auto v = Verifier::load(tmp.path / "v", vo);
  int right = 0, total = 0;
  for (const auto& e : data) {
    auto sc = v->score(e.question, e.steps);
    for (size_t k = 0; k < e.steps.size(); ++k, ++total)
      right += (sc.heads.at("prm")[k] > 0.5) == (e.step_labels[k] > 0.5);
  }
  CHECK(right >= total * 9 / 10);
}

TEST_CASE("labeling: Monte Carlo labels equal the scripted fractions", "[training]") {
  ScriptedPolicy pol;
  pol.hits = {3, 1, 0, 0};
  LabelProblem p{"q", {"a", "b", "c", "The answer is 8"}, "7"};
  LabelOptions o;
  o.rollouts = 4;
  auto l = monte_carlo_labels(pol, {p}, o);
  REQUIRE(l.size() == 1);
  CHECK(l[0].soft == std::vector<double>{0.75, 0.25, 0.0, 0.0});
  CHECK(l[0].hard == std::vector<int>{1, 1, 0, 0});
  CHECK(l[0].rollouts == 12);  // the last step is labelled by its own answer
  p.steps.back() = "The answer is 7";
  l = monte_carlo_labels(pol, {p}, o);
  CHECK(l[0].soft.back() == 1.0);
  CHECK(sorm_labels({1, 0, 1, 0}) == std::vector<double>{1, 1, 1, 0});
  CHECK(sorm_labels({1, 0, 0, 0}, true) == std::vector<double>{1, 1, 1, 1});
  CHECK(sorm_labels({1, 1, 0, 1}, false) == std::vector<double>{1, 1, 0, 0});
  CHECK_THROWS_AS(monte_carlo_labels(pol, {LabelProblem{"q", {}, "7"}}, o), InputError);
}

TEST_CASE("labeling: a step prefix shared by several solutions is rolled out once", "[training]") {
  struct Counting : RolloutPolicy {
    std::vector<std::vector<std::string>> seen;
    std::vector<std::string> rollout(const std::vector<RolloutRequest>& reqs, int n) override {
      std::vector<std::string> out;
      for (const auto& r : reqs) {
        seen.push_back(r.steps);
        for (int k = 0; k < n; ++k) out.push_back(k < static_cast<int>(r.steps.back().size()) - 1 ? "7" : "8");
      }
      return out;
    }
  };
  // Solutions 0 and 1 share "a"; solution 2 has the same steps for another question.
  const std::vector<LabelProblem> ps = {{"q", {"a", "bb", "The answer is 7"}, "7"},
                                        {"q", {"a", "ccc", "The answer is 8"}, "7"},
                                        {"r", {"a", "bb", "The answer is 7"}, "7"}};
  LabelOptions o;
  o.rollouts = 4;
  Counting shared;
  const auto l = monte_carlo_labels(shared, ps, o);
  CHECK(shared.seen.size() == 5);  // q:a, q:a+bb, q:a+ccc, r:a, r:a+bb
  CHECK(l[0].soft == std::vector<double>{0.0, 0.25, 1.0});
  CHECK(l[1].soft == std::vector<double>{0.0, 0.5, 0.0});
  CHECK(l[0].rollouts == 8);
  CHECK(l[1].rollouts == 4);  // "a" was rolled out for solution 0
  CHECK(l[2].rollouts == 8);
  o.share_prefixes = false;
  Counting each;
  const auto m = monte_carlo_labels(each, ps, o);
  CHECK(each.seen.size() == 6);
  for (size_t i = 0; i < ps.size(); ++i) CHECK(m[i].soft == l[i].soft);
}

TEST_CASE("labeling: the binary search finds the first wrong step in ceil(log2(steps)) batches", "[training]") {
  LabelOptions o;
  o.rollouts = 2;
  for (int S = 1; S <= 17; ++S)
    for (int e = 0; e < S; ++e) {
      ScriptedPolicy pol;
      for (int i = 0; i < S; ++i) pol.hits.push_back(i < e ? 1 : 0);  // prefixes through e-1 good
      LabelProblem p{"q", std::vector<std::string>(static_cast<size_t>(S), "x = 1"), "7"};
      p.steps.back() = "The answer is 8";
      auto r = find_first_error(pol, p, o);
      INFO("steps " << S << " first error " << e);
      CHECK(r.first_error == e);
      CHECK(r.batches == pol.calls);
      CHECK(r.batches <= static_cast<int>(std::ceil(std::log2(S))));
      CHECK(r.labels[static_cast<size_t>(e)] == 0);
      if (e > 0) CHECK(r.labels[static_cast<size_t>(e - 1)] == 1);
    }
  ScriptedPolicy pol;
  pol.hits = {0, 0};
  auto r = find_first_error(pol, {"q", {"a", "The answer is 7"}, "7"}, o);
  CHECK(r.first_error == -1);
  CHECK(r.batches == 0);
}

TEST_CASE("datasets: TRL, Math-Shepherd, ProcessBench and outcome-labelled readers", "[training]") {
  TempDir tmp;
  {
    std::ofstream f(tmp.path / "trl.jsonl");
    f << R"({"prompt": "Q1", "completions": ["s1", "s2"], "labels": [true, false]})"
      << "\n\n";
    f << R"({"prompt": "Q2", "completions": ["t1"], "labels": [true]})"
      << "\n";
  }
  auto trl = read_trl_prm(tmp.path / "trl.jsonl");
  REQUIRE(trl.size() == 2);
  CHECK(trl[0].question == "Q1");
  CHECK(trl[0].steps == std::vector<std::string>{"s1", "s2"});
  CHECK(trl[0].step_labels == std::vector<double>{1, 0});
  write_trl_prm(tmp.path / "out.jsonl", trl);
  auto again = read_trl_prm(tmp.path / "out.jsonl");
  CHECK(again[1].steps == trl[1].steps);
  CHECK(again[0].step_labels == trl[0].step_labels);
  {
    std::ofstream f(tmp.path / "ms.jsonl");
    f << R"({"input": "Janet has 3 eggs. How many? Step 1: 3 + 1 = 4 ки\nStep 2: The answer is 4 ки", )"
      << R"("label": "Janet has 3 eggs. How many? Step 1: 3 + 1 = 4 +\nStep 2: The answer is 4 -", "task": "GSM8K"})"
      << "\n";
  }
  auto ms = read_math_shepherd(tmp.path / "ms.jsonl");
  REQUIRE(ms.size() == 1);
  CHECK(ms[0].question == "Janet has 3 eggs. How many?");
  CHECK(ms[0].steps == std::vector<std::string>{"Step 1: 3 + 1 = 4", "Step 2: The answer is 4"});
  CHECK(ms[0].step_labels == std::vector<double>{1, 0});
  {
    std::ofstream f(tmp.path / "pb.json");
    f << R"([{"id": "gsm8k-0", "problem": "P", "steps": ["a", "b", "c"], "label": 1, "final_answer_correct": false},
             {"id": "gsm8k-1", "problem": "P", "steps": ["a"], "label": -1, "final_answer_correct": true}])";
  }
  auto pb = read_processbench_steps(tmp.path / "pb.json");
  REQUIRE(pb.size() == 2);
  CHECK(pb[0].step_labels == std::vector<double>{1, 0, 0});
  CHECK(pb[0].outcome == 0.0);
  CHECK(pb[1].outcome == 1.0);
  {
    std::ofstream f(tmp.path / "oc.jsonl");
    f << R"({"question": "Q", "solution": "a\nb\n", "is_correct": true})"
      << "\n";
    f << R"({"question": "Q", "steps": ["c"], "is_correct": false})"
      << "\n";
    f << R"({"question": "Q", "steps": ["c"]})"
      << "\n";
  }
  CHECK_THROWS_WITH(read_outcome_labelled(tmp.path / "oc.jsonl"),
                    Catch::Contains("oc.jsonl:3") && Catch::Contains("is_correct"));
  {
    std::ofstream f(tmp.path / "bad.jsonl");
    f << R"({"prompt": "Q1", "completions": ["s1", "s2"], "labels": [true]})"
      << "\n";
  }
  CHECK_THROWS_WITH(read_trl_prm(tmp.path / "bad.jsonl"), Catch::Contains("bad.jsonl:1"));
}

TEST_CASE("demo models: the whole pipeline at toy scale, a continued backbone, and a reused policy", "[training]") {
  TempDir tmp;
  stepverify::DemoModelsOptions o;
  o.out_dir = tmp.path / "m";
  o.train_problems = 400;
  o.tokenizer_vocab = 400;
  o.hidden_size = 32;
  o.layers = 1;
  o.heads = 2;
  o.kv_heads = 1;
  o.intermediate_size = 64;
  o.policy_training = stepverify::train_options(8, 3e-3, 2);
  o.policy_training.progress = false;
  o.policy_eval_examples = 16;
  o.verifier_problems = 12;
  o.samples_per_problem = 2;
  o.rollouts = 2;
  o.policy_continue_steps = 3;
  o.policy_continue_training.progress = false;
  o.verifier_backbone_steps = 4;
  o.verifier_backbone_training.progress = false;
  o.verifier_training = stepverify::train_options(4, 1e-3, 1);
  o.verifier_training.progress = false;
  o.eval_problems = 8;
  std::ostringstream log;
  const auto r = stepverify::train_demo_models(o, log);
  INFO(log.str());
  CHECK(r.verifier_solutions == 24);  // 12 problems x 2 samples
  CHECK(r.backbone_steps == 4);
  CHECK(r.policy_continue_steps == 3);
  CHECK(std::isfinite(r.policy_loss_final));
  CHECK(r.policy_continue_solutions == "reordered");
  CHECK(r.backbone_solutions == "commuted");
  CHECK(std::isfinite(r.backbone_loss_final));
  // An accuracy over the 8 held-out problems: a multiple of 1/8 in [0, 1],
  // and the figure training.json reports.
  CHECK(r.policy_greedy_accuracy <= 1.0);
  CHECK(r.policy_greedy_accuracy * 8 == Approx(std::round(r.policy_greedy_accuracy * 8)));
  REQUIRE(std::filesystem::exists(o.out_dir / "training.json"));
  const auto written = test::read_json(o.out_dir / "training.json");
  CHECK(written["policy"]["greedy_accuracy"].get<double>() == Approx(r.policy_greedy_accuracy));
  CHECK(written["verifier"]["prm_first_error_f1"].get<double>() == Approx(r.prm_first_error_f1));
  CHECK_FALSE(std::filesystem::exists(o.out_dir / ".verifier_backbone"));  // removed once the verifier is trained
  auto policy = Model::load(o.out_dir / "policy");
  auto v = Verifier::load(o.out_dir / "verifier");
  CHECK(v->head_names() == std::vector<std::string>{"prm", "orm", "ovm", "sorm"});
  // The verifier's backbone is not the policy's: its layers were trained further.
  auto param = [](const Model& m, const std::string& name) { return m.transformer().named_parameters()[name]; };
  CHECK_FALSE(torch::equal(param(*policy, "model.layers.0.mlp.down_proj.weight"),
                           param(v->model(), "model.layers.0.mlp.down_proj.weight")));

  // Reusing the policy copies it unchanged and retrains only the verifier.
  auto again = o;
  again.out_dir = tmp.path / "m2";
  again.policy_from = o.out_dir / "policy";
  again.policy_continue_steps = 0;
  again.verifier_backbone_steps = 0;
  again.prm_labels = "hard";
  const auto r2 = stepverify::train_demo_models(again, log);
  CHECK(std::isnan(r2.policy_loss_final));
  CHECK(r2.policy_greedy_accuracy == r.policy_greedy_accuracy);
  auto p2 = Model::load(again.out_dir / "policy");
  CHECK(torch::equal(param(*p2, "model.embed_tokens.weight"), param(*policy, "model.embed_tokens.weight")));

  // A reused policy continued: the copy trains further, the source is untouched.
  auto more = again;
  more.out_dir = tmp.path / "m3";
  more.policy_continue_steps = 2;
  const auto r3 = stepverify::train_demo_models(more, log);
  CHECK(std::isfinite(r3.policy_loss_final));
  auto p3 = Model::load(more.out_dir / "policy");
  CHECK_FALSE(torch::equal(param(*p3, "model.embed_tokens.weight"), param(*policy, "model.embed_tokens.weight")));
  CHECK(torch::equal(param(*Model::load(o.out_dir / "policy"), "model.embed_tokens.weight"),
                     param(*policy, "model.embed_tokens.weight")));
  // ... and continuing a policy into its own directory would overwrite what was given.
  auto in_place = more;
  in_place.policy_from = more.out_dir / "policy";
  CHECK_THROWS_AS(stepverify::train_demo_models(in_place, log), stepverify::ConfigError);

  again.prm_labels = "exact";
  CHECK_THROWS_AS(stepverify::train_demo_models(again, log), stepverify::ConfigError);
  again.prm_labels = "hard";
  again.policy_continue_solutions = "sorted";
  CHECK_THROWS_AS(stepverify::train_demo_models(again, log), stepverify::ConfigError);
}

TEST_CASE("verifier heads with log-probability features: values by hand, sessions equal full passes, training",
          "[training]") {
  TempDir tmp;
  write_toy_backbone(tmp.path, 21);
  auto spec = VerifierSpec::from_json(R"({"name": "lp", "template": {"style": "tokens", "question_suffix": "\n",
    "step_separator": "\n"}, "heads": [
    {"name": "prm", "meaning": "prm", "type": "linear", "weights": "prm", "activation": "softmax", "read": "step_end",
     "features": "hidden+logprob"},
    {"name": "orm", "meaning": "orm", "type": "linear", "weights": "orm", "activation": "sigmoid", "read": "last",
     "features": "hidden+logprob", "logprob_span": "solution"},
    {"name": "ovm", "meaning": "ovm", "type": "linear", "weights": "ovm", "activation": "none", "read": "step_end",
     "features": "hidden+logprob", "logprob_span": "solution"},
    {"name": "both", "meaning": "prm", "type": "linear", "weights": "both", "activation": "softmax",
     "read": "step_end", "features": "hidden+logprob", "logprob_span": "step+solution"}]})");
  VerifierTrainer trainer(tmp.path / "base", spec, tmp.path / "v", 3);
  auto v = Verifier::load(tmp.path / "v");
  const std::string q = "Ana has 23 apples. How many apples does Ana have now?";
  const std::vector<std::string> steps = {"23 + 17 = 40", "40 - 8 = 32", "The answer is 32"};

  // By hand: hidden states of the whole text, LM log-probabilities of each
  // step's tokens (its newline included), then the linear head. The OVM's
  // features cover the solution so far, the ORM's the whole solution.
  const auto r = v->input_template().render(q, steps, false);
  ForwardInput in;
  in.input_ids = to_batch(r.ids);
  const auto hidden = v->model().forward(in).hidden[0];
  const auto lp = torch::log_softmax(v->model().logits(hidden), -1);  // row t predicts token t + 1
  const auto& [w, b] = trainer.head_weights().at("prm");
  const auto sc = v->score(q, steps);
  const auto& [wv, bv] = trainer.head_weights().at("ovm");
  const auto& [wo, bo] = trainer.head_weights().at("orm");
  // The head's input at `read`: its hidden state, then the minimum and mean
  // log-probability of tokens first..last.
  auto min_mean = [&](int64_t first, int64_t last) {
    std::vector<double> lps;
    for (int64_t t = first; t <= last; ++t) lps.push_back(lp[t - 1][r.ids[static_cast<size_t>(t)]].item<double>());
    const double mn = *std::min_element(lps.begin(), lps.end());
    const double mean = std::accumulate(lps.begin(), lps.end(), 0.0) / static_cast<double>(lps.size());
    return torch::tensor({mn, mean}, torch::kFloat);
  };
  auto input = [&](int64_t read, int64_t first, int64_t last) {
    return torch::cat({hidden[read], min_mean(first, last)});
  };
  // "step+solution": the step's pair, then the solution's.
  auto input_both = [&](int64_t read, int64_t first, int64_t last) {
    return torch::cat({hidden[read], min_mean(first, last), min_mean(r.solution_from, last)});
  };
  const auto& [wb, bb] = trainer.head_weights().at("both");
  CHECK(wb.size(1) == hidden.size(1) + 4);
  int64_t first = r.solution_from;
  REQUIRE(first > 0);
  for (size_t k = 0; k < steps.size(); ++k) {
    const int64_t last = r.step_positions[k];
    const double want =
        torch::softmax(at::linear(input(last, first, last), w.detach(), b.detach()), -1)[1].item<double>();
    const double value = at::linear(input(last, r.solution_from, last), wv.detach(), bv.detach()).item<double>();
    const double both =
        torch::softmax(at::linear(input_both(last, first, last), wb.detach(), bb.detach()), -1)[1].item<double>();
    INFO("step " << k);
    CHECK(std::abs(sc.heads.at("prm")[k] - want) < 1e-5);
    CHECK(std::abs(sc.heads.at("both")[k] - both) < 1e-5);
    CHECK(std::abs(sc.heads.at("ovm")[k] - value) < 1e-5);
    first = last + 1;
  }
  const auto orm_in = input(static_cast<int64_t>(r.ids.size()) - 1, r.solution_from, r.step_positions.back());
  CHECK(std::abs(sc.outcome.at("orm") - torch::sigmoid(at::linear(orm_in, wo.detach(), bo.detach())).item<double>()) <
        1e-5);

  // A session scores each step as the full pass does; it computes one token
  // per step again (the one before the step, whose logits the step needs).
  auto s = v->session(q);
  const int64_t question_tokens = s->tokens_computed();
  std::map<std::string, std::vector<double>> inc;
  for (const auto& st : steps)
    for (const auto& [name, value] : s->append_step(st)) inc[name].push_back(value);
  for (const std::string name : {"prm", "ovm", "both"})
    for (size_t k = 0; k < steps.size(); ++k) {
      INFO(name << " step " << k);
      CHECK(std::abs(inc[name][k] - sc.heads.at(name)[k]) < 1e-5);
    }
  CHECK(s->tokens_computed() ==
        question_tokens + (static_cast<int64_t>(r.ids.size()) - r.solution_from) + static_cast<int64_t>(steps.size()));
  CHECK(std::abs(s->scores().outcome.at("orm") - sc.outcome.at("orm")) < 1e-5);
  {
    // Candidates scored in one forward read the same log-probability features.
    auto p = v->session(q);
    p->append_step(steps[0]);
    const std::vector<std::string> cands = {steps[1], "40 - 9 = 31", "The answer is 40"};
    auto got = p->append_candidates(cands);
    for (size_t c = 0; c < cands.size(); ++c)
      for (const auto& [name, value] : p->fork()->append_step(cands[c])) {
        INFO(name << " candidate " << c);
        CHECK(std::abs(got[c].scores.at(name) - value) < 1e-5);
      }
  }
  auto f = s->fork();
  f->rollback(1);
  const auto again = f->append_step("The answer is 33");
  const auto full = v->score(q, {steps[0], steps[1], "The answer is 33"});
  CHECK(std::abs(again.at("prm") - full.heads.at("prm")[2]) < 1e-5);
  CHECK(std::abs(again.at("ovm") - full.heads.at("ovm")[2]) < 1e-5);
  CHECK(std::abs(again.at("both") - full.heads.at("both")[2]) < 1e-5);
  CHECK(std::abs(f->scores().outcome.at("orm") - full.outcome.at("orm")) < 1e-5);

  // Training reads the same features: the loss falls on a toy task where
  // only the likelihood of the result tells right from wrong.
  std::vector<VerifierExample> data;
  for (int i = 0; i < 48; ++i) {
    VerifierExample e;
    e.question = q;
    const bool good = i % 2 == 0;
    e.steps = {good ? "23 + 17 = 40" : "23 + 17 = 41"};
    e.step_labels = {good ? 1.0 : 0.0};
    e.outcome = good ? 1.0 : 0.0;
    data.push_back(e);
  }
  VerifierTrainOptions o;
  o.last_layers = 0;
  o.train = train_options(150, 3e-2, 5);
  o.train.batch_size = 16;
  o.train.progress = false;
  const auto rep = trainer.train(data, {}, o);
  CHECK(rep.final_loss < rep.first_loss);
  trainer.save();
  auto trained = Verifier::load(tmp.path / "v");
  CHECK(trained->score(q, {"23 + 17 = 40"}).heads.at("prm")[0] >
        trained->score(q, {"23 + 17 = 41"}).heads.at("prm")[0]);

  // Features need a linear head and a tokens-style template.
  CHECK_THROWS_AS(VerifierSpec::from_json(R"({"template": {"style": "chatml", "step_tag": "<extra_0>"}, "heads": [
    {"name": "prm", "type": "linear", "read": "tag", "features": "hidden+logprob"}]})"),
                  ConfigError);
  CHECK_THROWS_AS(VerifierSpec::from_json(R"({"template": {"style": "tokens"}, "heads": [
    {"name": "prm", "type": "mlp", "read": "step_end", "features": "hidden+logprob"}]})"),
                  ConfigError);
  CHECK_THROWS_AS(VerifierSpec::from_json(R"({"template": {"style": "tokens"}, "heads": [
    {"name": "prm", "type": "linear", "read": "step_end", "features": "logits"}]})"),
                  ConfigError);
  CHECK_THROWS_AS(VerifierSpec::from_json(R"({"template": {"style": "tokens"}, "heads": [
    {"name": "prm", "type": "linear", "read": "step_end", "features": "hidden+logprob", "logprob_span": "all"}]})"),
                  ConfigError);
}
