// Search: beam search, DVTS and sample-then-rank with a deterministic proposer,
// and the built-in sampler over a causal LM.
#include <algorithm>
#include <map>
#include <set>

#include <torch/torch.h>

#include "test_support.h"

#include "stepverify/errors.h"
#include "stepverify/sampler.h"
#include "stepverify/search.h"
#include "stepverify/verifier.h"

using namespace stepverify;

namespace {

// Deterministic proposals; records every expansion so the tree is known.
struct ScriptedProposer : StepProposer {
  int depth_to_finish = 3;
  int distinct = 0;  // > 0: only this many distinct texts per call (the rest repeat them)
  std::vector<std::pair<std::vector<std::string>, std::string>> children;  // (parent steps, step)
  std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& steps, int k) override {
    std::vector<Proposal> out;
    const int d = static_cast<int>(steps.size());
    for (int call = 0; call < k; ++call) {
      const int i = distinct > 0 ? call % distinct : call;
      Proposal p;
      if (d + 1 >= depth_to_finish) {
        p.text = "The answer is $\\boxed{" + std::to_string(10 + (i % 2)) + "}$.";
        p.finished = true;
      } else {
        p.text = "Step " + std::to_string(d + 1) + ": " + std::to_string(i + 2) + " + " + std::to_string(d) + " = " +
                 std::to_string(i + 2 + d) + ".";
      }
      p.tokens = 5;
      children.push_back({steps, p.text});
      out.push_back(p);
    }
    return out;
  }
};

// What scoring each distinct node of a tree once costs: the question's
// tokens, then each node's tokens beyond its parent's.
int64_t tree_tokens(const Verifier& v, const std::string& q, const std::vector<std::vector<std::string>>& nodes) {
  auto tokens = [&](const std::vector<std::string>& steps) {
    return static_cast<int64_t>(v.input_template().render(q, steps, true).ids.size());
  };
  int64_t total = tokens({});
  std::set<std::vector<std::string>> seen;
  for (const auto& n : nodes) {
    if (n.empty() || !seen.insert(n).second) continue;
    total += tokens(n) - tokens(std::vector<std::string>(n.begin(), n.end() - 1));
  }
  return total;
}

}  // namespace

TEST_CASE("beam search scores each node once: verifier tokens equal the unique tokens of the tree", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;  // count the root too
  auto v = Verifier::load(*dir, vo);
  ScriptedProposer prop;
  SearchOptions o;
  o.beam_width = 2;
  o.expansions = 3;
  const std::string q = "What is 5 + 5?";
  auto r = beam_search(*v, prop, q, o);
  REQUIRE_FALSE(r.steps.empty());
  CHECK(r.steps.size() == 3);
  CHECK((r.answer == "10" || r.answer == "11"));
  std::vector<std::vector<std::string>> nodes;
  for (const auto& [parent, step] : prop.children) {
    nodes.push_back(parent);
    nodes.back().push_back(step);
  }
  CHECK(r.verifier_tokens == tree_tokens(*v, q, nodes));
  CHECK(r.proposals == static_cast<int64_t>(prop.children.size()));
  // The pick is the best finished candidate.
  for (const auto& c : r.candidates)
    if (c.finished) CHECK(c.score <= r.score);

  SECTION("re-scoring prefixes, alone or a step's children in one padded batch, finds the same solution") {
    for (auto way : {stepverify::SearchScoring::Rescore, stepverify::SearchScoring::BatchedRescore}) {
      INFO("scoring way " << static_cast<int>(way));
      ScriptedProposer again;
      o.scoring = way;
      auto slow = beam_search(*v, again, q, o);
      CHECK(slow.steps == r.steps);
      CHECK(std::abs(slow.score - r.score) < 1e-5);
      CHECK(slow.verifier_tokens > r.verifier_tokens);
    }
  }
  SECTION("a proposal budget stops the search") {
    ScriptedProposer cheap;
    o.max_proposals = 4;
    auto b = beam_search(*v, cheap, q, o);
    CHECK(b.proposals <= 6);  // the budget is checked before each expansion
    CHECK(cheap.children.size() == static_cast<size_t>(b.proposals));
  }
}

