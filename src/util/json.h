// Internal: parsing a JSON document with an error that names its source.
// Header-only (a template over the error type and nlohmann's json types).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/files.h"

namespace stepverify::detail {

/// `text` parsed; throws `Error` ("SOURCE: not valid JSON: ...") when it is not JSON.
template <class Error, class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const typename Json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
}

/// The JSON file `path`; IoError when it cannot be read, `Error` when it is not JSON.
template <class Error, class Json = nlohmann::json>
Json parse_json_file(const std::filesystem::path& path) {
  return parse_json<Error, Json>(read_file(path), path.string());
}

}  // namespace stepverify::detail
