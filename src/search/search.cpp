// Verifier-guided search: beam search, DVTS, and sample-then-rank, over
// scoring sessions forked per step so that no prefix is scored twice.
#include "stepverify/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <set>

#include "stepverify/answer.h"
#include "stepverify/errors.h"
#include "stepverify/session.h"
#include "util/sequences.h"

namespace stepverify {
namespace {

using Clock = std::chrono::steady_clock;

using detail::join;

// A partial solution: its steps, their scores under the ranking head, and the
// session holding its verifier KV prefix.
struct Node {
  std::vector<std::string> steps;
  std::vector<double> scores;
  std::unique_ptr<ScoringSession> session;
  bool finished = false;
  double rank = 0;
  size_t origin = 0;   // the index of its parent among those children_of was given
  double logprob = 0;  // the policy's, of its last step (Proposal::logprob)
  int64_t tokens = 0;  // tokens of its last step
};

class Search {
 public:
  Search(const Verifier& v, StepProposer& p, const std::string& q, const SearchOptions& o)
      : verifier_(v), proposer_(p), question_(q), options_(o) {
    head_ = o.head.empty() ? v.head_names().at(0) : o.head;
    const auto names = v.head_names();
    if (std::find(names.begin(), names.end(), head_) == names.end())
      throw ConfigError("search: the verifier has no head named '" + head_ + "'");
  }

  Node root() {
    Node n;
    if (options_.scoring == SearchScoring::Sessions) {
      n.session = verifier_.session(question_);
      result_.verifier_tokens += n.session->tokens_computed();
    }
    return n;
  }

  bool budget_left() const {
    if (options_.max_proposals > 0 && result_.proposals >= options_.max_proposals) return false;
    if (options_.max_generated_tokens > 0 && result_.generated_tokens >= options_.max_generated_tokens) return false;
    if (options_.max_verifier_tokens > 0 && result_.verifier_tokens >= options_.max_verifier_tokens) return false;
    return true;
  }

  // The children of `parent`: up to `k` proposals, each scored, less those
  // whose text is in `exclude` (counted, not scored).
  std::vector<Node> expand(const Node& parent, int k, std::set<std::string> exclude = {}) {
    if (!budget_left()) return {};
    return children_of({&parent}, {proposer_.propose(question_, parent.steps, k)}, {std::move(exclude)});
  }

  // The proposer's propose_many, checked to give one list per partial solution.
  std::vector<std::vector<Proposal>> propose_many(const std::vector<std::vector<std::string>>& partials, int k) {
    auto got = proposer_.propose_many(question_, partials, k);
    if (got.size() != partials.size())
      throw Error("search: propose_many returned " + std::to_string(got.size()) + " lists of proposals for " +
                  std::to_string(partials.size()) + " partial solutions");
    return got;
  }

  // The children of each of `parents`, k proposals each (less the texts in
  // exclude[i]): one propose_many call, all scored together; each child's
  // origin is its parent's index. Under a token budget, one parent at a time
  // (the budget is checked before each); under a proposal budget, only the
  // parents it allows. *asked: how many parents (the first ones) were asked.
  std::vector<Node> expand_each(const std::vector<const Node*>& parents, int k,
                                std::vector<std::set<std::string>> exclude, size_t* asked) {
    *asked = 0;
    if (!budget_left()) return {};
    if (options_.max_generated_tokens > 0 || options_.max_verifier_tokens > 0) {
      std::vector<Node> children;
      for (size_t i = 0; i < parents.size() && budget_left(); ++i, ++*asked)
        for (auto& c : expand(*parents[i], k, std::move(exclude[i]))) {
          c.origin = i;
          children.push_back(std::move(c));
        }
      return children;
    }
    size_t n = parents.size();
    if (options_.max_proposals > 0)
      n = std::min<size_t>(n, static_cast<size_t>((options_.max_proposals - result_.proposals + k - 1) / k));
    std::vector<std::vector<std::string>> partials;
    for (size_t i = 0; i < n; ++i) partials.push_back(parents[i]->steps);
    *asked = n;
    auto got = propose_many(partials, k);
    exclude.resize(n);
    return children_of(std::vector<const Node*>(parents.begin(), parents.begin() + static_cast<long>(n)), got,
                       std::move(exclude));
  }

