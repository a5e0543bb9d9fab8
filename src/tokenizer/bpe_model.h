// Internal to the byte-level BPE tokenizer (src/tokenizer/bpe_*.cpp): the BPE
// model (vocabulary, merges by rank) and the per-word cache. Not installed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace stepverify::detail {

// ---------------------------------------------------------------------------
// BPE model: vocabulary, merges by rank, per-word cache
// ---------------------------------------------------------------------------

struct Merge {
  int32_t rank;
  int32_t result;
};

constexpr uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

class BpeModel {
 public:
  BpeModel() = default;
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::array<int32_t, 3>>& merges,
           bool ignore_merges, std::optional<int32_t> unk_id, std::string source);

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

  /// Appends the ids of one pre-token (raw bytes).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  int32_t byte_id(unsigned char b) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
  bool ignore_merges_ = false;
  std::optional<int32_t> unk_id_;
  std::string source_;
};

// Word -> ids, sharded so that concurrent encoders rarely wait on each other.
class WordCache {
 public:
  bool find(const std::string& word, std::vector<int32_t>& out) const {
    Shard& shard = shard_of(word);
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.map.find(word);
    if (it == shard.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void insert(const std::string& word, std::vector<int32_t> ids) const {
    Shard& shard = shard_of(word);
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (shard.map.size() >= kMaxPerShard) shard.map.clear();
    shard.map.emplace(word, std::move(ids));
  }

 private:
  static constexpr size_t kShards = 16, kMaxPerShard = 8192;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  Shard& shard_of(const std::string& word) const { return shards_[std::hash<std::string>{}(word) % kShards]; }
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace stepverify::detail
