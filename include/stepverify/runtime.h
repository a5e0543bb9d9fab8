// stepverify/runtime.h: process-wide CPU settings that decide forward speed.
//
//   int main(int argc, char** argv) {
//     stepverify::restart_for_blas_kernels(argv);  // first, before any thread
//     stepverify::configure_runtime();             // then the thread pools and malloc
//
// The library never calls configure_runtime itself (loading a model, generating
// and training leave the process as the application set it): a program that
// calls neither gets libtorch's defaults, correct but slower on CPU.
//
// Torch's intra-op threads and OpenBLAS threads both above 1 fight over the
// cores, and glibc returning memory to the OS after every forward costs time;
// the defaults below fix both (figures in README.md, "Measured performance").
//
// OpenBLAS picks its GEMM kernels from the CPU model once, when it loads. On a
// CPU newer than its table it falls back to older, much slower kernels
// (Debian 12's 0.3.21 runs its SSE3 "Prescott" kernels on AVX-512 Xeons;
// figures in README.md). OPENBLAS_CORETYPE forces a kernel set but is read
// only at load, so a program fixes it by restarting itself with
// restart_for_blas_kernels (above). Every program of this project calls both.
// configure_runtime writes one warning to stderr when the kernels lag the CPU,
// naming OPENBLAS_CORETYPE when a value set before the program started (a
// container image's or a shell profile's) holds them back.
//
// Thread safety: configure_runtime and the blas_ queries may be called from
// any thread; the first configure_runtime call wins, later calls return the
// settings in force. restart_for_blas_kernels must run before other threads exist.
// BlasThreadsScope changes a process-wide count: create one scope at a time,
// from the thread that owns the workers.
#pragma once

#include "stepverify/export.h"

#include <string>

namespace stepverify {

/// Process-wide CPU settings.
struct STEPVERIFY_API RuntimeOptions {
  /// torch intra-op threads (elementwise ops, softmax). 0 keeps torch's value.
  int torch_threads = 1;
  /// OpenBLAS threads for GEMMs, and the threads that decode steps' few-row
  /// projections split their columns over (one without OpenBLAS); 0 means
  /// all hardware threads.
  int blas_threads = 0;
  /// Keep freed memory in the process (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD).
  bool keep_freed_memory = true;
  /// Apply the settings at all; false leaves the process untouched.
  bool enabled = true;
  /// One line on stderr when OpenBLAS runs kernels older than the CPU offers
  /// (see blas_kernels_lag_cpu).
  bool warn_blas_kernels = true;
};

/// The settings in force after the call. Only the first call applies options;
/// environment variables STEPVERIFY_TORCH_THREADS and STEPVERIFY_BLAS_THREADS
/// override the defaults.
STEPVERIFY_API RuntimeOptions configure_runtime(const RuntimeOptions& options = {});

/// True when torch's BLAS is OpenBLAS (the reference BLAS is far slower).
STEPVERIFY_API bool blas_is_openblas();

/// OpenBLAS's thread count now; 0 when the BLAS is not OpenBLAS.
STEPVERIFY_API int blas_threads();

/// OpenBLAS's thread count set to `threads` for the object's lifetime, then
/// restored (`threads` 0: the count is left alone); decode steps' few-row
/// projections follow the same count. Code that runs its own workers, one
/// GEMM stream each, runs them with 1 (more BLAS threads than
/// cores spin; timings in README.md). No effect when the BLAS is not OpenBLAS. The count is process-wide: create
/// one scope at a time, from the thread that owns the workers.
class STEPVERIFY_API BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int threads);
  ~BlasThreadsScope();
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int previous_ = 0;  ///< 0: nothing to restore
};

/// The kernel set OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", ...), as
/// openblas_get_corename() names it; empty when the BLAS is not OpenBLAS.
STEPVERIFY_API std::string blas_kernels();

/// The OpenBLAS kernel set this CPU runs fastest: "SkylakeX" with AVX-512
/// (F, CD, BW, DQ, VL usable), "Haswell" with AVX2 and FMA, empty otherwise
/// (other architectures, older x86).
STEPVERIFY_API std::string blas_kernels_for_cpu();

/// True when OpenBLAS runs kernels of an older instruction set than
/// blas_kernels_for_cpu() (AVX-512 > AVX2 > the rest).
STEPVERIFY_API bool blas_kernels_lag_cpu();

/// When blas_kernels_lag_cpu() and OPENBLAS_CORETYPE is unset, sets it to
/// blas_kernels_for_cpu() and restarts the program (execv of /proc/self/exe
/// with `argv`, the environment kept). Returns when no restart is needed, or
/// when the restart fails (the kernels then stay as they are). A variable the
/// user set is never overridden, so the restart happens at most once. Call it
/// first in main(), before any thread starts or any output is buffered.
STEPVERIFY_API void restart_for_blas_kernels(char** argv);

}  // namespace stepverify
