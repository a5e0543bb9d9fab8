// The CLI contracts: tokenize, forward and score, run as a user runs them.
#include "test_support.h"

#include <cstdio>

#include <fmt/format.h>

#include "stepverify/model.h"
#include "stepverify/runtime.h"
#include "stepverify/verifier.h"

using namespace stepverify;

namespace {

// Runs the CLI with `args`; returns its exit status and stdout.
std::pair<int, std::string> run_cli(const std::string& args) {
  return test::run_command(std::string(STEPVERIFY_CLI) + " " + args);
}

std::string quote(const std::string& s) { return test::shell_quote(s); }

// Runs the CLI with `args`; returns its exit status and stdout + stderr.
std::pair<int, std::string> run_cli_merged(const std::string& args) {
  return test::run_command("(" + std::string(STEPVERIFY_CLI) + " " + args + " 2>&1)");
}

}  // namespace

TEST_CASE("cli tokenize prints input_ids and pieces", "[cli]") {
  for (const char* name : {"llama_gqa", "qwen2_prm"}) {
    auto dir = test::fixture(name);
    if (!dir) return;
    auto tok = load_tokenizer(*dir);
    const std::string text = "Step 1: 16 - 3 = 13 eggs.\n<|im_end|> done";
    auto [rc, out] = run_cli("tokenize --model " + dir->string() + " --text " + quote(text));
    REQUIRE(rc == 0);
    auto j = nlohmann::json::parse(out);
    auto enc = tok->encode_with_pieces(text);
    CHECK(j["input_ids"].get<std::vector<int64_t>>() == enc.ids);
    CHECK(j["pieces"].get<std::vector<std::string>>() == enc.pieces);
    auto [rc2, out2] = run_cli("tokenize --no-special-tokens --model " + dir->string() + " --text " + quote(text));
    EncodeOptions raw;
    raw.add_special_tokens = false;
    CHECK(nlohmann::json::parse(out2)["input_ids"].get<std::vector<int64_t>>() == tok->encode(text, raw));
  }
}

TEST_CASE("cli forward writes input_ids, hidden and logits equal to the reference", "[cli]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  auto ref = test::read_json(*dir / "reference.json");
  auto reft = SafetensorsFile::open(*dir / "reference.safetensors");
  const std::string text = ref["cases"][0]["rows"][0]["text"];
  test::TempDir tmp;
  const auto out = tmp.path / "f.safetensors";
  auto [rc, _] = run_cli("forward --model " + dir->string() + " --text " + quote(text) + " --out " + out.string());
  REQUIRE(rc == 0);
  auto f = SafetensorsFile::open(out);
  CHECK(f->tensor("input_ids").dtype == DType::I64);
  CHECK(torch::equal(to_tensor(f->tensor("input_ids")), test::ref_tensor(*reft, "single0.input_ids")[0]));
  CHECK(test::max_abs_diff(to_tensor(f->tensor("hidden")), test::ref_tensor(*reft, "single0.hidden_states.3")[0]) <=
        1e-4);
  CHECK(test::max_abs_diff(to_tensor(f->tensor("logits")), test::ref_tensor(*reft, "single0.logits")[0]) <= 2e-4);
  auto [rc2, __] = run_cli("forward --model /nonexistent --text x --out " + out.string());
  CHECK(rc2 == 1);
}

