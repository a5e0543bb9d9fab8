// Internal: parsing a JSON document with an error that names its source.
// Header-only (a template over the error type and nlohmann's json types).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "stepverify/limits.h"
#include "util/files.h"

namespace stepverify::detail {

/// Throws `Error` ("SOURCE: JSON nested deeper than ...") when arrays and
/// objects in `text` nest deeper than limits::kMaxJsonDepth (strings are
/// skipped; the text need not be valid JSON).
template <class Error>
void check_json_depth(std::string_view text, const std::string& source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limits::kMaxJsonDepth)
        throw Error(source + ": JSON nested deeper than " + std::to_string(limits::kMaxJsonDepth) +
                    " levels (stepverify/limits.h)");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

/// `text` parsed; throws `Error` ("SOURCE: not valid JSON: ...") when it is
/// not JSON or nests too deep (check_json_depth).
template <class Error, class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& source) {
  check_json_depth<Error>(text, source);
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const typename Json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
}

/// The JSON file `path` (at most limits::kMaxConfigFileBytes); IoError when
/// it cannot be read, FormatError when too large, `Error` when it is not JSON.
template <class Error, class Json = nlohmann::json>
Json parse_json_file(const std::filesystem::path& path) {
  return parse_json<Error, Json>(read_file(path, "", limits::kMaxConfigFileBytes), path.string());
}

}  // namespace stepverify::detail
