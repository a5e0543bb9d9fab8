// Load a Hugging Face checkpoint and print the most likely next tokens.
//
//   example_next_token DIR "Ana has 12 coins and buys 5 more, so"
#include <iostream>

#include <torch/torch.h>

#include <stepverify/core.h>

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " CHECKPOINT_DIR TEXT\n";
    return 2;
  }
  try {
    auto model = stepverify::Model::load(argv[1]);
    auto ids = model->tokenizer().encode(argv[2]);
    stepverify::ForwardInput input;
    input.input_ids = stepverify::to_batch(ids);
    auto hidden = model->forward(input).hidden;                         // [1, T, H]
    auto logits = model->logits(hidden.select(1, hidden.size(1) - 1));  // [1, V]
    auto [probs, top] = torch::softmax(logits[0], -1).topk(5);
    for (int k = 0; k < 5; ++k)
      std::cout << model->tokenizer().id_to_piece(top[k].item<int64_t>()) << "\t" << probs[k].item<float>() << "\n";
  } catch (const stepverify::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
