// Incremental scoring sessions and the prefix cache they share.
#include "stepverify/session.h"

#include <algorithm>
#include <limits>

#include <torch/torch.h>

#include "stepverify/errors.h"
#include "util/sequences.h"
#include "verifier/verifier_internal.h"

namespace stepverify {

struct PrefixCache::Node {
  Node* parent = nullptr;
  int64_t token = -1;  // the edge from the parent
  int64_t depth = 0;   // tokens from the root
  std::map<int64_t, std::unique_ptr<Node>> children;
  std::optional<KVCache> cache;
  std::list<Node*>::iterator lru;  // valid while `cache` holds a value
};

PrefixCache::PrefixCache(int64_t budget_bytes, int64_t bytes_per_token)
    : root_(std::make_unique<Node>()), budget_(budget_bytes), per_token_(bytes_per_token) {}

PrefixCache::~PrefixCache() = default;

std::optional<KVCache> PrefixCache::lookup(const std::vector<int64_t>& ids, int64_t* length) {
  std::lock_guard<std::mutex> lock(mu_);
  Node* best = nullptr;
  Node* at = root_.get();
  for (int64_t id : ids) {
    auto it = at->children.find(id);
    if (it == at->children.end()) break;
    at = it->second.get();
    if (at->cache) best = at;
  }
  *length = 0;
  if (!best) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, best->lru);  // most recently used
  ++hits_;
  *length = best->depth;
  return best->cache->fork();
}

void PrefixCache::insert(const std::vector<int64_t>& ids, const KVCache& cache) {
  if (ids.empty() || static_cast<int64_t>(ids.size()) * per_token_ > budget_) return;
  std::lock_guard<std::mutex> lock(mu_);
  Node* at = root_.get();
  for (int64_t id : ids) {
    auto& child = at->children[id];
    if (!child) {
      child = std::make_unique<Node>();
      child->parent = at;
      child->token = id;
      child->depth = at->depth + 1;
    }
    at = child.get();
  }
  if (at->cache) {
    lru_.splice(lru_.begin(), lru_, at->lru);
    return;
  }
  at->cache = cache.fork();
  lru_.push_front(at);
  at->lru = lru_.begin();
  bytes_ += at->depth * per_token_;
  evict_locked();
}

void PrefixCache::evict_locked() {
  while (bytes_ > budget_ && !lru_.empty()) {
    Node* n = lru_.back();
    lru_.pop_back();
    bytes_ -= n->depth * per_token_;
    n->cache.reset();
    // Prune the branch up to the first node still in use.
    while (n != root_.get() && !n->cache && n->children.empty()) {
      Node* parent = n->parent;
      const int64_t token = n->token;
      parent->children.erase(token);  // destroys n
      n = parent;
    }
  }
}

int64_t PrefixCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

int64_t PrefixCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

int64_t PrefixCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(lru_.size());
}

ScoringSession::ScoringSession(std::shared_ptr<const Verifier> verifier, std::string question)
    : verifier_(std::move(verifier)), question_(std::move(question)) {
  const auto r = detail::verifier_impl(*verifier_).render(question_, {}, true);
  detail::verifier_impl(*verifier_).check_length(static_cast<int64_t>(r.ids.size()), "the question");
  const auto& impl = detail::verifier_impl(*verifier_);
  int64_t have = 0;
  if (auto* pc = verifier_->prefix_cache()) {
    if (auto hit = pc->lookup(r.ids, &have)) cache_ = std::make_unique<KVCache>(std::move(*hit));
  }
  if (!cache_) cache_ = std::make_unique<KVCache>(impl.new_cache());
  cache_->truncate(have);
  if (have < static_cast<int64_t>(r.ids.size())) {
    ForwardInput in;
    in.input_ids = to_batch(std::vector<int64_t>(r.ids.begin() + have, r.ids.end()));
    in.cache = cache_.get();
    impl.forward(in);
    tokens_computed_ += static_cast<int64_t>(r.ids.size()) - have;
    if (auto* pc = verifier_->prefix_cache()) pc->insert(r.ids, *cache_);
  }
  ids_ = r.ids;
}

