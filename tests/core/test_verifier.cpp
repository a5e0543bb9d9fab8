// Verifiers: presets against the HF references, sessions, batching, errors.
#include <functional>

#include <torch/csrc/jit/serialization/pickle.h>

#include "test_support.h"

#include "stepverify/errors.h"
#include "stepverify/search.h"
#include "stepverify/session.h"
#include "stepverify/tokenizer.h"
#include "stepverify/verifier.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {

constexpr double kScoreTol = 1e-5;  // probabilities and rewards (fixtures README)

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0, pos;
  while ((pos = s.find(sep, start)) != std::string::npos) {
    out.push_back(s.substr(start, pos - start));
    start = pos + sep.size();
  }
  out.push_back(s.substr(start));
  return out;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = kScoreTol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("step " << i << ": " << got[i] << " vs " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol);
  }
}

// A copy of a fixture with another config and extra tensors (heads with known weights).
struct BuiltCheckpoint {
  test::TempDir tmp;
  std::vector<at::Tensor> keep;
  BuiltCheckpoint(const std::filesystem::path& src, const std::function<void(nlohmann::json&)>& edit_config,
                  const std::map<std::string, at::Tensor>& extra) {
    for (const auto& e : std::filesystem::directory_iterator(src)) {
      const auto name = e.path().filename().string();
      if (name.rfind("reference", 0) == 0 || name == "model.safetensors" || name == "config.json") continue;
      std::filesystem::copy_file(e.path(), tmp.path / name);
    }
    auto cfg = test::read_json(src / "config.json");
    edit_config(cfg);
    test::write_text(tmp.path / "config.json", cfg.dump());
    auto ck = SafetensorsFile::open(src / "model.safetensors");
    std::vector<TensorData> data;
    for (const auto& n : ck->names()) {
      if (extra.count(n)) continue;  // replaced
      keep.push_back(to_tensor(ck->tensor(n)));
      data.push_back({n, ck->tensor(n).dtype, ck->tensor(n).shape, keep.back().data_ptr()});
    }
    for (const auto& [n, t] : extra) {
      keep.push_back(t.contiguous());
      data.push_back({n, DType::F32, t.sizes().vec(), keep.back().data_ptr()});
    }
    save_safetensors(tmp.path / "model.safetensors", data);
  }
  const std::filesystem::path& dir() const { return tmp.path; }
};

// Final hidden states of `ids` through the verifier's own backbone.
at::Tensor hidden_of(const Verifier& v, const std::vector<int64_t>& ids) {
  ForwardInput in;
  in.input_ids = to_batch(ids);
  return v.model().forward(in).hidden[0];
}

}  // namespace

TEST_CASE("qwen2.5-math-prm preset reproduces the reference rewards", "[verifier]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto ref = test::read_json(*dir / "reference.json")["prm"];
  auto v = Verifier::load(*dir);  // preset chosen from Qwen2ForProcessRewardModel
  CHECK(v->spec().name == "qwen2.5-math-prm");
  std::vector<Solution> sols;
  for (size_t i = 0; i < ref["data"].size(); ++i) {
    const auto& d = ref["data"][i];
    Solution s{d["query"], d["steps"].get<std::vector<std::string>>()};
    sols.push_back(s);
    const auto& t = ref["per_text"][i];
    auto r = v->input_template().render(s.question, s.steps, false);
    CHECK(r.ids == t["input_ids"].get<std::vector<int64_t>>());
    CHECK(r.tag_positions == t["step_sep_positions"].get<std::vector<int64_t>>());
    auto scores = v->score(s.question, s.steps);
    check_close(scores.step_scores, t["step_rewards"].get<std::vector<double>>());
    CHECK(scores.outcome.at("prm") == Approx(*std::min_element(scores.step_scores.begin(), scores.step_scores.end())));
  }
  // Batched (padded, length-sorted) equals the reference batch and the singles.
  auto batch = v->score_batch(sols);
  for (size_t i = 0; i < sols.size(); ++i)
    check_close(batch[i].step_scores, ref["batch_right_pad_step_rewards"][i].get<std::vector<double>>());
}

TEST_CASE("math-shepherd preset reproduces the reference step scores", "[verifier]") {
  auto dir = test::fixture("mistral_shepherd_prm");
  if (!dir) return;
  auto ref = test::read_json(*dir / "reference.json")["prm"];
  VerifierOptions o;
  o.spec = "math-shepherd";
  auto v = Verifier::load(*dir, o);
  const std::string question = ref["question"];
  for (size_t i = 0; i < ref["outputs"].size(); ++i) {
    std::string out = ref["outputs"][i];
    out = out.substr(0, out.size() - std::string(" \xD0\xBA\xD0\xB8").size());  // drop the final " ки"
    auto steps = split(out, " \xD0\xBA\xD0\xB8\n");
    const auto& t = ref["per_text"][i];
    auto r = v->input_template().render(question, steps, false);
    CHECK(r.ids == t["input_ids"].get<std::vector<int64_t>>());
    CHECK(r.tag_positions == t["step_tag_positions"].get<std::vector<int64_t>>());
    check_close(v->score(question, steps).step_scores, t["step_scores"].get<std::vector<double>>());
    // Incremental: each step appended to a session equals the full pass.
    auto s = v->session(question);
    std::vector<double> inc;
    for (const auto& st : steps) inc.push_back(s->append_step(st).at("prm"));
    check_close(inc, t["step_scores"].get<std::vector<double>>());
  }
}

TEST_CASE("a custom JSON spec: the ORM head at the last token", "[verifier]") {
  auto dir = test::fixture("llama_orm");
  if (!dir) return;
  auto ref = test::read_json(*dir / "reference.json")["orm"];
  test::TempDir tmp;
  // The reference texts are "Question: ... Answer: ...": question and one step around " Answer: ".
  test::write_text(tmp.path / "spec.json", R"({"name":"qa-orm","template":{"style":"text","question_suffix":" "},
    "heads":[{"name":"orm","meaning":"orm","type":"linear","weights":"score","activation":"none","read":"last"}]})");
  VerifierOptions o;
  o.spec = (tmp.path / "spec.json").string();
  auto v = Verifier::load(*dir, o);
  std::vector<Solution> sols;
  for (size_t i = 0; i < ref["texts"].size(); ++i) {
    const std::string text = ref["texts"][i];
    const size_t cut = text.find(" Answer: ") + std::string(" Answer:").size();
    Solution s{text.substr(0, cut), {text.substr(cut + 1)}};
    sols.push_back(s);
    auto r = v->score(s.question, s.steps);
    CHECK(std::abs(r.outcome.at("orm") - ref["single_rewards"][i].get<double>()) <= kScoreTol);
    CHECK(r.step_scores.empty());
  }
  auto batch = v->score_batch(sols);
  for (size_t i = 0; i < sols.size(); ++i)
    CHECK(std::abs(batch[i].outcome.at("orm") - ref["batch_right_pad_rewards"][i].get<double>()) <= kScoreTol);
  // The automatic preset for LlamaForSequenceClassification is "orm".
  CHECK(Verifier::load(*dir)->spec().name == "orm");
}

