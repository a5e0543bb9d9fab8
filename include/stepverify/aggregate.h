// stepverify/aggregate.h: how per-step scores become one solution score. One
// enum for the verifier's outcome, search's ranking, answer selection,
// evaluation and the CLI's --aggregate flags.
//
//   auto how = stepverify::parse_aggregate("prod");            // Aggregate::Product
//   double s = stepverify::aggregate({0.9, 0.5, 0.8}, how);      // 0.36
//   std::string name = stepverify::aggregate_name(how);          // "prod"
//
// Thread safety: pure functions.
#pragma once

#include "stepverify/export.h"

#include <string>
#include <string_view>
#include <vector>

namespace stepverify {

/// How per-step scores become one solution score.
enum class Aggregate {
  Min,            ///< the weakest step ("min")
  Max,            ///< the strongest step ("max")
  Product,        ///< product of the step scores ("prod")
  Mean,           ///< arithmetic mean ("mean")
  Last,           ///< the last step's score ("last")
  GeometricMean,  ///< exp of the mean log score ("geomean")
  Sum,            ///< the sum ("sum"): an implicit PRM's value of a prefix (its step rewards add up)
};

/// Parses "min", "max", "prod" / "product", "mean", "last", "geomean" /
/// "geometric_mean", "sum"; throws ConfigError naming the value.
STEPVERIFY_API Aggregate parse_aggregate(std::string_view name);
/// The short name parse_aggregate reads ("min", "max", "prod", "mean", "last", "geomean", "sum").
STEPVERIFY_API const char* aggregate_name(Aggregate how);
/// Applies `how` to `scores` (left to right); NaN when `scores` is empty.
STEPVERIFY_API double aggregate(const std::vector<double>& scores, Aggregate how);

}  // namespace stepverify
