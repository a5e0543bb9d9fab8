// Internal: the CLI's model-loading flags (--dtype) and the load progress bar.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "stepverify/model.h"

namespace stepverify::cli {

/// Binds --dtype fp32|bf16|fp16 to `options.dtype` and gives `options` a
/// progress bar on stderr for loads that take over two seconds.
void add_load_flags(CLI::App& app, LoadOptions& options);

/// The dtype a --dtype value names (fp32, bf16, fp16); throws ConfigError.
c10::ScalarType dtype_from_flag(const std::string& name);
/// The --dtype values.
const std::map<std::string, c10::ScalarType>& dtype_flags();

}  // namespace stepverify::cli
