// score_with_model: the verifier behind `stepverify eval processbench --model`.
#include "cli/eval_model.h"
#include "cli/flags.h"

#include <iostream>

#include <fmt/format.h>

#include "stepverify/verifier.h"

namespace stepverify::cli {

std::vector<std::vector<double>> score_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps) {
  VerifierOptions vo;
  vo.spec = spec;
  vo.load.dtype = dtype_from_flag(dtype);
  auto verifier = Verifier::load(model_dir, vo);
  std::vector<std::vector<double>> out;
  out.reserve(problems_and_steps.size());
  const size_t chunk = 64;
  for (size_t start = 0; start < problems_and_steps.size(); start += chunk) {
    const size_t end = std::min(problems_and_steps.size(), start + chunk);
    std::vector<Solution> sols;
    for (size_t i = start; i < end; ++i) sols.push_back({problems_and_steps[i].first, problems_and_steps[i].second});
    for (auto& s : verifier->score_batch(sols)) out.push_back(std::move(s.step_scores));
    std::cerr << fmt::format("\rscoring {}/{} records", end, problems_and_steps.size()) << std::flush;
  }
  std::cerr << "\n";
  return out;
}

}  // namespace stepverify::cli
