// Readers and writers of step-labelled data.
#include "stepverify/train/datasets.h"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "stepverify/steps.h"
#include "stepverify/errors.h"
#include "util/files.h"
#include "stepverify/eval/evaluation.h"

#include "util/jsonl.h"
namespace stepverify {
namespace {

using json = nlohmann::json;

// Calls `fn(json, "file:line")` for each non-blank line of a JSONL file; a bad
// line throws FormatError naming the file and line.
template <class Fn>
void each_line(const std::filesystem::path& path, Fn fn) {
  std::ifstream in(path);
  if (!in) throw IoError(path.string() + ": cannot open");
  detail::for_each_jsonl<json>(in, path.string(), detail::BadLine::Throw, fn);
}

std::string str_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) throw FormatError(where + ": field \"" + key + "\" (string) is missing");
  return j[key].get<std::string>();
}

std::string trim(std::string s) {
  const auto a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

}  // namespace

std::vector<VerifierExample> read_trl_prm(const std::filesystem::path& path) {
  std::vector<VerifierExample> out;
  each_line(path, [&](const json& j, const std::string& where) {
    VerifierExample e;
    e.id = where;
    e.question = str_field(j, "prompt", where);
    if (!j.contains("completions") || !j["completions"].is_array())
      throw FormatError(where + ": field \"completions\" (array) is missing");
    if (!j.contains("labels") || !j["labels"].is_array())
      throw FormatError(where + ": field \"labels\" (array) is missing");
    for (const auto& c : j["completions"]) e.steps.push_back(c.get<std::string>());
    for (const auto& l : j["labels"])
      e.step_labels.push_back(l.is_boolean() ? (l.get<bool>() ? 1.0 : 0.0) : l.get<double>());
    if (e.steps.size() != e.step_labels.size())
      throw FormatError(fmt::format("{}: {} completions but {} labels", where, e.steps.size(), e.step_labels.size()));
    out.push_back(std::move(e));
  });
  return out;
}

std::vector<VerifierExample> read_math_shepherd(const std::filesystem::path& path) {
  static const std::string kTag = "\xD0\xBA\xD0\xB8";  // ки
  std::vector<VerifierExample> out;
  each_line(path, [&](const json& j, const std::string& where) {
    const std::string input = str_field(j, "input", where), label = str_field(j, "label", where);
    VerifierExample e;
    e.id = where;
    size_t q_end = input.find("Step 1:");
    std::vector<size_t> tags;
    for (size_t p = input.find(kTag); p != std::string::npos; p = input.find(kTag, p + kTag.size())) tags.push_back(p);
    if (tags.empty()) throw FormatError(where + ": \"input\" holds no step tag (ки)");
    if (q_end == std::string::npos || q_end > tags[0]) {
      q_end = input.find('\n');
      if (q_end == std::string::npos || q_end > tags[0]) q_end = 0;
    }
    e.question = trim(input.substr(0, q_end));
    size_t start = q_end;
    for (size_t t : tags) {
      e.steps.push_back(trim(input.substr(start, t - start)));
      if (e.steps.back().empty()) throw FormatError(fmt::format("{}: step {} is empty", where, e.steps.size() - 1));
      start = t + kTag.size();
    }
    // The label text equals the input with each tag replaced by one character.
    size_t shift = 0;
    for (size_t k = 0; k < tags.size(); ++k) {
      const size_t at = tags[k] - shift;
      if (at >= label.size() || (label[at] != '+' && label[at] != '-'))
        throw FormatError(fmt::format("{}: \"label\" has no +/- where step {} ends", where, k));
      e.step_labels.push_back(label[at] == '+' ? 1.0 : 0.0);
      shift += kTag.size() - 1;
    }
    e.outcome = e.step_labels.back();
    out.push_back(std::move(e));
  });
  return out;
}

std::vector<VerifierExample> read_processbench_steps(const std::filesystem::path& path) {
  std::vector<VerifierExample> out;
  for (auto& r : read_processbench_records(path)) {
    if (r.steps.empty()) throw FormatError(path.string() + ": record " + r.id + " has no steps");
    if (r.label >= static_cast<int>(r.steps.size()))
      throw FormatError(
          fmt::format("{}: record {}: label {} for {} steps", path.string(), r.id, r.label, r.steps.size()));
    VerifierExample e;
    e.id = r.id;
    e.question = r.problem;
    e.steps = std::move(r.steps);
    for (size_t i = 0; i < e.steps.size(); ++i)
      e.step_labels.push_back(r.label < 0 || static_cast<int>(i) < r.label ? 1.0 : 0.0);
    e.outcome = r.label < 0 ? 1.0 : 0.0;
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<VerifierExample> read_outcome_labelled(const std::filesystem::path& path) {
  std::vector<VerifierExample> out;
  each_line(path, [&](const json& j, const std::string& where) {
    VerifierExample e;
    e.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : where;
    e.question = str_field(j, "question", where);
    if (j.contains("steps") && j["steps"].is_array()) {
      for (const auto& s : j["steps"]) e.steps.push_back(s.get<std::string>());
    } else if (j.contains("solution") && j["solution"].is_string()) {
      e.steps = split_steps(j["solution"].get<std::string>());
    } else {
      throw FormatError(where + ": needs \"steps\" (array) or \"solution\" (string)");
    }
    if (e.steps.empty()) throw FormatError(where + ": the solution has no steps");
    if (!j.contains("is_correct") || !j["is_correct"].is_boolean())
      throw FormatError(where + ": field \"is_correct\" (bool) is missing");
    e.outcome = j["is_correct"].get<bool>() ? 1.0 : 0.0;
    out.push_back(std::move(e));
  });
  return out;
}

void write_trl_prm(const std::filesystem::path& path, const std::vector<VerifierExample>& examples) {
  detail::AtomicFile file(path);  // complete, or not written
  std::ostream& f = file.stream();
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    if (e.step_labels.size() != e.steps.size())
      throw InputError(
          fmt::format("write_trl_prm: example {} has {} labels for {} steps", i, e.step_labels.size(), e.steps.size()));
    json j = {{"prompt", e.question}, {"completions", e.steps}, {"labels", json::array()}};
    for (double l : e.step_labels) j["labels"].push_back(l >= 0.5);
    f << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  file.commit();
}

}  // namespace stepverify
