// run_demo: search methods compared at an equal budget on held-out problems.
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "stepverify/answer.h"
#include "demo/demo.h"
#include "stepverify/errors.h"
#include "stepverify/runtime.h"
#include "stepverify/sampler.h"
#include "stepverify/search.h"
#include "demo/demo_internal.h"
#include "util/sequences.h"

namespace stepverify {
namespace {

using clock_type = std::chrono::steady_clock;

double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

bool right(const arithmetic::Problem& p, const std::optional<std::string>& answer) {
  return answer && answers_equal(*answer, std::to_string(p.answer));
}

}  // namespace

std::string DemoReport::to_json() const {
  nlohmann::ordered_json j;
  nlohmann::ordered_json m = nlohmann::ordered_json::object();
  for (const auto& name : order) {
    const auto& d = methods.at(name);
    m[name] = {{"accuracy", d.accuracy},
               {"verifier_tokens", d.verifier_tokens},
               {"seconds", d.seconds},
               {"generated_tokens", d.generated_tokens}};
  }
  j["methods"] = m;
  j["first_error_f1"] = first_error_f1;
  j["first_error"] = {{"error_accuracy", first_error_error_accuracy},
                      {"correct_accuracy", first_error_correct_accuracy},
                      {"solutions", first_error_solutions},
                      {"threshold", 0.5}};
  j["problems"] = problems;
  j["set"] = set;
  j["budget"] = n;
  j["seconds"] = seconds;
  j["example"] = {{"question", example.question},
                  {"steps", example.steps},
                  {"prm", example.prm},
                  {"correct", example.correct},
                  {"true_first_error", example.true_first_error},
                  {"predicted_first_error", example.predicted_first_error}};
  return j.dump(2);
}

const char* demo_set_name(DemoSet set) { return set == DemoSet::Test ? "test" : "dev"; }

std::vector<arithmetic::Problem> held_out_problems(DemoSet set, int64_t count, const DemoModelsOptions& trained) {
  if (count < 0) throw ConfigError("held_out_problems: count must be non-negative");
  std::set<std::string> seen;
  for (const auto& p : training_problems(trained)) seen.insert(p.question);
  arithmetic::ProblemOptions po;
  po.seed = set == DemoSet::Test ? kDemoTestSeed : kDemoDevSeed;
  // Draw more until `count` remain (a longer draw of one seed extends a shorter one).
  for (int64_t drawn = count + count / 8 + 8;; drawn *= 2) {
    std::vector<arithmetic::Problem> kept;
    for (auto& p : arithmetic::generate_problems(drawn, po))
      if (!seen.count(p.question) && static_cast<int64_t>(kept.size()) < count) kept.push_back(std::move(p));
    if (static_cast<int64_t>(kept.size()) == count) return kept;
  }
}

DemoReport run_demo(const DemoOptions& o) {
  const auto t_all = clock_type::now();
  for (const char* sub : {"policy", "verifier"})
    if (!std::filesystem::exists(o.models_dir / sub / "config.json"))
      throw IoError((o.models_dir / sub).string() +
                    ": no model here (run `make models`, or pass the models directory)");
  if (o.n < 1 || o.beam_width < 1 || o.expansions < 1 || o.problems < 1 || o.threads < 1)
    throw ConfigError("demo: problems, n, beam_width, expansions and threads must be positive");
  auto policy = Model::load(o.models_dir / "policy", o.load);
  VerifierOptions vo;
  vo.load = o.load;
  auto verifier = Verifier::load(o.models_dir / "verifier", vo);
  const auto problems = held_out_problems(o.set, o.problems, o.trained);
  const size_t P = problems.size(), N = static_cast<size_t>(o.n);
  DemoReport rep;
  rep.problems = static_cast<int64_t>(P);
  rep.set = demo_set_name(o.set);
  rep.n = o.n;
  auto add = [&](const std::string& name, DemoMethod m) {
    rep.order.push_back(name);
    rep.methods[name] = m;
  };

  {  // greedy
    DemoMethod m;
    const auto t = clock_type::now();
    auto sols = detail::sample_solutions(*policy, problems, 1, 0.0, o.seed, &m.generated_tokens);
    int64_t ok = 0;
    for (size_t i = 0; i < P; ++i) ok += arithmetic::check_solution(problems[i], sols[i]).answer_correct;
    m.accuracy = static_cast<double>(ok) / static_cast<double>(P);
    m.seconds = since(t);
    add("greedy", m);
  }

  // N samples per problem, shared by majority, ORM best-of-N and PRM weighted SC.
  int64_t sample_tokens = 0;
  auto t = clock_type::now();
  const auto samples =
      detail::sample_solutions(*policy, problems, o.n, o.temperature, o.seed + 1, &sample_tokens, o.top_p);
  const double sample_seconds = since(t);
  t = clock_type::now();
  const auto scores = detail::score_solutions(*verifier, problems, samples, o.n);
  const double score_seconds = since(t);
  int64_t score_tokens = 0;
  for (const auto& s : scores) score_tokens += s.tokens;
  const Aggregate prm_agg = o.prm_aggregate;
  int64_t maj_ok = 0, orm_ok = 0, prm_ok = 0, prm_best_ok = 0;
  for (size_t i = 0; i < P; ++i) {
    std::vector<Candidate> by_orm, by_prm;
    for (size_t k = 0; k < N; ++k) {
      const size_t s = i * N + k;
      Candidate c;  // no text: a solution without a final answer joins no group
      if (auto a = arithmetic::stated_answer(samples[s].back())) c.answer = std::to_string(*a);
      c.score = scores[s].outcome.at("orm");
      by_orm.push_back(c);
      c.score = aggregate(scores[s].heads.at("prm"), prm_agg);
      by_prm.push_back(c);
    }
    const auto so = select_answer(by_orm), sp = select_answer(by_prm);
    maj_ok += right(problems[i], so.majority);
    orm_ok += right(problems[i], so.best);
    prm_ok += right(problems[i], sp.weighted);
    prm_best_ok += right(problems[i], sp.best);
  }
  const std::string tag = std::to_string(o.n);
  add("majority@" + tag, {static_cast<double>(maj_ok) / P, 0, sample_tokens, sample_seconds});
  add("orm_best_of_" + tag,
      {static_cast<double>(orm_ok) / P, score_tokens, sample_tokens, sample_seconds + score_seconds});
  add("prm_wsc@" + tag, {static_cast<double>(prm_ok) / P, score_tokens, sample_tokens, sample_seconds + score_seconds});
  add("prm_best_of_" + tag,
      {static_cast<double>(prm_best_ok) / P, score_tokens, sample_tokens, sample_seconds + score_seconds});

  {  // The implicit PRM: the verifier's backbone against the policy it was continued from, untrained.
    VerifierOptions io;
    io.load = o.load;
    io.prefix_cache_bytes = 0;
    io.spec_value = VerifierSpec::from_json(nlohmann::json{
        {"name", "demo-implicit"},
        {"kind", "implicit"},
        {"reference", std::filesystem::absolute(o.models_dir / "policy").string()},
        {"beta", 1.0}}.dump());
    auto implicit = Verifier::load(o.models_dir / "verifier", io);
    const auto ti = clock_type::now();
    const auto iscores = detail::score_solutions(*implicit, problems, samples, o.n);
    int64_t ok = 0, itokens = 0;
    for (const auto& s : iscores) itokens += s.tokens;
    for (size_t i = 0; i < P; ++i) {
      size_t best = i * N;
      double top = -INFINITY;
      for (size_t k = 0; k < N; ++k) {
        const double v = aggregate(iscores[i * N + k].heads.at("implicit"), o.implicit_aggregate);
        if (v > top) top = v, best = i * N + k;
      }
      ok += arithmetic::check_solution(problems[i], samples[best]).answer_correct;
    }
    add("implicit_prm_best_of_" + tag,
        {static_cast<double>(ok) / P, itokens, sample_tokens, sample_seconds + since(ti)});
  }

  // Verifier-guided searches, problems spread over threads; each returns the
  // proposals it made per problem (so later rows can be given the same budget).
  auto searched = [&](const std::string& name, const auto& search_one) {
    std::atomic<size_t> next{0};
    std::atomic<int64_t> ok{0}, vtok{0}, gtok{0};
    std::vector<int64_t> proposals(P, 0);
    const auto tb = clock_type::now();
    const BlasThreadsScope one_blas_thread_per_worker(o.threads > 1 ? 1 : 0);
    std::vector<std::thread> workers;
    std::exception_ptr failure;
    std::mutex failure_mu;
    for (int w = 0; w < o.threads; ++w)
      workers.emplace_back([&] {
        try {
          SamplerOptions sopt;
          sopt.sampling.temperature = o.temperature;
          sopt.sampling.top_p = o.top_p;
          sopt.max_step_tokens = 32;
          for (size_t i = next++; i < P; i = next++) {
            // Seeded per problem, so results do not depend on which thread ran it.
            sopt.sampling.seed = o.seed + 100 + i;
            SamplingProposer proposer(policy, sopt);
            const SearchResult r = search_one(proposer, i);
            ok += right(problems[i], r.answer.empty() ? std::nullopt : std::optional<std::string>(r.answer));
            vtok += r.verifier_tokens;
            gtok += r.generated_tokens;
            proposals[i] = r.proposals;
          }
        } catch (...) {
          std::lock_guard<std::mutex> lock(failure_mu);
          failure = std::current_exception();
          next = P;
        }
      });
    for (auto& w : workers) w.join();
    if (failure) std::rethrow_exception(failure);
    add(name, {static_cast<double>(ok.load()) / P, vtok.load(), gtok.load(), since(tb)});
    return proposals;
  };
  auto search_options = [&](const std::string& head) {
    SearchOptions so;
    so.beam_width = o.beam_width;
    so.expansions = o.expansions;
    so.constant_step_budget = o.constant_step_budget;
    so.head = head;
    so.aggregate = head == "prm" ? o.prm_aggregate : o.ovm_aggregate;
    so.max_steps = 10;
    return so;
  };
  // Step-level beam search guided by one head.
  std::vector<int64_t> beam_budget;
  for (const std::string head : {"prm", "ovm"}) {
    const SearchOptions so = search_options(head);
    auto used = searched(
        "beam_" + head, [&](StepProposer& p, size_t i) { return beam_search(*verifier, p, problems[i].question, so); });
    if (head == "prm") beam_budget = std::move(used);
  }
  // Lookahead search and MCTS, each problem at the proposals beam_prm made on it.
  {
    SearchOptions so = search_options("prm");
    so.lookahead_steps = o.lookahead_steps;
    searched("lookahead_prm", [&](StepProposer& p, size_t i) {
      SearchOptions mine = so;
      mine.max_proposals = beam_budget[i];
      return lookahead_search(*verifier, p, problems[i].question, mine);
    });
  }
  for (const std::string head : {"ovm", "prm"}) {
    SearchOptions so = search_options(head);
    so.expansions = o.mcts_expansions;
    so.mcts = o.mcts;
    so.final_pick = o.mcts_pick;
    searched("mcts_" + head, [&](StepProposer& p, size_t i) {
      SearchOptions mine = so;
      mine.max_proposals = beam_budget[i];
      return mcts(*verifier, p, problems[i].question, mine);
    });
  }

  if (!o.candidates_out.empty()) {
    std::ofstream f(o.candidates_out);
    if (!f) throw IoError(o.candidates_out.string() + ": cannot write");
    for (size_t i = 0; i < P; ++i) {
      nlohmann::json line = {
          {"id", problems[i].id}, {"question", problems[i].question}, {"gold", std::to_string(problems[i].answer)}};
      nlohmann::json cands = nlohmann::json::array();
      for (size_t k = 0; k < N; ++k) {
        const auto& steps = samples[i * N + k];
        const auto check = arithmetic::check_solution(problems[i], steps);
        nlohmann::json c = {{"text", detail::join(steps, "\n") + "\n"},
                            {"score", scores[i * N + k].outcome.at("orm")},
                            {"step_scores", scores[i * N + k].heads.at("prm")},
                            {"step_labels", check.prefix_correct}};
        if (check.answer) c["answer"] = std::to_string(*check.answer);
        cands.push_back(c);
      }
      line["candidates"] = cands;
      f << line.dump() << "\n";
    }
  }

  // First-error detection of the PRM on the sampled solutions.
  const auto fe = detail::first_error_metric(problems, samples, o.n, scores);
  rep.first_error_f1 = fe.average_f1;
  rep.first_error_error_accuracy = fe.splits.at(0).error_accuracy;
  rep.first_error_correct_accuracy = fe.splits.at(0).correct_accuracy;
  rep.first_error_solutions = static_cast<int64_t>(samples.size());
  // The example: the first solution with a wrong step after a right one whose
  // error the PRM finds, else the first with any wrong step.
  long pick = -1;
  for (size_t s = 0; s < samples.size() && pick < 0; ++s) {
    const int truth = detail::true_first_error(problems[s / N], samples[s]);
    if (truth >= 1 && fe.predictions[s] == truth) pick = static_cast<long>(s);
  }
  for (size_t s = 0; s < samples.size() && pick < 0; ++s)
    if (detail::true_first_error(problems[s / N], samples[s]) >= 0) pick = static_cast<long>(s);
  if (pick >= 0) {
    const auto& p = problems[static_cast<size_t>(pick) / N];
    auto& ex = rep.example;
    ex.question = p.question;
    ex.steps = samples[static_cast<size_t>(pick)];
    ex.prm = scores[static_cast<size_t>(pick)].heads.at("prm");
    const auto check = arithmetic::check_solution(p, ex.steps);
    ex.correct = check.step_correct;
    ex.true_first_error = detail::true_first_error(p, ex.steps);
    ex.predicted_first_error = fe.predictions[static_cast<size_t>(pick)];
  }
  rep.seconds = since(t_all);
  return rep;
}

}  // namespace stepverify
