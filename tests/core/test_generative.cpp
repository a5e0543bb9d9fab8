// Generative verifiers: the prompt, verdict parsing, the yes/no read and
// chain generation, each against a hand computation on a tiny LM.
#include <cmath>
#include <set>

#include <torch/torch.h>

#include "test_support.h"

#include "stepverify/errors.h"
#include "stepverify/generative.h"

using namespace stepverify;

namespace stepverify {
std::ostream& operator<<(std::ostream& o, Verdict v) { return o << to_string(v); }
}  // namespace stepverify

namespace {

GenerativeSpec plain_spec() {
  GenerativeSpec s;
  s.name = "test";
  s.prompt_template = "Problem: {question}\nSolution:\n{steps}\nCheck:";
  return s;
}

// softmax of the next-token logits after `text` (encoded as the verifier does), at token `id`.
double next_prob(const Model& m, const std::string& text, int64_t id) {
  ForwardInput in;
  in.input_ids = to_batch(m.tokenizer().encode(text));
  const auto h = m.forward(in).hidden[0];
  return torch::softmax(m.logits(h[h.size(0) - 1]).to(torch::kDouble), -1)[id].item<double>();
}

}  // namespace

TEST_CASE("generative verifier: the thinkprm prompt, step by step as the model card writes it", "[verifier]") {
  const auto spec = GenerativeSpec::preset("thinkprm");
  const std::string want =
      "<\xEF\xBD\x9CUser\xEF\xBD\x9C>You are given a math problem and a proposed step-by-step solution:\n\n"
      "[Math Problem]\n\nWhat is 2 + 3?\n\n[Solution]\n\nStep 1: 2 + 3 = 5.\nStep 2: The answer is 5.\n\n"
      "Review and critique each step in the proposed solution to determine whether each step is correct. If the "
      "solution is incomplete, only verify the provided steps<\xEF\xBD\x9C"
      "Assistant\xEF\xBD\x9C><think>\nLet's verify step by step:";
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  GenerativeVerifier v(Model::load(*dir), spec);
  CHECK(v.prompt("What is 2 + 3?", {"2 + 3 = 5.", "The answer is 5."}) == want);
  CHECK_THROWS_AS(v.prompt("q", {}), InputError);
  CHECK_THROWS_AS(v.prompt("q", {"a", ""}), InputError);
  // The JSON form round-trips; a template without {steps} is refused.
  CHECK(GenerativeSpec::from_json(spec.to_json()).prompt_template == spec.prompt_template);
  CHECK_THROWS_AS(GenerativeSpec::from_json(R"({"prompt_template": "{question} only"})"), ConfigError);
  CHECK_THROWS_AS(GenerativeSpec::preset("nope"), ConfigError);
}

TEST_CASE("generative verifier: verdicts in order of appearance, a missing one reported as such", "[verifier]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  GenerativeVerifier v(Model::load(*dir), plain_spec());
  using V = Verdict;
  CHECK(v.verdicts("Step 1: fine. \\boxed{correct}\nStep 2: 4 is wrong. \\boxed{incorrect}", 3) ==
        std::vector<V>{V::Correct, V::Incorrect, V::Missing});
  CHECK(v.verdicts("\\boxed{incorrect} \\boxed{incorrect} \\boxed{correct} \\boxed{correct}", 3) ==
        std::vector<V>{V::Incorrect, V::Incorrect, V::Correct});
  CHECK(v.verdicts("no verdicts here, \\boxed{5}", 2) == std::vector<V>{V::Missing, V::Missing});
  // The template's own words.
  auto words = plain_spec();
  words.correct_verdict = "[OK]";
  words.incorrect_verdict = "[WRONG]";
  GenerativeVerifier w(Model::load(*dir), words);
  CHECK(w.verdicts("a [WRONG] b [OK]", 2) == std::vector<V>{V::Incorrect, V::Correct});
}

