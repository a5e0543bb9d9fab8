// Internal: small helpers on sequences shared across the library.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

namespace stepverify::detail {

/// "[2,3]" for dims {2, 3}; any range of integers.
template <typename Dims>
std::string shape_str(const Dims& dims) {
  std::string out = "[";
  bool first = true;
  for (auto d : dims) {
    out += (first ? "" : ",") + std::to_string(d);
    first = false;
  }
  return out + "]";
}

/// The unsigned little-endian integer in the `n` (at most 8) bytes at `p`
/// (safetensors header lengths, zip and pickle fields).
inline uint64_t read_le(const void* p, int n) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

/// True when `s` is empty or only whitespace.
inline bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

/// parts[0] + sep + parts[1] + ...
inline std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

/// 0, 1, ..., n - 1.
inline std::vector<size_t> indices(size_t n) {
  std::vector<size_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = i;
  return out;
}

/// Length of the longest common prefix of `a` and `b`, at most `limit`.
inline int64_t common_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t limit = INT64_MAX) {
  const int64_t n = std::min({static_cast<int64_t>(a.size()), static_cast<int64_t>(b.size()), limit});
  int64_t k = 0;
  while (k < n && a[k] == b[k]) ++k;
  return k;
}

}  // namespace stepverify::detail
