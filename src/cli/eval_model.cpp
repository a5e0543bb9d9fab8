// score_with_model: the verifier behind `stepverify eval processbench --model`.
#include "cli/eval_model.h"
#include "cli/flags.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>

#include <fmt/format.h>

#include "stepverify/distributed.h"
#include "stepverify/errors.h"
#include "stepverify/generative.h"
#include "stepverify/verifier.h"

namespace stepverify::cli {
namespace {

// Runs `work(c)` (the step scores of chunk c's records) for this rank's
// chunks and returns, on rank 0, every record's scores in order (bit-exact:
// each chunk travels as bytes, per record its count then its doubles).
std::vector<std::vector<double>> gather_scores(ProcessGroup& group, size_t chunks, size_t records,
                                               const std::function<std::vector<std::vector<double>>(size_t)>& work) {
  const auto texts = run_sharded(group, chunks, [&](size_t c) {
    std::string bytes;
    for (const auto& v : work(c)) {
      const uint64_t k = v.size();
      bytes.append(reinterpret_cast<const char*>(&k), sizeof k);
      bytes.append(reinterpret_cast<const char*>(v.data()), k * sizeof(double));
    }
    return bytes;
  });
  if (group.is_root()) std::cerr << "\n";
  std::vector<std::vector<double>> out;
  if (!group.is_root()) return out;
  out.reserve(records);
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

}  // namespace

std::vector<std::vector<double>> score_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps, ProcessGroup& group) {
  VerifierOptions vo;
  vo.spec = spec;
  vo.load.dtype = dtype_from_flag(dtype);
  auto verifier = Verifier::load(model_dir, vo);
  const size_t chunk = 64, n = problems_and_steps.size();
  return gather_scores(group, (n + chunk - 1) / chunk, n, [&](size_t c) {
    const size_t start = c * chunk, end = std::min(n, start + chunk);
    std::vector<Solution> sols;
    for (size_t i = start; i < end; ++i) sols.push_back({problems_and_steps[i].first, problems_and_steps[i].second});
    std::vector<std::vector<double>> out;
    for (auto& s : verifier->score_batch(sols)) out.push_back(std::move(s.step_scores));
    if (group.is_root()) std::cerr << fmt::format("\rscoring {}/{} records", end, n) << std::flush;
    return out;
  });
}

std::vector<std::vector<double>> judge_with_model(
    const std::string& model_dir, const std::string& spec, const std::string& dtype, const GenerativeOptions& options,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& problems_and_steps, ProcessGroup& group) {
  GenerativeVerifierOptions vo;
  vo.spec = spec;
  vo.load.dtype = dtype_from_flag(dtype);
  auto verifier = GenerativeVerifier::load(model_dir, vo);
  const size_t n = problems_and_steps.size();
  // Every record checked before any chain (a prompt too long for the context
  // fails the run at once, naming the record, not hours in).
  for (size_t i = 0; i < n; ++i) {
    try {
      verifier->check(problems_and_steps[i].first, problems_and_steps[i].second, options);
    } catch (const InputError& e) {
      throw InputError("record " + std::to_string(i) + ": " + e.what());
    }
  }
  return gather_scores(group, n, n, [&](size_t i) {
    GenerativeResult r;
    try {
      r = verifier->verify(problems_and_steps[i].first, problems_and_steps[i].second, item_options(options, i));
    } catch (const InputError& e) {
      // A chain that could not be read (re-tokenized past the context): no verdicts.
      std::cerr << fmt::format("\nrecord {}: {} (scored as judged by no chain)\n", i, e.what());
      r.step_scores.assign(problems_and_steps[i].second.size(), NAN);
    }
    for (double& s : r.step_scores)
      if (std::isnan(s)) s = 1;  // no chain judged the step: not flagged
    if (group.is_root()) std::cerr << fmt::format("\rjudging record {}/{}", i + 1, n) << std::flush;
    return std::vector<std::vector<double>>{std::move(r.step_scores)};
  });
}

}  // namespace stepverify::cli
