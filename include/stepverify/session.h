// stepverify/session.h: incremental scoring, one step at a time, over a KV cache.
//
//   auto s = verifier->session(question);         // question prefix computed (or found in the prefix cache)
//   auto r1 = s->append_step("Janet starts with 16 eggs.");   // r1["prm"] = that step's score
//   auto b = s->fork();                            // O(1): shares the cached prefix
//   b->append_step("She eats 3, so 16 - 3 = 13.");
//   s->rollback(1);                                // drop the last step
//
// How a session stays exact. Each append renders (question, steps so far) in
// the template's partial form, tokenizes the whole text, and keeps the longest
// prefix of tokens that equals what the cache already holds; only the tokens
// after it are computed. For token-level templates (TRL, Skywork) and for
// string-level templates whose steps are split by special tokens (Qwen's
// <extra_0>) this prefix is everything computed before, so each token is
// computed once. Where a string-level template tokenizes across a step
// boundary (a merge between the end of one step and the start of the next),
// the boundary tokens are recomputed: the scores are those of a full pass on
// the same text, never of a stitched sequence. Scores of steps whose read
// positions lie before the kept prefix are reused (causal attention makes them
// identical).
//
// Candidates. A search asks for many next steps of one parent (and of several
// parents: the live beams). append_candidates scores them all in one forward
// with tree attention: every candidate's tokens follow the shared prefix in
// one row, each seeing the prefix and its own earlier tokens only, at the
// positions it would have alone. The prefix's keys and values are read in
// place by every candidate (never copied per candidate): the forward's memory
// grows with the candidates' own tokens. Each candidate comes back as its own
// session (holding a copy of the prefix and its step, made once), with the
// scores an append_step of that step would give.
//
// Thread safety: one session is used by one thread at a time; sessions forked
// from one another may run on different threads. PrefixCache is thread-safe
// (internally locked), so one cache may serve sessions on many threads.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stepverify/kv_cache.h"
#include "stepverify/verifier.h"

namespace stepverify {

/// A cache of KV prefixes shared by the sessions of one Verifier: a tree keyed
/// by token ids (one edge per token) whose nodes may hold a KV cache of the
/// prefix that leads to them. Lookup walks the tree along a sequence and
/// returns a fork of the deepest cached prefix (O(length)). Entries past the
/// memory budget are evicted least recently used first; emptied branches are
/// pruned. Thread-safe.
class STEPVERIFY_API PrefixCache {
 public:
  PrefixCache(int64_t budget_bytes, int64_t bytes_per_token);
  ~PrefixCache();
  /// A fork of the longest cached prefix of `ids`, and its length (0 and an
  /// empty optional when none).
  std::optional<KVCache> lookup(const std::vector<int64_t>& ids, int64_t* length);
  /// Stores a fork of `cache`, whose positions hold `ids`.
  void insert(const std::vector<int64_t>& ids, const KVCache& cache);
  int64_t bytes() const;
  int64_t entries() const;
  /// Lookups that found a cached prefix.
  int64_t hits() const;

 private:
  struct Node;
  void evict_locked();
  mutable std::mutex mu_;
  std::unique_ptr<Node> root_;
  std::list<Node*> lru_;  // nodes holding a cache; front = most recent
  int64_t budget_, per_token_, bytes_ = 0, hits_ = 0;
};

class ScoringSession;

/// One candidate step scored by ScoringSession::append_candidates.
struct STEPVERIFY_API ScoredStep {
  /// The step's score per step-level head (what append_step returns).
  std::map<std::string, double> scores;
  /// The parent extended by the step; null when the step was refused.
  std::unique_ptr<ScoringSession> session;
  /// Why the step was refused (only with CandidateOptions::skip_invalid).
  std::string error;
};

/// Options of append_candidates.
struct STEPVERIFY_API CandidateOptions {
  /// Refused steps (empty, holding the tag, too long) come back with `error`
  /// set and no session instead of throwing.
  bool skip_invalid = false;
  /// Most new tokens in one forward: the parents of a call are split into
  /// forwards of at most this many candidate tokens (one parent's candidates
  /// always share a forward).
  int64_t max_batch_tokens = 8192;
};

class STEPVERIFY_API ScoringSession {
 public:
  ScoringSession(std::shared_ptr<const Verifier> verifier, std::string question);
  ScoringSession& operator=(const ScoringSession&) = delete;

  /// Appends one step; returns its score per step-level head. Throws
  /// InputError (empty step, a step holding the tag, context too long) and
  /// leaves the session as it was.
  std::map<std::string, double> append_step(const std::string& step);
  /// Scores each of `steps` as a next step of this session, in one forward
  /// (see "Candidates" above); this session is unchanged. Results in the
  /// order of `steps`. Throws InputError naming the candidate, unless
  /// options.skip_invalid.
  std::vector<ScoredStep> append_candidates(const std::vector<std::string>& steps,
                                            const CandidateOptions& options = {}) const;
  /// The same for several sessions of one Verifier: steps[i] are the
  /// candidates of parents[i]; parents are batched as rows of one forward
  /// (their prefixes copied once each into the batch). Parents are unchanged.
  static std::vector<std::vector<ScoredStep>> append_candidates(const std::vector<const ScoringSession*>& parents,
                                                                const std::vector<std::vector<std::string>>& steps,
                                                                const CandidateOptions& options = {});
  /// A new session sharing this one's prefix (KV cache forked, O(1)).
  std::unique_ptr<ScoringSession> fork() const;
  /// Drops the last `n` steps.
  void rollback(size_t n);

  const std::string& question() const { return question_; }
  const std::vector<std::string>& steps() const { return steps_; }
  /// Per-step scores of every step-level head so far.
  Scores scores(const ScoreOptions& options = {}) const;
  /// Tokens this session (and the sessions it was forked from, before the
  /// fork) ran through the backbone.
  int64_t tokens_computed() const { return tokens_computed_; }
  /// Tokens the cache holds now.
  int64_t cached_tokens() const { return static_cast<int64_t>(ids_.size()); }

 private:
  ScoringSession(const ScoringSession& other);                  // fork()
  ScoringSession(const ScoringSession& parent, KVCache cache);  // a candidate's child
  struct Plan;
  // What appending `step` needs: the rendering and the first position to compute.
  Plan plan(const std::string& step) const;
  // Takes the step of `plan` given hidden rows [n - offset, H] of positions
  // [offset, n) (offset <= plan.keep); the cache must already hold them.
  std::map<std::string, double> apply(const Plan& plan, const at::Tensor& hidden, int64_t offset);
  std::shared_ptr<const Verifier> verifier_;
  std::string question_;
  std::vector<std::string> steps_;
  std::vector<int64_t> ids_;  // tokens held by cache_
  std::unique_ptr<KVCache> cache_;
  std::map<std::string, std::vector<double>> per_head_;  // per step
  // Per position of ids_, the LM log-probability of that token (NaN before
  // the solution); kept only when a head reads log-probability features.
  std::vector<float> logprobs_;
  int64_t tokens_computed_ = 0;
};

}  // namespace stepverify
