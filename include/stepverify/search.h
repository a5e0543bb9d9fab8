// stepverify/search.h: verifier-guided search over reasoning steps.
//
//   struct MyLoop : stepverify::StepProposer {          // the application's own decoding loop
//     std::vector<stepverify::Proposal> propose(const std::string& q, const std::vector<std::string>& steps,
//                                               int k) override { ... }
//   };
//   MyLoop loop;
//   stepverify::SearchOptions o;  o.beam_width = 4;  o.expansions = 4;
//   auto result = stepverify::beam_search(*verifier, loop, question, o);
//   // result.steps, result.score, result.verifier_tokens (each prefix scored once)
//
// Every new step is scored through a ScoringSession forked from its parent:
// the verifier never re-scores a prefix. `SamplingProposer` (stepverify/
// sampler.h) is a built-in proposer over a causal LM. This header is plain
// C++ (no torch header): an application's proposer needs only strings.
//
// Thread safety: the search functions are reentrant; a proposer is called
// from the calling thread only. SamplingProposer is used by one thread at a time.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stepverify/aggregate.h"

namespace stepverify {
class AnswerExtractor;
class AnswerEquivalence;
}  // namespace stepverify

namespace stepverify {

class Verifier;  // stepverify/verifier.h

/// One proposed next step.
struct STEPVERIFY_API Proposal {
  std::string text;       ///< the step, without the delimiter
  bool finished = false;  ///< the solution ends with this step (EOS, or a final answer)
  int64_t tokens = 0;     ///< tokens generated for it (budget accounting)
  /// The policy's log-probability of the step's tokens (their sum; 0 when the
  /// proposer does not know it). MCTS turns it into a prior.
  double logprob = 0;
};

/// The extension point through which a decoding loop proposes next steps.
class STEPVERIFY_API StepProposer {
 public:
  virtual ~StepProposer() = default;
  /// Up to `k` next steps for the partial solution (question, steps).
  virtual std::vector<Proposal> propose(const std::string& question, const std::vector<std::string>& steps, int k) = 0;
  /// Up to `k` next steps for each of several partial solutions of one
  /// question (beam search asks for all its beams at once). The default calls
  /// propose() for each in order; SamplingProposer decodes them in one batch.
  virtual std::vector<std::vector<Proposal>> propose_many(const std::string& question,
                                                          const std::vector<std::vector<std::string>>& partials, int k);
  /// The most likely next step of each partial solution (lookahead rollouts
  /// and MCTS rollouts). The default asks propose(question, steps, 1) of each,
  /// which is a sample where the proposer samples; SamplingProposer decodes
  /// all of them greedily in one batch.
  virtual std::vector<Proposal> propose_greedy(const std::string& question,
                                               const std::vector<std::vector<std::string>>& partials);
};

/// How a search picks its answer among finished solutions.
enum class FinalPick {
  BestScore,     ///< the solution with the highest score
  WeightedVote,  ///< the answer whose equivalence class has the largest total score
  /// MCTS: from the root, the most visited child until a finished solution
  /// (ties: the higher mean value); where that path ends unfinished (the budget
  /// ran out), the most visited finished solution. Other searches: BestScore.
  MostVisited,
};

/// How MCTS values a new node.
enum class MctsEvaluation {
  /// The ranking head's `aggregate` of the node's step scores: a value head
  /// (OVM, AlphaMath) with Aggregate::Last, a PRM with Min or Product. Free:
  /// the scores come with the node.
  Verifier,
  /// A greedy rollout (StepProposer::propose_greedy) from the node to a
  /// finished solution or max_steps, valued as above at its end; each rollout
  /// is a candidate too. Its proposals count against the budget.
  Rollout,
};

/// Options of mcts().
struct STEPVERIFY_API MctsOptions {
  /// Exploration weight c of PUCT: a child's selection score is
  /// Q + c * P * sqrt(N_parent) / (1 + N_child), Q its mean backed-up value,
  /// P its prior, N visit counts.
  double c_puct = 1.0;
  /// Priors: softmax over siblings of their mean token log-probability
  /// (Proposal::logprob / tokens) divided by this; uniform when the proposer
  /// reports no log-probabilities.
  double prior_temperature = 1.0;
  /// Selections at most (each expands a leaf with `expansions` proposals or
  /// revisits a finished one); the search also stops when the budget
  /// (max_proposals, max_generated_tokens) is spent.
  int iterations = 64;
  MctsEvaluation evaluation = MctsEvaluation::Verifier;  ///< how a new node is valued
  /// Leaves expanded together: up to this many leaves per round, each
  /// selected path given a virtual loss (a pending visit at the lowest value
  /// seen) so the next selection looks elsewhere (a selection reaching a leaf
  /// already picked adds its loss and tries again, 2 x parallel_leaves tries
  /// a round); the picked leaves are proposed in one propose_many call and
  /// scored in one verifier forward. 1: one leaf per round (each expansion
  /// sees every earlier value). Each leaf picked counts as an iteration.
  int parallel_leaves = 1;
};

/// How a search scores the children of a step.
enum class SearchScoring {
  /// Sessions forked per step; a step's children (of every live beam) are
  /// scored in one forward over the shared prefixes (append_candidates).
  Sessions,
  /// Every child's whole sequence again, a step's children in one padded
  /// batch (the Python frameworks' way without a prefix cache).
  BatchedRescore,
  /// Every child's whole sequence again, one at a time (the plain HF way).
  Rescore,
};

/// Options of the searches.
struct STEPVERIFY_API SearchOptions {
  int beam_width = 4;  ///< beams kept after each step (beam, dvts)
  int expansions = 4;  ///< proposals per beam and step
  /// Beam search proposes beam_width * expansions continuations at every
  /// step, spread evenly over the live beams (the best take the remainder):
  /// the question alone gets them all, and beams left after others finish
  /// get more, as search-and-learn keeps N. false: `expansions` per live
  /// beam, so the first step proposes only `expansions`.
  bool constant_step_budget = true;
  int max_steps = 12;                ///< steps before a solution is cut
  int64_t max_proposals = 0;         ///< budget in proposals (0: none)
  int64_t max_generated_tokens = 0;  ///< budget in generated tokens (0: none)
  /// Budget in verifier tokens (SearchResult::verifier_tokens; 0: none),
  /// checked before each expansion as the others are.
  int64_t max_verifier_tokens = 0;
  bool dedup = true;  ///< drop a proposal identical to a sibling
  std::string head;   ///< verifier head that ranks (empty: the first)
  /// How a partial solution's step scores rank it (the value of the last
  /// step, or min/prod/mean over steps).
  Aggregate aggregate = Aggregate::Last;
  FinalPick final_pick = FinalPick::BestScore;
  int subtrees = 4;  ///< dvts: independent subtrees
  /// lookahead: greedy steps rolled out from each candidate to rank it (0:
  /// plain beam search).
  int lookahead_steps = 2;
  MctsOptions mcts;                                 ///< mcts: selection, evaluation and iterations
  SearchScoring scoring = SearchScoring::Sessions;  ///< how children are scored (same picks, other costs)
  /// Final answers of the solutions (null: DefaultExtractor); not owned.
  const AnswerExtractor* extractor = nullptr;
  /// Groups answers for WeightedVote (null: MathEquivalence, e.g. a
  /// CustomEquivalence with a user's rule); not owned.
  const AnswerEquivalence* equivalence = nullptr;
};

/// A finished (or cut) solution.
struct STEPVERIFY_API SearchCandidate {
  std::vector<std::string> steps;
  std::vector<double> step_scores;
  double score = 0;  ///< aggregate of step_scores
  bool finished = false;
  int64_t visits = 0;  ///< mcts: visits of its node (0 for other searches)
};

/// What a search returns.
struct STEPVERIFY_API SearchResult {
  std::vector<std::string> steps;           ///< the chosen solution
  double score = 0;                         ///< its score
  std::string answer;                       ///< its extracted answer ("" when none)
  std::vector<SearchCandidate> candidates;  ///< every finished or cut solution
  int64_t proposals = 0;                    ///< proposals the proposer returned
  int64_t generated_tokens = 0;             ///< tokens the proposer reported
  int64_t verifier_tokens = 0;              ///< tokens the verifier ran through its backbone
  double seconds = 0;                       ///< wall time
};

/// Step-level beam search: B beams, each expanded with k proposals (B * k
/// per step spread over the live beams under constant_step_budget) scored
/// through forked sessions; the top B by `aggregate` continue.
STEPVERIFY_API SearchResult beam_search(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                                        const SearchOptions& options = {});
/// Diverse verifier tree search: the budget split over `subtrees` independent
/// beam searches of width beam_width / subtrees (at least 1).
STEPVERIFY_API SearchResult dvts(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                                 const SearchOptions& options = {});
/// Lookahead search (as search-and-learn's): beam search whose candidates
/// are ranked by the score of a greedy rollout of `lookahead_steps` further
/// steps from each (its own score when it is finished or the rollout fails);
/// the rollouts' proposals count against the budget, and the rollouts only rank.
STEPVERIFY_API SearchResult lookahead_search(const Verifier& verifier, StepProposer& proposer,
                                             const std::string& question, const SearchOptions& options = {});
/// Monte Carlo tree search over steps (AlphaMath, rStar-Math): PUCT selection
/// with the policy's step probability as the prior (options.mcts), expansion
/// of a leaf with `expansions` proposals scored together through sessions
/// forked from the leaf's (a node's session is released once it has
/// `expansions` children or a call for more brought nothing new; a node whose
/// proposals collapsed into fewer texts is asked again, "widened", when the
/// search would otherwise revisit a finished solution below it),
/// evaluation of every new node (by the verifier or a rollout), backup of the
/// values along the path (mean values), and the final pick by
/// options.final_pick (MostVisited, BestScore: the finished solution of the
/// highest value, or WeightedVote). Finished nodes are candidates.
STEPVERIFY_API SearchResult mcts(const Verifier& verifier, StepProposer& proposer, const std::string& question,
                                 const SearchOptions& options = {});
/// N complete samples (one proposal per step), each scored incrementally;
/// the pick is the best score (best-of-N) or the weighted vote (weighted SC).
STEPVERIFY_API SearchResult sample_and_rank(const Verifier& verifier, StepProposer& proposer,
                                            const std::string& question, int n, const SearchOptions& options = {});

}  // namespace stepverify
