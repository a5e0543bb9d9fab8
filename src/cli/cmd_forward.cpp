// stepverify forward --model DIR --text T [--no-special-tokens] --out FILE.safetensors
// writes input_ids I64 [T], hidden F32 [T,H] (last layer after the final
// norm) and logits F32 [T,V] (when the checkpoint has an LM head).
#include <iostream>

#include <torch/torch.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/checkpoint.h"
#include "stepverify/errors.h"
#include "stepverify/model.h"

namespace stepverify::cli {

Run add_forward(CLI::App& app) {
  app.description("Run the backbone on text and save input_ids, hidden and logits as safetensors");
  auto model_dir = std::make_shared<std::string>();
  auto text = std::make_shared<std::string>();
  auto out_path = std::make_shared<std::string>();
  auto no_special = std::make_shared<bool>(false);
  app.add_option("--model", *model_dir, "checkpoint directory")->required();
  app.add_option("--text", *text, "input text")->required();
  app.add_option("--out", *out_path, "output .safetensors file")->required();
  app.add_flag("--no-special-tokens", *no_special, "do not add BOS/EOS");
  auto load = std::make_shared<LoadOptions>();
  add_load_flags(app, *load);
  return [=] {
    auto model = Model::load(*model_dir, *load);
    EncodeOptions opts;
    opts.add_special_tokens = !*no_special;
    auto ids = model->tokenizer().encode(*text, opts);
    if (ids.empty()) throw InputError("forward: the text encodes to no tokens");
    ForwardInput in;
    in.input_ids = to_batch(ids);
    const auto out = model->forward(in);
    auto hidden = out.hidden[0].to(torch::kFloat).contiguous().cpu();
    at::Tensor logits;
    if (model->has_lm_head()) logits = model->logits(out.hidden)[0].contiguous().cpu();
    auto ids_t = torch::tensor(ids, torch::kLong);
    std::vector<TensorData> tensors = {
        {"input_ids", DType::I64, {static_cast<int64_t>(ids.size())}, ids_t.data_ptr()},
        {"hidden", DType::F32, {hidden.size(0), hidden.size(1)}, hidden.data_ptr()},
    };
    if (logits.defined())
      tensors.push_back({"logits", DType::F32, {logits.size(0), logits.size(1)}, logits.data_ptr()});
    else
      std::cerr << "stepverify forward: " << model->config().architecture << " has no LM head; logits not written\n";
    save_safetensors(*out_path, tensors, {{"format", "pt"}});
    return 0;
  };
}

}  // namespace stepverify::cli