TEST_CASE("beam search proposes beam_width x expansions at every step, the first included", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  const std::string q = "What is 5 + 5?";
  // Proposals asked of each partial solution, by its number of steps.
  auto asked = [](const ScriptedProposer& p, size_t depth) {
    std::map<std::vector<std::string>, int> per_parent;
    for (const auto& [parent, step] : p.children)
      if (parent.size() == depth) per_parent[parent] += 1;
    std::vector<int> counts;
    for (const auto& [parent, n] : per_parent) counts.push_back(n);
    std::sort(counts.begin(), counts.end());
    return counts;
  };
  SearchOptions o;
  o.beam_width = 2;
  o.expansions = 3;
  ScriptedProposer constant;
  beam_search(*v, constant, q, o);
  CHECK(asked(constant, 0) == std::vector<int>{6});     // the question alone gets the step's 2 x 3
  CHECK(asked(constant, 1) == std::vector<int>{3, 3});  // then 3 for each of the 2 beams
  o.constant_step_budget = false;
  ScriptedProposer per_beam;
  beam_search(*v, per_beam, q, o);
  CHECK(asked(per_beam, 0) == std::vector<int>{3});
  CHECK(asked(per_beam, 1) == std::vector<int>{3, 3});

  SECTION("fewer live beams than the width share the step's budget, the best taking the remainder") {
    o.constant_step_budget = true;
    o.beam_width = 4;
    o.expansions = 2;
    ScriptedProposer few;
    few.distinct = 3;  // 8 first-step proposals, 3 distinct: 3 beams live
    beam_search(*v, few, q, o);
    CHECK(asked(few, 0) == std::vector<int>{8});
    CHECK(asked(few, 1) == std::vector<int>{2, 3, 3});
  }
}

TEST_CASE("sample-then-rank and DVTS at a fixed budget", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  ScriptedProposer prop;
  SearchOptions o;
  o.final_pick = FinalPick::WeightedVote;
  auto r = sample_and_rank(*v, prop, "What is 5 + 5?", 4, o);
  CHECK(r.candidates.size() == 4);
  CHECK(r.steps.size() == 3);
  ScriptedProposer p2;
  o.subtrees = 2;
  o.beam_width = 2;
  auto d = dvts(*v, p2, "What is 5 + 5?", o);
  CHECK_FALSE(d.steps.empty());
  CHECK_THROWS_AS(sample_and_rank(*v, prop, "q", 0, o), InputError);
}

TEST_CASE("DVTS: each subtree is a width-1 beam; the pick is the hand-computed best of the tree", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  // Root proposals differ per subtree; below, the same three children at every node.
  struct TreeProposer : StepProposer {
    int roots = 0;
    std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& steps, int k) override {
      std::vector<Proposal> out;
      for (int i = 0; i < k; ++i) {
        Proposal p;
        p.tokens = 3;
        if (steps.empty()) {
          p.text = "Way " + std::to_string(++roots) + ": add the numbers.";
        } else if (steps.size() == 1) {
          p.text = "5 + 5 = " + std::to_string(9 + i) + ".";
        } else {
          p.text = "The answer is $\\boxed{" + std::to_string(9 + i) + "}$.";
          p.finished = true;
        }
        out.push_back(p);
      }
      return out;
    }
  };
  const std::string q = "What is 5 + 5?";
  SearchOptions o;
  o.subtrees = 2;
  o.beam_width = 2;  // width 1 per subtree
  o.expansions = 3;
  o.aggregate = Aggregate::Last;  // rank by the last step's score
  o.max_proposals = 2 * (1 + 3 + 3);
  TreeProposer prop;
  const auto r = dvts(*v, prop, q, o);
  CHECK(r.proposals == 14);
  CHECK(r.candidates.size() == 6);  // the three finished answers of each subtree

  // The tree by hand: in each subtree the best of three children at depth 2,
  // then the best of three answers below it; the pick is the better subtree.
  auto last = [&](const std::vector<std::string>& steps) { return v->score(q, steps).step_scores.back(); };
  std::vector<std::string> best_steps;
  double best = -1;
  for (int t = 1; t <= 2; ++t) {
    std::vector<std::string> path = {"Way " + std::to_string(t) + ": add the numbers."};
    for (int depth = 0; depth < 2; ++depth) {
      std::string pick;
      double pick_score = -1;
      for (int i = 0; i < 3; ++i) {
        const std::string child = depth == 0 ? "5 + 5 = " + std::to_string(9 + i) + "."
                                             : "The answer is $\\boxed{" + std::to_string(9 + i) + "}$.";
        auto steps = path;
        steps.push_back(child);
        const double sc = last(steps);
        if (sc > pick_score) pick_score = sc, pick = child;
      }
      path.push_back(pick);
      if (depth == 1 && pick_score > best) best = pick_score, best_steps = path;
    }
  }
  CHECK(r.steps == best_steps);
  CHECK(r.score == Approx(best).margin(1e-5));
}

