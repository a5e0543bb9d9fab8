#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "stepverify/runtime.h"

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  return Catch::Session().run(argc, argv);
}
