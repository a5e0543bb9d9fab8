// Reports of best-of-N results: JSON, Markdown, and hand-written SVG (accuracy
// against N, reliability diagram). No dependency beyond nlohmann::json (private).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/report_util.h"
#include "stepverify/eval/bon.h"

namespace stepverify {
namespace {

using ojson = nlohmann::ordered_json;

using detail::format;
using detail::xml_escape;

std::string percent(double x) { return std::isnan(x) ? std::string("-") : format("%.1f", 100 * x); }
std::string number(double x) { return std::isnan(x) ? std::string("-") : format("%.4g", x); }

ojson nullable(double x) { return std::isnan(x) ? ojson(nullptr) : ojson(x); }

// Colours of the curves (Tableau 10), cycled.
const char* colour(size_t i) {
  static const char* kColours[] = {"#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
                                   "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"};
  return kColours[i % (sizeof(kColours) / sizeof(kColours[0]))];
}

std::string svg_open(double width, double height, const std::string& title) {
  std::string o = format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      width, height, width, height);
  o += "<title>" + xml_escape(title) + "</title>\n";
  o += format("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", width, height);
  o += format("<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", width / 2) +
       xml_escape(title) + "</text>\n";
  return o;
}

std::string line(double x1, double y1, double x2, double y2, const char* stroke, const char* extra = "") {
  return format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"%s/>\n", x1, y1,
                x2, y2, stroke, extra);
}

}  // namespace

std::string bon_json(const BonResult& result) {
  ojson methods = ojson::object();
  for (const auto& c : result.curves) methods[c.method] = c.accuracy;
  ojson j = {{"n", result.n},
             {"methods", methods},
             {"problems", result.problems},
             {"candidates", result.candidates},
             {"samples", result.samples},
             {"seed", result.seed}};
  if (result.step_auroc) j["step_auroc"] = *result.step_auroc;
  if (result.first_error) {
    const auto& m = *result.first_error;
    j["first_error_f1"] = m.f1;
    j["first_error"] = {{"error_accuracy", m.error_accuracy},
                        {"correct_accuracy", m.correct_accuracy},
                        {"f1", m.f1},
                        {"threshold", m.threshold},
                        {"n_error", m.n_error},
                        {"n_correct", m.n_correct}};
  }
  if (result.reliability) {
    j["ece"] = result.reliability->ece;
    ojson bins = ojson::array();
    for (const auto& b : result.reliability->bins)
      bins.push_back({{"bin_lo", b.lo},
                      {"bin_hi", b.hi},
                      {"count", b.count},
                      {"mean_score", nullable(b.mean_score)},
                      {"accuracy", nullable(b.accuracy)}});
    j["reliability"] = bins;
  }
  return j.dump(2, ' ', false, ojson::error_handler_t::replace);
}

std::string bon_markdown(const BonResult& result) {
  std::ostringstream out;
  out << "| method |";
  for (int n : result.n) out << " N=" << n << " |";
  out << "\n|---|";
  for (size_t i = 0; i < result.n.size(); ++i) out << "---:|";
  out << "\n";
  for (const auto& c : result.curves) {
    out << "| " << c.method << " |";
    for (double a : c.accuracy) out << " " << percent(a) << " |";
    out << "\n";
  }
  out << "\nAccuracy (%) over " << result.problems << " problems (" << result.candidates
      << " candidates); each N averages up to " << result.samples << " subsets per problem (seed " << result.seed
      << "; all subsets when there are no more than that).\n";
  if (result.labeled_solutions > 0) {
    out << "\n**Step scores** (" << result.labeled_steps << " labeled steps in " << result.labeled_solutions
        << " solutions)\n\n";
    out << "- step AUROC: " << (result.step_auroc ? number(*result.step_auroc) : std::string("- (one class only)"))
        << "\n";
    if (result.first_error) {
      const auto& m = *result.first_error;
      out << "- first error (threshold " << number(m.threshold) << "): error acc. " << percent(m.error_accuracy)
          << "% (" << m.n_error << "), correct acc. " << percent(m.correct_accuracy) << "% (" << m.n_correct << "), F1 "
          << percent(m.f1) << "%\n";
    }
    if (result.reliability) {
      out << "- expected calibration error: " << number(result.reliability->ece) << "\n\n";
      out << "| bin | count | mean score | accuracy |\n|---|---:|---:|---:|\n";
      for (const auto& b : result.reliability->bins)
        out << "| [" << number(b.lo) << ", " << number(b.hi) << (b.hi >= 1 ? "]" : ")") << " | " << b.count << " | "
            << number(b.mean_score) << " | " << number(b.accuracy) << " |\n";
    } else {
      out << "- reliability: not computed (a step score lies outside [0, 1])\n";
    }
  }
  return out.str();
}

