#include "stepverify/kv_cache.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "stepverify/config.h"
#include "stepverify/errors.h"

namespace stepverify {

struct KVCache::Storage {
  int64_t layers = 0, batch = 0, kv_heads = 0, head_dim = 0;
  int64_t allocated = 0, capacity = 0;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  std::vector<at::Tensor> k, v;  // [batch, kv_heads, allocated, head_dim]
  at::Tensor mask;               // [batch, allocated] int64
  std::mutex mu;
  int64_t high_water = 0;  // longest prefix any sharer has claimed

  // Copies positions [from, from + count) of row `src_row` of `src` to
  // [at, at + count) of row `row` here: keys, values and mask.
  void copy_positions(int64_t row, int64_t at, const Storage& src, int64_t src_row, int64_t from, int64_t count) {
    if (count == 0) return;
    for (int64_t l = 0; l < layers; ++l) {
      k[l][row].narrow(1, at, count).copy_(src.k[l][src_row].narrow(1, from, count));
      v[l][row].narrow(1, at, count).copy_(src.v[l][src_row].narrow(1, from, count));
    }
    mask[row].narrow(0, at, count).copy_(src.mask[src_row].narrow(0, from, count));
  }

  // Fresh buffers of the same geometry with `allocated` positions and `batch` rows.
  std::shared_ptr<Storage> like(int64_t new_batch, int64_t new_allocated) const {
    auto s = std::make_shared<Storage>();
    s->layers = layers;
    s->batch = new_batch;
    s->kv_heads = kv_heads;
    s->head_dim = head_dim;
    s->allocated = new_allocated;
    s->capacity = capacity;
    s->device = device;
    s->dtype = dtype;
    auto opts = at::TensorOptions().dtype(dtype).device(device);
    for (int64_t l = 0; l < layers; ++l) {
      s->k.push_back(at::empty({new_batch, kv_heads, new_allocated, head_dim}, opts));
      s->v.push_back(at::empty({new_batch, kv_heads, new_allocated, head_dim}, opts));
    }
    s->mask = at::zeros({new_batch, new_allocated}, at::TensorOptions().dtype(at::kLong).device(device));
    return s;
  }
};

KVCache::KVCache(const ModelConfig& config, int64_t batch, c10::Device device, c10::ScalarType dtype,
                 const KVCacheOptions& options) {
  if (batch <= 0) throw InputError("KVCache: batch must be positive, got " + std::to_string(batch));
  Storage proto;
  proto.layers = config.num_hidden_layers;
  proto.kv_heads = config.num_key_value_heads;
  proto.head_dim = config.head_dim;
  proto.capacity = options.capacity > 0 ? options.capacity : config.max_position_embeddings;
  proto.device = device;
  proto.dtype = dtype;
  const int64_t initial = std::clamp<int64_t>(options.initial_allocation, 1, proto.capacity);
  storage_ = proto.like(batch, initial);
}

KVCache::KVCache(std::shared_ptr<Storage> storage, int64_t length) : storage_(std::move(storage)), length_(length) {}
KVCache::KVCache(KVCache&&) noexcept = default;
KVCache& KVCache::operator=(KVCache&&) noexcept = default;
KVCache::~KVCache() = default;

int64_t KVCache::batch() const { return storage_->batch; }
int64_t KVCache::capacity() const { return storage_->capacity; }

KVCache KVCache::fork() const { return KVCache(storage_, length_); }

void KVCache::truncate(int64_t n) {
  if (n < 0 || n > length_)
    throw InputError("KVCache::truncate(" + std::to_string(n) + "): the cache holds " + std::to_string(length_) +
                     " positions");
  length_ = n;
}

void KVCache::reorder(const at::Tensor& rows) {
  if (rows.dim() != 1 || rows.numel() == 0)
    throw InputError("KVCache::reorder: rows must be a non-empty 1-D index tensor");
  auto idx = rows.to(storage_->device, at::kLong);
  const int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
  if (lo < 0 || hi >= storage_->batch)
    throw InputError("KVCache::reorder: row index " + std::to_string(lo < 0 ? lo : hi) + " outside the batch of " +
                     std::to_string(storage_->batch));
  torch::NoGradGuard no_grad;
  auto fresh = storage_->like(idx.size(0), storage_->allocated);
  for (int64_t l = 0; l < storage_->layers; ++l) {
    fresh->k[l].narrow(2, 0, length_).copy_(storage_->k[l].narrow(2, 0, length_).index_select(0, idx));
    fresh->v[l].narrow(2, 0, length_).copy_(storage_->v[l].narrow(2, 0, length_).index_select(0, idx));
  }
  fresh->mask.narrow(1, 0, length_).copy_(storage_->mask.narrow(1, 0, length_).index_select(0, idx));
  fresh->high_water = length_;
  storage_ = std::move(fresh);
}

KVCache KVCache::gather(int64_t row, const std::vector<std::pair<int64_t, int64_t>>& ranges) const {
  if (row < 0 || row >= storage_->batch)
    throw InputError("KVCache::gather: row " + std::to_string(row) + " outside the batch of " +
                     std::to_string(storage_->batch));
  int64_t total = 0;
  for (const auto& [first, count] : ranges) {
    if (first < 0 || count < 0 || first + count > length_)
      throw InputError("KVCache::gather: positions [" + std::to_string(first) + ", " + std::to_string(first + count) +
                       ") outside the " + std::to_string(length_) + " cached positions");
    total += count;
  }
  torch::NoGradGuard no_grad;
  // Room for a next step of typical length, so the next append writes in place.
  auto fresh = storage_->like(1, std::min<int64_t>(std::max<int64_t>(total, 1) + 64, storage_->capacity));
  int64_t at = 0;
  for (const auto& [first, count] : ranges) {
    fresh->copy_positions(0, at, *storage_, row, first, count);
    at += count;
  }
  fresh->high_water = total;
  return KVCache(std::move(fresh), total);
}

KVCache KVCache::stack(const std::vector<const KVCache*>& caches, int64_t allocate) {
  if (caches.empty()) throw InputError("KVCache::stack: no caches");
  const auto& first = *caches[0]->storage_;
  int64_t longest = 0;
  for (const auto* c : caches) {
    const auto& s = *c->storage_;
    if (s.batch != 1) throw InputError("KVCache::stack: a cache of " + std::to_string(s.batch) + " rows (need 1)");
    if (s.layers != first.layers || s.kv_heads != first.kv_heads || s.head_dim != first.head_dim ||
        s.dtype != first.dtype || s.device != first.device)
      throw InputError("KVCache::stack: caches of different models");
    longest = std::max(longest, c->length_);
  }
  torch::NoGradGuard no_grad;
  const int64_t alloc = std::max<int64_t>({longest, allocate, 1});
  auto fresh = first.like(static_cast<int64_t>(caches.size()), alloc);
  fresh->capacity = std::max(fresh->capacity, alloc);
  for (size_t i = 0; i < caches.size(); ++i) {
    const int64_t n = caches[i]->length_;
    const auto b = static_cast<int64_t>(i);
    fresh->copy_positions(b, 0, *caches[i]->storage_, 0, 0, n);
    // Padding is masked, but masked scores of NaN garbage stay NaN: zeros.
    for (int64_t l = 0; l < fresh->layers; ++l) {
      fresh->k[l][b].narrow(1, n, longest - n).zero_();
      fresh->v[l][b].narrow(1, n, longest - n).zero_();
    }
  }
  fresh->high_water = longest;
  return KVCache(std::move(fresh), longest);
}

at::Tensor KVCache::mask() const { return storage_->mask.narrow(1, 0, length_).clone(); }

void KVCache::reserve(int64_t new_tokens, const at::Tensor& new_mask) {
  const int64_t need = length_ + new_tokens;
  if (need > storage_->capacity)
    throw InputError("input of " + std::to_string(new_tokens) + " tokens after " + std::to_string(length_) +
                     " cached positions exceeds the cache capacity of " + std::to_string(storage_->capacity));
  bool in_place = false;
  {
    std::lock_guard<std::mutex> lock(storage_->mu);
    if (storage_.use_count() == 1) storage_->high_water = length_;
    if (storage_->high_water == length_ && need <= storage_->allocated) {
      storage_->high_water = need;  // claim [length, need) for this cache
      in_place = true;
    }
  }
  if (!in_place) {
    int64_t alloc = storage_->allocated;
    while (alloc < need) alloc *= 2;
    alloc = std::min(alloc, storage_->capacity);
    torch::NoGradGuard no_grad;
    auto fresh = storage_->like(storage_->batch, alloc);
    for (int64_t l = 0; l < storage_->layers; ++l) {
      fresh->k[l].narrow(2, 0, length_).copy_(storage_->k[l].narrow(2, 0, length_));
      fresh->v[l].narrow(2, 0, length_).copy_(storage_->v[l].narrow(2, 0, length_));
    }
    fresh->mask.narrow(1, 0, length_).copy_(storage_->mask.narrow(1, 0, length_));
    fresh->high_water = need;
    storage_ = std::move(fresh);
  }
  storage_->mask.narrow(1, length_, new_tokens).copy_(new_mask);
  pending_ = new_tokens;
}

std::pair<at::Tensor, at::Tensor> KVCache::write(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  auto [K, V] = slots(layer);
  K.copy_(k);
  V.copy_(v);
  return written(layer);
}

std::pair<at::Tensor, at::Tensor> KVCache::slots(int64_t layer) const {
  return {storage_->k[layer].narrow(2, length_, pending_), storage_->v[layer].narrow(2, length_, pending_)};
}

std::pair<at::Tensor, at::Tensor> KVCache::written(int64_t layer) const {
  return {storage_->k[layer].narrow(2, 0, length_ + pending_), storage_->v[layer].narrow(2, 0, length_ + pending_)};
}

at::Tensor KVCache::pending_mask() const { return storage_->mask.narrow(1, 0, length_ + pending_); }

void KVCache::commit() {
  length_ += pending_;
  pending_ = 0;
}

}  // namespace stepverify