TEST_CASE("sessions: incremental equals full, fork and rollback invariants, prefix cache", "[verifier]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  VerifierOptions o;
  o.prefix_cache_bytes = 64 * 1024;  // small: forces evictions below
  auto v = Verifier::load(*dir, o);
  const std::string q = "Janet has 16 eggs and eats 3. How many are left?";
  const std::vector<std::string> steps = {"Janet starts with 16 eggs.", "She eats 3, so 16 - 3 = 13.",
                                          "The answer is $\\boxed{13}$."};
  auto full = v->score(q, steps).step_scores;
  auto s = v->session(q);
  const int64_t prefix_tokens = s->cached_tokens();
  std::vector<double> inc;
  for (const auto& st : steps) inc.push_back(s->append_step(st).at("prm"));
  check_close(inc, full);
  // Token-exact joining: every token computed once.
  CHECK(s->tokens_computed() == s->cached_tokens());

  SECTION("fork shares the prefix and diverges") {
    auto f = s->fork();
    f->rollback(1);
    CHECK(f->steps().size() == 2);
    auto alt = f->append_step("So 13 eggs are left.");
    auto want = v->score(q, {steps[0], steps[1], "So 13 eggs are left."}).step_scores;
    CHECK(std::abs(alt.at("prm") - want[2]) <= kScoreTol);
    check_close(f->scores().step_scores, want);
    check_close(s->scores().step_scores, full);  // the original is untouched
  }
  SECTION("a second session on the same question starts from the prefix cache") {
    auto s2 = v->session(q);
    CHECK(s2->tokens_computed() == 0);
    CHECK(s2->cached_tokens() == prefix_tokens);
    CHECK(v->prefix_cache()->hits() >= 1);
  }
  SECTION("eviction under a small budget stays correct") {
    for (int i = 0; i < 12; ++i) v->session("Question number " + std::to_string(i) + " about eggs?");
    CHECK(v->prefix_cache()->bytes() <= 64 * 1024);
    auto s3 = v->session(q);
    std::vector<double> again;
    for (const auto& st : steps) again.push_back(s3->append_step(st).at("prm"));
    check_close(again, full);
  }
  SECTION("rollback to zero and rebuild") {
    s->rollback(3);
    CHECK(s->steps().empty());
    std::vector<double> again;
    for (const auto& st : steps) again.push_back(s->append_step(st).at("prm"));
    check_close(again, full);
    CHECK_THROWS_AS(s->rollback(9), InputError);
  }
}

TEST_CASE("trl-token-classification: P(class 1) at the last token of each step plus separator", "[verifier]") {
  auto src = test::fixture("llama_gqa");
  if (!src) return;
  torch::manual_seed(3);
  auto w = torch::randn({2, 64}) * 0.3, b = torch::randn({2}) * 0.3;
  BuiltCheckpoint ck(*src,
                     [](nlohmann::json& c) {
                       c["architectures"] = {"LlamaForTokenClassification"};
                       c["num_labels"] = 2;
                     },
                     {{"score.weight", w}, {"score.bias", b}});
  auto v = Verifier::load(ck.dir());
  CHECK(v->spec().name == "trl-token-classification");
  const std::string q = "Ana has 12 coins.";
  const std::vector<std::string> steps = {"She buys 5 more.", "12 + 5 = 17."};
  // The recipe written out: BOS, tok(q), then tok(step) + tok("\n") per step.
  const auto& tok = v->model().tokenizer();
  EncodeOptions raw;
  raw.add_special_tokens = false;
  std::vector<int64_t> ids = {1};
  auto add = [&](const std::string& t) {
    auto x = tok.encode(t, raw);
    ids.insert(ids.end(), x.begin(), x.end());
  };
  add(q);
  std::vector<int64_t> ends;
  for (const auto& st : steps) {
    add(st);
    add("\n");
    ends.push_back(static_cast<int64_t>(ids.size()) - 1);
  }
  auto r = v->input_template().render(q, steps, false);
  CHECK(r.ids == ids);
  CHECK(r.step_positions == ends);
  auto h = hidden_of(*v, ids);
  std::vector<double> want;
  for (int64_t p : ends) want.push_back(torch::softmax(at::linear(h[p], w, b), -1)[1].item<double>());
  check_close(v->score(q, steps).step_scores, want);
  auto s = v->session(q);
  std::vector<double> inc;
  for (const auto& st : steps) inc.push_back(s->append_step(st).at("prm"));
  check_close(inc, want);
}

TEST_CASE("Qwen2ForRewardModel: its chat template, score.2(ReLU(score.0(h))) at the last token, by hand",
          "[verifier]") {
  auto src = test::fixture("qwen2_prm");
  if (!src) return;
  torch::manual_seed(11);
  auto w0 = torch::randn({64, 64}) * 0.2, b0 = torch::randn({64}) * 0.2;
  auto w2 = torch::randn({1, 64}) * 0.2, b2 = torch::randn({1}) * 0.2;
  BuiltCheckpoint ck(*src, [](nlohmann::json& c) { c["architectures"] = {"Qwen2ForRewardModel"}; },
                     {{"score.0.weight", w0}, {"score.0.bias", b0}, {"score.2.weight", w2}, {"score.2.bias", b2}});
  auto v = Verifier::load(ck.dir());
  const std::string q = "What is 6 * 7?";
  const std::vector<std::string> steps = {"6 * 7 = 42.", "The answer is 42."};
  // Qwen2.5-Math-RM's chat template written out: the system prompt, the
  // question as the user turn, the steps joined by a blank line as the
  // assistant turn (the model card's apply_chat_template, no generation prompt).
  CHECK(v->spec().name == "qwen2.5-math-rm");
  EncodeOptions raw;
  raw.add_special_tokens = false;
  const auto ids = v->model().tokenizer().encode(
      "<|im_start|>system\nPlease reason step by step, and put your final answer within "
      "\\boxed{}.<|im_end|>\n<|im_start|>user\n" +
          q + "<|im_end|>\n<|im_start|>assistant\n" + steps[0] + "\n\n" + steps[1] + "<|im_end|>\n",
      raw);
  CHECK(v->input_template().render(q, steps, false).ids == ids);
  const auto h = hidden_of(*v, ids)[static_cast<int64_t>(ids.size()) - 1];
  const double want = (at::linear(at::relu(at::linear(h, w0, b0)), w2, b2))[0].item<double>();
  const auto r = v->score(q, steps);
  CHECK(r.step_scores.empty());  // one score for the solution
  REQUIRE(r.outcome.count("orm"));
  CHECK(r.outcome.at("orm") == Approx(want).margin(kScoreTol));
  // A different last step changes the score (the head reads the last token).
  CHECK(v->score(q, {steps[0], "The answer is 43."}).outcome.at("orm") != Approx(want).margin(1e-9));
}

