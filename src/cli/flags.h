// Internal: flags several commands share, each bound to a field of the
// library's options (--dtype and the load progress bar, --aggregate).
#pragma once

#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "stepverify/aggregate.h"
#include "stepverify/model.h"

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

}  // namespace stepverify::cli
