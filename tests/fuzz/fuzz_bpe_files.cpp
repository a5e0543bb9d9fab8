// Byte-level BPE tokenizer files. The input is the files' contents separated
// by "\n#####\n": tokenizer.json, tokenizer_config.json (first byte even), or
// vocab.json, merges.txt, tokenizer_config.json (odd). An accepted tokenizer
// then encodes and decodes a fixed text; every id it returns names a piece.
#include <fstream>

#include "fuzz_target.h"
#include "stepverify/tokenizer.h"

namespace {

void write(const std::filesystem::path& p, std::string_view text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace

STEPVERIFY_FUZZ_TARGET(bpe_files) {
  namespace fs = std::filesystem;
  if (input.empty()) return;
  const bool split_files = (static_cast<unsigned char>(input[0]) & 1) != 0;
  input.remove_prefix(1);
  const fs::path dir = stepverify::fuzz::scratch_dir() / "bpe";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto [first, rest] = stepverify::fuzz::split2(input, "\n#####\n");
  if (split_files) {
    auto [second, third] = stepverify::fuzz::split2(rest, "\n#####\n");
    write(dir / "vocab.json", first);
    write(dir / "merges.txt", second);
    write(dir / "tokenizer_config.json", third);
  } else {
    write(dir / "tokenizer.json", first);
    write(dir / "tokenizer_config.json", rest);
  }
  auto tok = stepverify::load_bpe_tokenizer(dir);
  const auto ids = tok->encode("Step 1: 12 + 7 = 19. <|im_end|> caf\xc3\xa9");
  // Ids may exceed size() (HF len(): distinct pieces) when the vocabulary
  // skips ids; every id the encoder returns must still name a piece.
  for (auto id : ids) {
    if (id < 0) std::abort();
    try {
      (void)tok->id_to_piece(id);
    } catch (const stepverify::Error&) {
      std::abort();
    }
  }
  (void)tok->decode(ids);
}
