// Incremental scoring sessions and the prefix cache they share.
#include "stepverify/session.h"

#include <algorithm>
#include <limits>

#include <torch/torch.h>

#include "stepverify/errors.h"
#include "util/sequences.h"

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

int64_t PrefixCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(lru_.size());
}

ScoringSession::ScoringSession(std::shared_ptr<const Verifier> verifier, std::string question)
    : verifier_(std::move(verifier)), question_(std::move(question)) {
  const auto r = verifier_->render(question_, {}, true);
  verifier_->check_length(static_cast<int64_t>(r.ids.size()), "the question");
  const auto& model = verifier_->model();
  int64_t have = 0;
  if (auto* pc = verifier_->prefix_cache()) {
    if (auto hit = pc->lookup(r.ids, &have)) cache_ = std::make_unique<KVCache>(std::move(*hit));
  }
  if (!cache_) cache_ = std::make_unique<KVCache>(model.new_cache());
  cache_->truncate(have);
  if (have < static_cast<int64_t>(r.ids.size())) {
    ForwardInput in;
    in.input_ids = to_batch(std::vector<int64_t>(r.ids.begin() + have, r.ids.end()));
    in.cache = cache_.get();
    model.forward(in);
    tokens_computed_ += static_cast<int64_t>(r.ids.size()) - have;
    if (auto* pc = verifier_->prefix_cache()) pc->insert(r.ids, *cache_);
  }
  ids_ = r.ids;
}

std::map<std::string, double> ScoringSession::append_step(const std::string& step) {
  auto steps = steps_;
  steps.push_back(step);
  const auto r = verifier_->render(question_, steps, true);
  const int64_t n = static_cast<int64_t>(r.ids.size());
  verifier_->check_length(n, "step " + std::to_string(steps_.size()));
  const size_t H = verifier_->num_heads();

  // Keep the longest prefix the cache already holds; recompute from the
  // earliest read position whose score is not known yet.
  const int64_t common = detail::common_prefix(ids_, r.ids);
  int64_t keep = common;
  // Log-probabilities of solution tokens are kept by position; those of the
  // common prefix stay valid (a token's log-probability depends only on the
  // tokens before it), the others are computed from the token before them.
  const int64_t lp_known = std::min<int64_t>(static_cast<int64_t>(logprobs_.size()), common);
  const int64_t lp_from = std::max(lp_known, r.solution_from);
  bool logprobs = false;
  std::vector<std::vector<int64_t>> positions(H);
  for (size_t h = 0; h < H; ++h) {
    positions[h] = verifier_->read_positions(h, r);
    const bool last = verifier_->head_spec(h).read == "last";
    // Scores not known yet (the new step; every read of a "last" head) are
    // computed, so their positions must be recomputed.
    for (size_t i = 0; i < positions[h].size(); ++i) {
      const bool known = !last && i < steps_.size();
      if (!known) keep = std::min(keep, positions[h][i]);
    }
    // Log-probability features of the new tokens need the logits of the
    // token before them: that token is computed again (one token per step).
    if (verifier_->reads_logprobs(h)) logprobs = true;
  }
  if (logprobs) keep = std::min(keep, lp_from - 1);
  keep = std::min(keep, n - 1);
  cache_->truncate(std::min(keep, cache_->length()));
  ForwardInput in;
  in.input_ids = to_batch(std::vector<int64_t>(r.ids.begin() + keep, r.ids.end()));
  in.cache = cache_.get();
  at::Tensor hidden;
  try {
    hidden = verifier_->model().forward(in).hidden[0];  // [n - keep, H]
  } catch (...) {
    ids_.resize(static_cast<size_t>(cache_->length()));  // the cache kept [0, keep)
    logprobs_.resize(std::min(logprobs_.size(), ids_.size()));
    throw;
  }
  tokens_computed_ += n - keep;
  ids_ = r.ids;
  if (logprobs) {
    logprobs_.resize(static_cast<size_t>(lp_known));
    logprobs_.resize(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    if (lp_from < n) {
      const auto lp = verifier_->token_logprobs(hidden, keep, r, lp_from, n - 1).to(torch::kCPU).contiguous();
      std::copy(lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel(), logprobs_.begin() + lp_from);
    }
  }

  std::map<std::string, double> result;
  for (size_t h = 0; h < H; ++h) {
    const auto& name = verifier_->head_spec(h).name;
    auto& scores = per_head_[name];
    const bool last = verifier_->head_spec(h).read == "last";
    std::vector<size_t> reads, which;  // read indices, and the steps they score
    for (size_t i = 0; i < positions[h].size(); ++i) {
      const size_t step = last ? steps.size() - 1 : i;
      // Known steps recomputed after a merge are scored again.
      if (positions[h][i] >= keep || step >= scores.size() || last) {
        reads.push_back(i);
        which.push_back(step);
      }
    }
    auto values = verifier_->head_scores(h, verifier_->head_inputs(h, hidden, keep, r, reads, {}, &logprobs_));
    scores.resize(steps.size());
    for (size_t k = 0; k < which.size(); ++k) scores[which[k]] = values[k];
    result[name] = scores.back();
  }
  steps_ = std::move(steps);
  return result;
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

void ScoringSession::rollback(size_t n) {
  if (n > steps_.size())
    throw InputError("rollback(" + std::to_string(n) + "): the session holds " + std::to_string(steps_.size()) + " steps");
  steps_.resize(steps_.size() - n);
  for (auto& [name, v] : per_head_) v.resize(steps_.size());
  // The tokens of the remaining steps stay cached; the next append finds them
  // as the common prefix.
  const auto r = verifier_->render(question_, steps_, true);
  const int64_t keep = detail::common_prefix(ids_, r.ids);
  cache_->truncate(std::min(keep, cache_->length()));
  ids_.resize(static_cast<size_t>(cache_->length()));
  logprobs_.resize(std::min(logprobs_.size(), ids_.size()));
}

Scores ScoringSession::scores(const ScoreOptions& options) const {
  return verifier_->finish(per_head_, static_cast<int64_t>(ids_.size()), options);
}

}  // namespace stepverify
