// Encode and decode arbitrary bytes with loaded tokenizers: the byte-level
// BPE of the qwen2_prm fixture and the sentencepiece model of llama_gqa
// (from ../shared). Every id encode gives is in range; decode refuses ids
// out of range with an error.
#include <memory>

#include "fuzz_target.h"
#include "stepverify/tokenizer.h"

namespace {

const std::vector<std::unique_ptr<stepverify::Tokenizer>>& tokenizers() {
  static const auto toks = [] {
    std::vector<std::unique_ptr<stepverify::Tokenizer>> t;
    const auto hf = stepverify::fuzz::shared_dir() / "fixtures" / "hf";
    t.push_back(stepverify::load_tokenizer(hf / "qwen2_prm"));
    t.push_back(stepverify::load_tokenizer(hf / "llama_gqa"));
    return t;
  }();
  return toks;
}

}  // namespace

STEPVERIFY_FUZZ_TARGET(tokenize) {
  for (const auto& tok : tokenizers()) {
    stepverify::EncodeOptions with, raw;
    raw.add_special_tokens = false;
    raw.parse_special_tokens = false;
    for (const auto* o : {&with, &raw}) {
      const auto ids = tok->encode(input, *o);
      for (auto id : ids)
        if (id < 0 || id >= tok->size()) std::abort();
      (void)tok->decode(ids);
    }
    // The input's bytes read as ids (some out of range).
    std::vector<int64_t> ids;
    for (size_t i = 0; i + 2 <= input.size() && ids.size() < 512; i += 2)
      ids.push_back(
          static_cast<int16_t>(static_cast<unsigned char>(input[i]) | (static_cast<unsigned char>(input[i + 1]) << 8)));
    try {
      (void)tok->decode(ids);
    } catch (const stepverify::Error&) {}
  }
}
