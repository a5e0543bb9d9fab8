// Links against the installed core target only, loads a checkpoint and runs it.
#include <iostream>

#include <stepverify/runtime.h>
#include <stepverify/search.h>
#include <stepverify/verifier.h>
#include <stepverify/version.h>

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  if (argc < 2) {
    std::cout << "stepverify " << stepverify::kVersion << ", " << stepverify::supported_architectures().size()
              << " architectures\n";
    return 0;
  }
  auto model = stepverify::Model::load(argv[1]);
  auto ids = model->tokenizer().encode("1 + 1 = 2");
  stepverify::ForwardInput in;
  in.input_ids = stepverify::to_batch(ids);
  auto h = model->forward(in).hidden;
  std::cout << "hidden " << h.size(1) << "x" << h.size(2) << "\n";
  return h.size(1) == static_cast<int64_t>(ids.size()) ? 0 : 1;
}