TEST_CASE("cli score: step_scores per line, bad lines reported and skipped", "[cli]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  test::TempDir tmp;
  test::write_text(tmp.path / "in.jsonl",
                   R"({"id": 1, "problem": "What is 7 * 8?", "steps": ["7 * 8 = 54.", "The answer is 54."]})"
                   "\n{broken\n"
                   R"({"id": 2, "question": "Solve x + 2 = 5.", "steps": ["Subtract 2: x = 3."]})"
                   "\n");
  const auto out = tmp.path / "out.jsonl";
  auto [rc, _] = run_cli("score --model " + dir->string() + " --input " + (tmp.path / "in.jsonl").string() +
                         " --output " + out.string() + " --heads prm");
  REQUIRE(rc == 0);
  std::ifstream in(out);
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  REQUIRE(lines.size() == 2);
  auto v = Verifier::load(*dir);
  auto want = v->score("What is 7 * 8?", {"7 * 8 = 54.", "The answer is 54."}).step_scores;
  auto got = lines[0]["step_scores"].get<std::vector<double>>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) < 1e-6);
  CHECK(lines[0]["scores"]["prm"].size() == 2);
  CHECK(lines[0]["id"] == 1);
  CHECK(lines[1]["id"] == 2);

  SECTION("every line bad: exit status 1, not a success") {
    test::write_text(tmp.path / "bad.jsonl", "{broken\n{\"id\": 3, \"steps\": []}\n");
    CHECK(run_cli("score --model " + dir->string() + " --input " + (tmp.path / "bad.jsonl").string() + " --output " +
                  (tmp.path / "bad_out.jsonl").string())
              .first == 1);
  }

  SECTION("--strict: the first bad line is fatal and nothing is written") {
    const auto strict_out = tmp.path / "strict.jsonl";
    CHECK(run_cli("score --strict --model " + dir->string() + " --input " + (tmp.path / "in.jsonl").string() +
                  " --output " + strict_out.string())
              .first == 1);
    CHECK_FALSE(std::filesystem::exists(strict_out));
    CHECK_FALSE(std::filesystem::exists(strict_out.string() + ".partial"));
  }

  SECTION("an output that is the input is refused, the input kept") {
    const auto in_path = tmp.path / "in.jsonl";
    const std::string before = stepverify::detail::read_file(in_path);
    CHECK(run_cli("score --model " + dir->string() + " --input " + in_path.string() + " --output " +
                  (tmp.path / "." / "in.jsonl").string())
              .first == 1);
    CHECK(stepverify::detail::read_file(in_path) == before);
  }

  SECTION("killed halfway: the file under the output name is the previous one, whole") {
    std::string many;
    for (int i = 0; i < 200000; ++i)
      many += R"({"id": )" + std::to_string(i) +
              R"(, "question": "What is 7 * 8?", "steps": ["7 * 8 = 56."]})"
              "\n";
    test::write_text(tmp.path / "many.jsonl", many);
    const auto keep = tmp.path / "keep.jsonl";
    test::write_text(keep, "previous\n");
    const auto [rc_kill, _o] =
        test::run_command("timeout -s KILL 1 " + std::string(STEPVERIFY_CLI) + " score --model " + dir->string() +
                          " --input " + (tmp.path / "many.jsonl").string() + " --output " + keep.string());
    CHECK(rc_kill == 137);  // killed, not finished
    CHECK(stepverify::detail::read_file(keep) == "previous\n");
  }

  SECTION("--dtype bf16 scores as the library does in bf16; fp16 on the CPU is refused") {
    auto [rc16, o16] = run_cli("score --dtype bf16 --model " + dir->string() + " --input " +
                               (tmp.path / "in.jsonl").string() + " --output " + out.string() + " --heads prm");
    REQUIRE(rc16 == 0);
    std::ifstream in16(out);
    std::string first;
    std::getline(in16, first);
    VerifierOptions o;
    o.load.dtype = torch::kBFloat16;
    auto want16 = Verifier::load(*dir, o)->score("What is 7 * 8?", {"7 * 8 = 54.", "The answer is 54."}).step_scores;
    auto got16 = nlohmann::json::parse(first)["step_scores"].get<std::vector<double>>();
    REQUIRE(got16.size() == want16.size());
    for (size_t i = 0; i < got16.size(); ++i) CHECK(std::abs(got16[i] - want16[i]) < 1e-6);
    const std::string bad = "score --model " + dir->string() + " --input " + (tmp.path / "in.jsonl").string() +
                            " --output " + (tmp.path / "x.jsonl").string();
    CHECK(run_cli(bad + " --dtype fp16").first != 0);
    CHECK(run_cli(bad + " --dtype fp64").first != 0);
  }
}