std::string bon_svg(const BonResult& result, const std::string& title) {
  const double left = 60, top = 44, plot_w = 420, plot_h = 260, legend_w = 150, bottom = 50;
  const double width = left + plot_w + 20 + legend_w, height = top + plot_h + bottom;
  // y range: multiples of 0.1 around the data, within [0, 1].
  double lo = 1, hi = 0;
  for (const auto& c : result.curves)
    for (double a : c.accuracy) {
      lo = std::min(lo, a);
      hi = std::max(hi, a);
    }
  if (lo > hi) lo = 0, hi = 1;
  lo = std::max(0.0, std::floor(lo * 10 - 1e-9) / 10);
  hi = std::min(1.0, std::ceil(hi * 10 + 1e-9) / 10);
  if (hi - lo < 0.1) hi = std::min(1.0, lo + 0.1), lo = hi - 0.1;
  auto y_of = [&](double v) { return top + plot_h * (1 - (v - lo) / (hi - lo)); };
  // x: log2 N.
  const double x_max = result.n.empty() ? 1 : std::log2(static_cast<double>(result.n.back()));
  auto x_of = [&](int n) {
    if (x_max <= 0) return left + plot_w / 2;
    return left + 20 + (plot_w - 40) * std::log2(static_cast<double>(n)) / x_max;
  };

  std::ostringstream o;
  o << svg_open(width, height, title);
  const int ticks = static_cast<int>(std::lround((hi - lo) * 10));
  const int step = ticks > 5 ? 2 : 1;
  for (int k = 0; k <= ticks; k += step) {
    const double v = lo + k / 10.0, y = y_of(v);
    o << line(left, y, left + plot_w, y, k == 0 ? "#333333" : "#dddddd");
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333333\">%.0f</text>\n", left - 6, y + 4,
                100 * v);
  }
  o << line(left, top, left, top + plot_h, "#333333");
  for (int n : result.n) {
    const double x = x_of(n);
    o << line(x, top + plot_h, x, top + plot_h + 4, "#333333");
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x, top + plot_h + 18, n);
  }
  o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">N (samples, log scale)</text>\n", left + plot_w / 2,
              top + plot_h + 38);
  o << format(
      "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">accuracy (%%)</text>\n",
      top + plot_h / 2, top + plot_h / 2);
  for (size_t i = 0; i < result.curves.size(); ++i) {
    const auto& c = result.curves[i];
    std::string points;
    for (size_t k = 0; k < c.accuracy.size() && k < result.n.size(); ++k)
      points += format("%s%.1f,%.1f", k ? " " : "", x_of(result.n[k]), y_of(c.accuracy[k]));
    o << format("<polyline class=\"curve\" points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\">",
                points.c_str(), colour(i))
      << "<title>" << xml_escape(c.method) << "</title></polyline>\n";
    for (size_t k = 0; k < c.accuracy.size() && k < result.n.size(); ++k)
      o << format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>", x_of(result.n[k]), y_of(c.accuracy[k]),
                  colour(i))
        << xml_escape(c.method)
        << format(" N=%d: %s%%</title></circle>\n", result.n[k], percent(c.accuracy[k]).c_str());
    const double ly = top + 10 + 20 * static_cast<double>(i), lx = left + plot_w + 20;
    o << format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", lx, ly,
                lx + 24, ly, colour(i));
    o << format("<text x=\"%.1f\" y=\"%.1f\">", lx + 30, ly + 4) << xml_escape(c.method) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

std::string reliability_svg(const ReliabilityTable& table, const std::string& title) {
  const double left = 60, top = 44, size = 300, bottom = 50, right = 20;
  const double width = left + size + right, height = top + size + bottom;
  auto x_of = [&](double v) { return left + size * v; };
  auto y_of = [&](double v) { return top + size * (1 - v); };
  std::ostringstream o;
  o << svg_open(width, height, title);
  for (int k = 0; k <= 5; ++k) {
    const double v = k / 5.0;
    o << line(left, y_of(v), left + size, y_of(v), k == 0 ? "#333333" : "#dddddd");
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333333\">%.1f</text>\n", left - 6, y_of(v) + 4,
                v);
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#333333\">%.1f</text>\n", x_of(v),
                top + size + 16, v);
  }
  o << line(left, top, left, top + size, "#333333");
  o << format(
      "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">fraction of "
      "right steps</text>\n",
      top + size / 2, top + size / 2);
  for (const auto& b : table.bins) {
    if (b.count == 0) continue;
    const double x = x_of(b.lo) + 1, w = std::max(0.0, x_of(b.hi) - x_of(b.lo) - 2);
    const double y = y_of(b.accuracy), h = top + size - y;
    o << format(
             "<rect class=\"bin\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4c78a8\" "
             "fill-opacity=\"0.8\">",
             x, y, w, h)
      << format("<title>[%s, %s]: %lld steps, mean score %s, accuracy %s</title></rect>\n", number(b.lo).c_str(),
                number(b.hi).c_str(), static_cast<long long>(b.count), number(b.mean_score).c_str(),
                number(b.accuracy).c_str());
    o << format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#e45756\"/>\n", x_of(b.mean_score), y_of(b.accuracy));
  }
  o << format(
      "<line class=\"diagonal\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\" "
      "stroke-width=\"1\" stroke-dasharray=\"5 4\"/>\n",
      x_of(0), y_of(0), x_of(1), y_of(1));
  o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step score</text>\n", left + size / 2,
              top + size + 36);
  o << format("<text x=\"%.1f\" y=\"%.1f\" fill=\"#333333\">ECE %s, %lld steps</text>\n", left + 8, top + 16,
              number(table.ece).c_str(), static_cast<long long>(table.total));
  o << format(
      "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555555\" font-size=\"10\">bars: fraction right per bin; "
      "dots: at the bin's mean score</text>\n",
      left + 8, top + 30);
  o << "</svg>\n";
  return o.str();
}

}  // namespace stepverify
