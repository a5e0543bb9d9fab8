// Internal: sentencepiece behind a C interface in its own shared object.
// Marked STEPVERIFY_API for the project's other targets (train, eval, the
// CLI, tests); not part of the installed API.
//
// Debian's libsentencepiece carries its own copy of protobuf-lite and exports
// it; linked into a process that also loads libtorch (which needs the system
// libprotobuf), the two copies interpose each other's symbols and the process
// crashes while loading. So stepverify never links sentencepiece directly: the
// shim library `libstepverify_spm.so` links it, and is loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) so each protobuf copy keeps to itself.
#pragma once

#include "stepverify/export.h"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern "C" {
typedef void (*svspm_piece_cb)(void* ctx, const char* piece, size_t len, int id);
typedef void (*svspm_string_cb)(void* ctx, const char* s, size_t len);
}

namespace stepverify::detail {

/// A loaded sentencepiece model (immutable; const methods are thread-safe).
class STEPVERIFY_API SpmModel {
 public:
  /// Loads a serialized ModelProto. Throws TokenizerError naming `where`.
  SpmModel(std::string_view serialized, const std::string& where);
  ~SpmModel();
  SpmModel(const SpmModel&) = delete;
  SpmModel& operator=(const SpmModel&) = delete;

  int size() const;
  int unk_id() const;
  /// The id of `piece`, or unk_id() when absent.
  int piece_to_id(std::string_view piece) const;
  std::string id_to_piece(int id) const;
  /// Encodes text to (piece, id) pairs.
  void encode(std::string_view text, std::vector<std::string>& pieces, std::vector<int64_t>& ids) const;
  /// Decodes pieces to text.
  std::string decode_pieces(const std::vector<std::string>& pieces) const;

 private:
  void* handle_ = nullptr;
};

/// Runs the sentencepiece trainer with key/value flags ("vocab_size", ...) on
/// `sentences`, read from memory; returns the serialized ModelProto. Throws
/// TokenizerError.
STEPVERIFY_API std::string spm_train(const std::vector<std::pair<std::string, std::string>>& flags,
                                     const std::vector<std::string>& sentences);

}  // namespace stepverify::detail
