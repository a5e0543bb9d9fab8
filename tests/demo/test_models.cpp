// The shipped demo models (models/ in the repository): they load, and on a
// fixed held-out set their accuracies and the PRM's first-error detection
// stay within the bounds stated here (measured when they were trained; see
// models/training.json).
#include <filesystem>
#include <set>

#include "stepverify/answer.h"
#include "demo/arithmetic.h"
#include "demo/demo.h"
#include "stepverify/generation.h"
#include "stepverify/verifier.h"
#include "test_support.h"
#include "demo/demo_internal.h"

using namespace stepverify;

namespace {

std::optional<std::filesystem::path> models_dir() {
  const std::filesystem::path dir = STEPVERIFY_SOURCE_DIR "/models";
  if (!std::filesystem::exists(dir / "policy" / "config.json") ||
      !std::filesystem::exists(dir / "verifier" / "config.json")) {
    stepverify::test::missing_input("no shipped models in " + dir.string() + " (make models)");
    return std::nullopt;
  }
  return dir;
}

double accuracy(const std::vector<arithmetic::Problem>& problems, const std::vector<std::vector<std::string>>& sols) {
  int ok = 0;
  const size_t per = sols.size() / problems.size();
  for (size_t i = 0; i < sols.size(); ++i) ok += arithmetic::check_solution(problems[i / per], sols[i]).answer_correct;
  return static_cast<double>(ok) / static_cast<double>(sols.size());
}

}  // namespace

TEST_CASE("shipped models: the policy solves the domain and makes real mistakes", "[models]") {
  auto dir = models_dir();
  if (!dir) return;
  auto policy = Model::load(*dir / "policy");
  CHECK(policy->config().architecture == "LlamaForCausalLM");
  CHECK(policy->tokenizer().kind() == "sentencepiece");
  arithmetic::ProblemOptions po;
  po.seed = kDemoDevSeed;
  const auto problems = arithmetic::generate_problems(100, po);
  const double greedy = accuracy(problems, stepverify::detail::sample_solutions(*policy, problems, 1, 0.0, 0));
  const double sampled = accuracy(problems, stepverify::detail::sample_solutions(*policy, problems, 4, 1.0, 7));
  INFO("greedy " << greedy << ", one sample at temperature 1 " << sampled);
  // 30-70% at temperature 1 (66.8% on 200 problems x 4 samples when trained,
  // models/training.json); greedy 77.5%.
  CHECK(sampled >= 0.30);
  CHECK(sampled <= 0.70);
  CHECK(greedy >= 0.45);
  CHECK(greedy >= sampled - 0.05);
}

TEST_CASE("shipped models: one verifier, four heads, and first-error detection against exact labels", "[models]") {
  auto dir = models_dir();
  if (!dir) return;
  auto policy = Model::load(*dir / "policy");
  auto verifier = Verifier::load(*dir / "verifier");
  CHECK(verifier->head_names() == std::vector<std::string>{"prm", "orm", "ovm", "sorm"});
  arithmetic::ProblemOptions po;
  po.seed = kDemoDevSeed;
  const auto problems = arithmetic::generate_problems(100, po);
  const auto sols = stepverify::detail::sample_solutions(*policy, problems, 4, 1.0, 11);
  const auto scores = stepverify::detail::score_solutions(*verifier, problems, sols, 4);
  const auto fe = stepverify::detail::first_error_metric(problems, sols, 4, scores);
  INFO("F1 " << fe.average_f1 << " error acc " << fe.splits[0].error_accuracy << " correct acc "
             << fe.splits[0].correct_accuracy);
  CHECK(fe.average_f1 >= 0.55);  // 0.654 here; 0.664 at training time, 0.647 in the demo
  // The ORM separates right from wrong solutions better than chance.
  double right = 0, wrong = 0;
  int nr = 0, nw = 0;
  for (size_t i = 0; i < sols.size(); ++i) {
    const bool ok = arithmetic::check_solution(problems[i / 4], sols[i]).answer_correct;
    (ok ? right : wrong) += scores[i].outcome.at("orm");
    ++(ok ? nr : nw);
  }
  REQUIRE(nr > 0);
  REQUIRE(nw > 0);
  INFO("ORM mean on right " << right / nr << ", on wrong " << wrong / nw);
  CHECK(right / nr > wrong / nw + 0.5);  // its features cover the whole solution
}

