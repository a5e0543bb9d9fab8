// Internal: pieces shared by the trainers (seeded mixing, padded batches,
// evaluation over an example set).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

namespace stepverify::detail {

/// splitmix64: advances `s` and returns the next value; the same numbers on
/// every platform (std distributions are not).
inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Right-padded int64 ids [B, T] (pad 0) and mask [B, T] of the sequences
/// ids_of(i) for i in idx, T the longest.
template <class IdsOf>
std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<int64_t>& idx, IdsOf ids_of) {
  int64_t T = 0;
  for (auto i : idx) T = std::max<int64_t>(T, static_cast<int64_t>(ids_of(i).size()));
  const int64_t B = static_cast<int64_t>(idx.size());
  auto ids = torch::zeros({B, T}, torch::kLong);
  auto mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& seq = ids_of(idx[static_cast<size_t>(b)]);
    const int64_t n = static_cast<int64_t>(seq.size());
    ids[b].narrow(0, 0, n).copy_(torch::tensor(seq, torch::kLong));
    mask[b].narrow(0, 0, n).fill_(1);
  }
  return {ids, mask};
}

/// The example-weighted mean of loss(batch) over examples [0, n) in batches
/// of `batch` (the evaluation loss of the trainers).
inline double mean_loss(size_t n, int64_t batch, const std::function<at::Tensor(const std::vector<int64_t>&)>& loss) {
  double sum = 0;
  const size_t bs = static_cast<size_t>(batch);
  for (size_t s = 0; s < n; s += bs) {
    std::vector<int64_t> idx;
    for (size_t i = s; i < std::min(n, s + bs); ++i) idx.push_back(static_cast<int64_t>(i));
    sum += loss(idx).item<double>() * static_cast<double>(idx.size());
  }
  return sum / static_cast<double>(n);
}

}  // namespace stepverify::detail