TEST_CASE("the built-in sampler: seeded, greedy equals argmax decoding, prefix reused", "[search]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  auto policy = Model::load(*dir);
  SamplerOptions so;
  so.sampling.seed = 42;
  so.max_step_tokens = 12;
  so.final_marker = "";
  SamplingProposer a(policy, so), b(policy, so);
  auto pa = a.propose("Ana has 12 coins.", {}, 3);
  auto pb = b.propose("Ana has 12 coins.", {}, 3);
  REQUIRE(pa.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(pa[i].text == pb[i].text);
  // Greedy: the step is the greedy continuation up to the delimiter.
  so.sampling.temperature = 0;
  SamplingProposer g(policy, so);
  auto pg = g.propose("Ana has 12 coins.", {}, 2);
  CHECK(pg[0].text == pg[1].text);
  auto prompt = policy->tokenizer().encode("Ana has 12 coins.\n");
  auto greedy = policy->generate_greedy(prompt, pg[0].tokens);
  DecodeOptions d;
  d.skip_special_tokens = true;
  CHECK(policy->tokenizer().decode(greedy, d).rfind(pg[0].text, 0) == 0);
  // The next call extends the prompt by one step: only that step is prefilled.
  const int64_t before = g.prefill_tokens();
  g.propose("Ana has 12 coins.", {"She buys 5 more"}, 1);
  const auto p1 = policy->tokenizer().encode("Ana has 12 coins.\n");
  const auto p2 = policy->tokenizer().encode("Ana has 12 coins.\nShe buys 5 more\n");
  size_t common = 0;
  while (common < p1.size() && p1[common] == p2[common]) ++common;
  CHECK(g.prefill_tokens() - before == static_cast<int64_t>(p2.size() - std::min(common, p2.size() - 1)));
}

TEST_CASE("the built-in sampler: propose_many decodes partial solutions of different lengths as propose does",
          "[search]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  auto policy = Model::load(*dir);
  SamplerOptions so;
  so.sampling.temperature = 0;  // greedy: the batched, left-padded path must give each row's own continuation
  so.max_step_tokens = 10;
  so.final_marker = "";
  const std::string q = "Ana has 12 coins.";
  const std::vector<std::vector<std::string>> partials = {
      {}, {"She buys 5 more"}, {"She buys 5 more", "Now she has 17 coins and gives 3 to Ben"}};
  SamplingProposer batched(policy, so), single(policy, so);
  auto many = batched.propose_many(q, partials, 2);
  REQUIRE(many.size() == partials.size());
  for (size_t i = 0; i < partials.size(); ++i) {
    INFO("partial " << i);
    auto one = single.propose(q, partials[i], 1);
    REQUIRE(many[i].size() == 2);
    CHECK(many[i][0].text == one[0].text);
    CHECK(many[i][1].text == one[0].text);
    CHECK(many[i][0].tokens == one[0].tokens);
  }
  // The shared prompt prefix stays cached: a second call prefills only each partial's own tokens.
  const int64_t before = batched.prefill_tokens();
  batched.propose_many(q, partials, 1);
  const auto shared = policy->tokenizer().encode(q + "\n");
  int64_t own = 0;
  for (const auto& p : partials) {
    std::string text = q + "\n";
    for (const auto& s : p) text += s + "\n";
    own += static_cast<int64_t>(policy->tokenizer().encode(text).size());
  }
  CHECK(batched.prefill_tokens() - before < own);
}

namespace {

// A tree of known texts: child i of a depth-d node is the same text under
// every parent, with log-probability -(i + 1) per token; depth 3 finishes.
// Records every call: (parent steps, k), k = 0 for a greedy call.
struct PriorProposer : StepProposer {
  std::vector<std::pair<std::vector<std::string>, int>> calls;
  static std::string text(size_t depth, int i) {
    if (depth + 1 >= 3) return "The answer is $\\boxed{" + std::to_string(9 + i) + "}$.";
    return "Step " + std::to_string(depth + 1) + ": " + std::to_string(i + 2) + " + " + std::to_string(depth) + " = " +
           std::to_string(i + 2 + static_cast<int>(depth)) + ".";
  }
  Proposal make(size_t depth, int i) const {
    Proposal p;
    p.text = text(depth, i);
    p.finished = depth + 1 >= 3;
    p.tokens = 4;
    p.logprob = -4.0 * (i + 1);
    return p;
  }
  std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& steps, int k) override {
    calls.push_back({steps, k});
    std::vector<Proposal> out;
    for (int i = 0; i < k; ++i) out.push_back(make(steps.size(), i));
    return out;
  }
  std::vector<Proposal> propose_greedy(const std::string&,
                                       const std::vector<std::vector<std::string>>& partials) override {
    std::vector<Proposal> out;
    for (const auto& p : partials) {
      calls.push_back({p, 0});
      out.push_back(make(p.size(), 0));
    }
    return out;
  }
};

std::vector<std::string> plus(std::vector<std::string> steps, const std::string& s) {
  steps.push_back(s);
  return steps;
}

// Every node a PriorProposer proposed (its expansions; rollouts excluded).
std::vector<std::vector<std::string>> proposed_nodes(const PriorProposer& prop) {
  std::vector<std::vector<std::string>> nodes;
  for (const auto& [parent, k] : prop.calls)
    for (int i = 0; i < k; ++i) nodes.push_back(plus(parent, PriorProposer::text(parent.size(), i)));
  return nodes;
}

}  // namespace