TEST_CASE("shipped models: majority voting over 16 samples beats greedy, and the verifier's picks beat the vote",
          "[models]") {
  auto dir = models_dir();
  if (!dir) return;
  auto policy = Model::load(*dir / "policy");
  auto verifier = Verifier::load(*dir / "verifier");
  arithmetic::ProblemOptions po;
  po.seed = kDemoDevSeed;
  const auto problems = arithmetic::generate_problems(100, po);
  const int N = 16;
  const auto sols = stepverify::detail::sample_solutions(*policy, problems, N, 1.0, 5);
  const auto scores = stepverify::detail::score_solutions(*verifier, problems, sols, N);
  int majority = 0, weighted = 0, greedy = 0, orm = 0;
  const auto greedy_sols = stepverify::detail::sample_solutions(*policy, problems, 1, 0.0, 0);
  for (size_t i = 0; i < problems.size(); ++i) {
    std::vector<Candidate> cands;
    size_t orm_pick = i * N;
    for (int k = 0; k < N; ++k) {
      const size_t s = i * N + static_cast<size_t>(k);
      Candidate c;
      if (auto a = arithmetic::stated_answer(sols[s].back())) c.answer = std::to_string(*a);
      c.score = aggregate(scores[s].heads.at("prm"), Aggregate::Product);
      if (scores[s].outcome.at("orm") > scores[orm_pick].outcome.at("orm")) orm_pick = s;
      cands.push_back(c);
    }
    const auto sel = select_answer(cands);
    const std::string gold = std::to_string(problems[i].answer);
    majority += sel.majority == gold;
    weighted += sel.weighted == gold;
    greedy += arithmetic::check_solution(problems[i], greedy_sols[i]).answer_correct;
    orm += arithmetic::check_solution(problems[i], sols[orm_pick]).answer_correct;
  }
  INFO("greedy " << greedy << ", majority@16 " << majority << ", PRM weighted SC@16 " << weighted << ", ORM best-of-16 "
                 << orm << " of 100");
  // Measured here when shipped: greedy 80, majority 84, weighted 89, ORM 88 of
  // 100; on the demo's 200 problems at seed 0: greedy 77.5%, majority 83.0%,
  // PRM weighted SC 88.0%, ORM best-of-16 88.0% (README).
  CHECK(majority >= greedy + 2);
  CHECK(weighted >= majority + 2);
  CHECK(orm >= majority + 2);
}