TEST_CASE("every aggregate of step scores, and a custom one, on hand-computed values", "[verifier]") {
  const std::vector<double> s = {0.5, 0.2, 0.8};
  CHECK(aggregate(s, Aggregate::Min) == Approx(0.2));
  CHECK(aggregate(s, Aggregate::Max) == Approx(0.8));
  CHECK(aggregate(s, Aggregate::Mean) == Approx(0.5));
  CHECK(aggregate(s, Aggregate::Product) == Approx(0.08));
  CHECK(aggregate(s, Aggregate::Last) == Approx(0.8));
  CHECK(aggregate(s, Aggregate::GeometricMean) == Approx(std::cbrt(0.08)));
  CHECK(aggregate(s, Aggregate::Sum) == Approx(1.5));
  for (const char* name : {"min", "max", "mean", "prod", "last", "geomean", "sum"})
    CHECK(aggregate_name(parse_aggregate(name)) == std::string(name));

  // Through the verifier: Scores::outcome is the aggregate of the step scores.
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  const std::string q = "What is 3 + 4?";
  const std::vector<std::string> steps = {"3 + 4 = 7.", "Check: 7 - 4 = 3.", "The answer is 7."};
  const auto step = v->score(q, steps).step_scores;
  REQUIRE(step.size() == 3);
  const double a = step[0], b = step[1], c = step[2];
  const std::vector<std::pair<Aggregate, double>> want = {{Aggregate::Min, std::min({a, b, c})},
                                                          {Aggregate::Max, std::max({a, b, c})},
                                                          {Aggregate::Mean, (a + b + c) / 3},
                                                          {Aggregate::Product, a * b * c},
                                                          {Aggregate::Last, c},
                                                          {Aggregate::GeometricMean, std::cbrt(a * b * c)},
                                                          {Aggregate::Sum, a + b + c}};
  for (const auto& [agg, value] : want) {
    ScoreOptions o;
    o.aggregate = agg;
    INFO(aggregate_name(agg));
    CHECK(v->score(q, steps, o).outcome.at("prm") == Approx(value).epsilon(1e-12));
  }
  ScoreOptions custom;
  custom.aggregate = Aggregate::Min;  // overridden
  custom.custom_aggregate = [](const std::vector<double>& x) { return x[0] - x[1] + 2 * x[2]; };
  CHECK(v->score(q, steps, custom).outcome.at("prm") == Approx(a - b + 2 * c).epsilon(1e-12));
  CHECK(v->score_batch({{q, steps}}, custom)[0].outcome.at("prm") == Approx(a - b + 2 * c).epsilon(1e-12));
}

TEST_CASE("skywork: sigmoid of v_head.summary at each step's newline", "[verifier]") {
  auto src = test::fixture("qwen2_prm");
  if (!src) return;
  torch::manual_seed(5);
  auto w = torch::randn({1, 64}) * 0.3, b = torch::randn({1}) * 0.3;
  BuiltCheckpoint ck(*src, [](nlohmann::json& c) { c["architectures"] = {"Qwen2ForPrmModel"}; },
                     {{"v_head.summary.weight", w}, {"v_head.summary.bias", b}});
  auto v = Verifier::load(ck.dir());
  CHECK(v->spec().name == "skywork");
  const std::string q = "What is 7 * 8?";
  const std::vector<std::string> steps = {"7 * 8 = 56.\nCheck: 56 / 8 = 7.", "The answer is 56."};
  const auto& tok = v->model().tokenizer();
  EncodeOptions raw;
  raw.add_special_tokens = false;
  const int64_t nl = tok.encode("\n", raw).back();
  // encode(bos + q + "\n") (Qwen2 has no BOS string), then each line of
  // "\n".join(steps) followed by the id of "\n".
  std::vector<int64_t> ids = tok.encode(q + "\n", raw);
  std::vector<int64_t> newlines;
  for (const auto& line : {"7 * 8 = 56.", "Check: 56 / 8 = 7.", "The answer is 56."}) {
    auto x = tok.encode(line, raw);
    ids.insert(ids.end(), x.begin(), x.end());
    ids.push_back(nl);
    newlines.push_back(static_cast<int64_t>(ids.size()) - 1);
  }
  auto r = v->input_template().render(q, steps, false);
  CHECK(r.ids == ids);
  CHECK(r.step_positions == std::vector<int64_t>{newlines[1], newlines[2]});
  auto h = hidden_of(*v, ids);
  std::vector<double> want;
  for (int64_t p : {newlines[1], newlines[2]}) want.push_back(torch::sigmoid(at::linear(h[p], w, b))[0].item<double>());
  check_close(v->score(q, steps).step_scores, want);
}

TEST_CASE("read_state_dict: torch.save files read by the restricted unpickler, exactly", "[verifier]") {
  c10::Dict<std::string, at::Tensor> d;
  auto base = torch::arange(12, torch::kFloat).reshape({3, 4});
  d.insert("w", base);
  d.insert("wt", base.t());  // strided view of a shared storage
  d.insert("row", base[1]);  // a storage offset
  d.insert("ids", torch::tensor({5, -7, 9}, torch::kLong));
  d.insert("h", torch::tensor({1.5, -2.0}, torch::kDouble).to(torch::kBFloat16));
  d.insert("flag", torch::tensor({true, false}));
  const auto bytes = torch::jit::pickle_save(d);
  const auto got = read_state_dict(std::string_view(bytes.data(), bytes.size()), "mem.pth");
  REQUIRE(got.size() == 6);
  for (const auto& name : {"w", "wt", "row", "ids", "h", "flag"}) {
    INFO(name);
    const auto& want = d.at(name);
    REQUIRE(got.count(name));
    CHECK(got.at(name).scalar_type() == want.scalar_type());
    CHECK(got.at(name).sizes() == want.sizes());
    CHECK(torch::equal(got.at(name), want));
  }
  // Truncated, or with its pickle cut short: refused with a FormatError naming the file.
  const std::string_view all(bytes.data(), bytes.size());
  CHECK_THROWS_WITH(read_state_dict(all.substr(0, all.size() / 2), "cut.pth"), Contains("cut.pth"));
  CHECK_THROWS_AS(read_state_dict("not a zip at all, just text", "x.pth"), FormatError);
}

TEST_CASE("ovm: value head from verifier.pth at each step's newline and at EOS", "[verifier]") {
  auto src = test::fixture("llama_gqa");
  if (!src) return;
  BuiltCheckpoint ck(*src, [](nlohmann::json&) {}, {});
  torch::manual_seed(9);
  auto gain = torch::tensor({1.3f}), bias = torch::tensor({-0.2f}), w = torch::randn({1, 64}) * 0.3;
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  dict.insert("gain", gain);
  dict.insert("bias", bias);
  dict.insert("vscore_head.weight", w);
  auto bytes = torch::jit::pickle_save(dict);
  test::write_text(ck.dir() / "verifier.pth", std::string(bytes.begin(), bytes.end()));
  VerifierOptions o;
  o.spec = "ovm";
  auto v = Verifier::load(ck.dir(), o);
  const std::string q = "Ana has 12 coins and buys 5 more.";
  const std::vector<std::string> steps = {"12 + 5 = 17.", "She has 17 coins."};
  const auto& tok = v->model().tokenizer();
  EncodeOptions raw;
  raw.add_special_tokens = false;
  std::vector<int64_t> ids = tok.encode(q + "\n");
  const size_t start = ids.size();
  auto sol = tok.encode("12 + 5 = 17.\nShe has 17 coins.", raw);
  ids.insert(ids.end(), sol.begin(), sol.end());
  ids.push_back(2);  // EOS
  int64_t nlpos = -1;
  for (size_t p = start; p < ids.size(); ++p)
    if (ids[p] == 13) nlpos = static_cast<int64_t>(p);  // <0x0A>
  REQUIRE(nlpos > 0);
  auto r = v->input_template().render(q, steps, false);
  CHECK(r.ids == ids);
  CHECK(r.step_positions == std::vector<int64_t>{nlpos, static_cast<int64_t>(ids.size()) - 1});
  auto h = hidden_of(*v, ids);
  std::vector<double> want;
  for (int64_t p : r.step_positions) want.push_back(at::matmul(gain * h[p] + bias, w.t())[0].item<double>());
  check_close(v->score(q, steps).step_scores, want);
  // Missing file and mis-shaped weights are typed errors naming the tensor.
  dict.insert_or_assign("vscore_head.weight", torch::randn({2, 64}));
  bytes = torch::jit::pickle_save(dict);
  test::write_text(ck.dir() / "verifier.pth", std::string(bytes.begin(), bytes.end()));
  CHECK_THROWS_WITH(Verifier::load(ck.dir(), o), Contains("vscore_head.weight") && Contains("[1,64]"));
  std::filesystem::remove(ck.dir() / "verifier.pth");
  CHECK_THROWS_AS(Verifier::load(ck.dir(), o), IoError);
}

