// The body of libstepverify_spm.so: a C interface over SentencePieceProcessor.
// Built as its own shared object; see spm_shim.h for why.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/spm_shim.h"

#define SVSPM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
void copy_error(const std::string& msg, char* err, size_t errlen) {
  if (!err || errlen == 0) return;
  std::strncpy(err, msg.c_str(), errlen - 1);
  err[errlen - 1] = '\0';
}
}  // namespace

SVSPM_EXPORT void* svspm_create(const char* data, size_t len, char* err, size_t errlen) {
  try {
    auto* sp = new sentencepiece::SentencePieceProcessor();
    auto status = sp->LoadFromSerializedProto(std::string(data, len));
    if (!status.ok()) {
      copy_error(status.ToString(), err, errlen);
      delete sp;
      return nullptr;
    }
    return sp;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, errlen);
    return nullptr;
  }
}

SVSPM_EXPORT void svspm_destroy(void* h) { delete static_cast<sentencepiece::SentencePieceProcessor*>(h); }

SVSPM_EXPORT int svspm_size(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize(); }

SVSPM_EXPORT int svspm_unk_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->unk_id(); }

SVSPM_EXPORT int svspm_piece_to_id(void* h, const char* piece, size_t len) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h)->PieceToId(std::string(piece, len));
}

SVSPM_EXPORT void svspm_id_to_piece(void* h, int id, svspm_string_cb cb, void* ctx) {
  const std::string& p = static_cast<sentencepiece::SentencePieceProcessor*>(h)->IdToPiece(id);
  cb(ctx, p.data(), p.size());
}

SVSPM_EXPORT int svspm_encode(void* h, const char* text, size_t len, svspm_piece_cb cb, void* ctx) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  const auto spt = sp->EncodeAsImmutableProto(std::string(text, len));
  for (size_t i = 0; i < spt.pieces_size(); ++i) {
    const auto piece = spt.pieces(static_cast<int>(i));
    cb(ctx, piece.piece().data(), piece.piece().size(), static_cast<int>(piece.id()));
  }
  return 0;
}

SVSPM_EXPORT void svspm_decode_pieces(void* h, const char* const* pieces, const size_t* lens, size_t n,
                                      svspm_string_cb cb, void* ctx) {
  std::vector<std::string> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) v.emplace_back(pieces[i], lens[i]);
  const std::string out = static_cast<sentencepiece::SentencePieceProcessor*>(h)->DecodePieces(v);
  cb(ctx, out.data(), out.size());
}

namespace {
// The training sentences, read from the caller's memory: no corpus file is
// written, so nothing about the run (a temporary path) reaches the model.
class ArraySentences : public sentencepiece::SentenceIterator {
 public:
  ArraySentences(const char* const* s, const size_t* lens, size_t n) : s_(s), lens_(lens), n_(n) { load(); }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }  // ok

 private:
  void load() {
    if (i_ < n_) value_.assign(s_[i_], lens_[i_]);
  }
  const char* const* s_;
  const size_t* lens_;
  size_t n_;
  size_t i_ = 0;
  std::string value_;
};
}  // namespace

// Trains a model from key/value flags (sentencepiece's kwargs form, so values
// may hold any character) over `n_sentences` sentences given in memory; the
// serialized ModelProto goes to `cb`. Returns 0, or -1 with the error in `err`.
SVSPM_EXPORT int svspm_train(const char* const* keys, const char* const* values, size_t n, const char* const* sentences,
                             const size_t* sentence_lens, size_t n_sentences, svspm_string_cb cb, void* ctx, char* err,
                             size_t errlen) {
  try {
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < n; ++i) kwargs[keys[i]] = values[i];
    std::string proto;
    ArraySentences it(sentences, sentence_lens, n_sentences);
    auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, &proto);
    if (!status.ok()) {
      copy_error(status.ToString(), err, errlen);
      return -1;
    }
    cb(ctx, proto.data(), proto.size());
    return 0;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, errlen);
    return -1;
  }
}
