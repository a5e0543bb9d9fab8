// Reports of ProcessBench results: JSON, Markdown, plain text, SVG and
// per-record predictions. No dependency beyond nlohmann::json (private).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/report_util.h"
#include "stepverify/errors.h"
#include "stepverify/eval/evaluation.h"

namespace stepverify {
namespace {

using ojson = nlohmann::ordered_json;

using detail::format;
using detail::xml_escape;

std::string percent(double x) { return format("%.1f", 100 * x); }
std::string number(double x) { return format("%.6g", x); }

std::string threshold_note(const ProcessBenchResult& r) {
  if (r.splits.empty()) return "no split";
  const std::string t = number(r.splits.front().threshold);
  if (!r.calibrated_on.empty()) return "threshold " + t + ", calibrated on " + r.calibrated_on + " (maximal F1)";
  return "threshold " + t + " (fixed)";
}

// Markdown table cells: a '|' would end the cell.
std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string processbench_json(const ProcessBenchResult& result) {
  ojson splits = ojson::object();
  for (const auto& m : result.splits) {
    splits[m.split] = {{"error_accuracy", m.error_accuracy},
                       {"correct_accuracy", m.correct_accuracy},
                       {"f1", m.f1},
                       {"threshold", m.threshold},
                       {"n_error", m.n_error},
                       {"n_correct", m.n_correct}};
  }
  ojson j = {{"splits", splits}, {"average_f1", result.average_f1}};
  return j.dump(2, ' ', false, ojson::error_handler_t::replace);
}

std::string processbench_markdown(const ProcessBenchResult& result) {
  std::ostringstream out;
  out << "| split | error acc. (%) | correct acc. (%) | F1 (%) | threshold | error records | correct records |\n";
  out << "|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& m : result.splits)
    out << "| " << md_escape(m.split) << " | " << percent(m.error_accuracy) << " | " << percent(m.correct_accuracy)
        << " | " << percent(m.f1) << " | " << number(m.threshold) << " | " << m.n_error << " | " << m.n_correct
        << " |\n";
  out << "| **average** |  |  | **" << percent(result.average_f1) << "** |  |  |  |\n\n";
  out << "Prediction: the first step whose score is below the threshold (-1 when none); " << threshold_note(result)
      << ". F1 is the harmonic mean of the two accuracies; the average is over splits.\n";
  return out.str();
}

std::string processbench_text(const ProcessBenchResult& result) {
  size_t w = 7;  // "average"
  for (const auto& m : result.splits) w = std::max(w, m.split.size());
  const int iw = static_cast<int>(w);
  std::ostringstream out;
  out << format("%-*s  %10s  %12s  %7s  %9s  %7s  %7s\n", iw, "split", "error acc", "correct acc", "F1", "threshold",
                "errors", "correct");
  for (const auto& m : result.splits)
    out << format("%-*s  %10.1f  %12.1f  %7.1f  %9s  %7lld  %7lld\n", iw, m.split.c_str(), 100 * m.error_accuracy,
                  100 * m.correct_accuracy, 100 * m.f1, number(m.threshold).c_str(), static_cast<long long>(m.n_error),
                  static_cast<long long>(m.n_correct));
  out << format("%-*s  %10s  %12s  %7.1f\n", iw, "average", "", "", 100 * result.average_f1);
  out << "(values in %; " << threshold_note(result) << ")\n";
  return out.str();
}

std::string processbench_svg(const ProcessBenchResult& result, const std::string& title) {
  const size_t n = result.splits.size();
  const double left = 56, right = 24, top = 56, bottom = 64, plot_h = 240;
  const double slot = 110;
  const double plot_w = std::max(1.0, static_cast<double>(n)) * slot;
  const double width = left + plot_w + right, height = top + plot_h + bottom;
  auto y_of = [&](double v) { return top + plot_h * (1 - std::clamp(v, 0.0, 1.0)); };

  std::ostringstream o;
  o << format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      width, height, width, height);
  o << "<title>" << xml_escape(title) << "</title>\n";
  o << format("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", width, height);
  o << format("<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", width / 2)
    << xml_escape(title) << "</text>\n";
  o << format("<text x=\"%.1f\" y=\"42\" text-anchor=\"middle\" fill=\"#555555\">", width / 2)
    << xml_escape(threshold_note(result)) << "</text>\n";
  // Grid and y axis (F1 in percent).
  for (int k = 0; k <= 5; ++k) {
    const double v = k / 5.0, y = y_of(v);
    o << format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", left, y,
                left + plot_w, y, k == 0 ? "#333333" : "#dddddd");
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333333\">%d</text>\n", left - 6, y + 4,
                k * 20);
  }
  o << format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\" stroke-width=\"1\"/>\n", left,
              top, left, top + plot_h);
  o << format("<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">F1 (%%)</text>\n",
              top + plot_h / 2, top + plot_h / 2);
  // One bar per split.
  for (size_t i = 0; i < n; ++i) {
    const auto& m = result.splits[i];
    const double x = left + slot * static_cast<double>(i) + slot * 0.2, w = slot * 0.6;
    const double y = y_of(m.f1), h = top + plot_h - y;
    o << format("<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4c78a8\">", x, y, w,
                h)
      << "<title>" << xml_escape(m.split) << ": F1 " << percent(m.f1) << ", error acc. " << percent(m.error_accuracy)
      << ", correct acc. " << percent(m.correct_accuracy) << "</title></rect>\n";
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x + w / 2, y - 5,
                percent(m.f1).c_str());
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x + w / 2, top + plot_h + 18)
      << xml_escape(m.split) << "</text>\n";
  }
  // The average, dashed.
  if (n > 0) {
    const double y = y_of(result.average_f1);
    o << format(
        "<line class=\"average\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e45756\" "
        "stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n",
        left, y, left + plot_w, y);
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#e45756\">average F1 %s</text>\n",
                left + plot_w, top + plot_h + 40, percent(result.average_f1).c_str());
  }
  o << "</svg>\n";
  return o.str();
}

std::string processbench_predictions_jsonl(const std::vector<ProcessBenchRecord>& records,
                                           const ProcessBenchResult& result) {
  if (result.predictions.size() != records.size())
    throw InputError("writing predictions: " + std::to_string(result.predictions.size()) + " predictions for " +
                     std::to_string(records.size()) + " records");
  std::string out;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    double threshold = 0;
    for (const auto& m : result.splits)
      if (m.split == r.split) threshold = m.threshold;
    const int pred = result.predictions[i];
    ojson j = {{"id", r.id},
               {"split", r.split},
               {"label", r.label},
               {"prediction", pred},
               {"match", pred == r.label},
               {"threshold", threshold},
               {"step_scores", r.step_scores}};
    out += j.dump(-1, ' ', false, ojson::error_handler_t::replace);
    out += '\n';
  }
  return out;
}

}  // namespace stepverify
