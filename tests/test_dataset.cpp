// Datasets (TSV/JSONL readers, bad rows, shuffling, sharding), batching and tries.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "runtime/error.h"
#include "tasks/base64.h"
#include "tasks/batch.h"
#include "tasks/dataset.h"
#include "tasks/trie.h"

using namespace mm;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("dataset: TSV with header, RFC-4180 quoting, CRLF, BOM, base64") {
  const std::string img = base64_encode(reinterpret_cast<const uint8_t*>("\x89PNG\r\n"), 6);
  std::string tsv = "\xEF\xBB\xBFuid\timg\tcap\r\n"
                    "1\t" + img + "\ta dog\r\n"
                    "2\t" + img + "\t\"a \"\"quoted\"\" cat\"\n"
                    "\n"  // blank lines are skipped
                    "3\t" + img + "\t\"two\tfields\nand two lines\"\n"
                    "4\t" + img + "\tsay \"hi\"\n";  // a quote inside an unquoted field is literal
  Dataset d = Dataset::from_string(tsv, "mem.tsv", {.fields = {{"img", FieldKind::base64}, {"uid", FieldKind::integer}}});
  CHECK(d.columns() == std::vector<std::string>{"uid", "img", "cap"});
  REQUIRE(d.size() == 4);
  CHECK(d.column_index("cap") == 2);
  CHECK(d.column_index("nope") == -1);
  CHECK(d.row(0).values == std::vector<std::string>{"1", img, "a dog"});
  CHECK(d.row(1).values[2] == "a \"quoted\" cat");
  CHECK(d.row(2).values[2] == "two\tfields\nand two lines");
  CHECK(d.row(2).line == 5);
  CHECK(d.row(3).values[2] == "say \"hi\"");
  CHECK(d.row(3).line == 7);
  CHECK(d.row(1).index == 1);
  CHECK(base64_decode(d.row(0).values[1]) == std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n'});
  CHECK_THROWS_AS(d.row(4), Error);
}

TEST_CASE("dataset: bad TSV rows name file, line and field; skip vs fail") {
  std::string tsv = "uid\timg\tcap\n"
                    "1\taGVsbG8=\tok\n"
                    "2\taGVsbG8=\n"              // line 3: missing field cap
                    "x\taGVsbG8=\tok\n"          // line 4: uid not an integer
                    "4\tnot base64!\tok\n"       // line 5: undecodable
                    "5\t\"open\" x\tok\n"        // line 6: junk after closing quote
                    "6\taGVsbG8=\tok\n"
                    "7\taGVsbG8=\tok\textra\n";  // line 8: too many fields
  DatasetOptions opt{.fields = {{"uid", FieldKind::integer}, {"img", FieldKind::base64}}};
  std::string msg = error_of([&] { Dataset::from_string(tsv, "bad.tsv", opt); });
  CHECK(msg.find("bad.tsv:3: field 'cap': missing") != std::string::npos);
  CHECK(msg.find("on_bad_row: skip") != std::string::npos);
  opt.on_bad_row = OnBadRow::skip;
  Dataset d = Dataset::from_string(tsv, "bad.tsv", opt);
  CHECK(d.size() == 2);
  CHECK(d.bad_rows() == 5);
  REQUIRE(d.bad_row_messages().size() == 5);
  CHECK(d.bad_row_messages()[0].find("bad.tsv:3: field 'cap': missing") != std::string::npos);
  CHECK(d.bad_row_messages()[1].find("bad.tsv:4: field 'uid': expected an integer, got 'x'") != std::string::npos);
  CHECK(d.bad_row_messages()[2].find("bad.tsv:5: field 'img': undecodable base64: bad character ' ' at offset 3") != std::string::npos);
  CHECK(d.bad_row_messages()[3].find("bad.tsv:6: field 'img': unexpected character ' ' after a closing quote") != std::string::npos);
  CHECK(d.bad_row_messages()[4].find("bad.tsv:8: expected 3 tab-separated fields, got 4") != std::string::npos);
  CHECK(d.row(0).values[0] == "1");
  CHECK(d.row(1).values[0] == "6");
  CHECK(d.row(1).line == 7);
  // Unterminated quote runs to the end of the file.
  std::string msg2 = error_of([] { Dataset::from_string("a\tb\n1\t\"never\nclosed\n", "q.tsv"); });
  CHECK(msg2.find("q.tsv:2: field 'b': unterminated quoted field (the quote opened on line 2") != std::string::npos);
  // Header problems are always fatal, whatever on_bad_row says.
  CHECK(error_of([] { Dataset::from_string("", "e.tsv", {.on_bad_row = OnBadRow::skip}); }).find("e.tsv: empty file") != std::string::npos);
  CHECK(error_of([] { Dataset::from_string("a\ta\n", "h.tsv"); }).find("h.tsv:1: header names column 'a' twice") != std::string::npos);
  CHECK(error_of([] { Dataset::from_string("a\tb\n", "h.tsv", {.fields = {{"img"}}}); }).find("column 'img' is not in the header (columns: a, b)") != std::string::npos);
  CHECK(parse_on_bad_row("skip") == OnBadRow::skip);
  CHECK_THROWS_WITH_AS(parse_on_bad_row("ignore"), doctest::Contains("expected 'skip' or 'fail'"), Error);
}

TEST_CASE("dataset: JSONL rows, kinds, bad rows") {
  std::string jl = "{\"img\": \"aGk=\", \"obs\": [0.5, -1], \"label\": \"cat\", \"n\": 3}\n"
                   "\n"
                   "{\"img\": \"aGk=\", \"obs\": [1, 2], \"label\": \"dog\"}\n"    // line 3: no n
                   "{\"img\": \"aGk=\", \"obs\": \"oops\", \"label\": \"x\", \"n\": 1}\n"  // line 4
                   "[1, 2]\n"                                                      // line 5
                   "{\"img\": \"aGk=\", \"obs\": [3], \"label\": 7, \"n\": 2}\n"   // line 6: label not a string
                   "{broken\n"                                                     // line 7
                   "{\"img\": \"aGk=\", \"obs\": [4], \"label\": \"eel\", \"n\": null}\n";  // line 8
  DatasetOptions opt{.on_bad_row = OnBadRow::skip,
                     .fields = {{"img", FieldKind::base64}, {"obs", FieldKind::number_list},
                                {"label", FieldKind::string}, {"n", FieldKind::integer}}};
  Dataset d = Dataset::from_string(jl, "mem.jsonl", opt);
  REQUIRE(d.size() == 1);
  CHECK(d.row(0).values == std::vector<std::string>{"aGk=", "[0.5,-1]", "cat", "3"});
  CHECK(d.bad_rows() == 6);
  const auto& m = d.bad_row_messages();
  REQUIRE(m.size() == 6);
  CHECK(m[0] == "mem.jsonl:3: field 'n': missing");
  CHECK(m[1].find("mem.jsonl:4: field 'obs': number list: 'oops'") == 0);
  CHECK(m[2] == "mem.jsonl:5: expected a JSON object, got array");
  CHECK(m[3] == "mem.jsonl:6: field 'label': expected a string");
  CHECK(m[4].find("mem.jsonl:7: invalid JSON") == 0);
  CHECK(m[5] == "mem.jsonl:8: field 'n': missing");
  // Without fields the first object's keys (in file order) are the columns.
  Dataset e = Dataset::from_string("{\"b\": 1, \"a\": \"x\"}\n{\"a\": \"y\", \"b\": 2}\n", "k.jsonl");
  CHECK(e.columns() == std::vector<std::string>{"b", "a"});
  CHECK(e.row(1).values == std::vector<std::string>{"2", "y"});
  // Found by fuzzing: a number too large for a double is a bad row, not a crash.
  CHECK(error_of([] { Dataset::from_string("{\"a\": 7e77777}\n", "o.jsonl"); })
            .find("o.jsonl:1: invalid JSON: number overflow") == 0);
  CHECK(error_of([] { Dataset::from_string("{\"a\": 1}\n{\"b\": 2}\n", "f.jsonl"); })
            .find("f.jsonl:2: field 'a': missing") != std::string::npos);
}

TEST_CASE("dataset: a real file streams by byte offset; shuffle and shards") {
  auto path = std::filesystem::temp_directory_path() / "mm_test_dataset_rows.tsv";
  {
    std::ofstream f(path, std::ios::binary);
    f << "id\ttext\n";
    for (int i = 0; i < 1003; ++i) f << i << "\t\"row " << i << (i % 7 == 0 ? "\nsecond line" : "") << "\"\n";
  }
  Dataset d = Dataset::open(path.string(), {.fields = {{"id", FieldKind::integer}}});
  REQUIRE(d.size() == 1003);
  // Random access in any order returns the right row (offsets, not a cache).
  for (int64_t i : {1002, 0, 500, 7, 14, 3}) {
    Row r = d.row(i);
    REQUIRE(r.values[0] == std::to_string(i));
    REQUIRE(r.values[1].rfind("row " + std::to_string(i), 0) == 0);
  }
  auto a = d.epoch_order(11, 0), b = d.epoch_order(11, 0), c = d.epoch_order(11, 1), e = d.epoch_order(12, 0);
  CHECK(a == b);  // deterministic
  CHECK(a != c);  // epoch changes the order
  CHECK(a != e);  // seed changes the order
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1003; ++i) REQUIRE(sorted[i] == i);  // a permutation
  int fixed = 0;
  for (int64_t i = 0; i < 1003; ++i) fixed += a[i] == i;
  CHECK(fixed < 20);  // really shuffled
  CHECK(d.epoch_order(11, 0, 0, 1, /*shuffle=*/false)[5] == 5);
  // Shards: every row exactly once over all ranks, for several world sizes.
  for (int world : {1, 2, 3, 4, 7}) {
    std::vector<int> seen(1003, 0);
    for (int rank = 0; rank < world; ++rank)
      for (int64_t i : d.epoch_order(11, 2, rank, world)) ++seen[i];
    for (int s : seen) REQUIRE(s == 1);
    // Equal shards: every rank gets ceil(n / world).
    for (int rank = 0; rank < world; ++rank)
      REQUIRE(int64_t(d.epoch_order(11, 2, rank, world, true, true).size()) == (1003 + world - 1) / world);
  }
  CHECK_THROWS_AS(d.epoch_order(1, 0, 3, 3), Error);
  std::filesystem::remove(path);
  CHECK(error_of([] { Dataset::open("/nonexistent/x.tsv"); }).find("/nonexistent/x.tsv: cannot open") != std::string::npos);
}