TEST_CASE(
    "cli models --dtype: fp16 refused before training; bf16 trains a bf16 policy and a bf16 verifier with "
    "float32 heads that scores",
    "[cli][slow]") {
  test::TempDir tmp;
  const std::string tiny =
      " --train-problems 3000 --policy-steps 60 --policy-continue-steps 20 --backbone-steps 20"
      " --verifier-steps 30 --verifier-problems 30 --samples 2 --rollouts 1 --policy-eval 50";
  CHECK(run_cli("models --out " + (tmp.path / "f16").string() + tiny + " --dtype fp16").first != 0);
  CHECK_FALSE(std::filesystem::exists(tmp.path / "f16" / "policy"));  // refused before the first step

  const auto out = tmp.path / "bf16";
  auto [rc, json] = run_cli("models --out " + out.string() + tiny + " --dtype bf16");
  REQUIRE(rc == 0);
  auto rep = nlohmann::json::parse(json);
  CHECK(rep["verifier"]["loss_final"].get<double>() < rep["verifier"]["loss_first"].get<double>());
  // The continued policy is saved in bf16; the verifier keeps its heads in float32.
  auto dtypes = [](const std::filesystem::path& file) {
    std::map<std::string, DType> d;
    auto f = SafetensorsFile::open(file);
    for (const auto& n : f->names()) d[n] = f->tensor(n).dtype;
    return d;
  };
  for (const auto& [name, dt] : dtypes(out / "policy" / "model.safetensors")) CHECK(dt == DType::BF16);
  int heads = 0, backbone = 0;
  for (const auto& [name, dt] : dtypes(out / "verifier" / "model.safetensors")) {
    const bool is_head = name.rfind("model.", 0) != 0 && name != "lm_head.weight";
    (is_head ? heads : backbone) += 1;
    CHECK(dt == (is_head ? DType::F32 : DType::BF16));
  }
  CHECK(heads > 0);
  CHECK(backbone > 0);
  VerifierOptions vo;
  vo.load.dtype = torch::kBFloat16;
  auto r = Verifier::load(out / "verifier", vo)->score("1 + 2", {"1 + 2 = 3"});
  REQUIRE(r.step_scores.size() == 1);
  CHECK(r.step_scores[0] >= 0.0);
  CHECK(r.step_scores[0] <= 1.0);
}

