// stepverify answers --input IN.jsonl --output OUT.jsonl
//   A line with "text" gets "answer" (the extracted answer, or null); a line
//   with "a" and "b" gets "equal" (bool, MathEquivalence). Both may apply.
//
// stepverify vote --input IN.jsonl --output OUT.jsonl [--aggregate min|max|prod|mean|last|geomean|sum]
//   Each line {"id": any, "gold"?: str, "candidates": [{"text"?: str,
//   "answer"?: str, "score"?: float, "step_scores"?: [float]}]} is written back
//   with "majority", "weighted" and "best" (answers or null) and, with a gold
//   answer, "correct": {"majority": bool, "weighted": bool, "best": bool}. The
//   accuracy of each method goes to stderr. Rules and tie-breaking: Selection
//   in stepverify/answer.h.
//
// Input keys and their order are kept. Answers given as JSON numbers are
// read as their JSON text. A bad line is reported on stderr with its line
// number and skipped; the other lines are still processed and written. The
// exit status is 1 when every line failed.
#include <fstream>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "stepverify/answer.h"
#include "stepverify/errors.h"
#include "util/jsonl.h"

namespace stepverify::cli {
namespace {

using ojson = nlohmann::ordered_json;

// A string field, or a number field read as its JSON text; throws InputError.
std::optional<std::string> text_field(const ojson& j, const char* name, bool required) {
  if (!j.contains(name) || j[name].is_null()) {
    if (required) throw InputError(fmt::format("field '{}' is missing", name));
    return std::nullopt;
  }
  const ojson& v = j[name];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  throw InputError(fmt::format("field '{}' must be a string", name));
}

// Runs `body` on every JSON line of the input, writing what it leaves in the
// line to the output (complete, or not at all); returns the line counts.
template <class Body>
detail::JsonlCounts for_each_line(const JsonlFiles& files, Body body) {
  auto in = open_input(files);
  auto out = open_output(files);
  const auto counts = detail::for_each_jsonl<ojson>(
      in, files.input, bad_lines(files),
      [&](ojson& j, const std::string&) {
        if (!j.is_object()) throw InputError("the line is not a JSON object");
        body(j);
        out.stream() << j.dump(-1, ' ', false, ojson::error_handler_t::replace) << "\n";
      },
      &std::cerr);
  out.commit();
  return counts;
}

Candidate parse_candidate(const ojson& c, size_t k) {
  const std::string where = fmt::format("candidates[{}]", k);
  if (!c.is_object()) throw InputError(where + " is not an object");
  Candidate cand;
  try {
    if (auto t = text_field(c, "text", false)) cand.text = *t;
    cand.answer = text_field(c, "answer", false);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  if (!cand.answer && !(c.contains("text") && c["text"].is_string()))
    throw InputError(where + ": needs 'text' or 'answer'");
  if (c.contains("score") && !c["score"].is_null()) {
    if (!c["score"].is_number()) throw InputError(where + ": 'score' must be a number");
    cand.score = c["score"].get<double>();
  }
  if (c.contains("step_scores") && !c["step_scores"].is_null()) {
    const ojson& s = c["step_scores"];
    if (!s.is_array()) throw InputError(where + ": 'step_scores' must be a list of numbers");
    for (size_t i = 0; i < s.size(); ++i) {
      if (!s[i].is_number()) throw InputError(fmt::format("{}: step_scores[{}] is not a number", where, i));
      cand.step_scores.push_back(s[i].get<double>());
    }
  }
  return cand;
}

ojson answer_json(const std::optional<std::string>& a) { return a ? ojson(*a) : ojson(nullptr); }

}  // namespace

Run add_answers(CLI::App& app) {
  app.description(
      "Extract final answers (\"text\" -> \"answer\") and compare answers (\"a\", \"b\" -> \"equal\"); JSONL in, JSONL "
      "out");
  auto files = std::make_shared<JsonlFiles>();
  add_jsonl_flags(app, *files);
  return [=] {
    const DefaultExtractor extractor;
    const MathEquivalence equivalence;
    const auto counts = for_each_line(*files, [&](ojson& j) {
      const bool has_text = j.contains("text");
      const bool has_pair = j.contains("a") && j.contains("b");
      if (!has_text && !has_pair) throw InputError("the line has neither 'text' nor both 'a' and 'b'");
      std::optional<std::string> text, a, b;
      if (has_text) text = text_field(j, "text", true);
      if (has_pair) {
        a = text_field(j, "a", true);
        b = text_field(j, "b", true);
      }
      if (text) j["answer"] = answer_json(extractor.extract(*text));
      if (has_pair) j["equal"] = equivalence.equal(*a, *b);
    });
    return jsonl_status(counts, "processed");
  };
}

Run add_vote(CLI::App& app) {
  app.description("Majority vote, weighted self-consistency and best-of-N over scored candidates; JSONL in, JSONL out");
  auto files = std::make_shared<JsonlFiles>();
  auto options = std::make_shared<SelectionOptions>();
  add_jsonl_flags(app, *files);
  add_aggregate_flag(app, "--aggregate", options->aggregate, "aggregate of step_scores when a candidate has no score");
  return [=] {
    const DefaultExtractor extractor;
    const MathEquivalence equivalence;
    size_t with_gold = 0, right_majority = 0, right_weighted = 0, right_best = 0;
    const auto counts = for_each_line(*files, [&](ojson& j) {
      if (!j.contains("candidates") || !j["candidates"].is_array())
        throw InputError("field 'candidates' must be a list of objects");
      std::vector<Candidate> cands;
      for (size_t k = 0; k < j["candidates"].size(); ++k) cands.push_back(parse_candidate(j["candidates"][k], k));
      std::optional<std::string> gold = text_field(j, "gold", false);
      // A gold solution rather than a gold answer: take its final answer.
      if (gold && (gold->find("\\boxed") != std::string::npos || gold->find("####") != std::string::npos))
        gold = extractor.extract(*gold);
      const Selection sel = select_answer(cands, *options);
      j["majority"] = answer_json(sel.majority);
      j["weighted"] = answer_json(sel.weighted);
      j["best"] = answer_json(sel.best);
      if (gold) {
        const std::string key = equivalence.canonical(*gold);
        auto right = [&](const std::optional<std::string>& a) { return a && equivalence.canonical(*a) == key; };
        const bool m = right(sel.majority), w = right(sel.weighted), b = right(sel.best);
        j["correct"] = ojson{{"majority", m}, {"weighted", w}, {"best", b}};
        ++with_gold;
        right_majority += m;
        right_weighted += w;
        right_best += b;
      }
    });
    const int status = jsonl_status(counts, "processed");
    const size_t good = counts.good;
    if (with_gold) {
      auto acc = [&](size_t k) { return fmt::format("{:.4f} ({}/{})", double(k) / double(with_gold), k, with_gold); };
      std::cerr << fmt::format(
          "vote: {} problems, {} with gold; accuracy majority {}, weighted {}, best {} (aggregate {})\n", good,
          with_gold, acc(right_majority), acc(right_weighted), acc(right_best), aggregate_name(options->aggregate));
    } else {
      std::cerr << fmt::format("vote: {} problems, none with a gold answer (no accuracy)\n", good);
    }
    return status;
  };
}

}  // namespace stepverify::cli
