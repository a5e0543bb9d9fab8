// score_with_model: the verifier behind `stepverify eval processbench --model`.
#include "cli/eval_model.h"
#include "cli/flags.h"

#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "stepverify/distributed.h"
#include "stepverify/verifier.h"

namespace stepverify::cli {

std::vector<std::vector<double>> score_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps, ProcessGroup& group) {
  VerifierOptions vo;
  vo.spec = spec;
  vo.load.dtype = dtype_from_flag(dtype);
  auto verifier = Verifier::load(model_dir, vo);
  const size_t chunk = 64, n = problems_and_steps.size();
  // Each chunk's scores as bytes: per record, its count then its doubles (bit-exact).
  const auto texts = run_sharded(group, (n + chunk - 1) / chunk, [&](size_t c) {
    const size_t start = c * chunk, end = std::min(n, start + chunk);
    std::vector<Solution> sols;
    for (size_t i = start; i < end; ++i) sols.push_back({problems_and_steps[i].first, problems_and_steps[i].second});
    std::string bytes;
    for (const auto& s : verifier->score_batch(sols)) {
      const uint64_t k = s.step_scores.size();
      bytes.append(reinterpret_cast<const char*>(&k), sizeof k);
      bytes.append(reinterpret_cast<const char*>(s.step_scores.data()), k * sizeof(double));
    }
    if (group.is_root()) std::cerr << fmt::format("\rscoring {}/{} records", end, n) << std::flush;
    return bytes;
  });
  if (group.is_root()) std::cerr << "\n";
  std::vector<std::vector<double>> out;
  if (!group.is_root()) return out;
  out.reserve(n);
  for (const auto& bytes : texts) {
    for (size_t at = 0; at < bytes.size();) {
      uint64_t k = 0;
      std::memcpy(&k, bytes.data() + at, sizeof k);
      at += sizeof k;
      std::vector<double> v(k);
      std::memcpy(v.data(), bytes.data() + at, k * sizeof(double));
      at += k * sizeof(double);
      out.push_back(std::move(v));
    }
  }
  return out;
}

}  // namespace stepverify::cli