struct ScoringSession::Plan {
  std::string step;
  RenderedInput r;
  std::vector<std::vector<int64_t>> positions;  // per head, its read positions in r
  int64_t n = 0;                                // tokens of r
  int64_t keep = 0;                             // first position to compute
  int64_t lp_known = 0;                         // log-probabilities of positions before this are kept
  int64_t lp_from = 0;                          // first position whose log-probability is computed
  bool logprobs = false;                        // some head reads log-probability features
};

ScoringSession::Plan ScoringSession::plan(const std::string& step) const {
  Plan p;
  p.step = step;
  auto steps = steps_;
  steps.push_back(step);
  p.r = detail::verifier_impl(*verifier_).render(question_, steps, true);
  p.n = static_cast<int64_t>(p.r.ids.size());
  detail::verifier_impl(*verifier_).check_length(p.n, "step " + std::to_string(steps_.size()));
  const size_t H = detail::verifier_impl(*verifier_).num_heads();

  // Keep the longest prefix the cache already holds; recompute from the
  // earliest read position whose score is not known yet.
  const int64_t common = detail::common_prefix(ids_, p.r.ids);
  p.keep = common;
  // Log-probabilities of solution tokens are kept by position; those of the
  // common prefix stay valid (a token's log-probability depends only on the
  // tokens before it), the others are computed from the token before them.
  p.lp_known = std::min<int64_t>(static_cast<int64_t>(logprobs_.size()), common);
  p.lp_from = std::max(p.lp_known, p.r.solution_from);
  p.positions.resize(H);
  for (size_t h = 0; h < H; ++h) {
    p.positions[h] = detail::verifier_impl(*verifier_).read_positions(h, p.r);
    const bool last = detail::verifier_impl(*verifier_).reads_last(h);
    // Scores not known yet (the new step; every read of a "last" head) are
    // computed, so their positions must be recomputed.
    for (size_t i = 0; i < p.positions[h].size(); ++i) {
      const bool known = !last && i < steps_.size();
      if (!known) p.keep = std::min(p.keep, p.positions[h][i]);
    }
    // Log-probability features of the new tokens need the logits of the
    // token before them: that token is computed again (one token per step).
    if (detail::verifier_impl(*verifier_).reads_logprobs(h)) p.logprobs = true;
  }
  if (p.logprobs) p.keep = std::min(p.keep, p.lp_from - 1);
  p.keep = std::min({p.keep, p.n - 1, cache_->length()});
  return p;
}

