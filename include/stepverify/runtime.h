// stepverify/runtime.h: process-wide CPU settings that decide forward speed.
//
//   stepverify::configure_runtime();            // called by every loader once
//   stepverify::configure_runtime({.blas_threads = 4});  // or explicitly, first
//
// Measured on a 2-core machine: torch's intra-op threads and OpenBLAS threads
// both at 2 run a forward about 3x slower than torch at 1 and OpenBLAS at all
// cores (the two pools fight over the cores); glibc returning memory to the OS
// after every forward costs another 20-50%. The defaults below fix both.
//
// Thread safety: configure_runtime may be called from any thread; the first
// call wins, later calls return the settings in force.
#pragma once

namespace stepverify {

/// Process-wide CPU settings.
struct RuntimeOptions {
  /// torch intra-op threads (elementwise ops, softmax). 0 keeps torch's value.
  int torch_threads = 1;
  /// OpenBLAS threads for GEMMs; 0 means all hardware threads.
  int blas_threads = 0;
  /// Keep freed memory in the process (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD).
  bool keep_freed_memory = true;
  /// Apply the settings at all; false leaves the process untouched.
  bool enabled = true;
};

/// The settings in force after the call. Only the first call applies options;
/// environment variables STEPVERIFY_TORCH_THREADS and STEPVERIFY_BLAS_THREADS
/// override the defaults.
RuntimeOptions configure_runtime(const RuntimeOptions& options = {});

/// True when torch's BLAS is OpenBLAS (the reference BLAS is ~50x slower).
bool blas_is_openblas();

}  // namespace stepverify
