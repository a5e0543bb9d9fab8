// The JSONL readers: best-of-N problems, ProcessBench records (JSONL or a
// JSON array), and the training-data formats (TRL PRM, Math-Shepherd,
// ProcessBench steps, outcome-labelled).
#include <fstream>

#include "fuzz_target.h"
#include "stepverify/eval/bon.h"
#include "stepverify/eval/evaluation.h"
#include "stepverify/train/datasets.h"

STEPVERIFY_FUZZ_TARGET(jsonl) {
  const auto path = stepverify::fuzz::scratch_dir() / "input.jsonl";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  auto each = [](auto&& read) {
    try {
      read();
    } catch (const stepverify::Error&) {}
  };
  each([&] { (void)stepverify::read_bon_problems(path); });
  each([&] { (void)stepverify::parse_processbench_records(std::string(input), "fuzz"); });
  each([&] { (void)stepverify::read_trl_prm(path); });
  each([&] { (void)stepverify::read_math_shepherd(path); });
  each([&] { (void)stepverify::read_processbench_steps(path); });
  each([&] { (void)stepverify::read_outcome_labelled(path); });
}
