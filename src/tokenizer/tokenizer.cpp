// load_tokenizer: picks the implementation from the files a checkpoint ships.
#include "stepverify/errors.h"
#include "stepverify/tokenizer.h"

namespace stepverify {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir, const TokenizerOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw IoError(dir.string() + ": not a directory");
  // A sentencepiece model is authoritative when present: Llama/Mistral fast
  // tokenizer.json files describe the same model less exactly.
  if (fs::exists(dir / "tokenizer.model")) return load_sentencepiece_tokenizer(dir, options);
  if (fs::exists(dir / "tokenizer.json") || (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")))
    return load_bpe_tokenizer(dir, options);
  throw IoError(dir.string() + ": no tokenizer files (tokenizer.model, tokenizer.json, or vocab.json + merges.txt)");
}

}  // namespace stepverify