TEST_CASE("MCTS: selection, backup and expansion order follow PUCT, computed by hand", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  const std::string q = "What is 5 + 5?";
  auto value = [&](const std::vector<std::string>& steps) { return v->score(q, steps).step_scores.back(); };
  SearchOptions o;
  o.expansions = 3;
  o.aggregate = Aggregate::Last;  // a value head's reading: the last step's score

  SECTION("c_puct = 0: greedy on mean values; a node's mean counts its own value and its children's") {
    o.mcts.c_puct = 0;
    o.mcts.iterations = 3;
    PriorProposer prop;
    const auto r = mcts(*v, prop, q, o);
    REQUIRE(prop.calls.size() == 3);
    CHECK(prop.calls[0].first.empty());
    // Iteration 2 expands the best first step.
    std::vector<double> first(3);
    for (int i = 0; i < 3; ++i) first[i] = value({PriorProposer::text(0, i)});
    const int a = static_cast<int>(std::max_element(first.begin(), first.end()) - first.begin());
    const auto pa = std::vector<std::string>{PriorProposer::text(0, a)};
    CHECK(prop.calls[1].first == pa);
    // Iteration 3: a's mean is now (v(a) + its three children) / 4; the best
    // first step by mean, then (if a) its best child.
    double sum = first[a], best_child = -1;
    int bc = 0;
    for (int j = 0; j < 3; ++j) {
      const double c = value(plus(pa, PriorProposer::text(1, j)));
      sum += c;
      if (c > best_child) best_child = c, bc = j;
    }
    std::vector<double> mean = first;
    mean[a] = sum / 4;
    const int b = static_cast<int>(std::max_element(mean.begin(), mean.end()) - mean.begin());
    const auto expected =
        b == a ? plus(pa, PriorProposer::text(1, bc)) : std::vector<std::string>{PriorProposer::text(0, b)};
    CHECK(prop.calls[2].first == expected);
    CHECK(r.proposals == 9);
  }

  SECTION("a large c_puct follows the prior: the policy's most likely step is expanded first") {
    o.mcts.c_puct = 1e6;
    o.mcts.iterations = 2;
    PriorProposer prop;
    mcts(*v, prop, q, o);
    REQUIRE(prop.calls.size() == 2);
    CHECK(prop.calls[1].first == std::vector<std::string>{PriorProposer::text(0, 0)});
  }

  SECTION("each node is scored once; the pick by visits and by value") {
    VerifierOptions vo;
    vo.prefix_cache_bytes = 0;
    auto fresh = Verifier::load(*dir, vo);
    o.mcts.iterations = 40;
    o.final_pick = FinalPick::MostVisited;
    PriorProposer prop;
    const auto r = mcts(*fresh, prop, q, o);
    CHECK(r.verifier_tokens == tree_tokens(*fresh, q, proposed_nodes(prop)));
    // Every answer proposed is a finished candidate (3 per expansion at depth 2).
    size_t finished = 0, answers = 0;
    for (const auto& c : r.candidates) finished += c.finished;
    for (const auto& [parent, k] : prop.calls) answers += parent.size() == 2 ? static_cast<size_t>(k) : 0;
    CHECK(answers >= 3);
    CHECK(finished == answers);
    // Visits: the pick is a finished solution at least as visited as each of its siblings.
    const SearchCandidate* picked = nullptr;
    for (const auto& c : r.candidates) {
      if (c.finished) CHECK(c.visits >= 1);
      if (c.steps == r.steps) picked = &c;
    }
    REQUIRE(picked != nullptr);
    REQUIRE(picked->finished);
    for (const auto& c : r.candidates)
      if (c.finished && std::equal(c.steps.begin(), c.steps.end() - 1, picked->steps.begin()))
        CHECK(c.visits <= picked->visits);
    // Value: the best-scored finished solution, each score the hand-read value of its last step.
    o.final_pick = FinalPick::BestScore;
    PriorProposer again;
    const auto s = mcts(*fresh, again, q, o);
    double best = -1;
    for (const auto& c : s.candidates) {
      CHECK(c.score == Approx(value(c.steps)).margin(1e-5));
      if (c.finished) best = std::max(best, c.score);  // cut ones compete only when nothing finished
    }
    CHECK(s.score == best);
  }

  SECTION("a proposal budget stops it; rollouts count against it") {
    o.max_proposals = 7;
    o.mcts.evaluation = MctsEvaluation::Rollout;
    PriorProposer prop;
    const auto r = mcts(*v, prop, q, o);
    // 3 first steps, then greedy rollouts: each first step needs 2 more to finish.
    CHECK(r.proposals == 7);
    CHECK(prop.calls[0].second == 3);
    for (size_t c = 1; c < prop.calls.size(); ++c) CHECK(prop.calls[c].second == 0);
  }
  SECTION("a verifier-token budget stops it after the expansion that spends it") {
    VerifierOptions vo;
    vo.prefix_cache_bytes = 0;  // the question costs its tokens every time
    auto fresh = Verifier::load(*dir, vo);
    o.max_verifier_tokens = 1;  // spent by the question's own tokens
    PriorProposer prop;
    const auto r = mcts(*fresh, prop, q, o);
    CHECK(r.proposals == 0);
    o.max_verifier_tokens = r.verifier_tokens + 1;  // room for one expansion
    PriorProposer again;
    const auto s = mcts(*fresh, again, q, o);
    CHECK(s.proposals == 3);
    CHECK(again.calls.size() == 1);
  }
  CHECK_THROWS_AS(([&] {
                    SearchOptions bad;
                    bad.mcts.prior_temperature = 0;
                    PriorProposer p;
                    mcts(*v, p, q, bad);
                  }()),
                  InputError);
}

