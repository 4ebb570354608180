// TEXT tokenizer: SentencePiece BPE trained in-process on a small corpus; exact round
// trips, id range, persistence (file and bytes), and the normalisation attributes.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "runtime/error.h"
#include "tasks/text_fields.h"
#include "tasks/text_tokenizer.h"

using namespace mm;

namespace {

// A deterministic caption-like corpus: 300 sentences from small word lists.
std::vector<std::string> corpus() {
  const std::vector<std::string> det = {"a", "the", "two", "one", "some"};
  const std::vector<std::string> adj = {"red", "small", "happy", "wooden", "striped", "sleepy"};
  const std::vector<std::string> noun = {"dog", "cat", "shoe", "trouser", "pullover", "sandal",
                                         "bag", "sneaker", "shirt", "coat", "boot"};
  const std::vector<std::string> verb = {"sits on", "lies under", "jumps over", "stands near",
                                         "is next to"};
  std::mt19937 rng(42);
  std::vector<std::string> out;
  for (int i = 0; i < 300; ++i) {
    auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
    out.push_back(pick(det) + " " + pick(adj) + " " + pick(noun) + " " + pick(verb) + " " +
                  pick(det) + " " + pick(noun) + (i % 3 == 0 ? "." : ""));
  }
  return out;
}

const TextTokenizer& trained() {
  static const TextTokenizer tok = [] {
    TextTokenizerOptions opt;
    opt.vocab_size = 400;
    return TextTokenizer::train(corpus(), opt);
  }();
  return tok;
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("text tokenizer: trained BPE round-trips sentences exactly, ids in range") {
  const TextTokenizer& tok = trained();
  REQUIRE(tok.loaded());
  CHECK(tok.size() <= 400);
  CHECK(tok.size() > 256 + 20);  // byte pieces plus learned merges
  CHECK(tok.piece(0) == "<unk>");
  size_t n_ids = 0, n_chars = 0;
  for (const std::string& s : corpus()) {
    const std::vector<int> ids = tok.encode(s);
    for (int id : ids) {
      CHECK(id >= 0);
      CHECK(id < tok.size());
    }
    CHECK(tok.decode(ids) == s);
    n_ids += ids.size();
    n_chars += s.size();
  }
  // BPE learned whole words: far fewer ids than characters (not a character model).
  CHECK(n_ids * 3 < n_chars);
  CHECK(tok.encode("").empty());  // no bos/eos added in our id space
  const std::vector<std::string> pieces = tok.encode_pieces("the happy dog");
  CHECK(pieces.size() <= 4);
  // Unseen words, characters and spacing still round-trip (byte fallback, identity
  // normalisation, whitespace kept).
  for (const std::string s : {"zebra quagga 42", "Über café — ✓", "two  spaces and\ttab", " lead"}) {
    CAPTURE(s);
    CHECK(tok.decode(tok.encode(s)) == s);
  }
  CHECK_THROWS_AS(tok.decode({tok.size()}), mm::Error);
  CHECK_THROWS_AS(tok.decode({-1}), mm::Error);
}

TEST_CASE("text tokenizer: training is deterministic; save/load and bytes give the same model") {
  const TextTokenizer& a = trained();
  TextTokenizerOptions opt;
  opt.vocab_size = 400;
  char dir_tmpl[] = "/tmp/mm-spm-XXXXXX";
  REQUIRE(mkdtemp(dir_tmpl) != nullptr);
  const std::string path = std::string(dir_tmpl) + "/text.model";
  const TextTokenizer b = TextTokenizer::train(corpus(), opt, path);
  CHECK(a.serialized() == b.serialized());
  const TextTokenizer c = TextTokenizer::load(path);
  const TextTokenizer d = TextTokenizer::from_bytes(a.serialized());
  const std::string s = "a sleepy striped cat lies under the wooden boot.";
  CHECK(c.encode(s) == a.encode(s));
  CHECK(d.encode(s) == a.encode(s));
  CHECK(c.size() == a.size());
  std::filesystem::remove_all(dir_tmpl);

  CHECK_THROWS_WITH_AS(TextTokenizer::from_bytes("not a model"), doctest::Contains("not a SentencePiece model"), mm::Error);
  CHECK_THROWS_WITH_AS(TextTokenizer::load("/nonexistent/m.model"), doctest::Contains("/nonexistent/m.model"), mm::Error);
  CHECK_THROWS_AS(TextTokenizer::train({"", ""}, opt), mm::Error);
}

TEST_CASE("text tokenizer: text normalised for uncased / no_punctuation round-trips") {
  // The normalisation itself is tasks/text_fields.h's; the tokenizer must preserve it.
  const TextNormalization n{.uncased = true, .no_punctuation = true};
  const TextTokenizer& tok = trained();
  for (const char* raw : {"The RED Dog, sits on THE Coat!", "  two   SLEEPY  cats...  "}) {
    const std::string s = normalize_text(raw, n);
    CAPTURE(s);
    CHECK(s.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ,.!") == std::string::npos);
    CHECK(tok.decode(tok.encode(s)) == s);
  }
}

}  // TEST_SUITE