TEST_CASE("base64: decode, encode, errors") {
  CHECK(base64_decode("aGVsbG8=") == std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  CHECK(base64_decode("aGVsbG8") == std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  CHECK(base64_decode("-_8=") == std::vector<uint8_t>{0xfb, 0xff});  // URL-safe alphabet
  std::mt19937_64 rng(1);
  for (int n = 0; n < 40; ++n) {
    std::vector<uint8_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = uint8_t(rng());
    REQUIRE(base64_decode(base64_encode(v.data(), v.size())) == v);
  }
  CHECK_THROWS_WITH_AS(base64_decode("aGV*bG8="), doctest::Contains("bad character '*' at offset 3"), Error);
  CHECK(base64_problem("aGVsb").has_value());  // one dangling character
  CHECK(base64_problem("aG=").has_value());
}

TEST_CASE("batch: padding, masks and decoder shift") {
  EncoderBatch e = collate_encoder({{1, 17, 40, 2}, {1, 90, 2}}, /*pad_multiple=*/8);
  CHECK(e.tokens.shape() == Shape{2, 8});
  CHECK(e.tokens.to_vector() == std::vector<double>{1, 17, 40, 2, 0, 0, 0, 0, 1, 90, 2, 0, 0, 0, 0, 0});
  CHECK(e.padding_mask.dtype() == DType::boolean);
  CHECK(e.padding_mask.to_vector() == std::vector<double>{1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0});
  CHECK(e.lengths.to_vector() == std::vector<double>{4, 3});

  // Target 2: a no_loss prefix (50) and then the answer 60 <eos>.
  DecoderBatch d = collate_decoder({{{40, 2}, {}}, {{50, 60, 2}, {0, 1, 1}}});
  CHECK(d.prev_tokens.shape() == Shape{2, 3});
  CHECK(d.prev_tokens.to_vector() == std::vector<double>{1, 40, 0, 1, 50, 60});
  CHECK(d.target.to_vector() == std::vector<double>{40, 2, 0, 0, 60, 2});
  CHECK(d.loss_mask.to_vector() == std::vector<double>{1, 1, 0, 0, 1, 1});
  CHECK(d.padding_mask.to_vector() == std::vector<double>{1, 1, 0, 1, 1, 1});
  CHECK(d.ntokens == 4);
  CHECK_THROWS_AS(collate_decoder({{{1, 2}, {1}}}), Error);
}

TEST_CASE("batch: length bucketing covers every sample once and cuts padding") {
  std::mt19937_64 rng(2);
  std::vector<int64_t> len(1000);
  for (auto& l : len) l = 1 + int64_t(rng() % 200);
  auto batches = bucket_batches(len, 16, 0, 5);
  std::vector<int> seen(len.size(), 0);
  int64_t padded = 0, real = 0;
  for (const auto& b : batches) {
    REQUIRE(!b.empty());
    REQUIRE(b.size() <= 16);
    int64_t m = 0;
    for (int64_t i : b) ++seen[i], m = std::max(m, len[i]), real += len[i];
    padded += m * int64_t(b.size());
  }
  for (int s : seen) REQUIRE(s == 1);
  CHECK(double(padded - real) / double(real) < 0.05);  // random batches waste ~50%
  CHECK(bucket_batches(len, 16, 0, 5) == batches);
  CHECK(bucket_batches(len, 16, 0, 6) != batches);
  // Token budget: B * max_len <= max_tokens unless a single sample is longer.
  for (const auto& b : bucket_batches(len, 0, 400, 1)) {
    int64_t m = 0;
    for (int64_t i : b) m = std::max(m, len[i]);
    REQUIRE((m * int64_t(b.size()) <= 400 || b.size() == 1));
  }
}

TEST_CASE("batch: sequence packing with block-diagonal causal masks") {
  std::vector<TokenSeq> seqs = {{{11, 12, 13}, {}}, {{21, 22, 23, 24, 25}, {0, 0, 1, 1, 1}},
                                {{31, 32}, {}}, {{41, 42, 43, 44}, {}}};
  PackedBatch p = pack_sequences(seqs, 6);
  // First fit: row 0 = s0 (3) + s2 (2); row 1 = s1 (5); row 2 = s3 (4).
  REQUIRE(p.R == 3);
  CHECK(p.rows == std::vector<std::vector<int64_t>>{{0, 2}, {1}, {3}});
  CHECK(std::vector<int64_t>(p.ids.begin(), p.ids.begin() + 6) == std::vector<int64_t>{11, 12, 13, 31, 32, 0});
  CHECK(std::vector<int64_t>(p.segment_ids.begin(), p.segment_ids.begin() + 6) == std::vector<int64_t>{1, 1, 1, 2, 2, 0});
  CHECK(std::vector<int64_t>(p.positions.begin(), p.positions.begin() + 6) == std::vector<int64_t>{0, 1, 2, 0, 1, 0});
  CHECK(std::vector<uint8_t>(p.loss_mask.begin() + 6, p.loss_mask.begin() + 12) == std::vector<uint8_t>{0, 0, 1, 1, 1, 0});
  auto m = block_causal_mask(p.segment_ids.data(), 6);
  // Row 0: tokens 0-2 see each other causally, 3-4 likewise, never across, padding sees nothing.
  const std::vector<uint8_t> want = {1, 0, 0, 0, 0, 0,
                                     1, 1, 0, 0, 0, 0,
                                     1, 1, 1, 0, 0, 0,
                                     0, 0, 0, 1, 0, 0,
                                     0, 0, 0, 1, 1, 0,
                                     0, 0, 0, 0, 0, 0};
  CHECK(m == want);
  PackedTensors t = packed_tensors(p);
  CHECK(t.attn_mask.shape() == Shape{3, 6, 6});
  CHECK(t.tokens.shape() == Shape{3, 6});
  CHECK(t.attn_mask.at({0, 4, 3}) == 1);
  CHECK(t.attn_mask.at({0, 3, 2}) == 0);
  CHECK_THROWS_WITH_AS(pack_sequences({{{1, 2, 3, 4, 5, 6, 7}, {}}}, 6), doctest::Contains("sample 0 has 7 tokens"), Error);
}

TEST_CASE("trie: allowed next ids match a brute-force scan of the answer set") {
  std::mt19937_64 rng(8);
  std::vector<std::vector<int64_t>> answers;
  for (int i = 0; i < 200; ++i) {
    std::vector<int64_t> a;
    for (size_t k = 0, n = 1 + rng() % 5; k < n; ++k) a.push_back(10 + int64_t(rng() % 6));
    a.push_back(2);  // <eos>
    answers.push_back(a);
  }
  Trie t(answers);
  std::set<std::vector<int64_t>> distinct(answers.begin(), answers.end());
  CHECK(t.num_answers() == distinct.size());
  // Every prefix of every answer, plus some that lead nowhere.
  std::vector<std::vector<int64_t>> prefixes = {{}, {99}, {10, 99}};
  for (const auto& a : answers)
    for (size_t k = 0; k <= a.size(); ++k) prefixes.emplace_back(a.begin(), a.begin() + long(k));
  for (const auto& pre : prefixes) {
    std::set<int64_t> want;
    for (const auto& a : answers)
      if (a.size() > pre.size() && std::equal(pre.begin(), pre.end(), a.begin())) want.insert(a[pre.size()]);
    auto got = t.allowed_next(pre);
    REQUIRE(std::vector<int64_t>(want.begin(), want.end()) == got);
  }
  for (const auto& a : answers) REQUIRE(t.contains(a));
  CHECK_FALSE(t.contains({10}));
  CHECK(t.is_prefix({}));
  CHECK_FALSE(t.is_prefix({99}));
}

}  // TEST_SUITE