  // The children of every node in `parents` (best first), parent i asking for
  // ks[i] proposals: one propose_many call per run of parents asking for the
  // same count (a step's counts fall from best to worst, so at most two). With
  // a proposal budget, only as many parents as the budget allows are expanded.
  std::vector<Node> expand_all(const std::vector<Node>& parents, const std::vector<int>& ks) {
    if (!budget_left()) return {};
    if (options_.max_generated_tokens > 0 || options_.max_verifier_tokens > 0) {
      // A token budget is checked before each parent, as the tokens a call
      // generates (and the verifier runs) are only known afterwards.
      std::vector<Node> children;
      for (size_t i = 0; i < parents.size(); ++i)
        for (auto& c : expand(parents[i], ks[i])) children.push_back(std::move(c));
      return children;
    }
    size_t n = parents.size();
    if (options_.max_proposals > 0) {
      int64_t asked = 0;
      for (n = 0; n < parents.size() && asked < options_.max_proposals - result_.proposals; ++n) asked += ks[n];
    }
    std::vector<const Node*> asking;
    std::vector<std::vector<Proposal>> proposals;
    for (size_t lo = 0, hi = 0; lo < n; lo = hi) {
      std::vector<std::vector<std::string>> partials;
      for (hi = lo; hi < n && ks[hi] == ks[lo]; ++hi) partials.push_back(parents[hi].steps);
      auto got = propose_many(partials, ks[lo]);
      for (size_t i = lo; i < hi; ++i) {
        asking.push_back(&parents[i]);
        proposals.push_back(std::move(got[i - lo]));
      }
    }
    return children_of(asking, proposals);
  }

  // The children of several parents, all scored together (one forward with
  // sessions, one padded batch when re-scoring in batches).
  // exclude[i] (when given): texts parent i already has as children.
  std::vector<Node> children_of(const std::vector<const Node*>& parents,
                                const std::vector<std::vector<Proposal>>& proposals,
                                std::vector<std::set<std::string>> exclude = {}) {
    exclude.resize(parents.size());
    std::vector<Node> children;
    std::vector<size_t> parent_of;
    std::vector<std::vector<std::string>> texts(parents.size());
    for (size_t i = 0; i < parents.size(); ++i) {
      std::set<std::string> seen;
      for (const auto& p : proposals[i]) {
        result_.proposals += 1;
        result_.generated_tokens += p.tokens;
        if (exclude[i].count(p.text) || (options_.dedup && !seen.insert(p.text).second)) continue;
        Node child;
        child.steps = parents[i]->steps;
        child.steps.push_back(p.text);
        child.scores = parents[i]->scores;
        child.finished = p.finished || static_cast<int>(child.steps.size()) >= options_.max_steps;
        child.origin = i;
        child.logprob = p.logprob;
        child.tokens = p.tokens;
        children.push_back(std::move(child));
        parent_of.push_back(i);
        texts[i].push_back(p.text);
      }
    }
    // Each child's score; none when the verifier refused its step (an empty
    // or malformed step: not a candidate).
    std::vector<std::optional<double>> score(children.size());
    switch (options_.scoring) {
      case SearchScoring::Sessions: {
        std::vector<const ScoringSession*> sessions;
        for (const auto* p : parents) sessions.push_back(p->session.get());
        CandidateOptions co;
        co.skip_invalid = true;
        auto scored = ScoringSession::append_candidates(sessions, texts, co);
        std::vector<size_t> next(parents.size(), 0);
        for (size_t c = 0; c < children.size(); ++c) {
          const size_t i = parent_of[c];
          auto& r = scored[i][next[i]++];
          if (!r.session) continue;
          result_.verifier_tokens += r.session->tokens_computed() - parents[i]->session->tokens_computed();
          score[c] = r.scores.at(head_);
          children[c].session = std::move(r.session);
        }
        break;
      }
      case SearchScoring::BatchedRescore: {
        // The Python frameworks' best without a prefix cache: every child's
        // whole sequence, all children of the step in one padded batch.
        std::vector<Solution> batch;
        for (const auto& c : children) batch.push_back({question_, c.steps});
        try {
          const auto all = verifier_.score_batch(batch);
          for (size_t c = 0; c < children.size(); ++c) score[c] = score_of(all[c]);
          break;
        } catch (const InputError&) {
          // Some child is refused: find which by scoring them one at a time.
        }
        [[fallthrough]];
      }
      case SearchScoring::Rescore:
        // The HF-transformers way: each child's whole prefix again, alone.
        for (size_t c = 0; c < children.size(); ++c) {
          try {
            score[c] = score_of(verifier_.score(question_, children[c].steps));
          } catch (const InputError&) {}
        }
        break;
    }
    std::vector<Node> kept;
    for (size_t c = 0; c < children.size(); ++c) {
      if (!score[c]) continue;
      children[c].scores.push_back(*score[c]);
      children[c].rank = rank_of(children[c].scores);
      kept.push_back(std::move(children[c]));
    }
    return kept;
  }