TEST_CASE("verifier input errors name the step or field", "[verifier][errors]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  CHECK_THROWS_WITH(v->score("q", {}), Contains("empty"));
  CHECK_THROWS_WITH(v->score("q", {"ok", " "}), Contains("step 1 is empty"));
  CHECK_THROWS_WITH(v->score("q", {"a<extra_0>b"}), Contains("step 0") && Contains("<extra_0>"));
  CHECK_THROWS_WITH(v->score(std::string(20000, 'x'), {"a"}), Contains("exceed the context"));
  auto s = v->session("q");
  CHECK_THROWS_AS(s->append_step(""), InputError);
  CHECK(s->steps().empty());  // nothing lost
  CHECK_THROWS_WITH(v->score_batch({{"q", {"a"}}, {"q", {}}}), Contains("solution 1"));
  VerifierOptions bad;
  bad.spec = "no-such-preset";
  CHECK_THROWS_WITH(Verifier::load(*dir, bad), Contains("qwen2.5-math-prm"));
  test::TempDir tmp;
  test::write_text(tmp.path / "spec.json", R"({"template":{"style":"chatml","step_tag":"<extra_9>"},
    "heads":[{"type":"mlp","weights":"score","read":"tag"}]})");
  bad.spec = (tmp.path / "spec.json").string();
  CHECK_THROWS_WITH(Verifier::load(*dir, bad), Contains("<extra_9>") && Contains("not a token"));
  bad.spec = "";
  bad.heads = {"orm"};
  CHECK_THROWS_WITH(Verifier::load(*dir, bad), Contains("no head named 'orm'"));
}

TEST_CASE("missing or mis-shaped head weights", "[verifier][errors]") {
  auto src = test::fixture("qwen2_prm");
  if (!src) return;
  BuiltCheckpoint ck(*src, [](nlohmann::json& c) { c["architectures"] = {"Qwen2ForPrmModel"}; },
                     {{"v_head.summary.weight", torch::randn({3, 64})}});
  CHECK_THROWS_WITH(Verifier::load(ck.dir()), Contains("v_head.summary.weight") && Contains("expected [1,64]"));
  BuiltCheckpoint none(*src, [](nlohmann::json& c) { c["architectures"] = {"Qwen2ForPrmModel"}; }, {});
  CHECK_THROWS_WITH(Verifier::load(none.dir()), Contains("v_head.summary.weight") && Contains("missing"));
}

TEST_CASE("spec JSON round trip and validation", "[verifier]") {
  for (const auto& name : VerifierSpec::preset_names()) {
    auto s = VerifierSpec::preset(name);
    auto back = VerifierSpec::from_json(s.to_json());
    CHECK(back.to_json() == s.to_json());
  }
  CHECK_THROWS_WITH(VerifierSpec::from_json(R"({"heads":[{"type":"conv"}]})", "x.json"),
                    Contains("x.json") && Contains("heads[0].type"));
  CHECK_THROWS_WITH(VerifierSpec::from_json(R"({"heads":[{"read":"tag"}]})"), Contains("step_tag"));
  // Enumerated fields parse to their enum and print back as the JSON word.
  const auto spec = VerifierSpec::from_json(R"({"template": {"style": "tokens", "bos": "text"}, "heads": [
    {"name": "v", "meaning": "sorm", "type": "linear", "activation": "tanh", "read": "step_end",
     "features": "hidden+logprob", "logprob_span": "step+solution"}]})");
  CHECK(spec.input.style == TemplateStyle::Tokens);
  CHECK(spec.input.bos == BosPolicy::Text);
  const auto& h = spec.heads.at(0);
  CHECK(h.meaning == HeadMeaning::Sorm);
  CHECK(h.activation == Activation::Tanh);
  CHECK(h.read == ReadAt::StepEnd);
  CHECK(h.logprob_features() == 4);
  CHECK(std::string(to_string(h.logprob_span)) == "step+solution");
  CHECK(nlohmann::json::parse(spec.to_json())["heads"][0]["read"] == "step_end");
  CHECK_THROWS_WITH(VerifierSpec::from_json(R"({"heads":[{"read":"tag"},{"name":"b","read":"first"}]})"),
                    Contains("heads[1].read") && Contains("'first'") && Contains("before_tag"));
  CHECK_THROWS_WITH(VerifierSpec::from_json(R"({"template": {"style": 3}, "heads":[{}]})"),
                    Contains("'style'") && Contains("wrong type"));
  CHECK_THROWS_AS(VerifierSpec::from_json("{"), ConfigError);
  CHECK(aggregate({0.5, 0.2, 0.8}, Aggregate::Min) == Approx(0.2));
  CHECK(aggregate({0.5, 0.2, 0.8}, Aggregate::Product) == Approx(0.08));
  CHECK(aggregate({0.5, 0.2, 0.8}, Aggregate::GeometricMean) == Approx(std::cbrt(0.08)));
  CHECK(aggregate({0.5, 0.2, 0.8}, parse_aggregate("last")) == Approx(0.8));
}