TEST_CASE("generative verifier: the score is P(yes) / (P(yes) + P(no)) after the final question, by hand",
          "[verifier]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  auto model = Model::load(*dir);
  const auto spec = plain_spec();
  GenerativeVerifier v(model, spec);
  const std::string q = "What is 2 + 3?";
  const std::vector<std::string> steps = {"2 + 3 = 5.", "The answer is 5."};
  EncodeOptions raw;
  raw.add_special_tokens = false;
  // The first token of each answer that is more than white space.
  auto first_word = [&](const std::string& text) {
    for (int64_t id : model->tokenizer().encode(text, raw))
      if (model->tokenizer().id_to_piece(id) != "\xE2\x96\x81") return id;
    return int64_t{-1};
  };
  const int64_t yes = first_word(spec.yes), no = first_word(spec.no);
  REQUIRE(yes != no);

  // A chain given as text; the model's own final question is cut off.
  const std::string chain = " Step 1 adds. \\boxed{correct} Step 2 states it. \\boxed{correct}";
  const auto c = v.judge(q, steps, chain + spec.final_question + " No");
  CHECK(c.text == chain);
  CHECK(c.verdicts == std::vector<Verdict>{Verdict::Correct, Verdict::Correct});
  const std::string read_at = v.prompt(q, steps) + chain + spec.final_question;
  const double py = next_prob(*model, read_at, yes), pn = next_prob(*model, read_at, no);
  CHECK(c.p_yes == Approx(py).epsilon(1e-6));
  CHECK(c.p_no == Approx(pn).epsilon(1e-6));
  CHECK(c.score == Approx(py / (py + pn)).epsilon(1e-9));

  SECTION("greedy chains: the model's greedy continuation of the prompt, read the same way; k chains averaged") {
    GenerativeOptions o;
    o.max_tokens = 12;
    o.chains = 2;
    const auto r = v.verify(q, steps, o);
    REQUIRE(r.chains.size() == 2);
    const auto prompt_ids = model->tokenizer().encode(v.prompt(q, steps));
    CHECK(r.prompt_tokens == static_cast<int64_t>(prompt_ids.size()));
    const auto greedy = model->generate_greedy(prompt_ids, r.chains[0].tokens, /*stop_at_eos=*/true);
    DecodeOptions d;
    d.skip_special_tokens = true;
    const auto text = model->tokenizer().decode(greedy, d);
    CHECK(r.chains[0].text == text.substr(0, text.find(spec.final_question)));
    CHECK(r.chains[1].text == r.chains[0].text);
    CHECK(r.generated_tokens == r.chains[0].tokens);  // greedy chains are one chain, decoded once
    // Read from the positions the decoding computed: the full forward's read to rounding.
    const auto again = v.judge(q, steps, r.chains[0].text);
    CHECK(r.chains[0].p_yes == Approx(again.p_yes).epsilon(1e-5));
    CHECK(r.chains[0].score == Approx(again.score).epsilon(1e-5));
    CHECK(r.score == Approx(again.score).epsilon(1e-5));
    CHECK(r.step_scores.size() == 2);
    // Sampled chains are seeded: the same seed gives the same chains.
    o.sampling.temperature = 1.0;
    o.sampling.seed = 9;
    const auto s1 = v.verify(q, steps, o), s2 = v.verify(q, steps, o);
    CHECK(s1.chains[0].text == s2.chains[0].text);
    CHECK(s1.chains[1].text == s2.chains[1].text);
    CHECK(s1.score == s2.score);
  }
}

TEST_CASE("generative verifier: sampled chains decoded together, each read from its own row as a full forward reads it",
          "[verifier]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  auto model = Model::load(*dir);
  auto spec = plain_spec();
  spec.stop = "e";  // chains end at different lengths: rows leave the batch one by one
  GenerativeVerifier v(model, spec);
  const std::string q = "What is 2 + 3?";
  const std::vector<std::string> steps = {"2 + 3 = 5.", "The answer is 5."};
  GenerativeOptions o;
  o.chains = 5;
  o.max_tokens = 16;
  o.sampling.temperature = 1.0;
  o.sampling.seed = 3;
  const auto r = v.verify(q, steps, o);
  REQUIRE(r.chains.size() == 5);
  std::set<int64_t> lengths;
  int64_t tokens = 0;
  double mean = 0;
  for (const auto& c : r.chains) {
    INFO(c.text);
    lengths.insert(c.tokens);
    tokens += c.tokens;
    CHECK(c.text.find('e') == std::string::npos);  // cut at the stop text
    CHECK(c.tokens <= 16);
    const auto full = v.judge(q, steps, c.text);
    CHECK(c.p_yes == Approx(full.p_yes).epsilon(1e-5));
    CHECK(c.p_no == Approx(full.p_no).epsilon(1e-5));
    mean += full.score / 5;
  }
  REQUIRE(lengths.size() >= 3);  // the batch shrank as chains ended
  CHECK(r.generated_tokens == tokens);
  CHECK(r.score == Approx(mean).epsilon(1e-5));
  // Seeded: the same chains again.
  const auto again = v.verify(q, steps, o);
  for (size_t k = 0; k < 5; ++k) CHECK(again.chains[k].text == r.chains[k].text);
}
