// safetensors: header length, JSON header, dtypes, shapes, offsets, overlaps.
#include <cstring>

#include "fuzz_target.h"
#include "stepverify/checkpoint.h"

STEPVERIFY_FUZZ_TARGET(safetensors) {
  auto file = stepverify::SafetensorsFile::parse(stepverify::memory_source(std::string(input), "fuzz.safetensors"));
  // Every tensor it accepts lies inside the bytes: read its first and last byte.
  volatile unsigned sum = 0;
  for (const auto& name : file->names()) {
    const auto t = file->tensor(name);
    if (t.nbytes != static_cast<size_t>(t.numel()) * stepverify::dtype_size(t.dtype)) std::abort();
    if (t.nbytes > 0) sum = sum + static_cast<unsigned>(t.data[0]) + static_cast<unsigned>(t.data[t.nbytes - 1]);
  }
  for (const auto& [k, v] : file->metadata()) sum = sum + static_cast<unsigned>(k.size() + v.size());
}