TEST_CASE(
    "cli search: a line per problem with the search's result under \"search\"; bad lines skipped, all bad exits 1",
    "[cli]") {
  const std::string models = STEPVERIFY_SOURCE_DIR "/models";
  test::TempDir tmp;
  // (19 + 4) * 3 + 19 = 88, by hand.
  test::write_text(tmp.path / "in.jsonl",
                   "{\"id\": 1, \"question\": \"Dev has 19 shells. Dev buys 4 more shells. He triples the shells. He "
                   "finds 19 more shells. How many shells does Dev have now?\", \"gold\": \"88\"}\n{broken\n\n");
  const std::string common = "search --policy " + models + "/policy --verifier " + models +
                             "/verifier --beam-width 2 --expansions 2 --max-steps 8 --output ";
  auto [rc, _] = run_cli(common + (tmp.path / "out.jsonl").string() + " --input " + (tmp.path / "in.jsonl").string());
  REQUIRE(rc == 0);
  std::ifstream in(tmp.path / "out.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  REQUIRE(lines.size() == 1);  // the bad line and the blank one are not written
  CHECK(lines[0]["id"] == 1);
  const auto& s = lines[0]["search"];
  CHECK(s["method"] == "beam");
  const auto steps = s["steps"].get<std::vector<std::string>>();
  REQUIRE_FALSE(steps.empty());
  // "correct" is the search's answer against the gold 88.
  CHECK(s["correct"].get<bool>() == (s["answer"].get<std::string>() == "88"));
  CHECK(s["verifier_tokens"].get<int64_t>() > 0);

  test::write_text(tmp.path / "bad.jsonl", "{broken\n{\"id\": 2}\n");
  CHECK(
      run_cli(common + (tmp.path / "bad_out.jsonl").string() + " --input " + (tmp.path / "bad.jsonl").string()).first ==
      1);
}

TEST_CASE("cli answers, vote and eval bon as commands, outputs checked by hand", "[cli]") {
  test::TempDir tmp;
  const auto in = tmp.path / "in.jsonl";
  const auto out = tmp.path / "out.jsonl";
  auto lines = [](const std::filesystem::path& p) {
    std::vector<nlohmann::json> v;
    std::ifstream f(p);
    for (std::string l; std::getline(f, l);) v.push_back(nlohmann::json::parse(l));
    return v;
  };

  test::write_text(in, R"({"id": 1, "text": "So the answer is $\\boxed{12}$."})"
                       "\n{oops\n"
                       R"({"id": 2, "a": "0.5", "b": "\\frac{1}{2}"})"
                       "\n"
                       R"({"id": 3, "a": "2", "b": "3"})"
                       "\n");
  REQUIRE(run_cli("answers --input " + in.string() + " --output " + out.string()).first == 0);
  auto a = lines(out);
  REQUIRE(a.size() == 3);  // the bad line skipped
  CHECK(a[0]["answer"] == "12");
  CHECK(a[1]["equal"] == true);
  CHECK(a[2]["equal"] == false);
  CHECK(a[2]["id"] == 3);  // input fields kept

  // Five candidates: "4" three times (scores .1 .2 .1), "5" twice (.9 .3).
  // Majority: 4 (3 votes); weighted: 5 (1.2 against 0.4); best: 5 (0.9).
  const std::string problem =
      R"({"id": "p", "gold": "4", "candidates": [{"answer": "4", "score": 0.1}, {"answer": "5", "score": 0.9},)"
      R"( {"answer": "4", "score": 0.2}, {"answer": "5", "score": 0.3}, {"answer": "4", "score": 0.1}]})";
  test::write_text(in, problem + "\n");
  REQUIRE(run_cli("vote --input " + in.string() + " --output " + out.string()).first == 0);
  auto v = lines(out);
  REQUIRE(v.size() == 1);
  CHECK(v[0]["majority"] == "4");
  CHECK(v[0]["weighted"] == "5");
  CHECK(v[0]["best"] == "5");
  CHECK(v[0]["correct"]["majority"] == true);
  CHECK(v[0]["correct"]["weighted"] == false);
  CHECK(v[0]["correct"]["best"] == false);

  // eval bon: at N = 1 every single candidate is one subset, so majority's
  // accuracy is the share of right candidates, 3/5.
  auto [rc, json] = run_cli("eval bon --json --input " + in.string());
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(json);
  CHECK(j["problems"] == 1);
  REQUIRE(j["n"][0] == 1);
  CHECK(j["methods"]["majority"][0].get<double>() == Approx(0.6));
  CHECK(j["methods"]["weighted"][0].get<double>() == Approx(0.6));  // one candidate: its own answer

  // All lines bad: exit 1 for each.
  test::write_text(in, "{oops\n[1]\n");
  CHECK(run_cli("answers --input " + in.string() + " --output " + out.string()).first == 1);
  CHECK(run_cli("vote --input " + in.string() + " --output " + out.string()).first == 1);
}

TEST_CASE("cli label, train verifier and score as commands: a pipeline on the shipped policy", "[cli]") {
  const std::string models = STEPVERIFY_SOURCE_DIR "/models";
  test::TempDir tmp;
  // (19 + 4) * 3 + 19 = 88: the same solution ending right and ending wrong.
  const std::string q =
      "Dev has 19 shells. Dev buys 4 more shells. He triples the shells. He finds 19 more shells. How many "
      "shells does Dev have now?";
  auto line = [&](const std::string& last) {
    return nlohmann::json{{"question", q}, {"steps", {"19 + 4 = 23", "23 * 3 = 69", last}}, {"gold", "88"}}.dump();
  };
  const auto in = tmp.path / "in.jsonl", labels = tmp.path / "labels.jsonl";
  test::write_text(in, line("69 + 19 = 88") + "\n" + line("69 + 19 = 87") + "\n");
  REQUIRE(run_cli("label --policy " + models + "/policy --input " + in.string() + " --output " + labels.string() +
                  " --rollouts 2 --seed 1")
              .first == 0);
  std::vector<nlohmann::json> out;
  {
    std::ifstream f(labels);
    for (std::string l; std::getline(f, l);) out.push_back(nlohmann::json::parse(l));
  }
  REQUIRE(out.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    INFO("solution " << i);
    CHECK(out[i]["prompt"] == q);
    REQUIRE(out[i]["labels"].size() == 3);
    REQUIRE(out[i]["soft_labels"].size() == 3);
    // The last step ends the solution: its label is the answer's correctness,
    // whatever the rollouts (there is nothing left to roll out).
    CHECK(out[i]["labels"][2] == (i == 0));
    CHECK(out[i]["soft_labels"][2].get<double>() == (i == 0 ? 1.0 : 0.0));
    for (const auto& s : out[i]["soft_labels"]) {
      CHECK(s.get<double>() >= 0.0);
      CHECK(s.get<double>() <= 1.0);
    }
  }
  CHECK(run_cli("label --policy " + models + "/policy --input " + in.string() + " --output " + in.string()).first ==
        1);  // the output may not be the input

  // Train a PRM head on those labels over the policy's backbone, then score with it.
  test::write_text(tmp.path / "spec.json", R"({"name": "t", "template": {"style": "tokens", "question_suffix": "\n",
    "step_separator": "\n"}, "heads": [{"name": "prm", "meaning": "prm", "type": "linear", "weights": "prm",
    "activation": "softmax", "read": "step_end"}]})");
  const auto v = tmp.path / "v";
  REQUIRE(run_cli("train verifier --backbone " + models + "/policy --spec " + (tmp.path / "spec.json").string() +
                  " --data " + labels.string() + " --out " + v.string() +
                  " --steps 200 --lr 1e-2 --last-layers 0 --batch 2 --threads 1")
              .first == 0);
  const auto scored = tmp.path / "scored.jsonl";
  REQUIRE(run_cli("score --model " + v.string() + " --input " + in.string() + " --output " + scored.string()).first ==
          0);
  std::vector<std::vector<double>> s;
  {
    std::ifstream f(scored);
    for (std::string l; std::getline(f, l);)
      s.push_back(nlohmann::json::parse(l)["step_scores"].get<std::vector<double>>());
  }
  REQUIRE(s.size() == 2);
  REQUIRE(s[0].size() == 3);
  // The head learned the labels it was trained on, step by step, and which
  // last step is right.
  for (size_t i = 0; i < 2; ++i)
    for (size_t k = 0; k < 3; ++k) {
      INFO("solution " << i << " step " << k << " score " << s[i][k]);
      CHECK((s[i][k] > 0.5) == out[i]["labels"][k].get<bool>());
    }
  CHECK(s[0][2] > s[1][2]);
}

