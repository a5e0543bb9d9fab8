// stepverify/errors.h: the one exception hierarchy of the library.
//
//   try {
//     auto model = stepverify::Model::load("models/llama");
//   } catch (const stepverify::FormatError& e) {
//     // "loading models/llama/model.safetensors: tensor model.norm.weight: byte span 12 != 4 * [64]"
//     std::cerr << e.what() << "\n";
//   }
//
// Every error thrown by stepverify derives from stepverify::Error (itself a
// std::runtime_error). Messages name the file, field, tensor, record or step at
// fault. Errors from libtorch and sentencepiece are translated at the boundary.
//
// Thread safety: exception objects are immutable values.
#pragma once

#include "stepverify/export.h"

#include <stdexcept>
#include <string>

namespace stepverify {

/// Base of every exception thrown by stepverify.
class STEPVERIFY_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A file could not be opened, mapped or read (missing, permissions, I/O).
class STEPVERIFY_API IoError : public Error {
 public:
  using Error::Error;
};

/// The bytes of a file are malformed: truncated, bad JSON, bad offsets, bad dtype.
class STEPVERIFY_API FormatError : public Error {
 public:
  using Error::Error;
};

/// A configuration (config.json, tokenizer_config.json, a spec) lacks a field
/// or holds a value the library does not support.
class STEPVERIFY_API ConfigError : public Error {
 public:
  using Error::Error;
};

/// A tensor is missing, unexpected, or has the wrong shape or dtype.
class STEPVERIFY_API ShapeError : public Error {
 public:
  using Error::Error;
};

/// A tokenizer file is corrupt or inconsistent, or a token id is out of range.
class STEPVERIFY_API TokenizerError : public Error {
 public:
  using Error::Error;
};

/// Input given at call time is invalid: empty, too long for the context or
/// cache, out of the vocabulary, inconsistent batch shapes.
class STEPVERIFY_API InputError : public Error {
 public:
  using Error::Error;
};

}  // namespace stepverify
