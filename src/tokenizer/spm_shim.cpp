// Loading libstepverify_spm.so in isolation and calling it.
#include "tokenizer/spm_shim.h"

#include "spm_paths.h"  // generated: where the shim is built and installed

#include <dlfcn.h>

#include <filesystem>
#include <mutex>

#include "stepverify/errors.h"

namespace stepverify::detail {
namespace {

struct Api {
  void* (*create)(const char*, size_t, char*, size_t);
  void (*destroy)(void*);
  int (*size)(void*);
  int (*unk_id)(void*);
  int (*piece_to_id)(void*, const char*, size_t);
  void (*id_to_piece)(void*, int, svspm_string_cb, void*);
  int (*encode)(void*, const char*, size_t, svspm_piece_cb, void*);
  void (*decode_pieces)(void*, const char* const*, const size_t*, size_t, svspm_string_cb, void*);
  int (*train)(const char* const*, const char* const*, size_t, const char* const*, const size_t*, size_t,
               svspm_string_cb, void*, char*, size_t);
};

// The shim sits next to libstepverify.so (build tree and install prefix alike).
// A static libstepverify is part of its program, wherever that lives: then the
// shim's place in the build tree, and in the install prefix, are tried next.
std::filesystem::path shim_path() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&shim_path), &info) && info.dli_fname)
    return std::filesystem::path(info.dli_fname).parent_path() / "libstepverify_spm.so";
  return "libstepverify_spm.so";
}

// The sanitizer runtimes refuse RTLD_DEEPBIND (google/sanitizers#611), and
// without it the two protobuf copies meet and crash. A sanitizer build (make
// sanitize, make tsan) loads the shim, built uninstrumented, into a link-map
// namespace of its own (dlmopen): it and libsentencepiece see none of the
// program's symbols, libtorch's protobuf included.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STEPVERIFY_SANITIZED_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define STEPVERIFY_SANITIZED_BUILD 1
#endif
#endif
void* open_shim(const char* path) {
#ifdef STEPVERIFY_SANITIZED_BUILD
  return ::dlmopen(LM_ID_NEWLM, path, RTLD_NOW | RTLD_LOCAL);
#else
  return ::dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
}

const Api& api() {
  static Api a{};
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    auto path = shim_path();
    void* lib = open_shim(path.c_str());
    for (const char* other : {STEPVERIFY_SPM_BUILD_PATH, STEPVERIFY_SPM_INSTALL_PATH, "libstepverify_spm.so"})
      if (!lib) lib = open_shim(other);
    if (!lib) {
      const char* e = ::dlerror();
      error = std::string("cannot load the sentencepiece shim ") + path.string() + ": " + (e ? e : "?");
      return;
    }
    auto sym = [&](const char* name) {
      void* p = ::dlsym(lib, name);
      if (!p && error.empty()) error = std::string("sentencepiece shim lacks ") + name;
      return p;
    };
    a.create = reinterpret_cast<decltype(a.create)>(sym("svspm_create"));
    a.destroy = reinterpret_cast<decltype(a.destroy)>(sym("svspm_destroy"));
    a.size = reinterpret_cast<decltype(a.size)>(sym("svspm_size"));
    a.unk_id = reinterpret_cast<decltype(a.unk_id)>(sym("svspm_unk_id"));
    a.piece_to_id = reinterpret_cast<decltype(a.piece_to_id)>(sym("svspm_piece_to_id"));
    a.id_to_piece = reinterpret_cast<decltype(a.id_to_piece)>(sym("svspm_id_to_piece"));
    a.encode = reinterpret_cast<decltype(a.encode)>(sym("svspm_encode"));
    a.decode_pieces = reinterpret_cast<decltype(a.decode_pieces)>(sym("svspm_decode_pieces"));
    a.train = reinterpret_cast<decltype(a.train)>(sym("svspm_train"));
  });
  if (!error.empty()) throw Error(error);
  return a;
}

void append_string(void* ctx, const char* s, size_t len) { static_cast<std::string*>(ctx)->assign(s, len); }

struct EncodeSink {
  std::vector<std::string>* pieces;
  std::vector<int64_t>* ids;
};

void append_piece(void* ctx, const char* piece, size_t len, int id) {
  auto* sink = static_cast<EncodeSink*>(ctx);
  sink->pieces->emplace_back(piece, len);
  sink->ids->push_back(id);
}

}  // namespace

SpmModel::SpmModel(std::string_view serialized, const std::string& where) {
  char err[512] = {0};
  handle_ = api().create(serialized.data(), serialized.size(), err, sizeof(err));
  if (!handle_) throw TokenizerError(where + ": not a valid sentencepiece model: " + err);
}

SpmModel::~SpmModel() {
  if (handle_) api().destroy(handle_);
}

int SpmModel::size() const { return api().size(handle_); }
int SpmModel::unk_id() const { return api().unk_id(handle_); }
int SpmModel::piece_to_id(std::string_view piece) const {
  return api().piece_to_id(handle_, piece.data(), piece.size());
}

std::string SpmModel::id_to_piece(int id) const {
  std::string out;
  api().id_to_piece(handle_, id, append_string, &out);
  return out;
}

void SpmModel::encode(std::string_view text, std::vector<std::string>& pieces, std::vector<int64_t>& ids) const {
  EncodeSink sink{&pieces, &ids};
  api().encode(handle_, text.data(), text.size(), append_piece, &sink);
}

std::string SpmModel::decode_pieces(const std::vector<std::string>& pieces) const {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& p : pieces) {
    ptrs.push_back(p.data());
    lens.push_back(p.size());
  }
  std::string out;
  api().decode_pieces(handle_, ptrs.data(), lens.data(), pieces.size(), append_string, &out);
  return out;
}

std::string spm_train(const std::vector<std::pair<std::string, std::string>>& flags,
                      const std::vector<std::string>& sentences) {
  std::vector<const char*> keys, values, texts;
  for (const auto& [k, v] : flags) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  std::vector<size_t> lens;
  for (const auto& s : sentences) {
    texts.push_back(s.data());
    lens.push_back(s.size());
  }
  char err[1024] = {0};
  std::string proto;
  if (api().train(keys.data(), values.data(), flags.size(), texts.data(), lens.data(), sentences.size(), append_string,
                  &proto, err, sizeof(err)) != 0)
    throw TokenizerError(std::string("sentencepiece training failed: ") + err);
  return proto;
}

}  // namespace stepverify::detail