TEST_CASE("shipped models: the demo at an equal budget, every verifier-guided method above the vote", "[models]") {
  auto dir = models_dir();
  if (!dir) return;
  DemoOptions o;
  o.models_dir = *dir;
  o.problems = 100;
  o.seed = 5;
  const auto r = run_demo(o);
  auto acc = [&](const std::string& name) { return 100 * r.methods.at(name).accuracy; };
  INFO("greedy " << acc("greedy") << ", majority@16 " << acc("majority@16") << ", ORM best-of-16 "
                 << acc("orm_best_of_16") << ", PRM weighted SC " << acc("prm_wsc@16") << ", beam PRM "
                 << acc("beam_prm") << ", beam OVM " << acc("beam_ovm") << ", F1 " << r.first_error_f1);
  CHECK(r.order == std::vector<std::string>{"greedy", "majority@16", "orm_best_of_16", "prm_wsc@16", "prm_best_of_16",
                                            "implicit_prm_best_of_16", "beam_prm", "beam_ovm", "lookahead_prm",
                                            "mcts_ovm", "mcts_prm"});
  // The first 100 test-set problems. Margins are the smallest seen over
  // sampling seeds 0-5, less a point (points over majority@16: ORM +3..+10,
  // PRM weighted SC +1..+8, beam PRM +8..+13, beam OVM +7..+12; majority over
  // greedy +0..+4; F1 0.582-0.643): they hold for the recipe, not for one seed.
  CHECK(o.set == DemoSet::Test);
  CHECK(acc("majority@16") >= acc("greedy"));
  CHECK(acc("orm_best_of_16") >= acc("majority@16") + 2);
  CHECK(acc("prm_wsc@16") >= acc("majority@16"));
  CHECK(acc("beam_prm") >= acc("majority@16") + 7);
  CHECK(acc("beam_ovm") >= acc("majority@16") + 6);
  // An equal budget: beam search proposes 16 continuations at every step, so
  // its policy tokens are within 10% of the 16 samples'; its verifier scores
  // each node once, so it computes under a third of best-of-16's tokens.
  const auto& samples = r.methods.at("majority@16");
  for (const std::string beam : {"beam_prm", "beam_ovm"}) {
    INFO(beam);
    const auto& b = r.methods.at(beam);
    CHECK(std::abs(static_cast<double>(b.generated_tokens) / samples.generated_tokens - 1) < 0.10);
    CHECK(b.verifier_tokens * 3 < r.methods.at("orm_best_of_16").verifier_tokens);
  }
  CHECK(r.first_error_f1 >= 0.55);
  CHECK(r.first_error_solutions == 1600);
  // The rows of issue 21 (measured when added, first 100 test problems, seed
  // 5: majority 77, implicit PRM best-of-16 80, lookahead 83, MCTS OVM 80,
  // MCTS PRM 85, beam PRM 90): each at least the vote; none above beam search.
  for (const std::string row : {"implicit_prm_best_of_16", "lookahead_prm", "mcts_ovm", "mcts_prm"}) {
    INFO(row << " " << acc(row));
    CHECK(acc(row) >= acc("majority@16"));
    CHECK(acc(row) <= acc("beam_prm"));
  }
  // MCTS and lookahead get, per problem, the proposals beam PRM made: their
  // policy tokens stay within 10% of the beam's.
  for (const std::string row : {"lookahead_prm", "mcts_ovm", "mcts_prm"}) {
    INFO(row);
    const double ratio = static_cast<double>(r.methods.at(row).generated_tokens) /
                         static_cast<double>(r.methods.at("beam_prm").generated_tokens);
    CHECK(ratio <= 1.10);
    CHECK(ratio >= 0.85);
  }
}

TEST_CASE("demo problem sets: dev keeps the README's earlier problems, no held-out problem was trained on",
          "[models]") {
  // The training problems as `stepverify models` drew them, generated here directly.
  arithmetic::ProblemOptions po;
  po.seed = kDemoTrainSeed;
  std::set<std::string> raw_training;
  for (const auto& p : arithmetic::generate_problems(40000, po)) raw_training.insert(p.question);
  po.seed = kDemoDevSeed;
  const auto first_dev = arithmetic::generate_problems(200, po);
  std::set<std::string> removed;  // train_demo_models holds these out of training
  for (const auto& p : first_dev) removed.insert(p.question);

  const auto dev = held_out_problems(DemoSet::Dev, 600);
  REQUIRE(dev.size() == 600);
  for (size_t i = 0; i < first_dev.size(); ++i) CHECK(dev[i].question == first_dev[i].question);
  const auto test = held_out_problems(DemoSet::Test, 1000);
  REQUIRE(test.size() == 1000);
  size_t overlap_dev = 0;
  std::set<std::string> dev_questions;
  for (const auto& p : dev) dev_questions.insert(p.question);
  for (const auto& set : {dev, test})
    for (const auto& p : set) CHECK((raw_training.count(p.question) == 0 || removed.count(p.question) == 1));
  for (const auto& p : test) overlap_dev += dev_questions.count(p.question);
  // A longer draw extends a shorter one.
  const auto test50 = held_out_problems(DemoSet::Test, 50);
  for (size_t i = 0; i < test50.size(); ++i) CHECK(test50[i].question == test[i].question);
  // The sets come from different seeds: at most the few one-line problems coincide.
  CHECK(overlap_dev < 30);
  CHECK(demo_set_name(DemoSet::Test) == std::string("test"));
}
