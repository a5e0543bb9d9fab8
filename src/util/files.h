// Internal: reading whole files.
// Marked STEPVERIFY_API for the project's other targets (train, eval, the
// CLI, tests); not part of the installed API.
#pragma once

#include "stepverify/export.h"

#include <filesystem>
#include <string>

namespace stepverify::detail {

/// The bytes of `path`; throws IoError naming it (and `what`, e.g. "config.json
/// is required") when it cannot be opened or read.
STEPVERIFY_API std::string read_file(const std::filesystem::path& path, const std::string& what = "");

}  // namespace stepverify::detail
