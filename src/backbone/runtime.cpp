#include "stepverify/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
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

SetThreads openblas_setter() { return reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }

// Instruction-set rank of an OpenBLAS kernel set: 3 AVX-512, 2 AVX2, 1 older
// (or unknown to this table), 0 none.
int kernel_rank(std::string core) {
  if (core.empty()) return 0;
  std::transform(core.begin(), core.end(), core.begin(), [](unsigned char c) { return std::tolower(c); });
  if (core == "skylakex" || core == "cooperlake" || core == "sapphirerapids") return 3;
  if (core == "haswell" || core == "zen") return 2;
  return 1;
}

using GetThreads = int (*)();

GetThreads openblas_getter() { return reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }

}  // namespace

int blas_threads() {
  static const auto get = openblas_getter();  // per call of a decode step's projections: look it up once
  return get ? get() : 0;
}

BlasThreadsScope::BlasThreadsScope(int threads) {
  auto set = openblas_setter();
  if (!set || threads < 1) return;
  previous_ = blas_threads();
  set(threads);
}

BlasThreadsScope::~BlasThreadsScope() {
  if (previous_ > 0) openblas_setter()(previous_);
}

bool blas_is_openblas() { return openblas_setter() != nullptr; }

std::string blas_kernels() {
  using CoreName = char* (*)();
  auto name = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* core = name ? name() : nullptr;
  return core ? std::string(core) : std::string();
}

std::string blas_kernels_for_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return {};
}

bool blas_kernels_lag_cpu() {
  const auto in_use = blas_kernels();
  return !in_use.empty() && kernel_rank(in_use) < kernel_rank(blas_kernels_for_cpu());
}

void restart_for_blas_kernels(char** argv) {
  if (!argv || !argv[0] || std::getenv("OPENBLAS_CORETYPE") || !blas_kernels_lag_cpu()) return;
  const auto want = blas_kernels_for_cpu();
  if (::setenv("OPENBLAS_CORETYPE", want.c_str(), 1) != 0) return;
  std::fflush(nullptr);
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // exec failed: carry on as loaded
}

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
    if (applied.warn_blas_kernels && blas_kernels_lag_cpu()) {
      const auto want = blas_kernels_for_cpu(), in_use = blas_kernels();
      if (const char* set = std::getenv("OPENBLAS_CORETYPE"))  // a value inherited from an image or a shell profile
        std::fprintf(stderr,
                     "stepverify: warning: OPENBLAS_CORETYPE=%s makes OpenBLAS run its %s kernels on a CPU that runs "
                     "its %s ones; matrix products run %s slower. Unset it or set OPENBLAS_CORETYPE=%s.\n",
                     set, in_use.c_str(), want.c_str(), kernel_rank(in_use) == 2 ? "about 2x" : "2-4x", want.c_str());
      else
        std::fprintf(stderr,
                     "stepverify: warning: OpenBLAS runs its %s kernels on a CPU that runs its %s ones (the CPU is "
                     "newer than its table); matrix products run 2-4x slower. Set OPENBLAS_CORETYPE=%s, or call "
                     "stepverify::restart_for_blas_kernels(argv) first in main().\n",
                     in_use.c_str(), want.c_str(), want.c_str());
    }
  });
  return applied;
}

}  // namespace stepverify
