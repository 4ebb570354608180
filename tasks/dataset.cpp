#include "tasks/dataset.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "runtime/error.h"
#include "tasks/base64.h"
#include "tasks/discrete.h"
#include "tasks/rng.h"

namespace mm {

OnBadRow parse_on_bad_row(std::string_view s) {
  if (s == "fail") return OnBadRow::fail;
  if (s == "skip") return OnBadRow::skip;
  throw Error(cat("on_bad_row: expected 'skip' or 'fail', got '", s, "'"));
}

namespace {

// One physical-line reader that knows the byte offset and line number it is at.
struct LineSource {
  std::istream* in = nullptr;
  int64_t offset = 0;  // byte offset of the next unread line
  int64_t line = 1;    // 1-based number of the next unread line
  bool next(std::string& out) {
    const int64_t start = offset;
    if (!std::getline(*in, out)) return false;
    offset += int64_t(out.size()) + (in->eof() ? 0 : 1);
    ++line;
    if (start == 0 && out.compare(0, 3, "\xEF\xBB\xBF") == 0) out.erase(0, 3);  // UTF-8 BOM
    if (!out.empty() && out.back() == '\r') out.pop_back();
    return true;
  }
};

// A TSV record: its fields, where it starts, and the first problem met while parsing.
struct TsvRecord {
  std::vector<std::string> fields;
  int64_t offset = 0, line = 0;
  bool blank = false;
  std::optional<std::string> problem;
  int problem_field = -1;  // 0-based field index the problem is in, -1 for the record
};

// Reads one TSV record (several physical lines when a quoted field holds newlines).
// Returns false at end of input.
bool read_tsv_record(LineSource& src, TsvRecord& rec) {
  std::string ln;
  rec = TsvRecord{};
  rec.offset = src.offset;
  rec.line = src.line;
  if (!src.next(ln)) return false;
  if (ln.empty()) { rec.blank = true; return true; }
  enum { start, unquoted, quoted, quote_seen } st = start;
  std::string cur;
  auto problem = [&](std::string msg) {
    if (!rec.problem) rec.problem = std::move(msg), rec.problem_field = int(rec.fields.size());
  };
  int64_t quote_line = 0;
  while (true) {
    for (char c : ln) {
      switch (st) {
        case start:
          if (c == '"') { st = quoted; quote_line = src.line - 1; break; }
          st = unquoted;
          [[fallthrough]];
        case unquoted:
          if (c == '\t') { rec.fields.push_back(std::move(cur)); cur.clear(); st = start; }
          else cur += c;
          break;
        case quoted:
          if (c == '"') st = quote_seen;
          else cur += c;
          break;
        case quote_seen:
          if (c == '"') { cur += '"'; st = quoted; break; }  // "" inside quotes
          if (c == '\t') { rec.fields.push_back(std::move(cur)); cur.clear(); st = start; break; }
          problem(cat("unexpected character '", c, "' after a closing quote (expected a tab "
                      "or the end of the line; write \"\" for a quote inside a quoted field)"));
          cur += c;
          st = unquoted;
          break;
      }
    }
    if (st != quoted) break;
    // Inside quotes at the end of the line: the newline belongs to the field.
    if (!src.next(ln)) {
      problem(cat("unterminated quoted field (the quote opened on line ", quote_line,
                  " never closes)"));
      break;
    }
    cur += '\n';
  }
  rec.fields.push_back(std::move(cur));
  return true;
}

std::optional<std::string> kind_problem(const std::string& v, FieldKind kind, bool json_string) {
  switch (kind) {
    case FieldKind::any: return std::nullopt;
    case FieldKind::string:
      if (!json_string) return std::string("expected a string");
      return std::nullopt;
    case FieldKind::number: {
      errno = 0;
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size() || errno || !std::isfinite(d))
        return cat("expected a number, got '", v.substr(0, 40), "'");
      return std::nullopt;
    }
    case FieldKind::integer: {
      errno = 0;
      char* end = nullptr;
      (void)std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || end != v.c_str() + v.size() || errno)
        return cat("expected an integer, got '", v.substr(0, 40), "'");
      return std::nullopt;
    }
    case FieldKind::number_list:
      try {
        parse_number_list(v);
      } catch (const Error& e) {
        return std::string(e.what());
      }
      return std::nullopt;
    case FieldKind::base64:
      if (v.empty()) return std::string("empty base64 field");
      if (auto p = base64_problem(v)) return cat("undecodable base64: ", *p);
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

struct Dataset::Impl {
  std::string name;
  DataFormat format = DataFormat::tsv;
  DatasetOptions opt;
  std::unique_ptr<std::istream> in;
  mutable std::mutex mu;
  std::vector<std::string> columns;
  std::vector<FieldKind> kinds;  // per column
  std::vector<int64_t> offsets, lines;
  int64_t bad = 0;
  std::vector<std::string> messages;

