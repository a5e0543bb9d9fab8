// One Verifier (and its Model and prefix cache) shared by 8 threads that
// score, batch, run sessions that fork from one another and search, all
// interleaved: every result equals the single-threaded one bit for bit, and
// the prefix cache stays within its byte budget throughout. The ThreadSanitizer
// build (make tsan) runs these cases; the last checks the pool behind the
// decode projections (run_parts) alone, under concurrent callers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "test_support.h"

#include "backbone/parallel_parts.h"

#include "stepverify/search.h"
#include "stepverify/session.h"
#include "stepverify/verifier.h"

using namespace stepverify;

namespace {

// Deterministic proposals (a function of the partial solution only).
struct FixedProposer : StepProposer {
  std::vector<Proposal> propose(const std::string&, const std::vector<std::string>& steps, int k) override {
    std::vector<Proposal> out;
    const int d = static_cast<int>(steps.size());
    for (int i = 0; i < k; ++i) {
      Proposal p;
      if (d >= 2) {
        p.text = "The answer is $\\boxed{" + std::to_string(7 + i % 3) + "}$.";
        p.finished = true;
      } else {
        p.text =
            std::to_string(i + 1) + " * " + std::to_string(d + 3) + " = " + std::to_string((i + 1) * (d + 3)) + ".";
      }
      p.tokens = 4;
      out.push_back(p);
    }
    return out;
  }
};

void append(std::vector<double>& out, const Scores& s) {
  for (const auto& [name, v] : s.heads) out.insert(out.end(), v.begin(), v.end());
  for (const auto& [name, v] : s.outcome) out.push_back(v);
  out.push_back(static_cast<double>(s.tokens));
}

void append(std::vector<double>& out, const std::map<std::string, double>& m) {
  for (const auto& [name, v] : m) out.push_back(v);
}

// Job `j` of the workload; returns every number it produced.
std::vector<double> run_job(const std::shared_ptr<const Verifier>& v, int j) {
  const std::string q = "Question " + std::to_string(j % 5) + ": what is " + std::to_string(j % 5 + 2) + " * 3?";
  const std::vector<std::string> steps = {
      "First, " + std::to_string(j % 5 + 2) + " * 3 = " + std::to_string((j % 5 + 2) * 3) + ".",
      "So the answer is " + std::to_string((j % 5 + 2) * 3) + "."};
  std::vector<double> out;
  switch (j % 4) {
    case 0:
      append(out, v->score(q, steps));
      break;
    case 1:
      for (const auto& s : v->score_batch({{q, steps}, {q, {steps[0]}}, {q + " (again)", {"No.", steps[1]}}}))
        append(out, s);
      break;
    case 2: {
      // A session forked twice; the forks go on differently; candidates.
      auto s = v->session(q);
      append(out, s->append_step(steps[0]));
      auto f = s->fork();
      append(out, s->append_step(steps[1]));
      append(out, f->append_step("Wait, that is wrong."));
      auto g = f->fork();
      f->rollback(1);
      append(out, f->append_step(steps[1]));
      append(out, g->append_step(steps[1]));
      for (const auto& c : s->append_candidates({"Check: yes.", "Check: no."})) append(out, c.scores);
      append(out, s->scores());
      break;
    }
    default: {
      FixedProposer prop;
      SearchOptions o;
      o.beam_width = 2;
      o.expansions = 2;
      const auto r = j % 8 == 3 ? beam_search(*v, prop, q, o) : dvts(*v, prop, q, o);
      out.push_back(r.score);
      out.push_back(static_cast<double>(r.steps.size()));
      for (const auto& c : r.candidates) out.insert(out.end(), c.step_scores.begin(), c.step_scores.end());
      break;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("one Verifier shared by 8 threads: results equal the single-threaded ones bit for bit", "[concurrency]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  VerifierOptions vo;
  vo.prefix_cache_bytes = 128 << 10;  // 3 of the 5 question prefixes: entries are evicted as threads look up
  auto v = Verifier::load(*dir, vo);
  REQUIRE(v->prefix_cache());
  constexpr int kJobs = 24, kThreads = 8, kRounds = 2;

  std::vector<std::vector<double>> expected;
  for (int j = 0; j < kJobs; ++j) expected.push_back(run_job(v, j));
  INFO("bytes " << v->prefix_cache()->bytes() << " entries " << v->prefix_cache()->entries());
  REQUIRE(v->prefix_cache()->hits() > 0);
  const int64_t hits_before = v->prefix_cache()->hits();

  std::atomic<bool> done{false};
  std::atomic<int64_t> max_bytes{0};
  std::atomic<int> mismatches{0}, errors{0};
  std::thread monitor([&] {
    while (!done.load()) {
      max_bytes = std::max<int64_t>(max_bytes.load(), v->prefix_cache()->bytes());
      (void)v->prefix_cache()->entries();
      (void)v->prefix_cache()->hits();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round)
        for (int i = 0; i < kJobs; ++i) {
          const int j = (i * 7 + t * 5 + round) % kJobs;  // each thread its own order
          try {
            if (run_job(v, j) != expected[static_cast<size_t>(j)]) ++mismatches;
          } catch (...) {
            ++errors;
          }
        }
    });
  for (auto& th : threads) th.join();
  done = true;
  monitor.join();
  CHECK(errors == 0);
  CHECK(mismatches == 0);
  CHECK(max_bytes <= vo.prefix_cache_bytes);
  CHECK(v->prefix_cache()->bytes() <= vo.prefix_cache_bytes);
  CHECK(v->prefix_cache()->hits() > hits_before);  // the threads shared the cache
}

TEST_CASE("run_parts runs every part exactly once, for any thread count and from concurrent callers", "[concurrency]") {
  // Each part writes its own plain (non-atomic) slot; the caller reads them
  // after run_parts returns, so ThreadSanitizer checks that the return is
  // ordered after every helper's writes.
  for (int threads : {0, 1, 2, 3, 8}) {
    for (int64_t parts : {1, 2, 7, 64}) {
      INFO("threads " << threads << " parts " << parts);
      std::vector<int> calls(static_cast<size_t>(parts), 0);
      auto part = [&](int64_t p) { calls[static_cast<size_t>(p)] += 1; };
      stepverify::detail::run_parts(parts, threads, part);
      CHECK(std::count(calls.begin(), calls.end(), 1) == parts);
    }
  }
  // After a job of 8 threads (above), a job of 2 runs on at most 2: the
  // helpers beyond the count sit it out. Each part holds its thread a while
  // (200 us), so idle helpers that joined would take parts.
  {
    std::mutex m;
    std::set<std::thread::id> ids;
    auto part = [&](int64_t) {
      const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      while (std::chrono::steady_clock::now() < end) {}
      std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
    };
    stepverify::detail::run_parts(64, 2, part);
    CHECK(ids.size() <= 2);
  }
  // Four callers at once, 300 jobs each, two threads a job: one caller at a
  // time has the helpers, the others run alone; every job's values are right.
  constexpr int kCallers = 4, kJobsEach = 300, kParts = 16;
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (int job = 0; job < kJobsEach; ++job) {
        std::vector<int64_t> out(kParts, -1);
        auto part = [&](int64_t p) { out[static_cast<size_t>(p)] = p * 1000 + c * 10 + job % 10; };
        stepverify::detail::run_parts(kParts, 2, part);
        for (int64_t p = 0; p < kParts; ++p)
          if (out[static_cast<size_t>(p)] != p * 1000 + c * 10 + job % 10) ++wrong;
      }
    });
  for (auto& t : callers) t.join();
  CHECK(wrong == 0);
  stepverify::detail::run_parts(
      0, 2, [](void*, int64_t) { FAIL("a part of an empty job ran"); }, nullptr);
}