TEST_CASE("MCTS with parallel leaves: virtual loss spreads a round's selections, expanded in one batch", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;
  auto v = Verifier::load(*dir, vo);
  const std::string q = "What is 5 + 5?";
  auto value = [&](const std::vector<std::string>& steps) { return v->score(q, steps).step_scores.back(); };
  struct Batching : PriorProposer {
    std::vector<size_t> batches;  // partial solutions per propose_many call
    std::vector<std::vector<Proposal>> propose_many(const std::string& question,
                                                    const std::vector<std::vector<std::string>>& partials,
                                                    int k) override {
      batches.push_back(partials.size());
      return StepProposer::propose_many(question, partials, k);
    }
  };
  SearchOptions o;
  o.expansions = 3;
  o.aggregate = Aggregate::Last;
  o.mcts.c_puct = 0;  // greedy on means: the order is computable by hand
  o.mcts.parallel_leaves = 3;
  // Round 1: the root alone (every other selection reaches it again). Round
  // 2, 6 selections at most: the best first step by mean, given a virtual
  // loss (a visit at the lowest value seen), then the best by the means so
  // changed; a step selected again gets one more loss; 3 picks at most.
  std::vector<double> first(3);
  for (int i = 0; i < 3; ++i) first[static_cast<size_t>(i)] = value({PriorProposer::text(0, i)});
  const double lowest = *std::min_element(first.begin(), first.end());  // the lowest value of a node
  std::vector<double> mean = first, losses(3, 0);
  std::vector<int> picks;
  for (int tries = 0; tries < 6 && picks.size() < 3; ++tries) {
    const int b = static_cast<int>(std::max_element(mean.begin(), mean.end()) - mean.begin());
    if (std::find(picks.begin(), picks.end(), b) == picks.end()) picks.push_back(b);
    const auto u = static_cast<size_t>(b);
    losses[u] += 1;
    mean[u] = (first[u] + losses[u] * lowest) / (1 + losses[u]);
  }
  INFO("first-step values " << first[0] << " " << first[1] << " " << first[2]);
  REQUIRE(picks.size() >= 2);  // the case exercises a batch
  o.mcts.iterations = static_cast<int>(1 + picks.size());  // the two rounds only
  Batching prop;
  const auto r = mcts(*v, prop, q, o);
  REQUIRE(prop.calls.size() == 1 + picks.size());
  CHECK(prop.calls[0].first.empty());
  for (size_t p = 0; p < picks.size(); ++p)
    CHECK(prop.calls[1 + p].first == std::vector<std::string>{PriorProposer::text(0, picks[p])});
  CHECK(prop.batches == std::vector<size_t>{picks.size()});  // round 2 in one call
  CHECK(r.proposals == static_cast<int64_t>(3 * (1 + picks.size())));
  // Every node scored once, the round's nodes together.
  CHECK(r.verifier_tokens == tree_tokens(*v, q, proposed_nodes(prop)));
}

