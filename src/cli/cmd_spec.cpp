// stepverify spec --from-vllm '<pooler config JSON>' --model DIR [--output FILE]
// stepverify spec --preset NAME [--output FILE]
//   Prints (or writes) a verifier spec, the stepverify.json form: the spec
//   equivalent to a vLLM pooler config for a checkpoint
//   (VerifierSpec::from_vllm_pooler), or a built-in preset.
#include <iostream>

#include "cli/commands.h"
#include "stepverify/errors.h"
#include "stepverify/verifier_spec.h"

namespace stepverify::cli {

Run add_spec(CLI::App& app) {
  app.description("Print a verifier spec (stepverify.json): the equivalent of a vLLM pooler config, or a preset");
  auto vllm = std::make_shared<std::string>(), model = std::make_shared<std::string>(),
       preset = std::make_shared<std::string>(), output = std::make_shared<std::string>();
  auto* from = app.add_option("--from-vllm", *vllm,
                              "vLLM pooler config JSON (pooling_type STEP/LAST/ALL, step_tag_id, "
                              "returned_token_ids, softmax), as given to --override-pooler-config");
  app.add_option("--model", *model, "checkpoint directory the pooler config describes (with --from-vllm)");
  auto* pre = app.add_option("--preset", *preset, "a built-in preset's name");
  from->excludes(pre);
  app.add_option("--output", *output, "write the spec to this file instead of stdout");
  return [=] {
    VerifierSpec spec;
    if (!vllm->empty()) {
      if (model->empty()) throw InputError("--from-vllm needs --model DIR (the checkpoint it describes)");
      spec = VerifierSpec::from_vllm_pooler(*vllm, *model);
    } else if (!preset->empty()) {
      spec = VerifierSpec::preset(*preset);
    } else {
      throw InputError("give --from-vllm JSON --model DIR, or --preset NAME");
    }
    const std::string text = spec.to_json() + "\n";
    if (output->empty())
      std::cout << text;
    else
      write_file(*output, text);
    return 0;
  };
}

}  // namespace stepverify::cli