  // Keeps the best `width` unfinished nodes; finished ones become candidates.
  std::vector<Node> select(std::vector<Node> nodes, int width) {
    std::stable_sort(nodes.begin(), nodes.end(), [](const Node& a, const Node& b) { return a.rank > b.rank; });
    std::vector<Node> keep;
    for (auto& n : nodes) {
      if (n.finished)
        add_candidate(n, true);
      else if (static_cast<int>(keep.size()) < width)
        keep.push_back(std::move(n));
    }
    return keep;
  }

  // Adds a candidate scored by its own steps; its index (-1 for the root).
  long add_candidate(const Node& n, bool finished) {
    if (n.steps.empty()) return -1;
    result_.candidates.push_back({n.steps, n.scores, rank_of(n.scores), finished});
    return static_cast<long>(result_.candidates.size()) - 1;
  }

  SearchCandidate& candidate(size_t i) { return result_.candidates.at(i); }

  // Greedy rollouts from each of `starts` (StepProposer::propose_greedy, all
  // starts in one call per step) for at most `steps` steps, each stopping at a
  // finished node; the end node of each, none where a start is finished or
  // its first step failed (refused, or the budget spent).
  std::vector<std::optional<Node>> rollouts(const std::vector<const Node*>& starts, int steps) {
    std::vector<std::optional<Node>> ends(starts.size());
    std::vector<size_t> active;
    for (size_t i = 0; i < starts.size(); ++i)
      if (!starts[i]->finished) active.push_back(i);
    for (int t = 0; t < steps && !active.empty() && budget_left(); ++t) {
      if (options_.max_proposals > 0)
        active.resize(std::min<size_t>(active.size(), static_cast<size_t>(options_.max_proposals - result_.proposals)));
      std::vector<const Node*> from;
      std::vector<std::vector<std::string>> partials;
      for (size_t i : active) {
        from.push_back(ends[i] ? &*ends[i] : starts[i]);
        partials.push_back(from.back()->steps);
      }
      auto got = proposer_.propose_greedy(question_, partials);
      if (got.size() != partials.size())
        throw Error("search: propose_greedy returned " + std::to_string(got.size()) + " proposals for " +
                    std::to_string(partials.size()) + " partial solutions");
      std::vector<std::vector<Proposal>> one_each;
      for (auto& p : got) one_each.push_back({std::move(p)});
      auto next = children_of(from, one_each);
      std::vector<size_t> still;
      for (auto& n : next) {
        const size_t i = active[n.origin];
        const bool finished = n.finished;
        ends[i] = std::move(n);
        if (!finished) still.push_back(i);
      }
      active = std::move(still);
    }
    return ends;
  }

