// DISCRETE preprocessing: integer actions in [0, n_discrete) <-> ids in their own range.
//
//   auto ids = discrete_to_ids({3, 0, 1023}, vocab);   auto back = ids_to_discrete(ids, vocab);
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "tasks/vocab.h"

namespace mm {

// [N] integers -> [N] global ids; throws naming the value when outside [0, n_discrete).
std::vector<int64_t> discrete_to_ids(const std::vector<int64_t>& values, const Vocab& v);
// [N] global ids (discrete range only) -> [N] integers.
std::vector<int64_t> ids_to_discrete(const std::vector<int64_t>& ids, const Vocab& v);
// "3 0 17" or "3,0,17" or "[3, 0, 17]" -> {3, 0, 17}; throws on anything else.
std::vector<int64_t> parse_int_list(std::string_view text);
// "0.5 -1e3" / "[0.5, -1e3]" -> {0.5, -1000}; throws on anything else (incl. NaN/inf).
std::vector<double> parse_number_list(std::string_view text);

}  // namespace mm