namespace {

// Mean cross-entropy of the completion tokens (and EOS) of `pairs` under the
// checkpoint at `dir`, computed by inference (not the trainer's code path).
double completion_nll(const std::filesystem::path& dir, const std::vector<std::pair<std::string, std::string>>& pairs) {
  auto model = Model::load(dir);
  const Tokenizer& tok = model->tokenizer();
  EncodeOptions raw;
  raw.add_special_tokens = false;
  double total = 0;
  int64_t count = 0;
  for (const auto& [prompt, completion] : pairs) {
    auto ids = tok.encode(prompt);
    const int64_t prompt_len = static_cast<int64_t>(ids.size());
    for (int64_t id : tok.encode(completion, raw)) ids.push_back(id);
    ids.push_back(*tok.special_tokens().eos_id);
    ForwardInput in;
    in.input_ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
    auto logp = torch::log_softmax(model->logits(model->forward(in).hidden)[0].to(torch::kDouble), -1);
    for (int64_t t = prompt_len; t < static_cast<int64_t>(ids.size()); ++t, ++count)
      total -= logp[t - 1][ids[static_cast<size_t>(t)]].item<double>();
  }
  return total / static_cast<double>(count);
}

}  // namespace

TEST_CASE("cli train lm: the saved checkpoint loads and its loss is the printed evaluation loss", "[cli]") {
  const std::string models = STEPVERIFY_SOURCE_DIR "/models";
  test::TempDir tmp;
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string data;
  for (int i = 1; i <= 8; ++i) {
    pairs.emplace_back(
        fmt::format("Ann has {} apples. She buys 2 more apples. How many apples does Ann have now?\n", i),
        fmt::format("{} + 2 = {}\nThe answer is {}\n", i, i + 2, i + 2));
    data += nlohmann::json{{"prompt", pairs.back().first}, {"completion", pairs.back().second}}.dump() + "\n";
  }
  const auto d = tmp.path / "d.jsonl", out = tmp.path / "lm";
  test::write_text(d, data);
  // One batch of all 8 examples, so the evaluation loss is the mean over all completion tokens.
  const auto [rc, log] =
      run_cli_merged("train lm --init " + models + "/policy --data " + d.string() + " --eval " + d.string() +
                     " --out " + out.string() + " --steps 10 --batch 8 --lr 1e-3 --warmup 0 --threads 1 --seed 3");
  REQUIRE(rc == 0);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"})
    CHECK(std::filesystem::exists(out / f));
  const size_t at = log.rfind(" eval ");
  REQUIRE(at != std::string::npos);
  const double printed = std::stod(log.substr(at + 6));
  const double before = completion_nll(models + "/policy", pairs), after = completion_nll(out, pairs);
  INFO(log);
  CHECK(std::abs(after - printed) < 1e-3);  // printed with 4 decimals
  CHECK(after < before - 0.2);              // 10 steps on 8 examples: it learned them
  // Refused before any training: an output that is a file, or the checkpoint being read.
  CHECK(run_cli("train lm --init " + models + "/policy --data " + d.string() + " --out " + d.string()).first != 0);
  CHECK(run_cli("train lm --init " + out.string() + " --data " + d.string() + " --out " + out.string()).first != 0);
}

