// Streaming datasets over TSV and JSONL files.
//
//   Dataset d = Dataset::open("data/caption_train.tsv",
//                             {.fields = {{"img", FieldKind::base64}, {"cap"}}});
//   for (int64_t i : d.epoch_order(seed, epoch, rank, world)) {
//     Row r = d.row(i);                       // re-read from disk by byte offset
//     const std::string& cap = r.values[d.column_index("cap")];
//   }
//
// Opening makes one streaming pass: it records the byte offset and line of every good
// row (16 bytes a row) and validates it; rows are never held in memory. Shuffling and
// sharding permute these indices, so they work on files larger than memory.
//
// TSV: the first record is the header (column names, unique, non-empty). Fields are
// separated by tabs; a field that starts with '"' is quoted (RFC 4180): '""' inside is a
// literal quote and tabs/newlines may appear inside; a '"' inside an unquoted field is
// literal. CRLF line ends and a UTF-8 BOM are accepted. Blank lines are skipped.
// JSONL: one JSON object per line; values that are strings are taken as they are, other
// values (numbers, arrays, objects) as their JSON text; null counts as missing. Columns
// are `fields` when given, else the keys of the first good row.
//
// Bad rows (wrong field count, missing field, wrong kind, undecodable base64, broken
// quoting or JSON) are reported as "FILE:LINE: field 'NAME': PROBLEM" and either throw
// (on_bad_row = fail, the default) or are skipped and counted (on_bad_row = skip).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

enum class OnBadRow { fail, skip };
enum class DataFormat { guess, tsv, jsonl };  // guess: by extension (.jsonl/.json -> jsonl)
// What a field must hold for its row to count as good.
enum class FieldKind { any, string, number, integer, number_list, base64 };

struct FieldSpec {
  std::string name;
  FieldKind kind = FieldKind::any;
};

struct DatasetOptions {
  DataFormat format = DataFormat::guess;
  OnBadRow on_bad_row = OnBadRow::fail;
  // Fields every row must have (checked by kind). Empty: all columns, kind any.
  std::vector<FieldSpec> fields = {};
  size_t max_messages = 100;  // bad-row messages kept when skipping
};

// "skip" / "fail" -> OnBadRow; throws naming the value otherwise.
OnBadRow parse_on_bad_row(std::string_view s);

struct Row {
  int64_t index = 0;                // in the dataset's good-row numbering
  int64_t line = 0;                 // 1-based line where the row starts in the file
  std::vector<std::string> values;  // one per Dataset::columns()
};

class Dataset {
 public:
  // Indexes the file (one streaming pass). Throws on a missing file, a bad header, a
  // required field absent from the header, or (fail mode) the first bad row.
  static Dataset open(const std::string& path, const DatasetOptions& opt = {});
  // The same over in-memory content; `name` is used in messages (and to guess the format).
  static Dataset from_string(std::string content, const std::string& name,
                             const DatasetOptions& opt = {});

  const std::string& name() const;
  const std::vector<std::string>& columns() const;
  int column_index(std::string_view column) const;  // -1 when absent
  int64_t size() const;                              // good rows
  int64_t bad_rows() const;                          // skipped rows (skip mode)
  const std::vector<std::string>& bad_row_messages() const;  // first max_messages
  // Row i (0 <= i < size()), re-read from the file. Thread-safe.
  Row row(int64_t i) const;
  // This rank's row indices for one epoch; see shard_order().
  std::vector<int64_t> epoch_order(uint64_t seed, int64_t epoch, int rank = 0, int world = 1,
                                   bool shuffle = true, bool equal_shards = false) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A permutation of [0, n) drawn from (seed, epoch) (identity when !shuffle), then the
// positions rank, rank + world, ... of it. Over all ranks every index appears exactly
// once. equal_shards: every rank gets ceil(n / world) indices, the short ones wrapping
// around to the start of the permutation (for lock-step data parallelism).
std::vector<int64_t> shard_order(int64_t n, uint64_t seed, int64_t epoch, int rank, int world,
                                 bool shuffle = true, bool equal_shards = false);

}  // namespace mm
