// stepverify/checkpoint.h: validated, zero-copy reading of safetensors checkpoints.
//
//   auto ckpt = stepverify::Checkpoint::open("models/llama");   // model.safetensors or shards
//   stepverify::TensorView w = ckpt->tensor("model.norm.weight");
//   // w.dtype == DType::F32, w.shape == {64}, w.data points into the mapped file
//
// Bytes come through a `ByteSource` (a mapped file, or memory an application
// owns), so tests and embedded apps can load from bytes. Every byte is checked
// before use: header length, JSON, dtype, shape times item size equal to the
// byte span, offsets inside the data, no overlaps and no holes. A TensorView
// keeps its source alive, so views stay valid after the Checkpoint is gone.
//
// Thread safety: SafetensorsFile and Checkpoint are immutable after open();
// all const methods may be called concurrently. ByteSource implementations
// must allow concurrent const calls (map_file's and memory_source's do);
// TensorView is a plain value.
#pragma once

#include "stepverify/export.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stepverify {

/// Element types of safetensors.
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// Bytes per element of `dtype`.
STEPVERIFY_API size_t dtype_size(DType dtype);
/// The safetensors name of `dtype` ("F32", "BF16", ...).
STEPVERIFY_API std::string_view dtype_name(DType dtype);
/// Parses a safetensors dtype name; std::nullopt when unknown.
STEPVERIFY_API std::optional<DType> parse_dtype(std::string_view name);

/// Read-only bytes with a name for error messages.
class STEPVERIFY_API ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual const std::byte* data() const = 0;
  virtual size_t size() const = 0;
  /// Where the bytes come from (a path, or a name given by the application).
  virtual const std::string& name() const = 0;
  /// Whether the bytes are a private copy-on-write mapping of a file: they
  /// may be used in place by tensors (writes go to private pages, never to
  /// the file) and release() can drop them from memory.
  virtual bool mapped() const { return false; }
  /// A hint that [data, data + size) will not be read again soon: a mapped
  /// file drops those pages from the process's memory (they are read again
  /// from the file if needed). No effect on other sources.
  virtual void release(const std::byte* data, size_t size) const {}
};

/// Maps a file privately (copy-on-write: the file is never written). Throws
/// IoError naming the file.
STEPVERIFY_API std::shared_ptr<const ByteSource> map_file(const std::filesystem::path& path);
/// Wraps bytes the caller hands over (copied once into the source).
STEPVERIFY_API std::shared_ptr<const ByteSource> memory_source(std::string bytes, std::string name);

/// A tensor inside a ByteSource.
struct STEPVERIFY_API TensorView {
  std::string name;                          ///< tensor name, e.g. "model.norm.weight"
  DType dtype = DType::F32;                  ///< element type
  std::vector<int64_t> shape;                ///< dimensions (empty for a scalar)
  const std::byte* data = nullptr;           ///< first byte (not necessarily aligned)
  size_t nbytes = 0;                         ///< byte span = numel * dtype_size
  std::shared_ptr<const ByteSource> source;  ///< keeps the bytes alive
  int64_t numel() const;
};

/// One safetensors file, validated.
class STEPVERIFY_API SafetensorsFile {
 public:
  /// Maps and validates `path`. Throws IoError or FormatError naming the file.
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
  /// Validates bytes from any source. Throws FormatError naming the source.
  static std::shared_ptr<const SafetensorsFile> parse(std::shared_ptr<const ByteSource> source);

  /// Tensor names in file order (by offset).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(std::string_view name) const;
  /// The tensor `name`; throws ShapeError naming the file when absent.
  TensorView tensor(std::string_view name) const;
  /// The `__metadata__` string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& source_name() const { return source_->name(); }

 private:
  SafetensorsFile() = default;
  std::shared_ptr<const ByteSource> source_;
  std::vector<std::string> names_;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// All tensors of a checkpoint: one `model.safetensors`, a sharded set listed
/// by `model.safetensors.index.json`, or any single `.safetensors` file.
class STEPVERIFY_API Checkpoint {
 public:
  /// `path` is a directory or a .safetensors file. Throws IoError when no
  /// weights are found, FormatError on any malformed file or index.
  static std::shared_ptr<const Checkpoint> open(const std::filesystem::path& path);
  /// A checkpoint from already parsed files (e.g. from memory sources).
  static std::shared_ptr<const Checkpoint> from_files(std::vector<std::shared_ptr<const SafetensorsFile>> files,
                                                      std::string name);

  /// All tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  /// The tensor `name`; throws ShapeError "required tensor missing" naming the checkpoint.
  TensorView tensor(std::string_view name) const;
  /// Where the checkpoint was read from.
  const std::string& name() const { return name_; }

 private:
  Checkpoint() = default;
  std::string name_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, size_t, std::less<>> where_;  // tensor -> index in files_
};

/// A tensor to write: raw bytes the caller keeps alive during the call.
struct STEPVERIFY_API TensorData {
  std::string name;            ///< tensor name
  DType dtype = DType::F32;    ///< element type
  std::vector<int64_t> shape;  ///< dimensions
  const void* data = nullptr;  ///< numel * dtype_size bytes
};

/// Writes a safetensors file (header padded to 8 bytes, tensors in the given
/// order). Throws IoError when the file cannot be written.
STEPVERIFY_API void save_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                                     const std::map<std::string, std::string>& metadata = {});

}  // namespace stepverify
