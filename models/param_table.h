// A model's parameters by component, computed from its config without allocating
// anything (so `build/describe_model huge` works on a small machine). The configs'
// parameter_count() is the sum of their table; tests check that a built model
// allocates exactly that many.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mm {

struct ParamRow {
  std::string name;    // component, e.g. "encoder.layers (4x)"
  std::string detail;  // its shape in words, e.g. "d 256, FFN 1024, 4 heads, NormFormer"
  int64_t count = 0;   // parameters
};

inline int64_t sum_params(const std::vector<ParamRow>& rows) {
  int64_t n = 0;
  for (auto& r : rows) n += r.count;
  return n;
}

}  // namespace mm
