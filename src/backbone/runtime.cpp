#include "stepverify/runtime.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdlib>
#include <mutex>
#include <thread>

#include <ATen/Parallel.h>

namespace stepverify {
namespace {

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (end && *end == '\0' && n >= 0 && n < 4096) ? static_cast<int>(n) : def;
}

using SetThreads = void (*)(int);

SetThreads openblas_setter() {
  return reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
}

}  // namespace

bool blas_is_openblas() { return openblas_setter() != nullptr; }

RuntimeOptions configure_runtime(const RuntimeOptions& options) {
  static RuntimeOptions applied;
  static std::once_flag once;
  std::call_once(once, [&] {
    applied = options;
    if (!applied.enabled) return;
    applied.torch_threads = env_int("STEPVERIFY_TORCH_THREADS", applied.torch_threads);
    applied.blas_threads = env_int("STEPVERIFY_BLAS_THREADS", applied.blas_threads);
    if (applied.blas_threads == 0) {
      unsigned hw = std::thread::hardware_concurrency();
      applied.blas_threads = hw ? static_cast<int>(hw) : 1;
    }
    if (applied.keep_freed_memory) {
      // Buffers up to 32 MiB (glibc's maximum threshold) come from the heap
      // and are reused; free() never trims.
      ::mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
      ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
    }
    if (applied.torch_threads > 0) at::set_num_threads(applied.torch_threads);
    if (auto set = openblas_setter()) set(applied.blas_threads);
  });
  return applied;
}

}  // namespace stepverify