TEST_CASE("lookahead search ranks each candidate by its greedy rollout's score", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto v = Verifier::load(*dir);
  const std::string q = "What is 5 + 5?";
  auto value = [&](const std::vector<std::string>& steps) { return v->score(q, steps).step_scores.back(); };
  SearchOptions o;
  o.beam_width = 1;
  o.expansions = 3;
  o.aggregate = Aggregate::Last;
  o.lookahead_steps = 1;
  PriorProposer prop;
  const auto r = lookahead_search(*v, prop, q, o);
  // First step: 3 children, each ranked by itself plus the greedy step 2.
  int a = 0;
  double best = -1;
  for (int i = 0; i < 3; ++i) {
    const double s = value({PriorProposer::text(0, i), PriorProposer::text(1, 0)});
    if (s > best) best = s, a = i;
  }
  REQUIRE(prop.calls.size() >= 3);
  CHECK(prop.calls[0].second == 3);
  CHECK(prop.calls[1].second == 0);  // the three rollouts, greedy
  int after = 1;
  while (prop.calls[after].second == 0) ++after;
  CHECK(prop.calls[after].first == std::vector<std::string>{PriorProposer::text(0, a)});
  CHECK(r.steps.size() == 3);
  // Rollout proposals are counted: 3 + 3 rollouts, 3 + 3 rollouts, then 3
  // finished answers (no rollout).
  CHECK(r.proposals == 15);
}

