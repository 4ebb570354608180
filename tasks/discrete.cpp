#include "tasks/discrete.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace mm {

std::vector<int64_t> discrete_to_ids(const std::vector<int64_t>& values, const Vocab& v) {
  const int64_t n = v.range(TokenKind::discrete).size();
  std::vector<int64_t> ids;
  ids.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    MM_CHECK(values[i] >= 0 && values[i] < n, "discrete: value ", values[i], " at index ", i,
             " out of range [0, ", n, ")");
    ids.push_back(v.range(TokenKind::discrete).begin + values[i]);
  }
  return ids;
}

std::vector<int64_t> ids_to_discrete(const std::vector<int64_t>& ids, const Vocab& v) {
  std::vector<int64_t> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(v.to_local(TokenKind::discrete, id));
  return out;
}

namespace {
// Splits "[a, b c]" into number tokens: brackets optional, separators ',' and blanks.
std::vector<std::string> number_tokens(std::string_view text) {
  std::string s(text);
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  s = s.substr(b, e - b + 1);
  if (!s.empty() && s.front() == '[') {
    MM_CHECK(s.back() == ']', "number list: '", text, "' opens '[' but does not close it");
    s = s.substr(1, s.size() - 2);
  }
  std::vector<std::string> out;
  std::string cur;
  bool after_comma = false;
  for (char c : s) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (!cur.empty()) out.push_back(cur), cur.clear(), after_comma = false;
      if (c == ',') {
        MM_CHECK(!after_comma && !out.empty(), "number list: empty element in '", text, "'");
        after_comma = true;
      }
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  else MM_CHECK(!after_comma, "number list: trailing ',' in '", text, "'");
  return out;
}
}  // namespace

std::vector<int64_t> parse_int_list(std::string_view text) {
  std::vector<int64_t> out;
  for (const std::string& t : number_tokens(text)) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(t.c_str(), &end, 10);
    MM_CHECK(end == t.c_str() + t.size() && errno == 0, "integer list: '", t,
             "' is not an integer (in '", text, "')");
    out.push_back(v);
  }
  return out;
}

std::vector<double> parse_number_list(std::string_view text) {
  std::vector<double> out;
  for (const std::string& t : number_tokens(text)) {
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    MM_CHECK(end == t.c_str() + t.size() && errno == 0 && std::isfinite(v), "number list: '", t,
             "' is not a finite number (in '", text, "')");
    out.push_back(v);
  }
  return out;
}

}  // namespace mm
