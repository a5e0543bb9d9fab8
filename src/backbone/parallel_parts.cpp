// The pool behind run_parts (parallel_parts.h).
//
// Helpers wait for a new job generation, spinning a short while first (a
// decode step calls run_parts a few hundred times in a row, tens of
// microseconds apart; a futex wake-up costs about as much as a small part),
// then sleeping on a condition variable. Parts are taken from an atomic
// counter by the caller and the helpers alike, so a helper that wakes late
// leaves its share to the others. Every helper checks out of every job before
// the caller returns, so a job's fields are never rewritten while a helper
// may still read them.
#include "backbone/parallel_parts.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace stepverify::detail {
namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

class Pool {
 public:
  // False when another call holds the helpers or this is a forked child: the
  // caller then runs the parts itself.
  bool try_run(int64_t parts, int threads, void (*fn)(void*, int64_t), void* ctx) {
    if (::getpid() != pid_) return false;
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    grow(threads - 1);
    active_ = threads - 1;
    fn_ = fn;
    ctx_ = ctx;
    parts_ = parts;
    next_.store(0, std::memory_order_relaxed);
    checked_out_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(wake_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_cv_.notify_all();
    work();
    const int helpers = static_cast<int>(helpers_.size());
    while (checked_out_.load(std::memory_order_acquire) < helpers) cpu_relax();
    return true;
  }

 private:
  static constexpr int kMaxHelpers = 63;
  // Pause instructions a helper spins through before sleeping (tens of
  // microseconds).
  static constexpr int kSpin = 20000;

  void grow(int helpers) {
    helpers = helpers < kMaxHelpers ? helpers : kMaxHelpers;
    while (static_cast<int>(helpers_.size()) < helpers) {
      const uint64_t seen = generation_.load(std::memory_order_relaxed);
      const int index = static_cast<int>(helpers_.size());
      helpers_.emplace_back([this, seen, index] { helper(index, seen); });
      helpers_.back().detach();  // the pool lives as long as the process
    }
  }

  void work() {
    for (int64_t p; (p = next_.fetch_add(1, std::memory_order_relaxed)) < parts_;) fn_(ctx_, p);
  }

  void helper(int index, uint64_t seen) {
    for (;;) {
      uint64_t g = seen;
      for (int s = 0; s < kSpin && g == seen; ++s) {
        cpu_relax();
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(wake_);
        wake_cv_.wait(lock, [&] { return (g = generation_.load(std::memory_order_acquire)) != seen; });
      }
      seen = g;
      if (index < active_) work();  // helpers past the job's thread count sit it out
      checked_out_.fetch_add(1, std::memory_order_release);
    }
  }

  const pid_t pid_ = ::getpid();
  std::mutex busy_;  // held by the one caller that has the helpers
  std::vector<std::thread> helpers_;
  std::mutex wake_;
  std::condition_variable wake_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> checked_out_{0};
  // The job: written by the caller before generation_ is raised, read by
  // helpers after they see it raised, and unchanged until every helper has
  // checked out.
  void (*fn_)(void*, int64_t) = nullptr;
  void* ctx_ = nullptr;
  int64_t parts_ = 0;
  int active_ = 0;  // helpers that take parts
};

}  // namespace

void run_parts(int64_t parts, int threads, void (*fn)(void*, int64_t), void* ctx) {
  if (parts <= 0) return;
  if (threads > 1 && parts > 1) {
    static Pool* const pool = new Pool;  // never destroyed: helpers may outlive main()
    if (pool->try_run(parts, threads, fn, ctx)) return;
  }
  for (int64_t p = 0; p < parts; ++p) fn(ctx, p);
}

}  // namespace stepverify::detail
