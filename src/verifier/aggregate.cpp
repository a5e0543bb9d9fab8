// Aggregates of per-step scores.
#include "stepverify/aggregate.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "stepverify/errors.h"

namespace stepverify {

Aggregate parse_aggregate(std::string_view name) {
  if (name == "min") return Aggregate::Min;
  if (name == "max") return Aggregate::Max;
  if (name == "prod" || name == "product") return Aggregate::Product;
  if (name == "mean") return Aggregate::Mean;
  if (name == "last") return Aggregate::Last;
  if (name == "geomean" || name == "geometric_mean") return Aggregate::GeometricMean;
  if (name == "sum") return Aggregate::Sum;
  throw ConfigError("unknown aggregate '" + std::string(name) +
                    "'; expected min, max, prod, mean, last, geomean or sum");
}

const char* aggregate_name(Aggregate how) {
  switch (how) {
    case Aggregate::Min:
      return "min";
    case Aggregate::Max:
      return "max";
    case Aggregate::Product:
      return "prod";
    case Aggregate::Mean:
      return "mean";
    case Aggregate::Last:
      return "last";
    case Aggregate::GeometricMean:
      return "geomean";
    case Aggregate::Sum:
      return "sum";
  }
  return "?";
}

double aggregate(const std::vector<double>& v, Aggregate how) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  switch (how) {
    case Aggregate::Min:
      return *std::min_element(v.begin(), v.end());
    case Aggregate::Max:
      return *std::max_element(v.begin(), v.end());
    case Aggregate::Product: {
      double p = 1.0;
      for (double x : v) p *= x;
      return p;
    }
    case Aggregate::Mean: {
      double m = 0.0;
      for (double x : v) m += x;
      return m / static_cast<double>(v.size());
    }
    case Aggregate::Last:
      return v.back();
    case Aggregate::GeometricMean: {
      double logs = 0;
      for (double x : v) logs += std::log(x);
      return std::exp(logs / static_cast<double>(v.size()));
    }
    case Aggregate::Sum: {
      double s = 0;
      for (double x : v) s += x;
      return s;
    }
  }
  return v.back();
}

}  // namespace stepverify