TEST_CASE("cli demo: one proposal per problem makes every selection the same; step marks checked by arithmetic",
          "[cli]") {
  const std::string models = STEPVERIFY_SOURCE_DIR "/models";
  const auto [rc, text] = run_cli("demo --models " + models +
                                  " --problems 6 --n 1 --beam-width 1 --expansions 1 --json --set dev --threads 1");
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(text);
  CHECK(j["problems"] == 6);
  CHECK(j["set"] == "dev");
  const auto& m = j["methods"];
  // With one sample per problem, majority, weighted SC and best-of-N all return that sample.
  const double acc = m["majority@1"]["accuracy"].get<double>();
  for (const char* k : {"orm_best_of_1", "prm_wsc@1", "prm_best_of_1"}) CHECK(m[k]["accuracy"].get<double>() == acc);
  for (const auto& [name, r] : m.items()) {
    INFO(name);
    const double a = r["accuracy"].get<double>();
    CHECK(std::abs(a * 6 - std::round(a * 6)) < 1e-9);  // a count out of 6
    CHECK(r["generated_tokens"].get<int64_t>() > 0);
  }
  // The example's step marks, recomputed from its text: "a op b = c" is right iff the arithmetic holds, and
  // the first wrong step makes every later step wrong.
  const auto& ex = j["example"];
  const auto steps = ex["steps"].get<std::vector<std::string>>();
  REQUIRE(ex["correct"].size() == steps.size());
  int first_error = -1;
  for (size_t k = 0; k < steps.size(); ++k) {
    long a = 0, b = 0, c = 0;
    char op = 0;
    bool ok = first_error < 0;
    if (std::sscanf(steps[k].c_str(), "%ld %c %ld = %ld", &a, &op, &b, &c) == 4)
      ok = ok && (op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : op == '/' ? a / b : c + 1) == c;
    if (!ok && first_error < 0) first_error = static_cast<int>(k);
    if (steps[k].rfind("The answer is", 0) != 0) CHECK(ex["correct"][k].get<bool>() == ok);
  }
  if (first_error >= 0) CHECK(ex["true_first_error"] == first_error);
}

