#include "util/files.h"

#include <fstream>
#include <sstream>

#include "stepverify/errors.h"

namespace stepverify::detail {

std::string read_file(const std::filesystem::path& path, const std::string& what, uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string() + ": cannot open" + (what.empty() ? "" : " (" + what + ")"));
  if (max_bytes > 0) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > max_bytes)
      throw FormatError(path.string() + ": " + std::to_string(size) + " bytes, more than the " +
                        std::to_string(max_bytes) + " this file may hold (stepverify/limits.h)");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(path.string() + ": read failed");
  return ss.str();
}

AtomicFile::AtomicFile(std::filesystem::path path, bool binary) : path_(std::move(path)) {
  tmp_ = path_;
  tmp_ += ".partial";
  out_.open(tmp_, binary ? std::ios::binary | std::ios::trunc : std::ios::trunc);
  if (!out_) throw IoError(path_.string() + ": cannot open for writing (" + tmp_.string() + ")");
}

AtomicFile::~AtomicFile() {
  if (done_) return;
  out_.close();
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
}

void AtomicFile::commit() {
  out_.flush();
  out_.close();
  std::error_code ec;
  if (!out_) throw IoError(path_.string() + ": write failed");
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) throw IoError(path_.string() + ": cannot replace (" + ec.message() + ")");
  done_ = true;
}

void write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  AtomicFile f(path, true);
  f.stream() << text;
  f.commit();
}

void check_output_not_input(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs) {
  std::error_code ec;
  for (const auto& in : inputs)
    if (std::filesystem::equivalent(output, in, ec) && !ec)
      throw InputError("the output " + output.string() + " is the input " + in.string() +
                       "; write to another file (it would be overwritten while read)");
}

void check_output_dir(const std::filesystem::path& dir, const std::vector<std::filesystem::path>& inputs) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    throw InputError("the output directory " + dir.string() + " is an existing file; name a directory");
  for (const auto& in : inputs)
    if (std::filesystem::equivalent(dir, in, ec) && !ec)
      throw InputError("the output directory " + dir.string() + " is the input " + in.string() +
                       "; write to another directory (the input would be overwritten)");
}

void copy_file_atomic(const std::filesystem::path& from, const std::filesystem::path& to) {
  write_file_atomic(to, read_file(from));
}

}  // namespace stepverify::detail