std::map<std::string, double> ScoringSession::apply(const Plan& p, const at::Tensor& hidden, int64_t offset) {
  const int64_t n = p.n;
  tokens_computed_ += n - offset;
  ids_ = p.r.ids;
  if (p.logprobs) {
    logprobs_.resize(static_cast<size_t>(p.lp_known));
    logprobs_.resize(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    if (p.lp_from < n) {
      const auto lp = detail::verifier_impl(*verifier_)
                          .token_logprobs(hidden, offset, p.r, p.lp_from, n - 1)
                          .to(torch::kCPU)
                          .contiguous();
      std::copy(lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel(), logprobs_.begin() + p.lp_from);
    }
  }
  const size_t n_steps = steps_.size() + 1;
  std::map<std::string, double> result;
  for (size_t h = 0; h < detail::verifier_impl(*verifier_).num_heads(); ++h) {
    const auto& name = detail::verifier_impl(*verifier_).head_spec(h).name;
    auto& scores = per_head_[name];
    const bool last = detail::verifier_impl(*verifier_).reads_last(h);
    std::vector<size_t> reads, which;  // read indices, and the steps they score
    for (size_t i = 0; i < p.positions[h].size(); ++i) {
      const size_t step = last ? n_steps - 1 : i;
      // Known steps recomputed after a merge are scored again.
      if (p.positions[h][i] >= offset || step >= scores.size() || last) {
        reads.push_back(i);
        which.push_back(step);
      }
    }
    auto values =
        detail::verifier_impl(*verifier_)
            .head_scores(h,
                         detail::verifier_impl(*verifier_).head_inputs(h, hidden, offset, p.r, reads, {}, &logprobs_));
    scores.resize(n_steps);
    for (size_t k = 0; k < which.size(); ++k) scores[which[k]] = values[k];
    result[name] = scores.back();
  }
  steps_.push_back(p.step);
  return result;
}

std::map<std::string, double> ScoringSession::append_step(const std::string& step) {
  const Plan p = plan(step);
  cache_->truncate(p.keep);
  ForwardInput in;
  in.input_ids = to_batch(std::vector<int64_t>(p.r.ids.begin() + p.keep, p.r.ids.end()));
  in.cache = cache_.get();
  at::Tensor hidden;
  try {
    hidden = detail::verifier_impl(*verifier_).forward(in).hidden[0];  // [n - keep, H]
  } catch (...) {
    ids_.resize(static_cast<size_t>(cache_->length()));  // the cache kept [0, keep)
    logprobs_.resize(std::min(logprobs_.size(), ids_.size()));
    throw;
  }
  return apply(p, hidden, p.keep);
}

std::vector<ScoredStep> ScoringSession::append_candidates(const std::vector<std::string>& steps,
                                                          const CandidateOptions& options) const {
  return std::move(append_candidates({this}, {steps}, options).at(0));
}

std::vector<std::vector<ScoredStep>> ScoringSession::append_candidates(
    const std::vector<const ScoringSession*>& parents, const std::vector<std::vector<std::string>>& steps,
    const CandidateOptions& options) {
  if (parents.size() != steps.size())
    throw InputError("append_candidates: " + std::to_string(parents.size()) + " parents and " +
                     std::to_string(steps.size()) + " lists of steps");
  std::vector<std::vector<ScoredStep>> out(parents.size());
  if (parents.empty()) return out;
  for (const auto* p : parents)
    if (!p || p->verifier_ != parents[0]->verifier_)
      throw InputError("append_candidates: the parents must be sessions of one Verifier");
  const Verifier& verifier = *parents[0]->verifier_;
  const auto& model = verifier.model();

  // Plans, and per parent the first position every candidate keeps.
  struct Item {
    size_t cand;
    Plan plan;
    int64_t from = 0;  // where its tokens start in its row
  };
  std::vector<std::vector<Item>> items(parents.size());
  std::vector<int64_t> keep(parents.size()), tokens(parents.size(), 0);
  for (size_t i = 0; i < parents.size(); ++i) {
    out[i].resize(steps[i].size());
    keep[i] = parents[i]->cache_->length();
    for (size_t c = 0; c < steps[i].size(); ++c) {
      try {
        items[i].push_back({c, parents[i]->plan(steps[i][c])});
      } catch (const InputError& e) {
        const std::string what = "candidate " + std::to_string(c) + ": " + e.what();
        if (!options.skip_invalid) throw InputError(what);
        out[i][c].error = what;
        continue;
      }
      keep[i] = std::min(keep[i], items[i].back().plan.keep);
    }
    for (auto& it : items[i]) {
      it.from = tokens[i];
      tokens[i] += it.plan.n - keep[i];
    }
  }

  c10::InferenceMode guard;
  const auto window = model.config().sliding_window;
  for (size_t lo = 0, hi = 0; lo < parents.size(); lo = hi) {
    // Parents [lo, hi) share one forward.
    int64_t sum = tokens[lo], T = tokens[lo];
    for (hi = lo + 1; hi < parents.size() && sum + tokens[hi] <= options.max_batch_tokens; ++hi) {
      sum += tokens[hi];
      T = std::max(T, tokens[hi]);
    }
    if (T == 0) continue;  // every candidate refused
    const int64_t P = static_cast<int64_t>(hi - lo);
    std::vector<KVCache> forks;
    std::vector<const KVCache*> rows;
    int64_t W = 0;  // cached positions per row (the longest kept prefix)
    for (size_t i = lo; i < hi; ++i) {
      forks.push_back(parents[i]->cache_->fork());
      forks.back().truncate(keep[i]);
      W = std::max(W, keep[i]);
    }
    for (auto& f : forks) rows.push_back(&f);
    // One parent whose storage has room reads its prefix in place; several
    // are stacked (one copy of each prefix).
    KVCache tree = P == 1 && W + T <= forks[0].capacity() ? std::move(forks[0]) : KVCache::stack(rows, W + T);

    auto ids = torch::zeros({P, T}, torch::kLong);
    auto mask = torch::zeros({P, T}, torch::kLong);
    auto pos = torch::zeros({P, T}, torch::kLong);
    auto vis = torch::zeros({P, T, W + T}, torch::kBool);
    for (int64_t b = 0; b < P; ++b) {
      const size_t i = lo + static_cast<size_t>(b);
      for (const auto& it : items[i]) {
        const int64_t L = it.plan.n - keep[i];
        ids[b]
            .narrow(0, it.from, L)
            .copy_(torch::tensor(std::vector<int64_t>(it.plan.r.ids.begin() + keep[i], it.plan.r.ids.end()),
                                 torch::kLong));
        mask[b].narrow(0, it.from, L).fill_(1);
        pos[b].narrow(0, it.from, L).copy_(torch::arange(keep[i], it.plan.n, torch::kLong));
        auto rows_of = vis[b].narrow(0, it.from, L);
        rows_of.narrow(1, 0, keep[i]).fill_(true);
        rows_of.narrow(1, W + it.from, L).copy_(torch::ones({L, L}, torch::kBool).tril());
      }
    }
    if (window) {
      // HF's sliding window on the positions each token has in its own sequence.
      auto key_pos = torch::cat({torch::arange(W, torch::kLong).unsqueeze(0).expand({P, W}), pos}, 1);  // [P, W+T]
      vis = vis.logical_and(pos.unsqueeze(2) - key_pos.unsqueeze(1) <= *window);
    }
    ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;
    in.position_ids = pos;
    in.visibility = vis;
    in.cache = &tree;
    const auto hidden = detail::verifier_impl(verifier).forward(in).hidden;  // [P, T, H]
    for (int64_t b = 0; b < P; ++b) {
      const size_t i = lo + static_cast<size_t>(b);
      for (auto& it : items[i]) {
        const int64_t L = it.plan.n - keep[i];
        auto child = std::unique_ptr<ScoringSession>(
            new ScoringSession(*parents[i], tree.gather(b, {{0, keep[i]}, {W + it.from, L}})));
        auto& slot = out[i][it.cand];
        slot.scores = child->apply(it.plan, hidden[b].narrow(0, it.from, L), keep[i]);
        slot.session = std::move(child);
      }
    }
  }
  return out;
}

std::unique_ptr<ScoringSession> ScoringSession::fork() const {
  return std::unique_ptr<ScoringSession>(new ScoringSession(*this));
}

ScoringSession::ScoringSession(const ScoringSession& other)
    : verifier_(other.verifier_),
      question_(other.question_),
      steps_(other.steps_),
      ids_(other.ids_),
      cache_(std::make_unique<KVCache>(other.cache_->fork())),
      per_head_(other.per_head_),
      logprobs_(other.logprobs_),
      tokens_computed_(other.tokens_computed_) {}

ScoringSession::ScoringSession(const ScoringSession& parent, KVCache cache)
    : verifier_(parent.verifier_),
      question_(parent.question_),
      steps_(parent.steps_),
      ids_(parent.ids_),
      cache_(std::make_unique<KVCache>(std::move(cache))),
      per_head_(parent.per_head_),
      logprobs_(parent.logprobs_),
      tokens_computed_(parent.tokens_computed_) {}

void ScoringSession::rollback(size_t n) {
  if (n > steps_.size())
    throw InputError("rollback(" + std::to_string(n) + "): the session holds " + std::to_string(steps_.size()) +
                     " steps");
  steps_.resize(steps_.size() - n);
  for (auto& [name, v] : per_head_) v.resize(steps_.size());
  // The tokens of the remaining steps stay cached; the next append finds them
  // as the common prefix.
  const auto r = detail::verifier_impl(*verifier_).render(question_, steps_, true);
  const int64_t keep = detail::common_prefix(ids_, r.ids);
  cache_->truncate(std::min(keep, cache_->length()));
  ids_.resize(static_cast<size_t>(cache_->length()));
  logprobs_.resize(std::min(logprobs_.size(), ids_.size()));
}

Scores ScoringSession::scores(const ScoreOptions& options) const {
  return detail::verifier_impl(*verifier_).finish(per_head_, static_cast<int64_t>(ids_.size()), options);
}

}  // namespace stepverify