TEST_CASE("cli spec --from-vllm prints the spec a vLLM pooler config describes", "[cli]") {
  auto dir = test::fixture("mistral_shepherd_prm");
  if (!dir) return;
  // Math-Shepherd's tag and candidates in this tokenizer: "ки" 297, "+" 282, "-" 298 (reference.json).
  const auto [rc, out] =
      run_cli("spec --model " + dir->string() + " --from-vllm " +
              quote(R"({"pooling_type": "STEP", "step_tag_id": 297, "returned_token_ids": [282, 298]})"));
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["template"]["step_tag"] == "\xD0\xBA\xD0\xB8");
  CHECK(j["template"]["step_separator"] == " \xD0\xBA\xD0\xB8\n");
  CHECK(j["heads"][0]["type"] == "lm_candidates");
  CHECK(j["heads"][0]["candidate_ids"] == nlohmann::json::array({282, 298}));
  CHECK(j["heads"][0]["read"] == "tag");
  CHECK(run_cli("spec --model " + dir->string() + " --from-vllm " + quote(R"({"pooling_type": "CLS"})")).first == 1);
  const auto [rc2, preset] = run_cli("spec --preset qwen2.5-math-rm");
  REQUIRE(rc2 == 0);
  CHECK(nlohmann::json::parse(preset)["heads"][0]["type"] == "mlp");
}

TEST_CASE("cli: an OPENBLAS_CORETYPE set before the program that holds the kernels back gets a warning naming it",
          "[cli]") {
  const std::string best = blas_kernels_for_cpu();
  if (!blas_is_openblas() || best.empty()) {
    WARN("no OpenBLAS, or a CPU without AVX2: no kernel set to prefer");
    return;
  }
  const std::string cli = " " + std::string(STEPVERIFY_CLI) + " --version 2>&1)";
  // Prescott (SSE3) lags every CPU with AVX2: the warning names the variable,
  // its value and the set to use instead; the program still runs.
  const auto [rc, text] = test::run_command("(OPENBLAS_CORETYPE=Prescott" + cli);
  CHECK(rc == 0);
  CHECK(
      text.find("warning: OPENBLAS_CORETYPE=Prescott makes OpenBLAS run its Prescott kernels on a CPU that runs its " +
                best + " ones; matrix products run 2-4x slower. Unset it or set OPENBLAS_CORETYPE=" + best) !=
      std::string::npos);
  // The CPU's own set, or no variable (the program restarts itself with it): silent.
  CHECK(test::run_command("(OPENBLAS_CORETYPE=" + best + cli).second.find("warning") == std::string::npos);
  CHECK(test::run_command("(env -u OPENBLAS_CORETYPE" + cli).second.find("warning") == std::string::npos);
}
