// Internal: reading whole files.
#pragma once

#include <filesystem>
#include <string>

namespace stepverify::detail {

/// The bytes of `path`; throws IoError naming it (and `what`, e.g. "config.json
/// is required") when it cannot be opened or read.
std::string read_file(const std::filesystem::path& path, const std::string& what = "");

}  // namespace stepverify::detail
