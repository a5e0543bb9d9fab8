// sentencepiece model bytes (tokenizer.model) through the shim.
#include "fuzz_target.h"
#include "tokenizer/spm_shim.h"

STEPVERIFY_FUZZ_TARGET(spm_model) {
  stepverify::detail::SpmModel model(input, "fuzz/tokenizer.model");
  std::vector<std::string> pieces;
  std::vector<int64_t> ids;
  model.encode("Step 1: 12 + 7 = 19.", pieces, ids);
  for (auto id : ids)
    if (id < 0 || id >= model.size()) std::abort();
  (void)model.decode_pieces(pieces);
}
