// train_sentencepiece: the sentencepiece trainer (through the shim) and the
// Hugging Face tokenizer files.
#include "stepverify/train/tokenizer_trainer.h"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "stepverify/errors.h"
#include "tokenizer/spm_shim.h"
#include "util/files.h"

namespace stepverify {

void train_sentencepiece(const std::vector<std::string>& sentences, const std::filesystem::path& dir,
                         const SentencePieceTrainOptions& o) {
  if (sentences.empty()) throw InputError("train_sentencepiece: no sentences");
  for (size_t i = 0; i < sentences.size(); ++i)
    if (sentences[i].find('\n') != std::string::npos)
      throw InputError(fmt::format("train_sentencepiece: sentence {} contains a newline", i));
  std::filesystem::create_directories(dir);
  auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
  std::string symbols;
  for (const auto& s : o.user_defined_symbols) symbols += (symbols.empty() ? "" : ",") + s;
  std::vector<std::pair<std::string, std::string>> flags = {
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"split_digits", flag(o.split_digits)},
      {"byte_fallback", flag(o.byte_fallback)},
      {"add_dummy_prefix", flag(o.add_dummy_prefix)},
      {"remove_extra_whitespaces", "false"},
      {"normalization_rule_name", o.normalization},
      {"character_coverage", fmt::format("{}", o.character_coverage)},
      {"num_threads", std::to_string(o.num_threads)},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"hard_vocab_limit", "false"},
      {"minloglevel", o.quiet ? "2" : "0"}};
  if (!symbols.empty()) flags.emplace_back("user_defined_symbols", symbols);
  const std::string proto = detail::spm_train(flags, sentences);
  {
    std::ofstream f(dir / "tokenizer.model", std::ios::binary);
    f.write(proto.data(), static_cast<std::streamsize>(proto.size()));
    if (!f) throw IoError((dir / "tokenizer.model").string() + ": cannot write");
  }
  nlohmann::json token = {{"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  nlohmann::json cfg = {{"tokenizer_class", "LlamaTokenizer"},
                        {"add_bos_token", true},
                        {"add_eos_token", false},
                        {"bos_token", "<s>"},
                        {"eos_token", "</s>"},
                        {"unk_token", "<unk>"},
                        {"legacy", true},
                        {"clean_up_tokenization_spaces", false}};
  nlohmann::json added;
  for (auto [id, s] : {std::pair{0, "<unk>"}, std::pair{1, "<s>"}, std::pair{2, "</s>"}}) {
    auto t = token;
    t["content"] = s;
    t["special"] = true;
    added[std::to_string(id)] = t;
  }
  cfg["added_tokens_decoder"] = added;
  nlohmann::json map = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}};
  for (auto [name, j] : {std::pair{"tokenizer_config.json", &cfg}, std::pair{"special_tokens_map.json", &map}}) {
    std::ofstream f(dir / name);
    f << j->dump(2) << '\n';
    if (!f) throw IoError((dir / name).string() + ": cannot write");
  }
}

}  // namespace stepverify
