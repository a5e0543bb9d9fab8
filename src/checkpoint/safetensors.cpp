// safetensors reading (validated, zero-copy), sharded checkpoints, and writing.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "stepverify/checkpoint.h"
#include "stepverify/errors.h"
#include "stepverify/limits.h"
#include "util/files.h"
#include "util/sequences.h"
#include "util/json.h"

namespace stepverify {
namespace {

using nlohmann::json;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

using detail::shape_str;

// numel * item size, or nullopt on overflow.
std::optional<uint64_t> span_bytes(const std::vector<int64_t>& shape, size_t item) {
  uint64_t n = item;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) return std::nullopt;
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

std::string_view dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  return parse(map_file(path));
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<const ByteSource> source) {
  const std::string& where = source->name();
  auto fail = [&](const std::string& msg) -> FormatError { return FormatError(where + ": " + msg); };
  const size_t size = source->size();
  if (size < 8)
    throw fail("truncated: " + std::to_string(size) + " bytes, a safetensors file starts with an 8-byte header length");
  const uint64_t header_len = detail::read_le(source->data(), 8);
  if (header_len > limits::kMaxSafetensorsHeaderBytes)
    throw fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
               std::to_string(limits::kMaxSafetensorsHeaderBytes) + " bytes (stepverify/limits.h)");
  if (header_len > size - 8)
    throw fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
               std::to_string(size) + " bytes)");
  const char* hbegin = reinterpret_cast<const char*>(source->data() + 8);
  detail::check_json_depth<FormatError>(std::string_view(hbegin, header_len), where + ": header");
  json header;
  try {
    header = json::parse(hbegin, hbegin + header_len);
  } catch (const json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");

  auto file = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  file->source_ = source;
  const std::byte* data = source->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail("__metadata__['" + k + "'] is not a string");
        file->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string at = "tensor " + name + ": ";
    if (!entry.is_object()) throw fail(at + "entry is not an object");
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) throw fail(at + "missing string 'dtype'");
    auto dtype = parse_dtype(dt->get<std::string>());
    if (!dtype) throw fail(at + "unknown dtype '" + dt->get<std::string>() + "'");
    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) throw fail(at + "missing array 'shape'");
    std::vector<int64_t> shape;
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw fail(at + "shape holds a value that is not a non-negative integer");
      shape.push_back(d.get<int64_t>());
    }
    auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      throw fail(at + "'data_offsets' must be two non-negative integers");
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end)
      throw fail(at + "data_offsets [" + std::to_string(begin) + "," + std::to_string(end) + "] are reversed");
    if (end > data_size)
      throw fail(at + "data_offsets end " + std::to_string(end) + " lies outside the data (" +
                 std::to_string(data_size) + " bytes)");
    auto expect = span_bytes(shape, dtype_size(*dtype));
    if (!expect || *expect != end - begin)
      throw fail(at + "byte span " + std::to_string(end - begin) + " does not match " +
                 std::string(dtype_name(*dtype)) + " " + shape_str(shape) +
                 (expect ? " (" + std::to_string(*expect) + " bytes)" : " (overflow)"));
    TensorView v;
    v.name = name;
    v.dtype = *dtype;
    v.shape = std::move(shape);
    v.data = data + begin;
    v.nbytes = end - begin;
    v.source = source;
    file->tensors_.emplace(name, std::move(v));
    spans.push_back({begin, end, name});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t cursor = 0;
  for (const auto& s : spans) {
    if (s.begin < cursor)
      throw fail("tensor " + s.name + " overlaps the tensor before it (offset " + std::to_string(s.begin) + " < " +
                 std::to_string(cursor) + ")");
    if (s.begin > cursor)
      throw fail("hole in the data before tensor " + s.name + " (bytes " + std::to_string(cursor) + ".." +
                 std::to_string(s.begin) + " unindexed)");
    cursor = s.end;
    file->names_.push_back(s.name);
  }
  if (cursor != data_size)
    throw fail("the data is " + std::to_string(data_size) + " bytes but tensors cover " + std::to_string(cursor) +
               " (trailing bytes)");
  return file;
}

bool SafetensorsFile::contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

TensorView SafetensorsFile::tensor(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw ShapeError(source_name() + ": required tensor " + std::string(name) + " is missing");
  return it->second;
}

