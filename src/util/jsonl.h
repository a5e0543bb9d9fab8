// Internal: the one JSONL reader of the library, the CLI and the data readers.
// Header-only (a template over nlohmann's json and ordered_json).
#pragma once

#include <cstddef>
#include <istream>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "stepverify/errors.h"
#include "util/json.h"

namespace stepverify::detail {

/// What a bad line does: stop the read (a FormatError naming the source and
/// line) or get reported on `log` and skipped.
enum class BadLine { Throw, Skip };

/// Lines read by for_each_jsonl.
struct JsonlCounts {
  size_t good = 0;  ///< lines `each` accepted
  size_t bad = 0;   ///< lines reported and skipped (BadLine::Skip)
};

/// Calls `each(json, where)` for every non-blank line of `in`, `where` being
/// "SOURCE:LINE". A line that is not JSON ("SOURCE:LINE: not valid JSON:
/// ..."), or on which `each` throws InputError, FormatError or a json
/// exception ("SOURCE:LINE: message"), is thrown as a FormatError with
/// BadLine::Throw and written to `log` with " (line skipped)" with
/// BadLine::Skip. `each` may name `where` in its own messages (BadLine::Throw
/// passes a FormatError or InputError that starts with `where` on unchanged).
/// Throws IoError when reading fails.
template <class Json, class Each>
JsonlCounts for_each_jsonl(std::istream& in, const std::string& source, BadLine policy, Each each,
                           std::ostream* log = nullptr) {
  JsonlCounts counts;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = source + ":" + std::to_string(lineno);
    std::string problem;
    try {
      Json j;
      check_json_depth<FormatError>(line, where);
      try {
        j = Json::parse(line);
      } catch (const typename Json::exception& e) {
        throw FormatError(std::string("not valid JSON: ") + e.what());
      }
      each(j, where);
      ++counts.good;
      continue;
    } catch (const typename Json::exception& e) {
      problem = e.what();
    } catch (const FormatError& e) {
      problem = e.what();
    } catch (const InputError& e) {
      problem = e.what();
    }
    const bool named = problem.compare(0, where.size() + 1, where + ":") == 0;
    const std::string message = named ? problem : where + ": " + problem;
    if (policy == BadLine::Throw) throw FormatError(message);
    ++counts.bad;
    if (log) *log << message << " (line skipped)\n";
  }
  if (in.bad()) throw IoError(source + ": read failed");
  return counts;
}

}  // namespace stepverify::detail
