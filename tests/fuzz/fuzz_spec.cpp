// Verifier spec JSON (stepverify.json); an accepted spec round-trips.
#include "fuzz_target.h"
#include "stepverify/verifier_spec.h"

STEPVERIFY_FUZZ_TARGET(spec) {
  const auto spec = stepverify::VerifierSpec::from_json(std::string(input), "fuzz/stepverify.json");
  const std::string text = spec.to_json();
  if (stepverify::VerifierSpec::from_json(text, "round trip").to_json() != text) std::abort();
}