std::shared_ptr<const Checkpoint> Checkpoint::from_files(std::vector<std::shared_ptr<const SafetensorsFile>> files,
                                                         std::string name) {
  auto ck = std::shared_ptr<Checkpoint>(new Checkpoint());
  ck->name_ = std::move(name);
  for (size_t i = 0; i < files.size(); ++i) {
    for (const auto& t : files[i]->names()) {
      auto [it, fresh] = ck->where_.emplace(t, i);
      if (!fresh)
        throw FormatError(files[i]->source_name() + ": tensor " + t + " also appears in " +
                          files[it->second]->source_name());
    }
  }
  ck->files_ = std::move(files);
  return ck;
}

std::shared_ptr<const Checkpoint> Checkpoint::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(path)) return from_files({SafetensorsFile::open(path)}, path.string());
  if (!fs::is_directory(path)) throw IoError(path.string() + ": no such checkpoint file or directory");
  const fs::path index = path / "model.safetensors.index.json";
  const fs::path single = path / "model.safetensors";
  if (fs::exists(index)) {
    const json j = detail::parse_json_file<FormatError>(index);
    auto wm = j.find("weight_map");
    if (!j.is_object() || wm == j.end() || !wm->is_object())
      throw FormatError(index.string() + ": missing object 'weight_map'");
    std::vector<std::string> shard_names;
    std::map<std::string, std::string> expected;
    for (const auto& [tensor, shard] : wm->items()) {
      if (!shard.is_string()) throw FormatError(index.string() + ": weight_map['" + tensor + "'] is not a file name");
      const std::string s = shard.get<std::string>();
      if (s.find('/') != std::string::npos || s == "..")
        throw FormatError(index.string() + ": weight_map['" + tensor + "'] names a file outside the directory: " + s);
      if (std::find(shard_names.begin(), shard_names.end(), s) == shard_names.end()) shard_names.push_back(s);
      expected[tensor] = s;
    }
    std::sort(shard_names.begin(), shard_names.end());
    std::vector<std::shared_ptr<const SafetensorsFile>> files;
    for (const auto& s : shard_names) files.push_back(SafetensorsFile::open(path / s));
    auto ck = from_files(std::move(files), path.string());
    for (const auto& [tensor, shard] : expected) {
      auto it = ck->where_.find(tensor);
      if (it == ck->where_.end())
        throw FormatError(index.string() + ": tensor " + tensor + " is listed in shard " + shard + " but absent there");
      if (fs::path(ck->files_[it->second]->source_name()).filename() != shard)
        throw FormatError(index.string() + ": tensor " + tensor + " is listed in shard " + shard + " but found in " +
                          ck->files_[it->second]->source_name());
    }
    return ck;
  }
  if (fs::exists(single)) return from_files({SafetensorsFile::open(single)}, path.string());
  throw IoError(path.string() + ": no model.safetensors or model.safetensors.index.json");
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : where_) out.push_back(n);
  return out;
}

bool Checkpoint::contains(std::string_view name) const { return where_.find(name) != where_.end(); }

TensorView Checkpoint::tensor(std::string_view name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw ShapeError(name_ + ": required tensor " + std::string(name) + " is missing");
  return files_[it->second]->tensor(name);
}

void save_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    auto n = span_bytes(t.shape, dtype_size(t.dtype));
    if (!n) throw InputError(path.string() + ": tensor " + t.name + " has an invalid shape");
    if (header.contains(t.name)) throw InputError(path.string() + ": tensor " + t.name + " given twice");
    header[t.name] = {
        {"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + *n}}};
    offset += *n;
    sizes.push_back(*n);
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  // Written beside the target and renamed over it: a failed write leaves the
  // old file whole, and a reader that maps the old file keeps its data.
  detail::AtomicFile file(path, /*binary=*/true);
  std::ostream& out = file.stream();
  uint64_t len = h.size();
  char lenbuf[8];
  for (int i = 0; i < 8; ++i) lenbuf[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out.write(lenbuf, 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (size_t i = 0; i < tensors.size(); ++i)
    out.write(static_cast<const char*>(tensors[i].data), static_cast<std::streamsize>(sizes[i]));
  file.commit();
}

}  // namespace stepverify
