// config.json of a checkpoint.
#include "fuzz_target.h"
#include "stepverify/config.h"

STEPVERIFY_FUZZ_TARGET(config) {
  const auto c = stepverify::ModelConfig::from_json(input, "fuzz/config.json");
  // An accepted config describes a model that can be built: positive sizes.
  if (c.hidden_size <= 0 || c.num_hidden_layers <= 0 || c.vocab_size <= 0 || c.num_attention_heads <= 0) std::abort();
}
