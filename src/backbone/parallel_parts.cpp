// The pool behind run_parts (parallel_parts.h).
//
// A job is announced by one atomic word: its sequence number and how many
// helpers take part. Helpers wait for a new word, spinning a short, timed
// while first (a decode step calls run_parts a few hundred times in a row,
// tens of microseconds apart, and a futex wake-up costs about as much as a
// small part), then sleeping on a condition variable. Parts are taken from an
// atomic counter by the caller and the helpers alike, so a helper that wakes
// late leaves its share to the others. Every helper that takes part checks
// out before the caller returns, so a job's fields are never rewritten while
// one of them may still read them; helpers that sit a job out read nothing
// but the word.
#include "backbone/parallel_parts.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

namespace stepverify::detail {
namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins with cpu_relax until done() or `budget` has passed (the clock read
// every 64 spins: a pause takes from a few to over a hundred cycles,
// depending on the CPU). True when done.
template <typename Done>
bool spin_until(Done done, std::chrono::microseconds budget) {
  const auto end = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return done();
  }
}

// Set in a child of fork() (a handler the pool registers when it is made):
// the helpers are the parent's and do not exist there.
std::atomic<bool> forked_child{false};

// Set while this thread runs parts: a part that calls run_parts runs its own
// parts itself (the helpers are busy with the outer job).
thread_local bool in_job = false;

class Pool {
 public:
  Pool() {
    ::pthread_atfork(nullptr, nullptr, [] { forked_child.store(true, std::memory_order_relaxed); });
  }

  // False when another call holds the helpers or this is a forked child: the
  // caller then runs the parts itself.
  bool try_run(int64_t parts, int threads, void (*fn)(void*, int64_t), void* ctx) {
    if (forked_child) return false;
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    const int active = std::min(threads - 1, grow(threads - 1));  // more may exist, from a larger count before
    if (active == 0) return false;
    fn_ = fn;
    ctx_ = ctx;
    parts_ = parts;
    next_.store(0, std::memory_order_relaxed);
    checked_out_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(wake_);
      const uint64_t sequence = (word_.load(std::memory_order_relaxed) >> kActiveBits) + 1;
      word_.store(sequence << kActiveBits | static_cast<uint64_t>(active), std::memory_order_release);
    }
    wake_cv_.notify_all();
    work();
    auto all_out = [&] { return checked_out_.load(std::memory_order_acquire) == active; };
    while (!spin_until(all_out, kSpin)) std::this_thread::yield();  // a helper not yet running
    return true;
  }

 private:
  static constexpr int kActiveBits = 8;
  static constexpr int kMaxHelpers = (1 << kActiveBits) - 1;
  // How long a helper spins for the next job before it sleeps.
  static constexpr std::chrono::microseconds kSpin{50};

  // Starts helpers up to `helpers` (as many as the system gives); returns
  // how many there are.
  int grow(int helpers) {
    helpers = std::min(helpers, static_cast<int>(kMaxHelpers));
    while (static_cast<int>(helpers_) < helpers) {
      const uint64_t seen = word_.load(std::memory_order_relaxed);
      const int index = helpers_;
      try {
        std::thread([this, seen, index] { helper(index, seen); }).detach();  // lives as long as the process
      } catch (const std::system_error&) {
        break;  // no more threads: run with those there are
      }
      ++helpers_;
    }
    return helpers_;
  }

  void work() {
    in_job = true;
    for (int64_t p; (p = next_.fetch_add(1, std::memory_order_relaxed)) < parts_;) fn_(ctx_, p);
    in_job = false;
  }

  void helper(int index, uint64_t seen) {
    for (;;) {
      uint64_t word = seen;
      auto announced = [&] { return (word = word_.load(std::memory_order_acquire)) != seen; };
      if (!spin_until(announced, kSpin)) {
        std::unique_lock<std::mutex> lock(wake_);
        wake_cv_.wait(lock, announced);
      }
      seen = word;
      if (index >= static_cast<int>(word & kMaxHelpers)) continue;  // this job needs fewer helpers
      work();
      checked_out_.fetch_add(1, std::memory_order_release);
    }
  }

  std::mutex busy_;  // held by the one caller that has the helpers
  int helpers_ = 0;  // started so far (under busy_)
  std::mutex wake_;
  std::condition_variable wake_cv_;
  // The job's sequence number << kActiveBits | the helpers taking part.
  std::atomic<uint64_t> word_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> checked_out_{0};
  // The job: written by the caller before word_ changes, read by the helpers
  // taking part after they see it change, and unchanged until they have all
  // checked out.
  void (*fn_)(void*, int64_t) = nullptr;
  void* ctx_ = nullptr;
  int64_t parts_ = 0;
};

}  // namespace

void run_parts(int64_t parts, int threads, void (*fn)(void*, int64_t), void* ctx) {
  if (parts <= 0) return;
  if (threads > 1 && parts > 1 && !in_job) {
    static Pool* const pool = new Pool;  // never destroyed: helpers may outlive main()
    if (pool->try_run(parts, threads, fn, ctx)) return;
  }
  for (int64_t p = 0; p < parts; ++p) fn(ctx, p);
}

}  // namespace stepverify::detail