TEST_CASE("several heads (PRM, ORM, SORM) from separate files on one backbone pass", "[verifier]") {
  auto src = test::fixture("llama_gqa");
  if (!src) return;
  torch::manual_seed(11);
  auto wp = torch::randn({2, 64}) * 0.3, wo = torch::randn({1, 64}) * 0.3, bo = torch::randn({1}) * 0.3,
       ws = torch::randn({1, 64}) * 0.3;
  BuiltCheckpoint ck(*src, [](nlohmann::json&) {}, {});
  save_safetensors(ck.dir() / "prm.safetensors", {{"prm.weight", DType::F32, {2, 64}, wp.data_ptr()}});
  save_safetensors(ck.dir() / "heads.safetensors", {{"orm.weight", DType::F32, {1, 64}, wo.data_ptr()},
                                                    {"orm.bias", DType::F32, {1}, bo.data_ptr()},
                                                    {"sorm.weight", DType::F32, {1, 64}, ws.data_ptr()}});
  test::write_text(ck.dir() / "stepverify.json", R"({"name": "three-heads",
    "template": {"style": "tokens", "bos": "yes", "step_separator": "\n"},
    "heads": [
      {"name": "prm", "meaning": "prm", "type": "linear", "weights": "prm", "file": "prm.safetensors",
       "activation": "softmax", "class_index": 1, "read": "step_end"},
      {"name": "orm", "meaning": "orm", "type": "linear", "weights": "orm", "file": "heads.safetensors",
       "activation": "sigmoid", "read": "last"},
      {"name": "sorm", "meaning": "sorm", "type": "linear", "weights": "sorm", "file": "heads.safetensors",
       "activation": "sigmoid", "read": "step_end"}]})");
  auto v = Verifier::load(ck.dir());  // a causal LM with stepverify.json beside it
  CHECK(v->head_names() == std::vector<std::string>{"prm", "orm", "sorm"});
  const std::string q = "Ana has 12 coins.";
  const std::vector<std::string> steps = {"She buys 5 more.", "12 + 5 = 17.", "The answer is 17."};
  auto r = v->input_template().render(q, steps, false);
  auto h = hidden_of(*v, r.ids);
  std::vector<double> prm, sorm;
  for (int64_t p : r.step_positions) {
    prm.push_back(torch::softmax(at::matmul(h[p], wp.t()), -1)[1].item<double>());
    sorm.push_back(torch::sigmoid(at::matmul(h[p], ws.t()))[0].item<double>());
  }
  const double orm = torch::sigmoid(at::linear(h[static_cast<int64_t>(r.ids.size()) - 1], wo, bo))[0].item<double>();
  auto scores = v->score(q, steps);
  check_close(scores.heads.at("prm"), prm);
  check_close(scores.heads.at("sorm"), sorm);
  check_close(scores.step_scores, prm);  // the first step-level head
  CHECK(std::abs(scores.outcome.at("orm") - orm) <= kScoreTol);
  // Only the PRM head, when asked.
  VerifierOptions only;
  only.heads = {"sorm"};
  CHECK(Verifier::load(ck.dir(), only)->head_names() == std::vector<std::string>{"sorm"});
  // A session reads the ORM at the end of each partial solution.
  auto s = v->session(q);
  for (size_t k = 0; k < steps.size(); ++k) {
    auto step = s->append_step(steps[k]);
    auto prefix = v->score(q, std::vector<std::string>(steps.begin(), steps.begin() + k + 1));
    CHECK(std::abs(step.at("orm") - prefix.outcome.at("orm")) <= kScoreTol);
    CHECK(std::abs(step.at("prm") - prm[k]) <= kScoreTol);
  }
  CHECK(s->tokens_computed() == s->cached_tokens());
}

TEST_CASE("rlhflow: P(+) at the token before each assistant '+' of the Llama 3.1 chat", "[verifier]") {
  auto src = test::fixture("qwen2_prm");
  if (!src) return;
  // A causal LM with the Llama-3 chat specials added to the fixture's BPE.
  torch::manual_seed(13);
  auto lm_head = torch::randn({512, 64}) * 0.3;
  BuiltCheckpoint ck(*src, [](nlohmann::json& c) { c["architectures"] = {"Qwen2ForCausalLM"}; },
                     {{"lm_head.weight", lm_head}});
  auto added = test::read_json(ck.dir() / "added_tokens.json");
  added["<|begin_of_text|>"] = 490;
  added["<|start_header_id|>"] = 491;
  added["<|end_header_id|>"] = 492;
  added["<|eot_id|>"] = 493;
  test::write_text(ck.dir() / "added_tokens.json", added.dump());
  VerifierOptions o;
  o.spec = "rlhflow";
  auto v = Verifier::load(ck.dir(), o);
  const std::string q = "What is 7 * 8 + 1?";
  const std::vector<std::string> steps = {"7 * 8 = 56.", "56 + 1 = 57.", "The answer is 57."};
  // The conversation written out as the Llama 3.1 template renders it.
  std::string text =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
      "Today Date: 26 Jul 2024\n\n<|eot_id|>";
  for (size_t i = 0; i < steps.size(); ++i)
    text += "<|start_header_id|>user<|end_header_id|>\n\n" + (i == 0 ? q + " " + steps[0] : steps[i]) +
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n+<|eot_id|>";
  const auto& tok = v->model().tokenizer();
  EncodeOptions raw;
  raw.add_special_tokens = false;
  auto ids = tok.encode(text, raw);
  const int64_t plus = tok.encode("+", raw).back(), minus = tok.encode("-", raw).back();
  std::vector<int64_t> reads;  // the token before each assistant "+" (the "+" inside steps is not followed by eot)
  for (size_t p = 0; p + 2 < ids.size(); ++p)
    if (ids[p + 1] == plus && ids[p + 2] == 493) reads.push_back(static_cast<int64_t>(p));
  REQUIRE(reads.size() == 3);
  auto r = v->input_template().render(q, steps, false);
  CHECK(r.ids == ids);
  CHECK(r.step_positions == reads);
  auto logits = v->model().logits(hidden_of(*v, ids));
  std::vector<double> want;
  for (int64_t p : reads)
    want.push_back(torch::softmax(logits[p].index_select(0, torch::tensor({plus, minus})), -1)[0].item<double>());
  check_close(v->score(q, steps).step_scores, want);
  auto s = v->session(q);
  std::vector<double> inc;
  for (const auto& st : steps) inc.push_back(s->append_step(st).at("prm"));
  check_close(inc, want);
  CHECK(s->tokens_computed() == static_cast<int64_t>(s->cached_tokens()));
}

TEST_CASE("alphamath: tanh value head at the last token of each partial solution", "[verifier]") {
  auto src = test::fixture("llama_gqa");
  if (!src) return;
  torch::manual_seed(17);
  auto w = torch::randn({1, 64}) * 0.3, b = torch::randn({1}) * 0.3;
  BuiltCheckpoint ck(*src, [](nlohmann::json&) {}, {{"v_head.summary.weight", w}, {"v_head.summary.bias", b}});
  VerifierOptions o;
  o.spec = "alphamath";
  auto v = Verifier::load(ck.dir(), o);
  const std::string q = "What is 12 + 5?";
  const std::vector<std::string> steps = {"<step> 12 + 5 = 17 </step>", "<step> Final Answer: 17 </step>"};
  auto s = v->session(q);
  const auto& tok = v->model().tokenizer();
  for (size_t k = 0; k < steps.size(); ++k) {
    std::string text = "<question> " + q + " </question>\n" + steps[0];
    if (k == 1) text += "\n" + steps[1];
    auto ids = tok.encode(text);  // with BOS
    auto h = hidden_of(*v, ids);
    const double want = torch::tanh(at::linear(h[static_cast<int64_t>(ids.size()) - 1], w, b))[0].item<double>();
    CHECK(std::abs(s->append_step(steps[k]).at("value") - want) <= kScoreTol);
    auto full = v->score(q, std::vector<std::string>(steps.begin(), steps.begin() + k + 1));
    CHECK(std::abs(full.outcome.at("value") - want) <= kScoreTol);
  }
}

