// Base64 (RFC 4648) for binary fields in TSV/JSONL rows (images, audio). Accepts the
// standard and the URL-safe alphabet, with or without '=' padding; no whitespace.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// Decoded bytes; throws mm::Error naming the offset of the first bad character.
std::vector<uint8_t> base64_decode(std::string_view text);
// What is wrong with `text` as base64, or nullopt when it decodes. No allocation.
std::optional<std::string> base64_problem(std::string_view text);
// Standard alphabet, padded.
std::string base64_encode(const uint8_t* data, size_t n);

}  // namespace mm
