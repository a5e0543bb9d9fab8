// The BPE model of the byte-level BPE tokenizer: merges applied by rank,
// lowest first, as tokenizers' Word::merge_all does.
#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>
#include <utility>

#include "stepverify/errors.h"
#include "tokenizer/byte_level.h"

namespace stepverify::detail {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::array<int32_t, 3>>& merges,
                   bool ignore_merges, std::optional<int32_t> unk_id, std::string source)
    : vocab_(std::move(vocab)), ignore_merges_(ignore_merges), unk_id_(unk_id), source_(std::move(source)) {
  // A later duplicate overrides the rank, as dict() / HashMap collection do.
  for (size_t rank = 0; rank < merges.size(); ++rank)
    merges_[pair_key(merges[rank][0], merges[rank][1])] = {static_cast<int32_t>(rank), merges[rank][2]};
  const auto& alphabet = ByteAlphabet::get();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(alphabet.char_of(static_cast<unsigned char>(b)));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {  // tokenizers: a word already in the vocab is one token
    auto it = vocab_.find(to_byte_level(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int32_t id, prev, next;
  };
  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i)
    symbols[i] = {byte_id(static_cast<unsigned char>(word[i])), static_cast<int32_t>(i) - 1,
                  i + 1 < word.size() ? static_cast<int32_t>(i + 1) : -1};

  // Lowest rank first, leftmost among equals (tokenizers' Word::merge_all;
  // the same result as the slow tokenizer's loop for trained merge lists).
  struct Candidate {
    int32_t rank, pos, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    const int32_t left = symbols[pos].id, right = symbols[symbols[pos].next].id;
    auto it = merges_.find(pair_key(left, right));
    if (it != merges_.end()) queue.push({it->second.rank, pos, left, right});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(word.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.pos];
    if (left.id != c.left || left.next < 0 || symbols[left.next].id != c.right) continue;
    Symbol& right = symbols[left.next];
    left.id = merges_.at(pair_key(c.left, c.right)).result;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  for (int32_t i = word.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

int32_t BpeModel::byte_id(unsigned char b) const {
  if (byte_ids_[b] >= 0) return byte_ids_[b];
  if (unk_id_) return *unk_id_;
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", b);
  throw TokenizerError(source_ + ": the vocabulary has no token for byte " + hex + " and no unk token");
}

}  // namespace stepverify::detail
