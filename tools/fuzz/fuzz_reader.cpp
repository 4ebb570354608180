// libFuzzer target for the TSV/JSONL readers: the first byte picks the format and the
// options, the rest is the file. Indexing, random access, shuffling and sharding must
// either work or throw mm::Error; never a crash, hang or sanitizer report.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tools/fuzz/fuzz_reader.cpp tasks/dataset.cpp tasks/base64.cpp tasks/discrete.cpp \
//     tasks/vocab.cpp tasks/rng.cpp -o build/fuzz_reader
//   build/fuzz_reader -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/error.h"
#include "tasks/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string content(reinterpret_cast<const char*>(data + 1), size - 1);
  mm::DatasetOptions opt;
  opt.format = (mode & 1) ? mm::DataFormat::jsonl : mm::DataFormat::tsv;
  opt.on_bad_row = (mode & 2) ? mm::OnBadRow::skip : mm::OnBadRow::fail;
  if (mode & 4) {
    static const mm::FieldKind kinds[] = {mm::FieldKind::any, mm::FieldKind::string,
                                          mm::FieldKind::number, mm::FieldKind::integer,
                                          mm::FieldKind::number_list, mm::FieldKind::base64};
    opt.fields = {{"a", kinds[(mode >> 3) % 6]}, {"b", kinds[(mode >> 5) % 6]}};
  }
  try {
    mm::Dataset d = mm::Dataset::from_string(content, "fuzz", opt);
    for (int64_t i = 0; i < d.size(); ++i) {
      mm::Row r = d.row(i);
      if (r.values.size() != d.columns().size()) __builtin_trap();
    }
    for (int rank = 0; rank < 3; ++rank) (void)d.epoch_order(mode, 1, rank, 3);
  } catch (const mm::Error&) {
  }
  return 0;
}