namespace {

// append_candidates against one append_step per candidate on a fork, for
// every candidate of `cands` after the parent has taken `prefix` steps.
void check_candidates(const Verifier& v, const std::string& q, const std::vector<std::string>& prefix,
                      const std::vector<std::string>& cands) {
  auto parent = v.session(q);
  for (const auto& st : prefix) parent->append_step(st);
  const auto before = parent->scores().step_scores;
  const int64_t cached = parent->cached_tokens();
  auto got = parent->append_candidates(cands);
  REQUIRE(got.size() == cands.size());
  for (size_t c = 0; c < cands.size(); ++c) {
    INFO("candidate " << c << ": " << cands[c]);
    auto alone = parent->fork();
    const auto want = alone->append_step(cands[c]);
    REQUIRE(got[c].session);
    REQUIRE(got[c].scores.size() == want.size());
    for (const auto& [head, value] : want) CHECK(std::abs(got[c].scores.at(head) - value) <= kScoreTol);
    // The child is a session like any other: its scores, its steps, and a
    // further step scored as the full pass scores it.
    CHECK(got[c].session->steps() == alone->steps());
    check_close(got[c].session->scores().step_scores, alone->scores().step_scores);
    auto steps = alone->steps();
    steps.push_back("Then 2 + 2 = 4.");
    const auto next = got[c].session->append_step(steps.back());
    const auto full = v.score(q, steps);
    for (const auto& [head, value] : next)
      if (full.heads.count(head)) CHECK(std::abs(value - full.heads.at(head).back()) <= kScoreTol);
  }
  // The parent is unchanged.
  CHECK(parent->cached_tokens() == cached);
  check_close(parent->scores().step_scores, before);
}

}  // namespace

TEST_CASE("candidates: one forward over the shared prefix equals one append per candidate", "[verifier]") {
  const std::string q = "Janet has 16 eggs and eats 3. How many are left?";
  const std::vector<std::string> cands = {"She eats 3, so 16 - 3 = 13.", "16 - 3 = 12.",
                                          "So she has 13 eggs left over after breakfast today.", "13"};
  SECTION("qwen2.5-math-prm (string template, step tags)") {
    auto dir = test::fixture("qwen2_prm");
    if (!dir) return;
    auto v = Verifier::load(*dir);
    check_candidates(*v, q, {}, cands);
    check_candidates(*v, q, {"Janet starts with 16 eggs."}, cands);
  }
  SECTION("math-shepherd (tag token) under a sliding window shorter than the input") {
    auto src = test::fixture("mistral_shepherd_prm");
    if (!src) return;
    BuiltCheckpoint ck(*src, [](nlohmann::json& c) { c["sliding_window"] = 7; }, {});
    VerifierOptions o;
    o.spec = "math-shepherd";
    auto v = Verifier::load(ck.dir(), o);
    REQUIRE(v->model().config().sliding_window == 7);
    check_candidates(*v, q, {"Janet starts with 16 eggs."}, cands);
  }
  SECTION("several parents in one forward, refused candidates reported") {
    auto dir = test::fixture("qwen2_prm");
    if (!dir) return;
    auto v = Verifier::load(*dir);
    auto a = v->session(q);
    auto b = v->session("A longer question: Tom has 7 apples, buys 5 and gives 2 away. How many now?");
    b->append_step("7 + 5 = 12.");
    CandidateOptions o;
    o.skip_invalid = true;
    auto got = ScoringSession::append_candidates({a.get(), b.get()}, {{"16 - 3 = 13.", ""}, cands}, o);
    REQUIRE(got.size() == 2);
    REQUIRE(got[0].size() == 2);
    CHECK(!got[0][1].session);
    CHECK_THAT(got[0][1].error, Contains("candidate 1"));
    CHECK(std::abs(got[0][0].scores.at("prm") - a->fork()->append_step("16 - 3 = 13.").at("prm")) <= kScoreTol);
    for (size_t c = 0; c < cands.size(); ++c)
      CHECK(std::abs(got[1][c].scores.at("prm") - b->fork()->append_step(cands[c]).at("prm")) <= kScoreTol);
    CHECK_THROWS_AS(a->append_candidates({"ok", ""}), InputError);
    // A forward budget smaller than one parent's candidates still scores them (one forward each).
    o.max_batch_tokens = 1;
    auto split = ScoringSession::append_candidates({a.get(), b.get()}, {{"16 - 3 = 13."}, cands}, o);
    for (size_t c = 0; c < cands.size(); ++c)
      CHECK(std::abs(split[1][c].scores.at("prm") - got[1][c].scores.at("prm")) <= kScoreTol);
  }
}

TEST_CASE("bf16: step scores near fp32, the same best-of-N pick, sessions equal full passes", "[verifier][bf16]") {
  struct Case {
    std::string fixture, spec;
  };
  const std::vector<Case> cases = {{"qwen2_prm", ""}, {"mistral_shepherd_prm", "math-shepherd"}, {"llama_orm", ""}};
  const std::string q = "Tom has 7 apples, buys 5 and gives 2 away. How many apples does he have now?";
  const std::vector<std::vector<std::string>> sols = {
      {"7 + 5 = 12.", "12 - 2 = 10.", "The answer is 10."},
      {"7 + 5 = 13.", "13 - 2 = 11.", "The answer is 11."},
      {"He starts with 7 apples.", "After buying 5 he has 12.", "After giving 2 away he has 10.", "The answer is 10."},
      {"7 - 5 = 2.", "2 + 2 = 4.", "The answer is 4."},
      {"12 - 2 = 10 apples in the end.", "The answer is $\\boxed{10}$."},
      {"Tom buys 5 apples and has 7 + 5 = 12 apples.", "He gives away 2, so he has 12 - 2 = 10 apples."}};
  for (const auto& c : cases) {
    auto dir = test::fixture(c.fixture);
    if (!dir) return;
    INFO(c.fixture);
    VerifierOptions o32, o16;
    o32.spec = o16.spec = c.spec;
    o16.load.dtype = torch::kBFloat16;
    auto v32 = Verifier::load(*dir, o32);
    auto v16 = Verifier::load(*dir, o16);
    std::vector<Solution> batch;
    for (const auto& s : sols) batch.push_back({q, s});
    const auto a = v32->score_batch(batch), b = v16->score_batch(batch);
    // bf16 rounds every weight and activation to 8 significant bits (unit
    // roundoff 2^-8 = 0.4%); through these random fixtures that moves the
    // heads' inputs by 1-4% (measured: probabilities 0.015-0.023 apart,
    // raw ORM rewards of magnitude 1-2 up to 0.06). Allowed: 0.03 on
    // probabilities, 0.02 + 5% of the value on raw rewards; the pick must not move.
    double worst = 0;
    size_t pick32 = 0, pick16 = 0;
    const std::string head = v32->head_names().at(0);
    auto close = [&](size_t h, double x, double y) {
      worst = std::max(worst, std::abs(x - y));
      const bool raw = v32->spec().heads.at(h).activation == Activation::None;
      return std::abs(x - y) <= (raw ? 0.02 + 0.05 * std::abs(x) : 0.03);
    };
    for (size_t i = 0; i < sols.size(); ++i) {
      for (size_t h = 0; h < v32->spec().heads.size(); ++h) {
        const auto& name = v32->spec().heads.at(h).name;
        INFO("solution " << i << ", head " << name);
        if (a[i].heads.count(name))
          for (size_t k = 0; k < a[i].heads.at(name).size(); ++k)
            CHECK(close(h, a[i].heads.at(name)[k], b[i].heads.at(name)[k]));
        CHECK(close(h, a[i].outcome.at(name), b[i].outcome.at(name)));
      }
      if (a[i].outcome.at(head) > a[pick32].outcome.at(head)) pick32 = i;
      if (b[i].outcome.at(head) > b[pick16].outcome.at(head)) pick16 = i;
      // A bf16 session scores each step as the bf16 full pass.
      if (!a[i].heads.empty()) {
        auto s = v16->session(q);
        for (size_t k = 0; k < sols[i].size(); ++k) {
          const double inc = s->append_step(sols[i][k]).at(head);
          CHECK(std::abs(inc - b[i].heads.at(head)[k]) <= 0.02);
        }
      }
    }
    INFO(c.fixture << ": largest |bf16 - fp32| score difference " << worst);
    CHECK(pick32 == pick16);
    // Candidates in one bf16 forward score as one bf16 append each.
    if (!a[0].heads.empty()) {
      auto root = v16->session(q);
      std::vector<std::string> firsts;
      for (const auto& sol : sols) firsts.push_back(sol[0]);
      auto got = root->append_candidates(firsts);
      for (size_t i = 0; i < firsts.size(); ++i)
        CHECK(std::abs(got[i].scores.at(head) - root->fork()->append_step(firsts[i]).at(head)) <= 0.02);
    }
  }
}