  // `preferred`: the candidate MostVisited picks (none: BestScore's).
  SearchResult finish(Clock::time_point t0, std::optional<size_t> preferred = std::nullopt) {
    auto& cands = result_.candidates;
    if (!cands.empty()) {
      // Finished solutions compete; cut ones only when nothing finished.
      std::vector<size_t> pool;
      for (size_t i = 0; i < cands.size(); ++i)
        if (cands[i].finished) pool.push_back(i);
      if (pool.empty())
        for (size_t i = 0; i < cands.size(); ++i) pool.push_back(i);
      std::vector<Candidate> sel;
      for (size_t i : pool) sel.push_back({join(cands[i].steps, "\n"), std::nullopt, cands[i].score, {}});
      SelectionOptions so;
      so.extractor = options_.extractor;
      so.equivalence = options_.equivalence;
      const auto picked = select_answer(sel, so);
      size_t best = 0;  // index into pool
      const auto in_pool = preferred ? std::find(pool.begin(), pool.end(), *preferred) : pool.end();
      if (options_.final_pick == FinalPick::MostVisited && in_pool != pool.end()) {
        best = static_cast<size_t>(in_pool - pool.begin());
      } else if (options_.final_pick == FinalPick::WeightedVote && picked.weighted_group >= 0) {
        // The best-scored member of the heaviest class.
        double top = -INFINITY;
        for (size_t m : picked.groups[picked.weighted_group].members)
          if (cands[pool[m]].score > top) top = cands[pool[m]].score, best = m;
      } else {
        for (size_t m = 0; m < pool.size(); ++m)
          if (cands[pool[m]].score > cands[pool[best]].score) best = m;
      }
      result_.steps = cands[pool[best]].steps;
      result_.score = cands[pool[best]].score;
      result_.answer = picked.answers[best].value_or("");  // extracted by select_answer
    }
    result_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return std::move(result_);
  }

  const SearchOptions& options() const { return options_; }
  double rank_of(const std::vector<double>& scores) const { return aggregate(scores, options_.aggregate); }

 private:
  // The ranking head's score of the last step of a whole-solution scoring
  // (counting its tokens).
  double score_of(const Scores& s) {
    result_.verifier_tokens += s.tokens;
    auto it = s.heads.find(head_);
    return it != s.heads.end() ? it->second.back() : s.outcome.at(head_);
  }

