// stepverify: a thin command-line layer over the library.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "stepverify/errors.h"
#include "stepverify/runtime.h"
#include "stepverify/version.h"

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  CLI::App app{"stepverify: step-level verification of LLM reasoning"};
  app.set_version_flag("--version", std::string(stepverify::kVersion));
  app.require_subcommand(1);
  std::map<CLI::App*, stepverify::cli::Run> runs;
  auto add = [&](const char* name, auto adder) {
    CLI::App* sub = app.add_subcommand(name);
    runs[sub] = adder(*sub);
  };
  add("tokenize", stepverify::cli::add_tokenize);
  add("forward", stepverify::cli::add_forward);
  add("score", stepverify::cli::add_score);
  add("judge", stepverify::cli::add_judge);
  add("answers", stepverify::cli::add_answers);
  add("vote", stepverify::cli::add_vote);
  add("search", stepverify::cli::add_search);
  add("eval", stepverify::cli::add_eval);
  add("demo", stepverify::cli::add_demo);
  add("models", stepverify::cli::add_models);
  add("train", stepverify::cli::add_train);
  add("label", stepverify::cli::add_label);
  add("spec", stepverify::cli::add_spec);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runs)
      if (sub->parsed()) return run();
  } catch (const stepverify::Error& e) {
    std::cerr << "stepverify: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "stepverify: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
