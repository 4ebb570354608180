#include "tasks/vocab.h"

#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace mm {

namespace {
constexpr std::string_view kKindNames[kNumTokenKinds] = {
    "special", "text", "image", "location", "continuous", "discrete", "phone"};
// Prefix of "<prefix_i>" strings per kind (specials have their own names).
constexpr std::string_view kPrefixes[kNumTokenKinds] = {
    "", "text", "code", "bin", "cont", "disc", "phone"};
constexpr std::string_view kSpecialNames[Vocab::kNumSpecials] = {
    "<pad>", "<bos>", "<eos>", "<unk>", "<mask>", "<sep>"};
}  // namespace

std::string_view token_kind_name(TokenKind k) { return kKindNames[int(k)]; }

Vocab::Vocab(const VocabSizes& s) : sizes_(s) {
  const int64_t n[kNumTokenKinds] = {kNumSpecials, s.n_text,       s.n_image, s.n_location,
                                     s.n_continuous, s.n_discrete, s.n_phone};
  int64_t at = 0;
  for (int k = 0; k < kNumTokenKinds; ++k) {
    MM_CHECK(n[k] >= 0 && n[k] <= (int64_t(1) << 31), "vocab: size of ", kKindNames[k],
             " must be in [0, 2^31], got ", n[k]);
    ranges_[k] = {at, at + n[k]};
    at += n[k];
  }
}

TokenKind Vocab::kind_of(int64_t id) const {
  for (int k = 0; k < kNumTokenKinds; ++k)
    if (ranges_[k].contains(id)) return TokenKind(k);
  throw Error(cat("vocab: id ", id, " is outside the vocabulary [0, ", size(), ")"));
}

int64_t Vocab::to_id(TokenKind k, int64_t local) const {
  const IdRange& r = ranges_[int(k)];
  MM_CHECK(local >= 0 && local < r.size(), "vocab: ", kKindNames[int(k)], " index ", local,
           " out of range [0, ", r.size(), ")");
  return r.begin + local;
}

int64_t Vocab::to_local(TokenKind k, int64_t id) const {
  const IdRange& r = ranges_[int(k)];
  MM_CHECK(r.contains(id), "vocab: id ", id, " is not a ", kKindNames[int(k)], " token (range [",
           r.begin, ", ", r.end, "))");
  return id - r.begin;
}

std::string Vocab::token_string(int64_t id) const {
  TokenKind k = kind_of(id);
  if (k == TokenKind::special) return std::string(kSpecialNames[id]);
  return cat("<", kPrefixes[int(k)], "_", id - ranges_[int(k)].begin, ">");
}

std::optional<int64_t> Vocab::id_of(std::string_view tok) const {
  for (int64_t i = 0; i < kNumSpecials; ++i)
    if (kSpecialNames[i] == tok) return i;
  if (tok.size() < 4 || tok.front() != '<' || tok.back() != '>') return std::nullopt;
  tok = tok.substr(1, tok.size() - 2);
  size_t us = tok.rfind('_');
  if (us == std::string_view::npos) return std::nullopt;
  std::string_view prefix = tok.substr(0, us), num = tok.substr(us + 1);
  if (num.empty() || num.size() > 10 || (num.size() > 1 && num[0] == '0')) return std::nullopt;
  int64_t v = 0;
  for (char c : num) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  for (int k = 1; k < kNumTokenKinds; ++k)
    if (kPrefixes[k] == prefix && v < ranges_[k].size()) return ranges_[k].begin + v;
  return std::nullopt;
}

std::string Vocab::to_json() const {
  nlohmann::json j;
  j["format"] = "mm-vocab";
  j["version"] = 1;
  j["sizes"] = {{"text", sizes_.n_text},           {"image", sizes_.n_image},
                {"location", sizes_.n_location},   {"continuous", sizes_.n_continuous},
                {"discrete", sizes_.n_discrete},   {"phone", sizes_.n_phone}};
  nlohmann::json ranges = nlohmann::json::array();
  for (int k = 0; k < kNumTokenKinds; ++k)
    ranges.push_back({{"kind", kKindNames[k]}, {"begin", ranges_[k].begin},
                      {"end", ranges_[k].end}});
  j["ranges"] = ranges;
  j["specials"] = nlohmann::json::array();
  for (auto s : kSpecialNames) j["specials"].push_back(s);
  return j.dump();
}

Vocab Vocab::from_json(std::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("vocab json: ", e.what()));
  }
  MM_CHECK(j.is_object() && j.value("format", "") == "mm-vocab",
           "vocab json: expected an object with \"format\": \"mm-vocab\"");
  MM_CHECK(j.contains("version") && j["version"] == 1, "vocab json: unsupported version ",
           j.contains("version") ? j["version"].dump() : "(missing)", " (expected 1)");
  MM_CHECK(j.contains("sizes") && j["sizes"].is_object(), "vocab json: missing \"sizes\"");
  const nlohmann::json& s = j["sizes"];
  auto get = [&](const char* key) -> int64_t {
    MM_CHECK(s.contains(key) && s[key].is_number_integer(), "vocab json: sizes.", key,
             " must be an integer");
    return s[key].get<int64_t>();
  };
  VocabSizes sz;
  sz.n_text = get("text");
  sz.n_image = get("image");
  sz.n_location = get("location");
  sz.n_continuous = get("continuous");
  sz.n_discrete = get("discrete");
  sz.n_phone = get("phone");
  Vocab v(sz);
  // The stored ranges are redundant with the sizes; check them so that a file edited by
  // hand (or written by a future layout) cannot silently shift ids.
  if (j.contains("ranges")) {
    const nlohmann::json& r = j["ranges"];
    MM_CHECK(r.is_array() && r.size() == size_t(kNumTokenKinds), "vocab json: \"ranges\" must "
             "list ", kNumTokenKinds, " kinds");
    for (int k = 0; k < kNumTokenKinds; ++k) {
      const nlohmann::json& e = r[k];
      bool ok = e.is_object() && e.value("kind", "") == kKindNames[k] &&
                e.contains("begin") && e["begin"].is_number_integer() &&
                e["begin"].get<int64_t>() == v.ranges_[k].begin && e.contains("end") &&
                e["end"].is_number_integer() && e["end"].get<int64_t>() == v.ranges_[k].end;
      MM_CHECK(ok, "vocab json: ranges[", k, "] is ", e.dump(), ", expected kind ",
               kKindNames[k], " [", v.ranges_[k].begin, ", ", v.ranges_[k].end, ")");
    }
  }
  if (j.contains("specials")) {
    const nlohmann::json& sp = j["specials"];
    MM_CHECK(sp.is_array() && sp.size() == size_t(kNumSpecials), "vocab json: \"specials\" must "
             "list ", kNumSpecials, " tokens");
    for (int i = 0; i < kNumSpecials; ++i)
      MM_CHECK(sp[i].is_string() && sp[i].get<std::string>() == kSpecialNames[i],
               "vocab json: specials[", i, "] is ", sp[i].dump(), ", expected ", kSpecialNames[i]);
  }
  return v;
}

bool Vocab::operator==(const Vocab& o) const {
  for (int k = 0; k < kNumTokenKinds; ++k)
    if (ranges_[k].begin != o.ranges_[k].begin || ranges_[k].end != o.ranges_[k].end)
      return false;
  return true;
}

}  // namespace mm