TEST_CASE("vLLM pooler configs become specs that score as the presets do", "[verifier]") {
  auto shepherd = test::fixture("mistral_shepherd_prm");
  auto qwen = test::fixture("qwen2_prm");
  if (!shepherd || !qwen) return;
  test::TempDir tmp;
  auto load_with = [&](const std::filesystem::path& dir, const VerifierSpec& spec) {
    const auto file = tmp.path / (spec.name + ".json");
    test::write_text(file, spec.to_json());
    VerifierOptions o;
    o.spec = file.string();
    return Verifier::load(dir, o);
  };
  const std::string q = "Tom has 3 apples and buys 4 more. How many does he have?";
  const std::vector<std::string> steps = {"3 + 4 = 7.", "He has 7 apples.", "The answer is 7."};

  SECTION("Math-Shepherd as vLLM serves it: STEP at the tag, softmax over the returned tokens") {
    // The ids of "ки", "+" and "-" in this tokenizer (the reference's tokenizer cases).
    const auto tok = load_tokenizer(*shepherd);
    EncodeOptions raw;
    raw.add_special_tokens = false;
    const int64_t tag = tok->encode("\xD0\xBA\xD0\xB8", raw).at(0);
    const auto pm = tok->encode("+ -", raw);
    const auto spec = VerifierSpec::from_vllm_pooler(
        nlohmann::json{{"pooling_type", "STEP"}, {"step_tag_id", tag}, {"returned_token_ids", pm}}.dump(), *shepherd);
    CHECK(spec.input.step_tag == "\xD0\xBA\xD0\xB8");
    REQUIRE(spec.heads.size() == 1);
    CHECK(spec.heads[0].candidate_ids == pm);
    VerifierOptions o;
    o.spec = "math-shepherd";
    const auto want = Verifier::load(*shepherd, o)->score(q, steps).step_scores;
    const auto got = load_with(*shepherd, spec)->score(q, steps).step_scores;
    REQUIRE(got.size() == 3);
    for (size_t i = 0; i < 3; ++i) CHECK(got[i] == Approx(want[i]).margin(1e-6));
  }
  SECTION("Qwen2.5-Math-PRM as vLLM serves it: STEP at <extra_0>, the model's own head") {
    const auto tok = load_tokenizer(*qwen);
    const int64_t tag = *tok->piece_to_id("<extra_0>");
    const auto spec = VerifierSpec::from_vllm_pooler(
        nlohmann::json{{"pooling_type", "STEP"}, {"step_tag_id", tag}, {"softmax", true}}.dump(), *qwen);
    CHECK(spec.input.step_tag == "<extra_0>");
    CHECK(spec.heads.at(0).type == HeadType::Mlp);
    const auto want = Verifier::load(*qwen)->score(q, steps).step_scores;
    const auto got = load_with(*qwen, spec)->score(q, steps).step_scores;
    REQUIRE(got.size() == 3);
    for (size_t i = 0; i < 3; ++i) CHECK(got[i] == Approx(want[i]).margin(1e-6));
  }
  SECTION("LAST: one score at the last token; ALL and MEAN refused where they have no equivalent") {
    const auto last = VerifierSpec::from_vllm_pooler(R"({"pooling_type": "LAST"})", *qwen);
    CHECK(last.heads.at(0).read == ReadAt::Last);
    CHECK(last.heads.at(0).meaning == HeadMeaning::Orm);
    CHECK_THROWS_WITH(VerifierSpec::from_vllm_pooler(R"({"pooling_type": "MEAN"})", *qwen),
                      Contains("MEAN") && Contains("no stepverify equivalent"));
    CHECK_THROWS_WITH(VerifierSpec::from_vllm_pooler(R"({"pooling_type": "ALL"})", *shepherd),
                      Contains("ALL") && Contains("MistralForCausalLM"));
    CHECK_THROWS_WITH(VerifierSpec::from_vllm_pooler(R"({"pooling_type": "STEP"})", *shepherd),
                      Contains("step_tag_id"));
    CHECK_THROWS_WITH(VerifierSpec::from_vllm_pooler(R"({"pooling_type": "STEP", "step_tag_id": 297,
                                                        "returned_token_ids": [1, 99999]})",
                                                     *shepherd),
                      Contains("returned_token_ids[1]") && Contains("outside the vocabulary"));
    CHECK_THROWS_WITH(VerifierSpec::from_vllm_pooler(R"({"pooling_type": "STEP", "step_tag_id": 5})", *shepherd),
                      Contains("step_tag_id 5") && Contains("does not encode back"));
    CHECK_THROWS_WITH(VerifierSpec::from_vllm_pooler(R"({"step_tag_id": 5})", *shepherd), Contains("pooling_type"));
    CHECK_THROWS_AS(VerifierSpec::from_vllm_pooler("[1", *shepherd), ConfigError);
  }
}