TEST_CASE("the built-in sampler reports each step's log-probability under the policy", "[search]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  auto policy = Model::load(*dir);
  SamplerOptions so;
  so.max_step_tokens = 8;
  so.final_marker = "";
  SamplingProposer g(policy, so);
  const auto p = g.propose_greedy("Ana has 12 coins.", {{}});
  REQUIRE(p.size() == 1);
  REQUIRE(p[0].tokens >= 1);
  // By a full forward over prompt + greedy tokens: the sum of log-softmax of
  // each generated token (an EOS that ended the step counts too).
  const auto prompt = policy->tokenizer().encode("Ana has 12 coins.\n");
  const auto gen = policy->generate_greedy(prompt, p[0].tokens + 1);
  auto all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  ForwardInput in;
  in.input_ids = to_batch(all);
  const auto lp = torch::log_softmax(policy->logits(policy->forward(in).hidden[0]), -1);
  auto sum_of = [&](int64_t n) {
    double s = 0;
    for (int64_t t = 0; t < n; ++t)
      s += lp[static_cast<int64_t>(prompt.size()) - 1 + t][gen[static_cast<size_t>(t)]].item<double>();
    return s;
  };
  const auto eos = policy->tokenizer().special_tokens().eos_id;
  const bool ended_by_eos =
      p[0].finished && p[0].tokens < so.max_step_tokens && eos && gen[static_cast<size_t>(p[0].tokens)] == *eos;
  CHECK(p[0].logprob == Approx(sum_of(p[0].tokens + (ended_by_eos ? 1 : 0))).margin(1e-4));
  CHECK(p[0].logprob < 0);
}

TEST_CASE("MCTS widens a node whose proposals collapsed into one text, scoring no text twice", "[search]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  VerifierOptions vo;
  vo.prefix_cache_bytes = 0;
  auto v = Verifier::load(*dir, vo);
  // Every call proposes k copies of one text: the n-th text asked of that
  // partial solution (so a second call brings a new one); depth 2 finishes.
  struct CopiesProposer : StepProposer {
    std::map<std::vector<std::string>, int> asked;
    std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& steps, int k) override {
      const int n = asked[steps]++;
      Proposal p;
      p.text = steps.empty() ? "Step 1: " + std::to_string(2 + n) + " + 3 = " + std::to_string(5 + n) + "."
                             : "The answer is $\\boxed{" + std::to_string(10 + n) + "}$.";
      p.finished = !steps.empty();
      p.tokens = 4;
      return std::vector<Proposal>(static_cast<size_t>(k), p);
    }
  };
  const std::string q = "What is 5 + 5?";
  SearchOptions o;
  o.expansions = 2;
  o.mcts.iterations = 30;
  CopiesProposer prop;
  const auto r = mcts(*v, prop, q, o);
  // Root, then each of its two children, asked twice each: then every node
  // has its 2 children and the rest of the iterations revisit answers.
  CHECK(prop.asked.size() == 3);
  for (const auto& [partial, n] : prop.asked) CHECK(n == 2);
  CHECK(r.proposals == 12);
  size_t finished = 0;
  for (const auto& c : r.candidates) finished += c.finished;
  CHECK(finished == 4);
  // Scored once each: the question, 2 first steps, 4 answers.
  std::vector<std::vector<std::string>> nodes;
  for (int n = 0; n < 2; ++n)
    nodes.push_back({"Step 1: " + std::to_string(2 + n) + " + 3 = " + std::to_string(5 + n) + "."});
  for (const auto& c : r.candidates) nodes.push_back(c.steps);
  CHECK(r.verifier_tokens == tree_tokens(*v, q, nodes));
}
