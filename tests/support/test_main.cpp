#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "stepverify/runtime.h"

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  return Catch::Session().run(argc, argv);
}
