// Internal: the subcommands of the `stepverify` CLI. Each registers its
// options on the app and returns the function that runs it.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace stepverify::cli {

using Run = std::function<int()>;

/// Writes a report file (and says so on stderr); throws IoError naming it.
void write_file(const std::string& path, const std::string& text);

Run add_tokenize(CLI::App& app);
Run add_forward(CLI::App& app);
Run add_demo(CLI::App& app);
Run add_models(CLI::App& app);
Run add_train(CLI::App& app);
Run add_label(CLI::App& app);
Run add_score(CLI::App& app);
Run add_eval(CLI::App& app);
/// `eval bon`, registered by add_eval on its `eval` app.
Run add_eval_bon(CLI::App& eval);
Run add_answers(CLI::App& app);
Run add_vote(CLI::App& app);
Run add_search(CLI::App& app);
Run add_spec(CLI::App& app);
Run add_judge(CLI::App& app);

}  // namespace stepverify::cli