  const Verifier& verifier_;
  StepProposer& proposer_;
  std::string question_;
  SearchOptions options_;
  std::string head_;
  SearchResult result_;
};

// Proposals for each of `beams` live beams at one step: `expansions` each, or
// with a constant step budget width * expansions spread evenly over them
// (the best beams take the remainder), so the root proposes as many first
// steps as a full step proposes later ones.
std::vector<int> proposals_per_beam(const SearchOptions& o, size_t beams, int width) {
  if (!o.constant_step_budget) return std::vector<int>(beams, o.expansions);
  const int total = width * o.expansions;
  const int n = static_cast<int>(beams);
  std::vector<int> ks(beams, total / n);
  for (int i = 0; i < total % n; ++i) ks[static_cast<size_t>(i)] += 1;
  return ks;
}

// Beam search from `root`; with lookahead > 0, each unfinished child is
// ranked by the end of a greedy rollout of that many steps.
void run_beam(Search& s, Node root, int width, int lookahead = 0) {
  std::vector<Node> beams;
  beams.push_back(std::move(root));
  for (int depth = 0; depth < s.options().max_steps && !beams.empty() && s.budget_left(); ++depth) {
    auto children = s.expand_all(beams, proposals_per_beam(s.options(), beams.size(), width));
    if (children.empty()) break;
    if (lookahead > 0) {
      std::vector<const Node*> starts;
      for (const auto& c : children) starts.push_back(&c);
      const auto ends = s.rollouts(starts, lookahead);
      for (size_t c = 0; c < children.size(); ++c)
        if (ends[c]) children[c].rank = ends[c]->rank;
    }
    beams = s.select(std::move(children), width);
  }
  for (const auto& b : beams) s.add_candidate(b, false);
}

void check_options(const SearchOptions& o) {
  if (o.beam_width < 1 || o.expansions < 1 || o.max_steps < 1 || o.subtrees < 1)
    throw InputError("search: beam_width, expansions, max_steps and subtrees must be at least 1");
  if (o.lookahead_steps < 0) throw InputError("search: lookahead_steps must be at least 0");
  const auto& m = o.mcts;
  if (!(m.c_puct >= 0) || !std::isfinite(m.c_puct) || !(m.prior_temperature > 0) || m.iterations < 1)
    throw InputError("mcts: c_puct must be finite and >= 0, prior_temperature > 0, iterations >= 1");
}

// One node of the MCTS tree.
struct TreeNode {
  Node node;
  long parent = -1;
  std::vector<size_t> children;
  double prior = 1;    // P: the policy's probability among its siblings
  double value = 0;    // its own evaluation
  double total = 0;    // W: the sum of values backed up through it
  int64_t visits = 0;  // N
  bool expanded = false;
  bool saturated = false;  // asked again, it proposed nothing new
  long candidate = -1;     // its index among the result's candidates (finished nodes)
  int64_t pending = 0;     // mcts parallel leaves: virtual losses of this round
  double mean() const { return visits > 0 ? total / static_cast<double>(visits) : 0; }
  // The mean seen by selection: each pending visit counts at `loss`.
  double mean_with(double loss) const {
    const int64_t n = visits + pending;
    return n > 0 ? (total + static_cast<double>(pending) * loss) / static_cast<double>(n) : 0;
  }
};

// Softmax over siblings of their mean token log-probabilities / temperature.
std::vector<double> priors_of(const std::vector<const Node*>& kids, double temperature) {
  std::vector<double> x, p;
  for (const auto* k : kids)
    x.push_back(k->logprob / static_cast<double>(std::max<int64_t>(k->tokens, 1)) / temperature);
  const double top = x.empty() ? 0 : *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (double v : x) sum += std::isfinite(v) ? std::exp(v - top) : 0;
  for (double v : x) p.push_back(sum > 0 && std::isfinite(v) ? std::exp(v - top) / sum : 1.0 / x.size());
  return p;
}

}  // namespace

SearchResult beam_search(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                         const SearchOptions& options) {
  check_options(options);
  const auto t0 = Clock::now();
  Search s(verifier, proposer, question, options);
  run_beam(s, s.root(), options.beam_width);
  return s.finish(t0);
}

SearchResult lookahead_search(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                              const SearchOptions& options) {
  check_options(options);
  const auto t0 = Clock::now();
  Search s(verifier, proposer, question, options);
  run_beam(s, s.root(), options.beam_width, options.lookahead_steps);
  return s.finish(t0);
}

SearchResult mcts(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                  const SearchOptions& options) {
  check_options(options);
  const auto t0 = Clock::now();
  const MctsOptions& m = options.mcts;
  Search s(verifier, proposer, question, options);
  std::vector<TreeNode> tree(1);
  tree[0].node = s.root();
  // Adds `value` (summed over `count` evaluations) to every node of `path`.
  auto backup = [&](const std::vector<size_t>& path, double value, int64_t count) {
    for (size_t i : path) {
      tree[i].total += value;
      tree[i].visits += count;
    }
  };
  const size_t width = static_cast<size_t>(options.expansions);
  double lowest = 0;  // the lowest value of a node seen (0 before any): a pending visit's virtual loss
  // A leaf chosen for expansion, and the path root .. leaf.
  struct Pick {
    size_t at;
    std::vector<size_t> path;
  };
  // Expands the picked nodes with `expansions` proposals each: one proposer
  // call and one verifier forward for them all (one node: its own call, as
  // before batching). Proposals equal to a child a node has are dropped. The
  // new nodes are evaluated, and their values backed up along each path.
  auto expand = [&](const std::vector<Pick>& picks) {
    std::vector<std::set<std::string>> have(picks.size());
    std::vector<const Node*> parents;
    for (size_t p = 0; p < picks.size(); ++p) {
      for (size_t c : tree[picks[p].at].children) have[p].insert(tree[c].node.steps.back());
      parents.push_back(&tree[picks[p].at].node);
    }
    size_t asked = s.budget_left() ? 1 : 0;
    auto kids = picks.size() == 1 ? s.expand(*parents[0], options.expansions, std::move(have[0]))
                                  : s.expand_each(parents, options.expansions, std::move(have), &asked);
    std::vector<double> values;
    for (const auto& k : kids) values.push_back(k.rank);
    if (m.evaluation == MctsEvaluation::Rollout) {
      std::vector<const Node*> starts;
      for (const auto& k : kids) starts.push_back(&k);
      const auto ends = s.rollouts(starts, options.max_steps);
      for (size_t j = 0; j < kids.size(); ++j)
        if (ends[j]) {
          values[j] = ends[j]->rank;
          s.add_candidate(*ends[j], ends[j]->finished);
        }
    }
    std::vector<double> sum(picks.size(), 0);
    std::vector<int64_t> count(picks.size(), 0);
    for (size_t j = 0; j < kids.size(); ++j) {
      const size_t p = kids[j].origin, at = picks[p].at;
      TreeNode t;
      t.parent = static_cast<long>(at);
      t.value = t.total = values[j];
      t.visits = 1;
      if (kids[j].finished) t.candidate = s.add_candidate(kids[j], true);
      t.node = std::move(kids[j]);
      lowest = tree.size() == 1 ? t.value : std::min(lowest, t.value);  // the first node after the root sets it
      tree[at].children.push_back(tree.size());
      tree.push_back(std::move(t));
      sum[p] += values[j];
      count[p] += 1;
    }
    for (size_t p = 0; p < picks.size(); ++p) {
      const size_t at = picks[p].at;
      if (p >= asked) continue;  // the budget ran out first: left as it was
      // A node asked that brought nothing new is saturated: nothing new comes from it.
      if (count[p] == 0) tree[at].saturated = true;
      tree[at].expanded = true;
      // Priors over all its children, old and new.
      std::vector<const Node*> siblings;
      for (size_t c : tree[at].children) siblings.push_back(&tree[c].node);
      const auto priors = priors_of(siblings, m.prior_temperature);
      for (size_t j = 0; j < siblings.size(); ++j) tree[tree[at].children[j]].prior = priors[j];
      // A full or saturated node is expanded no more: its children hold their own prefixes.
      if (tree[at].saturated || tree[at].children.size() >= width) tree[at].node.session.reset();
      backup(picks[p].path, sum[p], count[p]);
    }
  };
  // Selection: PUCT from the root down to a node to expand: a new leaf, or,
  // where the path ends at a finished solution or a dead end, the deepest node
  // on it with fewer than `expansions` children that is not saturated (a
  // policy sure of its step proposes one text k times: the node is widened,
  // asked again until a call brings nothing new). None when there is nothing
  // to widen: `path` then ends at the node to visit again.
  auto select = [&](std::vector<size_t>& path) -> std::optional<size_t> {
    path.assign(1, 0);
    size_t cur = 0;
    while (tree[cur].expanded && !tree[cur].children.empty()) {
      const double sqrt_n = std::sqrt(static_cast<double>(std::max<int64_t>(tree[cur].visits + tree[cur].pending, 1)));
      size_t best = tree[cur].children[0];
      double best_u = -INFINITY;
      for (size_t c : tree[cur].children) {
        const auto& t = tree[c];
        const double u = (t.pending ? t.mean_with(lowest) : t.mean()) +
                         m.c_puct * t.prior * sqrt_n / (1.0 + static_cast<double>(t.visits + t.pending));
        if (u > best_u) best_u = u, best = c;
      }
      cur = best;
      path.push_back(cur);
    }
    if (!tree[cur].node.finished && !tree[cur].expanded) return cur;
    for (size_t d = path.size(); d-- > 0;) {
      const auto& t = tree[path[d]];
      if (!t.node.finished && !t.saturated && t.children.size() < width) {
        path.resize(d + 1);
        return path[d];
      }
    }
    return std::nullopt;
  };
  const int parallel = std::max(1, m.parallel_leaves);
  for (int it = 0; it < m.iterations && s.budget_left();) {
    // Up to `parallel` selections; each selected path carries a virtual loss
    // (a visit at the lowest value seen) so the next selection looks
    // elsewhere. A selection that reaches a node already picked adds its loss
    // and tries again (2 x parallel selections at most per round).
    std::vector<Pick> picks;
    std::vector<std::vector<size_t>> losses;  // the paths given a virtual loss, taken back after the round
    bool stop = false;
    for (int tries = 0; static_cast<int>(picks.size()) < parallel && it < m.iterations && tries < 2 * parallel;
         ++tries) {
      std::vector<size_t> path;
      const auto at = select(path);
      if (at && std::any_of(picks.begin(), picks.end(), [&](const Pick& p) { return p.at == *at; })) {
        for (size_t i : path) tree[i].pending += 1;
        losses.push_back(std::move(path));
        continue;
      }
      ++it;
      if (!at) {
        // Nothing to widen: the finished solution is visited again (its value once more).
        if (path.back() == 0) {
          stop = true;  // the question itself has no usable step
          break;
        }
        backup(path, tree[path.back()].value, 1);
        continue;
      }
      if (parallel > 1) {
        for (size_t i : path) tree[i].pending += 1;
        losses.push_back(path);
      }
      picks.push_back({*at, std::move(path)});
    }
    for (const auto& path : losses)
      for (size_t i : path) tree[i].pending -= 1;
    if (!picks.empty()) expand(picks);
    if (stop) break;
  }
  for (auto& t : tree) {
    if (t.candidate >= 0) s.candidate(static_cast<size_t>(t.candidate)).visits = t.visits;
    if (!t.node.finished && t.children.empty() && t.parent >= 0) s.add_candidate(t.node, false);  // cut
  }
  // MostVisited: the most visited child from the root down (ties: the higher
  // mean); where that path ends unfinished, the most visited finished node.
  auto more_visited = [&](size_t a, size_t b) {
    return tree[a].visits != tree[b].visits ? tree[a].visits > tree[b].visits : tree[a].mean() > tree[b].mean();
  };
  size_t cur = 0;
  while (!tree[cur].children.empty())
    cur = *std::min_element(tree[cur].children.begin(), tree[cur].children.end(), more_visited);
  long picked = tree[cur].candidate;
  if (picked < 0) {
    long best = -1;
    for (size_t i = 0; i < tree.size(); ++i)
      if (tree[i].candidate >= 0 && (best < 0 || more_visited(i, static_cast<size_t>(best))))
        best = static_cast<long>(i);
    if (best >= 0) picked = tree[static_cast<size_t>(best)].candidate;
  }
  return s.finish(t0, picked >= 0 ? std::optional<size_t>(static_cast<size_t>(picked)) : std::nullopt);
}

SearchResult dvts(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                  const SearchOptions& options) {
  check_options(options);
  const auto t0 = Clock::now();
  Search s(verifier, proposer, question, options);
  Node root = s.root();
  const int width = std::max(1, options.beam_width / options.subtrees);
  for (int t = 0; t < options.subtrees && s.budget_left(); ++t) {
    // Each subtree starts from its own first proposal and never meets the others.
    auto firsts = s.expand(root, 1);
    for (auto& f : firsts) {
      if (f.finished)
        s.add_candidate(f, true);
      else
        run_beam(s, std::move(f), width);
    }
  }
  return s.finish(t0);
}

SearchResult sample_and_rank(const Verifier& verifier, StepProposer& proposer, const std::string& question, int n,
                             const SearchOptions& options) {
  check_options(options);
  if (n < 1) throw InputError("sample_and_rank: n must be at least 1");
  const auto t0 = Clock::now();
  Search s(verifier, proposer, question, options);
  Node root = s.root();
  for (int i = 0; i < n && s.budget_left(); ++i) {
    // One sample, step by step; each step extends the sample's own session.
    auto next = s.expand(root, 1);
    while (!next.empty() && !next[0].finished) {
      auto after = s.expand(next[0], 1);
      if (after.empty()) break;  // budget spent or no usable proposal: the sample is cut here
      next = std::move(after);
    }
    if (!next.empty()) s.add_candidate(next[0], next[0].finished);
  }
  return s.finish(t0);
}

}  // namespace stepverify
