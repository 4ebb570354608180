#include "tasks/base64.h"

#include "runtime/error.h"

namespace mm {

namespace {
int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}
}  // namespace

std::optional<std::string> base64_problem(std::string_view s) {
  size_t n = s.size();
  size_t pad = 0;
  while (pad < 2 && n > 0 && s[n - 1] == '=') --n, ++pad;
  if (pad > 0 && (n + pad) % 4 != 0)
    return cat("length ", s.size(), " with '=' padding is not a multiple of 4");
  for (size_t i = 0; i < n; ++i)
    if (value_of(s[i]) < 0) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      return c >= 0x20 && c < 0x7f ? cat("bad character '", s[i], "' at offset ", i)
                                   : cat("bad byte 0x", "0123456789abcdef"[c >> 4],
                                         "0123456789abcdef"[c & 15], " at offset ", i);
    }
  if (n % 4 == 1) return cat("length ", n, " leaves a single dangling character");
  return std::nullopt;
}

std::vector<uint8_t> base64_decode(std::string_view s) {
  if (auto p = base64_problem(s)) throw Error(cat("base64: ", *p));
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  std::vector<uint8_t> out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    acc = (acc << 6) | uint32_t(value_of(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  return out;
}

std::string base64_encode(const uint8_t* d, size_t n) {
  static const char* A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = uint32_t(d[i]) << 16 | (i + 1 < n ? uint32_t(d[i + 1]) << 8 : 0) |
                 (i + 2 < n ? uint32_t(d[i + 2]) : 0);
    out += A[v >> 18];
    out += A[(v >> 12) & 63];
    out += i + 1 < n ? A[(v >> 6) & 63] : '=';
    out += i + 2 < n ? A[v & 63] : '=';
  }
  return out;
}

}  // namespace mm
