#include "tasks/text_fields.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace mm {

namespace {
bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
std::string trimmed(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return std::string(s);
}
bool is_ascii_punct(char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}
std::vector<std::string> split(std::string_view s, std::string_view sep) {
  std::vector<std::string> out;
  size_t b = 0;
  while (true) {
    size_t e = s.find(sep, b);
    if (e == std::string_view::npos) { out.emplace_back(s.substr(b)); break; }
    out.emplace_back(s.substr(b, e - b));
    b = e + sep.size();
  }
  return out;
}
}  // namespace

std::string normalize_text(std::string_view text, const TextNormalization& opt) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (char c : text) {
    if (opt.uncased && c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (opt.no_punctuation && is_ascii_punct(c)) c = ' ';
    if (is_ws(c)) { space = !out.empty(); continue; }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string serialize_table(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    MM_CHECK(!rows[r].empty(), "struct: row ", r, " has no cells");
    if (r) out += " | ";
    for (size_t c = 0; c < rows[r].size(); ++c) {
      std::string cell = trimmed(rows[r][c]);
      bool ambiguous = cell.find(" : ") != std::string::npos ||
                       cell.find(" | ") != std::string::npos ||
                       (!cell.empty() && (cell.front() == ':' || cell.front() == '|' ||
                                          cell.back() == ':' || cell.back() == '|'));
      MM_CHECK(!ambiguous, "struct: cell [", r, "][", c, "] '", cell,
               "' contains a separator (' : ' or ' | ') or starts/ends with ':' or '|'");
      if (c) out += " : ";
      out += cell;
    }
  }
  return out;
}

std::vector<std::vector<std::string>> parse_table(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::string t = trimmed(text);
  if (t.empty()) return rows;
  for (const std::string& row : split(t, " | ")) rows.push_back(split(row, " : "));
  return rows;
}

std::string struct_field_to_text(std::string_view field) {
  std::string t = trimmed(field);
  if (t.empty() || t.front() != '[') return t;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(t);
  } catch (const nlohmann::json::exception&) {
    j = nlohmann::json(nlohmann::json::value_t::discarded);
  }
  MM_CHECK(!j.is_discarded() && j.is_array(), "struct: field starts with '[' but is not a JSON "
           "array of rows: ", t.substr(0, 80));
  std::vector<std::vector<std::string>> rows;
  for (size_t r = 0; r < j.size(); ++r) {
    MM_CHECK(j[r].is_array(), "struct: row ", r, " is not an array of cells");
    rows.emplace_back();
    for (const auto& cell : j[r]) {
      if (cell.is_string()) rows.back().push_back(cell.get<std::string>());
      else if (cell.is_number() || cell.is_boolean()) rows.back().push_back(cell.dump());
      else throw Error(cat("struct: row ", r, " has a cell that is not a string or number: ",
                           cell.dump()));
    }
  }
  return serialize_table(rows);
}

CategorySet::CategorySet(std::vector<std::string> labels) {
  for (auto& l : labels) {
    std::string t = trimmed(l);
    MM_CHECK(!t.empty(), "category: empty label");
    MM_CHECK(t.find(',') == std::string::npos, "category: label '", t, "' contains ','");
    MM_CHECK(std::find(labels_.begin(), labels_.end(), t) == labels_.end(),
             "category: duplicate label '", t, "'");
    labels_.push_back(t);
  }
  MM_CHECK(!labels_.empty(), "category: the label set is empty");
}

int CategorySet::index_of(std::string_view label) const {
  std::string t = trimmed(label);
  for (size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] == t) return int(i);
  std::string all;
  for (size_t i = 0; i < labels_.size() && i < 20; ++i) all += (i ? ", " : "") + labels_[i];
  throw Error(cat("category: unknown label '", t, "' (expected one of: ", all,
                  labels_.size() > 20 ? ", ..." : "", ")"));
}

std::vector<int> CategorySet::parse(std::string_view field) const {
  std::vector<int> idx;
  for (const std::string& part : split(field, ",")) idx.push_back(index_of(part));
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  return idx;
}

std::string CategorySet::to_text(const std::vector<int>& indices) const {
  std::string out;
  for (size_t i = 0; i < indices.size(); ++i) {
    MM_CHECK(indices[i] >= 0 && indices[i] < int(labels_.size()), "category: index ",
             indices[i], " out of range [0, ", labels_.size(), ")");
    out += (i ? ", " : "") + labels_[indices[i]];
  }
  return out;
}

}  // namespace mm