  std::string where(int64_t line, int field) const {
    if (field >= 0 && field < int(columns.size()))
      return cat(name, ":", line, ": field '", columns[field], "': ");
    return cat(name, ":", line, ": ");
  }

  // Parses the record/line at the stream position into `row`; returns the problem.
  std::optional<std::string> read_row(LineSource& src, Row& row, bool& eof, bool& blank) {
    eof = blank = false;
    if (format == DataFormat::tsv) {
      TsvRecord rec;
      if (!read_tsv_record(src, rec)) { eof = true; return std::nullopt; }
      row.line = rec.line;
      if (rec.blank) { blank = true; return std::nullopt; }
      if (rec.problem) return where(rec.line, rec.problem_field) + *rec.problem;
      if (rec.fields.size() != columns.size()) {
        if (rec.fields.size() < columns.size())
          return where(rec.line, int(rec.fields.size())) +
                 cat("missing (expected ", columns.size(), " tab-separated fields, got ",
                     rec.fields.size(), ")");
        return where(rec.line, -1) + cat("expected ", columns.size(),
                                         " tab-separated fields, got ", rec.fields.size());
      }
      for (size_t c = 0; c < columns.size(); ++c)
        if (auto p = kind_problem(rec.fields[c], kinds[c], true)) return where(rec.line, int(c)) + *p;
      row.values = std::move(rec.fields);
      return std::nullopt;
    }
    // JSONL
    std::string ln;
    row.line = src.line;
    if (!src.next(ln)) { eof = true; return std::nullopt; }
    if (ln.find_first_not_of(" \t") == std::string::npos) { blank = true; return std::nullopt; }
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(ln);
    } catch (const nlohmann::json::parse_error& e) {
      return where(row.line, -1) + cat("invalid JSON at byte ", e.byte, " of the line");
    } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
      std::string w = e.what();
      size_t cut = w.find("] ");
      return where(row.line, -1) + "invalid JSON: " + (cut == std::string::npos ? w : w.substr(cut + 2));
    }
    if (!j.is_object()) return where(row.line, -1) + cat("expected a JSON object, got ", j.type_name());
    if (columns.empty())  // no fields given: the first object's keys are the columns
      for (auto it = j.begin(); it != j.end(); ++it) {
        columns.push_back(it.key());
        kinds.push_back(FieldKind::any);
      }
    row.values.assign(columns.size(), std::string());
    for (size_t c = 0; c < columns.size(); ++c) {
      auto it = j.find(columns[c]);
      if (it == j.end() || it->is_null()) return where(row.line, int(c)) + "missing";
      bool is_str = it->is_string();
      row.values[c] = is_str ? it->get<std::string>() : it->dump();
      if (auto p = kind_problem(row.values[c], kinds[c], is_str)) return where(row.line, int(c)) + *p;
    }
    return std::nullopt;
  }

  void read_header(LineSource& src) {
    TsvRecord rec;
    do {
      MM_CHECK(read_tsv_record(src, rec), name, ": empty file (expected a header row of column "
               "names)");
    } while (rec.blank);
    MM_CHECK(!rec.problem, name, ":", rec.line, ": bad header: ", rec.problem.value_or(""));
    for (size_t i = 0; i < rec.fields.size(); ++i) {
      MM_CHECK(!rec.fields[i].empty(), name, ":", rec.line, ": header column ", i + 1,
               " has no name");
      for (size_t k = 0; k < i; ++k)
        MM_CHECK(rec.fields[k] != rec.fields[i], name, ":", rec.line, ": header names column '",
                 rec.fields[i], "' twice");
    }
    columns = rec.fields;
    kinds.assign(columns.size(), FieldKind::any);
    for (const FieldSpec& f : opt.fields) {
      int c = -1;
      for (size_t i = 0; i < columns.size(); ++i)
        if (columns[i] == f.name) c = int(i);
      std::string all;
      for (size_t i = 0; i < columns.size(); ++i) all += (i ? ", " : "") + columns[i];
      MM_CHECK(c >= 0, name, ":", rec.line, ": column '", f.name, "' is not in the header "
               "(columns: ", all, ")");
      kinds[c] = f.kind;
    }
  }

