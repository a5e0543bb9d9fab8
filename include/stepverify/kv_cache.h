// stepverify/kv_cache.h: the key/value cache of a decoder, with written semantics and cost.
//
//   auto cache = model->new_cache();               // batch 1
//   stepverify::ForwardInput in;  in.input_ids = prompt;  in.cache = &cache;
//   model->forward(in);                            // prefill
//   KVCache beam = cache.fork();                   // O(1): shares the prefix
//   in.input_ids = next;  in.cache = &beam;  model->forward(in);   // append to the fork only
//   cache.truncate(10);                            // O(1): drop positions >= 10
//
// Layout: per layer one K and one V buffer [batch, kv_heads, allocated, head_dim]
// in the model's dtype and device, plus a key-validity mask [batch, allocated]
// (0 for padding). Positions [0, length()) are valid in every row.
//
// Operations and their cost:
// - append (done by a forward with `cache` set): writes the new positions in
//   place. When the buffers are full they grow by doubling (one copy of the
//   prefix) up to `capacity`; past capacity the forward throws InputError and
//   the cache is left unchanged.
// - fork(): O(1). The new cache shares the buffers (copy-on-write). Positions
//   [0, length) are never written by anyone once shared. The first of the
//   sharers to append writes in place after its length; any other sharer whose
//   length is behind the buffers' high-water mark copies its own prefix
//   [0, length) into fresh buffers on its next append (one copy per fork).
// - truncate(n): O(1); positions >= n are forgotten (n <= length()).
// - reorder(rows): copies the prefix of the chosen batch rows into fresh
//   buffers (beam search: rows may repeat, and the batch size may change).
// - clear(): length 0, buffers kept.
// - gather(row, ranges): a new batch-1 cache holding chosen positions of one
//   row (copies them): how a tree forward's continuations become caches.
// - stack(caches): batch-1 caches as the rows of one new cache, right-padded
//   and masked (copies them): several prefixes in one forward.
//
// Thread safety: one KVCache object is used by one thread at a time. Caches
// that share buffers through fork() may be used by different threads at once
// (the copy-on-write claim is synchronised).
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace stepverify {

struct ModelConfig;
class TransformerImpl;
class AttentionImpl;

/// Session-time options of a cache.
struct STEPVERIFY_API KVCacheOptions {
  /// Most positions the cache may hold; 0 means the model's max_position_embeddings.
  int64_t capacity = 0;
  /// Positions allocated up front (grown by doubling up to capacity).
  int64_t initial_allocation = 256;
};

class STEPVERIFY_API KVCache {
 public:
  /// An empty cache for `batch` rows of a model with `config`.
  KVCache(const ModelConfig& config, int64_t batch, c10::Device device, c10::ScalarType dtype,
          const KVCacheOptions& options = {});
  KVCache(KVCache&&) noexcept;
  KVCache& operator=(KVCache&&) noexcept;
  ~KVCache();

  /// Cached positions per row.
  int64_t length() const { return length_; }
  /// Rows.
  int64_t batch() const;
  /// Most positions the cache may hold.
  int64_t capacity() const;
  /// Shares the prefix with a new cache; see the cost notes above.
  KVCache fork() const;
  /// Forgets positions >= n. Throws InputError when n > length().
  void truncate(int64_t n);
  /// Keeps rows `rows` (int64 indices into the batch, any length, repeats allowed).
  void reorder(const at::Tensor& rows);
  /// A new batch-1 cache holding the positions `ranges` (each {first, count})
  /// of row `row`, concatenated in order. Throws InputError on a range
  /// outside [0, length()) or a row outside the batch.
  KVCache gather(int64_t row, const std::vector<std::pair<int64_t, int64_t>>& ranges) const;
  /// A cache whose row i holds the positions of `caches[i]` (batch-1 caches of
  /// one model), right-padded to the longest with masked positions; its
  /// length is the longest. Throws InputError on an empty list, a cache of
  /// several rows, or caches of different geometry. `allocate`: positions to
  /// allocate (at least the longest; the capacity is raised to it if needed).
  static KVCache stack(const std::vector<const KVCache*>& caches, int64_t allocate = 0);
  /// Forgets everything.
  void clear() { length_ = 0; }
  /// The key-validity mask of the cached positions, [batch, length()] int64.
  at::Tensor mask() const;

 private:
  friend class TransformerImpl;
  friend class AttentionImpl;
  struct Storage;
  KVCache(std::shared_ptr<Storage> storage, int64_t length);

  // Used by the transformer during a forward of `new_tokens` tokens:
  // reserve() makes [length, length+new_tokens) writable by this cache (copy-
  // on-write, growth, capacity check) and writes the mask; write() stores one
  // layer's new K/V and returns the views [0, length+new_tokens); commit()
  // makes the new positions part of the cache.
  void reserve(int64_t new_tokens, const at::Tensor& new_mask);
  std::pair<at::Tensor, at::Tensor> write(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  // The pending positions of one layer's K and V [batch, kv_heads, pending,
  // head_dim], to be written in place, and the views write() returns.
  std::pair<at::Tensor, at::Tensor> slots(int64_t layer) const;
  std::pair<at::Tensor, at::Tensor> written(int64_t layer) const;
  at::Tensor pending_mask() const;  // [batch, length+pending]
  void commit();

  std::shared_ptr<Storage> storage_;
  int64_t length_ = 0;
  int64_t pending_ = 0;
};

}  // namespace stepverify