TEST_CASE("implicit PRM: step rewards are beta times the log-ratio of two LMs over the step's tokens, by hand",
          "[verifier]") {
  auto src = test::fixture("llama_gqa");
  if (!src) return;
  // The tuned LM: the fixture; its reference: the same architecture, every tensor perturbed.
  torch::manual_seed(11);
  std::map<std::string, at::Tensor> perturbed;
  {
    auto ck = SafetensorsFile::open(*src / "model.safetensors");
    for (const auto& n : ck->names()) {
      auto t = to_tensor(ck->tensor(n)).to(torch::kFloat);
      perturbed[n] = t + 0.05 * torch::randn_like(t);
    }
  }
  BuiltCheckpoint tuned(*src, [](nlohmann::json&) {}, {});
  BuiltCheckpoint reference(
      *src, [](nlohmann::json&) {}, perturbed);
  const double beta = 0.5;
  auto spec_json = [&](const std::string& reduction) {
    return nlohmann::json{{"name", "implicit-test"},
                          {"kind", "implicit"},
                          {"reference", reference.dir().string()},
                          {"beta", beta},
                          {"reduction", reduction}}
        .dump();
  };
  const std::string q = "Ana has 12 coins.";
  const std::vector<std::string> steps = {"She buys 5 more.", "12 + 5 = 17.", "The answer is 17."};

  // By hand: the two models' full forwards over the rendered ids.
  test::write_text(tuned.dir() / "stepverify.json", spec_json("sum"));
  auto v = Verifier::load(tuned.dir());
  const auto r = v->tokenize(q, steps);
  REQUIRE(r.step_positions.size() == steps.size());
  auto logprobs_of = [&](const std::filesystem::path& dir) {
    auto m = Model::load(dir);
    ForwardInput in;
    in.input_ids = to_batch(r.ids);
    return torch::log_softmax(m->logits(m->forward(in).hidden[0]).to(torch::kDouble), -1);
  };
  const auto lp = logprobs_of(tuned.dir()), lp_ref = logprobs_of(reference.dir());
  auto ratio = [&](int64_t t) {
    const int64_t id = r.ids[static_cast<size_t>(t)];
    return lp[t - 1][id].item<double>() - lp_ref[t - 1][id].item<double>();
  };
  std::map<std::string, std::vector<double>> want;
  int64_t first = r.solution_from;
  for (int64_t end : r.step_positions) {
    double sum = 0, low = INFINITY;
    for (int64_t t = first; t <= end; ++t) sum += ratio(t), low = std::min(low, ratio(t));
    want["sum"].push_back(beta * sum);
    want["mean"].push_back(beta * sum / static_cast<double>(end - first + 1));
    want["min"].push_back(beta * low);
    first = end + 1;
  }
  const auto got = v->score(q, steps);
  REQUIRE(got.step_scores.size() == 3);
  for (size_t k = 0; k < 3; ++k) CHECK(got.step_scores[k] == Approx(want["sum"][k]).margin(1e-5));
  CHECK(std::abs(want["sum"][0]) > 1e-3);  // the two models differ
  // A prefix's value: the sum of its step rewards.
  ScoreOptions so;
  so.aggregate = Aggregate::Sum;
  CHECK(v->score(q, steps, so).outcome.at("implicit") ==
        Approx(want["sum"][0] + want["sum"][1] + want["sum"][2]).margin(1e-5));

  SECTION("sessions advance both models: appends, forks, candidates and rollbacks give the same rewards") {
    auto s = v->session(q);
    for (size_t k = 0; k < 2; ++k)
      CHECK(s->append_step(steps[k]).at("implicit") == Approx(want["sum"][k]).margin(1e-5));
    auto f = s->fork();
    CHECK(f->append_step(steps[2]).at("implicit") == Approx(want["sum"][2]).margin(1e-5));
    const auto cands = s->append_candidates({"12 - 5 = 7.", steps[2]});
    CHECK(cands[1].scores.at("implicit") == Approx(want["sum"][2]).margin(1e-5));
    s->rollback(1);
    CHECK(s->append_step(steps[1]).at("implicit") == Approx(want["sum"][1]).margin(1e-5));
    // Batched scoring pads both models' rows alike.
    const auto batch = v->score_batch({{q, steps}, {q, {steps[0]}}});
    CHECK(batch[0].step_scores[2] == Approx(want["sum"][2]).margin(1e-5));
    CHECK(batch[1].step_scores[0] == Approx(want["sum"][0]).margin(1e-5));
  }
  SECTION("search ranks by its rewards through forked sessions") {
    struct Fixed : StepProposer {
      std::vector<std::string> steps;
      std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& done, int k) override {
        std::vector<Proposal> out;
        for (int i = 0; i < k; ++i) out.push_back({steps[done.size()], done.size() + 1 == steps.size(), 4});
        return out;
      }
    } prop;
    prop.steps = steps;
    SearchOptions so;
    so.aggregate = Aggregate::Sum;  // a prefix's value
    const auto r = sample_and_rank(*v, prop, q, 1, so);
    CHECK(r.steps == steps);
    CHECK(r.score == Approx(want["sum"][0] + want["sum"][1] + want["sum"][2]).margin(1e-5));
  }
  SECTION("the score CLI reads the implicit spec as any other") {
    test::write_text(tuned.dir() / "in.jsonl", nlohmann::json{{"question", q}, {"steps", steps}}.dump() + "\n");
    const auto [rc, out] =
        test::run_command(std::string(STEPVERIFY_CLI) + " score --model " + test::shell_quote(tuned.dir().string()) +
                          " --input " + test::shell_quote((tuned.dir() / "in.jsonl").string()) + " --output " +
                          test::shell_quote((tuned.dir() / "out.jsonl").string()));
    INFO(out);
    REQUIRE(rc == 0);
    const auto got_cli = test::read_json(tuned.dir() / "out.jsonl")["step_scores"].get<std::vector<double>>();
    REQUIRE(got_cli.size() == 3);
    for (size_t k = 0; k < 3; ++k) CHECK(got_cli[k] == Approx(want["sum"][k]).margin(1e-5));
  }
  SECTION("mean and min reductions") {
    for (const std::string red : {"mean", "min"}) {
      INFO(red);
      test::write_text(tuned.dir() / "stepverify.json", spec_json(red));
      auto w = Verifier::load(tuned.dir());
      const auto g = w->score(q, steps);
      for (size_t k = 0; k < 3; ++k) CHECK(g.step_scores[k] == Approx(want[red][k]).margin(1e-5));
    }
  }
  SECTION("a reference that cannot run in lockstep, or is missing, is refused by name") {
    BuiltCheckpoint other(*src, [](nlohmann::json& c) { c["num_key_value_heads"] = c["num_attention_heads"]; }, {});
    auto j = nlohmann::json::parse(spec_json("sum"));
    j["reference"] = other.dir().string();
    test::write_text(tuned.dir() / "stepverify.json", j.dump());
    CHECK_THROWS_WITH(Verifier::load(tuned.dir()), Catch::Contains("num_key_value_heads") || Catch::Contains("tensor"));
    j["reference"] = (tuned.dir() / "nowhere").string();
    test::write_text(tuned.dir() / "stepverify.json", j.dump());
    CHECK_THROWS_AS(Verifier::load(tuned.dir()), IoError);
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"kind": "implicit", "beta": 0.1})"), ConfigError);  // no reference
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"reference": "x", "heads": []})"), ConfigError);    // not implicit
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"kind": "implicit", "reference": "x", "beta": 0})"), ConfigError);
    // A float where an integer goes (nlohmann reads 1e30 and 2^95 as floats) is refused, never cast.
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"heads": [{"class_index": 1e30}]})"), ConfigError);
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"heads": [{"class_index": 24444444444444444444444444444}]})"),
                    ConfigError);
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"heads": [{"type": "lm_candidates", "candidate_ids": [1, 2.5]}]})"),
                    ConfigError);
    // A head written out takes the implicit head's own defaults; one that would read otherwise is refused.
    const auto written = VerifierSpec::from_json(
        R"({"kind": "implicit", "reference": "x", "heads": [{"name": "r", "type": "implicit"}]})");
    CHECK(written.heads.at(0).activation == Activation::None);
    CHECK(written.heads.at(0).read == ReadAt::StepEnd);
    CHECK_THROWS_AS(VerifierSpec::from_json(R"({"kind": "implicit", "reference": "x",
                                               "heads": [{"type": "implicit", "logprob_span": "solution"}]})"),
                    ConfigError);
  }
}