  void index() {
    LineSource src{in.get(), 0, 1};
    if (format == DataFormat::tsv) {
      read_header(src);
    } else {
      for (const FieldSpec& f : opt.fields) {
        columns.push_back(f.name);
        kinds.push_back(f.kind);
      }
    }
    while (true) {
      Row row;
      bool eof = false, blank = false;
      int64_t offset = src.offset;
      auto problem = read_row(src, row, eof, blank);
      if (eof) break;
      if (blank) continue;
      if (problem) {
        if (opt.on_bad_row == OnBadRow::fail)
          throw Error(*problem + " (set on_bad_row: skip to skip bad rows)");
        ++bad;
        if (messages.size() < opt.max_messages) messages.push_back(*problem);
        continue;
      }
      offsets.push_back(offset);
      lines.push_back(row.line);
    }
  }
};

namespace {
DataFormat guess_format(const std::string& name, DataFormat f) {
  if (f != DataFormat::guess) return f;
  auto ends = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".jsonl") || ends(".json") || ends(".ndjson") ? DataFormat::jsonl : DataFormat::tsv;
}
}  // namespace

Dataset Dataset::open(const std::string& path, const DatasetOptions& opt) {
  auto f = std::make_unique<std::ifstream>(path, std::ios::binary);
  MM_CHECK(f->is_open(), path, ": cannot open the data file");
  Dataset d;
  d.impl_ = std::make_shared<Impl>();
  d.impl_->name = path;
  d.impl_->opt = opt;
  d.impl_->format = guess_format(path, opt.format);
  d.impl_->in = std::move(f);
  d.impl_->index();
  return d;
}

Dataset Dataset::from_string(std::string content, const std::string& name,
                             const DatasetOptions& opt) {
  Dataset d;
  d.impl_ = std::make_shared<Impl>();
  d.impl_->name = name;
  d.impl_->opt = opt;
  d.impl_->format = guess_format(name, opt.format);
  d.impl_->in = std::make_unique<std::istringstream>(std::move(content), std::ios::binary);
  d.impl_->index();
  return d;
}

const std::string& Dataset::name() const { return impl_->name; }
const std::vector<std::string>& Dataset::columns() const { return impl_->columns; }
int Dataset::column_index(std::string_view c) const {
  for (size_t i = 0; i < impl_->columns.size(); ++i)
    if (impl_->columns[i] == c) return int(i);
  return -1;
}
int64_t Dataset::size() const { return int64_t(impl_->offsets.size()); }
int64_t Dataset::bad_rows() const { return impl_->bad; }
const std::vector<std::string>& Dataset::bad_row_messages() const { return impl_->messages; }

Row Dataset::row(int64_t i) const {
  MM_CHECK(i >= 0 && i < size(), impl_->name, ": row ", i, " out of range [0, ", size(), ")");
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::istream& in = *impl_->in;
  in.clear();
  in.seekg(impl_->offsets[i]);
  LineSource src{&in, impl_->offsets[i], impl_->lines[i]};
  Row row;
  bool eof = false, blank = false;
  auto problem = impl_->read_row(src, row, eof, blank);
  MM_CHECK(!eof && !blank, impl_->name, ":", impl_->lines[i], ": row vanished (file changed "
           "since it was indexed?)");
  if (problem) throw Error(*problem + " (file changed since it was indexed?)");
  row.index = i;
  return row;
}

std::vector<int64_t> Dataset::epoch_order(uint64_t seed, int64_t epoch, int rank, int world,
                                          bool shuffle, bool equal_shards) const {
  return shard_order(size(), seed, epoch, rank, world, shuffle, equal_shards);
}

std::vector<int64_t> shard_order(int64_t n, uint64_t seed, int64_t epoch, int rank, int world,
                                 bool shuffle, bool equal_shards) {
  MM_CHECK(world >= 1 && rank >= 0 && rank < world, "shard_order: need 0 <= rank < world, got "
           "rank ", rank, ", world ", world);
  MM_CHECK(n >= 0, "shard_order: negative size");
  std::vector<int64_t> perm;
  if (shuffle) {
    std::mt19937_64 rng(mix64(seed) ^ mix64(uint64_t(epoch) + 0x5851f42d4c957f2dull));
    perm = permutation(n, rng);
  } else {
    perm.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
  }
  std::vector<int64_t> out;
  if (n == 0) return out;
  if (equal_shards) {
    int64_t per = (n + world - 1) / world;
    for (int64_t k = 0; k < per; ++k) out.push_back(perm[(rank + k * world) % n]);
  } else {
    for (int64_t i = rank; i < n; i += world) out.push_back(perm[i]);
  }
  return out;
}

}  // namespace mm
