// A small process-wide pool for the backbone's memory-bound loops (decode
// steps' few-row projections), which torch's intra-op threads do not run:
// the runtime keeps those at 1 so that they do not spin against OpenBLAS's
// (runtime.h). Torch-free.
//
// Thread safety: run_parts may be called from any thread. One call at a time
// has the helpers; a call made while they are busy (another thread's, or a
// part's own nested call) runs all its parts on its own thread, so
// concurrent callers never add helpers beyond one call's and never wait for
// each other. In a child of fork() made after the pool started, every call
// runs on its own thread (the helpers are the parent's).
#pragma once

#include <cstdint>

namespace stepverify::detail {

/// Calls fn(ctx, part) once for each part in [0, parts), on the calling
/// thread and up to threads - 1 helpers (threads <= 1: all on the caller, in
/// order). Returns when every part has returned. Parts must be independent
/// (disjoint outputs) and must not throw.
void run_parts(int64_t parts, int threads, void (*fn)(void* ctx, int64_t part), void* ctx);

/// run_parts over a callable: f(part).
template <typename F>
void run_parts(int64_t parts, int threads, F& f) {
  run_parts(
      parts, threads, [](void* c, int64_t part) { (*static_cast<F*>(c))(part); }, &f);
}

}  // namespace stepverify::detail
