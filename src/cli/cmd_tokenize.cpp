// stepverify tokenize --model DIR --text T [--no-special-tokens]
// prints {"input_ids": [...], "pieces": [...]}.
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "stepverify/tokenizer.h"

namespace stepverify::cli {

Run add_tokenize(CLI::App& app) {
  app.description("Tokenize text as the checkpoint's Hugging Face tokenizer does; prints JSON");
  auto model = std::make_shared<std::string>();
  auto text = std::make_shared<std::string>();
  auto no_special = std::make_shared<bool>(false);
  app.add_option("--model", *model, "checkpoint directory")->required();
  app.add_option("--text", *text, "text to tokenize")->required();
  app.add_flag("--no-special-tokens", *no_special, "do not add BOS/EOS");
  return [=] {
    auto tok = load_tokenizer(*model);
    EncodeOptions opts;
    opts.add_special_tokens = !*no_special;
    auto enc = tok->encode_with_pieces(*text, opts);
    nlohmann::json out = {{"input_ids", enc.ids}, {"pieces", enc.pieces}};
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  };
}

}  // namespace stepverify::cli
