// Internal: flags several commands share, each bound to a field of the
// library's options (--dtype and the load progress bar, --aggregate).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "stepverify/aggregate.h"
#include "stepverify/distributed.h"
#include "stepverify/generative.h"
#include "stepverify/model.h"
#include "stepverify/verifier.h"
#include "util/files.h"
#include "util/jsonl.h"

namespace stepverify::cli {

/// Binds --dtype fp32|bf16|fp16 to `options.dtype` and gives `options` a
/// progress bar on stderr for loads that take over two seconds.
void add_load_flags(CLI::App& app, LoadOptions& options);

/// Binds the option `name` (e.g. "--aggregate") to `target`, read by
/// parse_aggregate; the help names the values and `target`'s default.
CLI::Option* add_aggregate_flag(CLI::App& app, const std::string& name, Aggregate& target, const std::string& help);

/// The dtype a --dtype value names (fp32, bf16, fp16); throws ConfigError.
c10::ScalarType dtype_from_flag(const std::string& name);
/// The --dtype values.
const std::map<std::string, c10::ScalarType>& dtype_flags();

/// The files of a JSONL-in, JSONL-out command.
struct JsonlFiles {
  std::string input;    ///< --input
  std::string output;   ///< --output
  bool strict = false;  ///< --strict: the first bad line is fatal (else reported and skipped)
};

/// Binds --input and --output (both required) and --strict.
void add_jsonl_flags(CLI::App& app, JsonlFiles& files, const std::string& input_help = "input JSONL",
                     const std::string& output_help = "output JSONL");
/// The input, open (IoError naming it when it cannot be).
std::ifstream open_input(const JsonlFiles& files);
/// The output, written beside its destination and renamed over it by
/// commit() (an interrupted run leaves no partial file under its name).
/// Throws InputError when the output is the input.
detail::AtomicFile open_output(const JsonlFiles& files);
/// What a bad line does: reported and skipped, or fatal with --strict.
detail::BadLine bad_lines(const JsonlFiles& files);
/// Reports "N of M lines could not be <what>" when lines were skipped; the
/// exit status: 1 when lines were read and every one failed, else 0.
int jsonl_status(const detail::JsonlCounts& counts, const std::string& what);

/// Binds --chains, --max-tokens, --temperature, --top-k, --top-p and --seed
/// to `options` (the help prefixed with `when`, e.g. "with --generative: ");
/// returns the options, so a command can tie them to another flag.
std::vector<CLI::Option*> add_generative_flags(CLI::App& app, GenerativeOptions& options, const std::string& when = "");
/// The options of item i of a generative job: seed + (i << 20), so an
/// item's chains depend on neither the other items nor the world size.
GenerativeOptions item_options(const GenerativeOptions& options, size_t i);

/// The question and steps of one input line {"question" (or "problem"):
/// str, "steps": [str]}; InputError naming the field at fault.
Solution parse_solution(const nlohmann::ordered_json& line);

/// The flags of a command sharded over processes: --world-size, --rank,
/// --master ADDR:PORT, --store-file, --dist-timeout. resolve() starts from the
/// environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and
/// applies the flags given.
struct DistributedFlags {
  int world_size = -1, rank = -1;
  std::string master, store_file, interface;
  double timeout = -1;
  DistributedOptions resolve() const;
};
void add_distributed_flags(CLI::App& app, DistributedFlags& flags);

/// Runs `work(c)` for the chunks c of `chunks` this rank owns (c % world ==
/// rank) and returns, on rank 0, every chunk's output in chunk order (on
/// other ranks: empty strings); a world of 1 runs every chunk here.
std::vector<std::string> run_sharded(ProcessGroup& group, size_t chunks,
                                     const std::function<std::string(size_t)>& work);

}  // namespace stepverify::cli
