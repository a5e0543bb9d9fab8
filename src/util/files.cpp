#include "util/files.h"

#include <fstream>
#include <sstream>

#include "stepverify/errors.h"

namespace stepverify::detail {

std::string read_file(const std::filesystem::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string() + ": cannot open" + (what.empty() ? "" : " (" + what + ")"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(path.string() + ": read failed");
  return ss.str();
}

}  // namespace stepverify::detail
