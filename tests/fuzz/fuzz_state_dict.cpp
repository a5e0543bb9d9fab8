// torch.save head files (verifier.pth), read by libtorch's unpickler.
#include "backbone/tensor_io.h"
#include "fuzz_target.h"

STEPVERIFY_FUZZ_TARGET(state_dict) {
  for (const auto& [name, t] : stepverify::read_state_dict(input, "fuzz/verifier.pth"))
    if (t.defined() && t.numel() > 0 && t.numel() < (1 << 20)) (void)t.to(torch::kFloat).sum().item<double>();
}
