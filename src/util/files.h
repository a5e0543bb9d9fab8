// Internal: reading whole files.
// Marked STEPVERIFY_API for the project's other targets (train, eval, the
// CLI, tests); not part of the installed API.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace stepverify::detail {

/// The bytes of `path`; throws IoError naming it (and `what`, e.g. "config.json
/// is required") when it cannot be opened or read, FormatError when it holds
/// more than `max_bytes` (0: no limit; see stepverify/limits.h).
STEPVERIFY_API std::string read_file(const std::filesystem::path& path, const std::string& what = "",
                                     uint64_t max_bytes = 0);

/// A file written beside its destination and renamed over it by commit():
/// until then (an error, a kill, an exception) nothing at `path` changes, so
/// an interrupted run never leaves a truncated file in place of a good one.
/// Destroyed uncommitted, it removes its temporary. One thread.
class STEPVERIFY_API AtomicFile {
 public:
  /// Opens PATH.partial (the same folder). Throws IoError naming `path`.
  explicit AtomicFile(std::filesystem::path path, bool binary = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  std::ostream& stream() { return out_; }
  const std::filesystem::path& path() const { return path_; }
  /// Flushes, checks the writes and renames the temporary over `path`.
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  std::ofstream out_;
  bool done_ = false;
};

/// Writes `text` to `path` through an AtomicFile.
STEPVERIFY_API void write_file_atomic(const std::filesystem::path& path, const std::string& text);

/// Throws InputError when `output` is the same file as one of `inputs` (the
/// output would overwrite what is being read).
STEPVERIFY_API void check_output_not_input(const std::filesystem::path& output,
                                           const std::vector<std::filesystem::path>& inputs);

/// Throws InputError before any work is done when the output directory
/// `dir` exists and is not a directory, or is the same folder as one of
/// `inputs` (a checkpoint written over the one it was read from).
STEPVERIFY_API void check_output_dir(const std::filesystem::path& dir,
                                     const std::vector<std::filesystem::path>& inputs);

/// Copies `from` to `to` through an AtomicFile.
STEPVERIFY_API void copy_file_atomic(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace stepverify::detail
