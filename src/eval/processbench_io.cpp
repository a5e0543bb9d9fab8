// ProcessBench records: reading JSON / JSONL files and directories, and
// filling step scores through a scorer callback.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "stepverify/errors.h"
#include "stepverify/eval/evaluation.h"
#include "util/files.h"
#include "util/jsonl.h"
#include "util/json.h"

namespace stepverify {
namespace {

using nlohmann::json;

// One record from a JSON object; throws FormatError (without location: the
// caller prefixes it).
ProcessBenchRecord parse_record(const json& j, const ProcessBenchReadOptions& options) {
  if (!j.is_object()) throw FormatError("the record is not a JSON object");
  ProcessBenchRecord r;
  auto id = j.find("id");
  if (id == j.end() || !id->is_string()) throw FormatError("field 'id' must be a string");
  r.id = id->get<std::string>();
  r.split = split_of_id(r.id);
  const std::string where = "record '" + r.id + "'";

  auto label = j.find("label");
  if (label == j.end() || !label->is_number_integer()) throw FormatError(where + ": field 'label' must be an integer");
  const auto l = label->get<int64_t>();
  if (l < -1 || l > 1000000) throw FormatError(where + ": label " + std::to_string(l) + " is out of range");
  r.label = static_cast<int>(l);

  const json* problem = j.contains("problem") ? &j["problem"] : j.contains("question") ? &j["question"] : nullptr;
  if (problem && !problem->is_null()) {
    if (!problem->is_string()) throw FormatError(where + ": field 'problem' must be a string");
    r.problem = problem->get<std::string>();
  }
  auto steps = j.find("steps");
  if (steps != j.end() && !steps->is_null()) {
    if (!steps->is_array()) throw FormatError(where + ": field 'steps' must be a list of strings");
    for (size_t i = 0; i < steps->size(); ++i) {
      if (!(*steps)[i].is_string()) throw FormatError(where + ": steps[" + std::to_string(i) + "] is not a string");
      r.steps.push_back((*steps)[i].get<std::string>());
    }
  }
  // The scores: "step_scores", else the judge's (`stepverify judge` output).
  const json* scores = nullptr;
  std::string field = "step_scores";
  bool judged = false;
  if (auto s = j.find("step_scores"); s != j.end() && !s->is_null()) {
    scores = &*s;
  } else if (auto jd = j.find("judge"); jd != j.end() && !jd->is_null()) {
    if (!jd->is_object()) throw FormatError(where + ": field 'judge' must be an object");
    judged = true;
    field = "judge.step_scores";
    if (auto s = jd->find("step_scores"); s != jd->end() && !s->is_null()) {
      scores = &*s;
    } else if (auto e = jd->find("error"); e != jd->end()) {
      // The judge could not read any chain: every step is judged by none.
      if (steps == j.end() || steps->is_null())
        throw FormatError(where + ": the judge gave an error (" + e->dump() + ") and the record has no 'steps'");
      r.step_scores.assign(r.steps.size(), 1.0);
    } else {
      throw FormatError(where + ": field 'judge' has neither 'step_scores' nor 'error'");
    }
  }
  if (scores) {
    if (!scores->is_array()) throw FormatError(where + ": field '" + field + "' must be a list of numbers");
    for (size_t i = 0; i < scores->size(); ++i) {
      const json& s = (*scores)[i];
      if (judged && s.is_null()) {  // no chain gave the step a verdict: not flagged
        r.step_scores.push_back(1.0);
        continue;
      }
      if (!s.is_number() || !std::isfinite(s.get<double>()))
        throw FormatError(where + ": " + field + "[" + std::to_string(i) + "] is not a finite number (" + s.dump() +
                          ")");
      r.step_scores.push_back(s.get<double>());
    }
  }
  if (scores || judged) {
    if (steps != j.end() && !steps->is_null() && r.steps.size() != r.step_scores.size())
      throw FormatError(where + ": " + std::to_string(r.steps.size()) + " steps but " +
                        std::to_string(r.step_scores.size()) + " step scores");
    if (r.label >= 0 && static_cast<size_t>(r.label) >= r.step_scores.size())
      throw FormatError(where + ": label " + std::to_string(r.label) + " but only " +
                        std::to_string(r.step_scores.size()) + " step scores");
  } else if (options.require_step_scores) {
    throw FormatError(where + ": field 'step_scores' is missing");
  }
  if (r.label >= 0 && !r.steps.empty() && static_cast<size_t>(r.label) >= r.steps.size())
    throw FormatError(where + ": label " + std::to_string(r.label) + " but only " + std::to_string(r.steps.size()) +
                      " steps");
  return r;
}

}  // namespace

std::vector<ProcessBenchRecord> parse_processbench_records(const std::string& text, const std::string& source,
                                                           const ProcessBenchReadOptions& options) {
  std::vector<ProcessBenchRecord> out;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return out;
  if (text[first] == '[') {  // a JSON array: ProcessBench's own files
    const json arr = detail::parse_json<FormatError>(text, source);
    for (size_t i = 0; i < arr.size(); ++i) {
      try {
        out.push_back(parse_record(arr[i], options));
      } catch (const FormatError& e) {
        throw FormatError(source + ": [" + std::to_string(i) + "]: " + e.what());
      }
    }
    return out;
  }
  std::istringstream in(text);  // JSONL
  detail::for_each_jsonl<json>(in, source, detail::BadLine::Throw,
                               [&](const json& j, const std::string&) { out.push_back(parse_record(j, options)); });
  return out;
}

std::vector<ProcessBenchRecord> read_processbench_records(const std::filesystem::path& path,
                                                          const ProcessBenchReadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
      const auto ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".json" || ext == ".jsonl")) files.push_back(e.path());
    }
    if (ec) throw IoError(path.string() + ": cannot list the directory: " + ec.message());
    if (files.empty()) throw IoError(path.string() + ": no *.json or *.jsonl file in the directory");
    std::sort(files.begin(), files.end());
    std::vector<ProcessBenchRecord> out;
    for (const auto& f : files) {
      auto part = parse_processbench_records(detail::read_file(f), f.string(), options);
      out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    return out;
  }
  return parse_processbench_records(detail::read_file(path), path.string(), options);
}

void score_processbench_records(std::vector<ProcessBenchRecord>& records, const ScoreFn& score) {
  if (!score) throw InputError("scoring records: no scorer given");
  std::vector<std::pair<std::string, std::vector<std::string>>> batch;
  batch.reserve(records.size());
  for (const auto& r : records) {
    if (r.steps.empty()) throw InputError("record '" + r.id + "': no steps to score");
    batch.emplace_back(r.problem, r.steps);
  }
  auto scores = score(batch);
  if (scores.size() != records.size())
    throw InputError("the scorer returned " + std::to_string(scores.size()) + " solutions for " +
                     std::to_string(records.size()));
  for (size_t i = 0; i < records.size(); ++i) {
    if (scores[i].size() != records[i].steps.size())
      throw InputError("record '" + records[i].id + "': the scorer returned " + std::to_string(scores[i].size()) +
                       " scores for " + std::to_string(records[i].steps.size()) + " steps");
    records[i].step_scores = std::move(scores[i]);
  }
}

}  // namespace stepverify
