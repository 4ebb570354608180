// The shared vocabulary and the non-media preprocessors (BOX, CONTINUOUS, DISCRETE,
// STRUCT, CATEGORY, text normalisation, noising). Expected values are worked out by
// hand from SPEC.md section 2 (ranges, formulas), never taken from the code under test.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "runtime/error.h"
#include "tasks/box.h"
#include "tasks/continuous.h"
#include "tasks/discrete.h"
#include "tasks/noise.h"
#include "tasks/text_fields.h"
#include "tasks/vocab.h"

using namespace mm;

TEST_SUITE("tasks") {

TEST_CASE("vocab: ranges in the fixed order, id <-> kind, token strings") {
  Vocab v({.n_text = 100, .n_phone = 50});
  // specials 6, text 100, image 8192, location 1000, continuous 1024, discrete 1024, phone 50
  CHECK(v.range(TokenKind::special).begin == 0);
  CHECK(v.range(TokenKind::special).end == 6);
  CHECK(v.range(TokenKind::text).begin == 6);
  CHECK(v.range(TokenKind::text).end == 106);
  CHECK(v.range(TokenKind::image).begin == 106);
  CHECK(v.range(TokenKind::location).begin == 8298);
  CHECK(v.range(TokenKind::continuous).begin == 9298);
  CHECK(v.range(TokenKind::discrete).begin == 10322);
  CHECK(v.range(TokenKind::phone).begin == 11346);
  CHECK(v.size() == 11396);
  CHECK(v.kind_of(0) == TokenKind::special);
  CHECK(v.kind_of(5) == TokenKind::special);
  CHECK(v.kind_of(6) == TokenKind::text);
  CHECK(v.kind_of(8297) == TokenKind::image);
  CHECK(v.kind_of(8298) == TokenKind::location);
  CHECK(v.kind_of(11395) == TokenKind::phone);
  CHECK_THROWS_WITH_AS(v.kind_of(11396), doctest::Contains("outside the vocabulary"), Error);
  CHECK_THROWS_AS(v.kind_of(-1), Error);
  CHECK(v.to_id(TokenKind::text, 0) == 6);  // tokenizer id 0 -> offset
  CHECK(v.to_id(TokenKind::location, 999) == 9297);
  CHECK_THROWS_AS(v.to_id(TokenKind::location, 1000), Error);
  CHECK(v.to_local(TokenKind::continuous, 9298 + 17) == 17);
  CHECK_THROWS_WITH_AS(v.to_local(TokenKind::continuous, 8298), doctest::Contains("not a continuous"), Error);
  CHECK(v.token_string(Vocab::pad) == "<pad>");
  CHECK(v.token_string(Vocab::bos) == "<bos>");
  CHECK(v.token_string(Vocab::eos) == "<eos>");
  CHECK(v.token_string(Vocab::unk) == "<unk>");
  CHECK(v.token_string(Vocab::mask) == "<mask>");
  CHECK(v.token_string(Vocab::sep) == "<sep>");
  CHECK(v.token_string(8298) == "<bin_0>");
  CHECK(v.token_string(9297) == "<bin_999>");
  CHECK(v.token_string(11346) == "<phone_0>");
  for (int64_t id = 0; id < v.size(); ++id) {  // strings are a bijection
    auto back = v.id_of(v.token_string(id));
    REQUIRE(back.has_value());
    REQUIRE(*back == id);
  }
  CHECK_FALSE(v.id_of("<bin_1000>").has_value());
  CHECK_FALSE(v.id_of("<bin_01>").has_value());
  CHECK_FALSE(v.id_of("bin_1").has_value());
  CHECK_THROWS_AS(Vocab({.n_text = -1}), Error);
}

TEST_CASE("vocab: JSON round trip keeps every id; tampering is rejected") {
  Vocab v({.n_text = 32000, .n_phone = 70});
  std::string j = v.to_json();
  Vocab w = Vocab::from_json(j);
  CHECK(w == v);
  CHECK(w.size() == v.size());
  CHECK(w.range(TokenKind::phone).begin == v.range(TokenKind::phone).begin);
  CHECK(w.sizes().n_text == 32000);
  CHECK_FALSE(Vocab({.n_text = 31999, .n_phone = 70}) == v);
  auto tamper = [&](const std::string& from, const std::string& to) {
    std::string t = j;
    size_t p = t.find(from);
    REQUIRE(p != std::string::npos);
    t.replace(p, from.size(), to);
    return t;
  };
  CHECK_THROWS_WITH_AS(Vocab::from_json(tamper("\"begin\":6", "\"begin\":7")),
                       doctest::Contains("ranges[1]"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(tamper("<sep>", "<SEP>")),
                       doctest::Contains("specials[5]"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(tamper("\"version\":1", "\"version\":2")),
                       doctest::Contains("unsupported version"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(tamper("\"text\":32000", "\"txt\":32000")),
                       doctest::Contains("sizes.text"), Error);
  CHECK_THROWS_AS(Vocab::from_json("{not json"), Error);
  CHECK_THROWS_AS(Vocab::from_json("[]"), Error);
}

TEST_CASE("box: hand-worked bins, resize and flip") {
  Vocab v({.n_text = 100});
  BoxFrame f = box_frame_for_resize(640, 480, 512, 512);
  auto b = parse_box("10 20 300 360");
  // 10/640*999 = 15.6 -> 16; 20/480*999 = 41.6 -> 42; 300/640*999 = 468.3 -> 468;
  // 360/480*999 = 749.25 -> 749 (the resize scales pixels and size alike).
  CHECK(box_to_bins(b, f) == std::array<int64_t, 4>{16, 42, 468, 749});
  CHECK(box_to_ids(b, f, v) == std::array<int64_t, 4>{8298 + 16, 8298 + 42, 8298 + 468, 8298 + 749});
  CHECK(v.token_string(box_to_ids(b, f, v)[0]) == "<bin_16>");
  // A horizontal flip of a 100x100 image: x' = 100 - x, corners swap back into order.
  BoxFrame flip{.sx = -1, .tx = 100, .sy = 1, .ty = 0, .width = 100, .height = 100};
  CHECK(box_to_bins({10, 20, 30, 40}, flip) == std::array<int64_t, 4>{699, 200, 899, 400});
  auto back = bins_to_box({699, 200, 899, 400}, flip);
  CHECK(back[0] == doctest::Approx(10.0).epsilon(0.01));
  CHECK(back[2] == doctest::Approx(30.0).epsilon(0.01));
  // Outside the image: clipped to the border bins.
  CHECK(box_to_bins({-5, -5, 700, 500}, f) == std::array<int64_t, 4>{0, 0, 999, 999});
  CHECK(parse_box("1,2,3,4") == std::array<double, 4>{1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(parse_box("1 2 3"), doctest::Contains("got 3"), Error);
  CHECK_THROWS_AS(parse_box("1 2 3 4 5"), Error);
  CHECK_THROWS_AS(parse_box("a b c d"), Error);
  CHECK_THROWS_WITH_AS(parse_box("3 0 1 4"), doctest::Contains("x0 <= x1"), Error);
  CHECK_THROWS_WITH_AS(ids_to_box({5, 8298, 8298, 8298}, f, v), doctest::Contains("not a location"), Error);
}

TEST_CASE("box: random round trips land within half a bin of the original") {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> U(0, 1);
  Vocab v({.n_text = 10});
  for (int it = 0; it < 2000; ++it) {
    int W = 50 + int(U(rng) * 1500), H = 50 + int(U(rng) * 1500);
    int w = 64 + int(U(rng) * 900), h = 64 + int(U(rng) * 900);
    BoxFrame f = box_frame_for_resize(W, H, w, h);
    double x0 = U(rng) * W, x1 = U(rng) * W, y0 = U(rng) * H, y1 = U(rng) * H;
    std::array<double, 4> box{std::min(x0, x1), std::min(y0, y1), std::max(x0, x1), std::max(y0, y1)};
    auto ids = box_to_ids(box, f, v);
    auto back = ids_to_box(ids, f, v);
    // Half a bin of the model input, mapped back to original pixels: 0.5 * W / 999.
    const double tol_x = 0.5 * W / 999.0 + 1e-9, tol_y = 0.5 * H / 999.0 + 1e-9;
    REQUIRE(std::fabs(back[0] - box[0]) <= tol_x);
    REQUIRE(std::fabs(back[2] - box[2]) <= tol_x);
    REQUIRE(std::fabs(back[1] - box[1]) <= tol_y);
    REQUIRE(std::fabs(back[3] - box[3]) <= tol_y);
    REQUIRE(box_to_ids(back, f, v) == ids);  // re-encoding the decoded box is exact
  }
}

TEST_CASE("continuous: mu-law bins by hand and random round trips") {
  // F(x) = sgn(x) ln(100|x| + 1) / ln(25601); bin = floor((F + 1) / 2 * 1024).
  CHECK(continuous_to_bin(0.0) == 512);
  CHECK(continuous_to_bin(1.0) == 744);     // F = 0.454674
  CHECK(continuous_to_bin(-1.0) == 279);
  CHECK(continuous_to_bin(0.01) == 546);    // F = 0.068288
  CHECK(continuous_to_bin(10.0) == 860);
  CHECK(continuous_to_bin(-50.0) == 82);
  CHECK(continuous_to_bin(256.0) == 1023);  // F = 1 -> bin 1024 -> 1023
  CHECK(continuous_to_bin(1e6) == 1023);    // clipped
  CHECK(continuous_to_bin(-256.0) == 0);
  CHECK(continuous_to_bin(-1e6) == 0);
  CHECK(bin_to_continuous(744) == doctest::Approx(0.9941448370964538).epsilon(1e-12));
  CHECK_THROWS_AS(continuous_to_bin(std::nan("")), Error);
  MuLaw law;
  for (int b = 0; b < 1024; ++b) REQUIRE(continuous_to_bin(bin_to_continuous(b)) == b);
  Vocab v({.n_text = 10});
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> logmag(-4, std::log10(300.0));
  std::vector<double> xs;
  for (int i = 0; i < 5000; ++i) xs.push_back((rng() & 1 ? 1 : -1) * std::pow(10.0, logmag(rng)));
  auto ids = continuous_to_ids(xs, v);
  auto back = ids_to_continuous(ids, v);
  for (size_t i = 0; i < xs.size(); ++i) {
    REQUIRE(v.kind_of(ids[i]) == TokenKind::continuous);
    REQUIRE(continuous_to_bin(back[i]) == continuous_to_bin(xs[i]));  // same bin
    if (std::fabs(xs[i]) <= 256)  // inside the law's range: within half a bin in F-space
      REQUIRE(std::fabs(law.forward(back[i]) - law.forward(xs[i])) <= 1.0 / 1024 + 1e-12);
  }
  CHECK_THROWS_AS(ids_to_continuous({5}, v), Error);
}

TEST_CASE("discrete: exact round trips and range errors") {
  Vocab v({.n_text = 10});
  std::mt19937_64 rng(5);
  std::vector<int64_t> vals;
  for (int i = 0; i < 1000; ++i) vals.push_back(int64_t(rng() % 1024));
  auto ids = discrete_to_ids(vals, v);
  for (size_t i = 0; i < vals.size(); ++i) REQUIRE(ids[i] == v.range(TokenKind::discrete).begin + vals[i]);
  CHECK(ids_to_discrete(ids, v) == vals);
  CHECK_THROWS_WITH_AS(discrete_to_ids({3, 1024}, v), doctest::Contains("value 1024 at index 1"), Error);
  CHECK_THROWS_AS(discrete_to_ids({-1}, v), Error);
  CHECK_THROWS_AS(ids_to_discrete({v.range(TokenKind::continuous).begin}, v), Error);
  CHECK(parse_int_list("3 0 17") == std::vector<int64_t>{3, 0, 17});
  CHECK(parse_int_list("[3, 0,17]") == std::vector<int64_t>{3, 0, 17});
  CHECK(parse_int_list("") == std::vector<int64_t>{});
  CHECK_THROWS_AS(parse_int_list("3 x"), Error);
  CHECK_THROWS_AS(parse_int_list("3,,4"), Error);
  CHECK_THROWS_AS(parse_int_list("[3, 4"), Error);
  CHECK(parse_number_list("0.5 -1e3") == std::vector<double>{0.5, -1000});
  CHECK_THROWS_AS(parse_number_list("1 nan"), Error);
}

TEST_CASE("text fields: normalisation, STRUCT tables, CATEGORY sets") {
  CHECK(normalize_text("  What's  THIS?\tA dog. ", {.uncased = true, .no_punctuation = true}) ==
        "what s this a dog");
  CHECK(normalize_text("What's THIS?", {.uncased = true}) == "what's this?");
  CHECK(normalize_text("What's THIS?", {.no_punctuation = true}) == "What s THIS");
  CHECK(normalize_text("caf\xc3\xa9 CAF\xc3\x89", {.uncased = true}) == "caf\xc3\xa9 caf\xc3\x89");

  CHECK(serialize_table({{"a", "b", "c"}, {"d", "e", "f"}}) == "a : b : c | d : e : f");
  CHECK(struct_field_to_text("[[\"name\", \"age\"], [\"bob\", 42]]") == "name : age | bob : 42");
  CHECK(struct_field_to_text(" x : y ") == "x : y");
  CHECK_THROWS_AS(struct_field_to_text("[[1, {}]]"), Error);
  CHECK_THROWS_AS(serialize_table({{"a : b"}}), Error);
  CHECK_THROWS_AS(serialize_table({{"a", "b|"}}), Error);
  std::mt19937_64 rng(3);
  const std::string alphabet = "abcXYZ09 :|-";
  for (int it = 0; it < 300; ++it) {
    std::vector<std::vector<std::string>> t(1 + rng() % 4);
    size_t ncol = 1 + rng() % 4;
    for (auto& row : t)
      for (size_t c = 0; c < ncol; ++c) {
        std::string cell;
        do {
          cell.clear();
          for (size_t k = 0, n = 1 + rng() % 6; k < n; ++k) cell += alphabet[rng() % alphabet.size()];
          while (!cell.empty() && cell.back() == ' ') cell.pop_back();
          while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
        } while (cell.empty() || cell.find(" : ") != std::string::npos ||
                 cell.find(" | ") != std::string::npos || cell.front() == ':' ||
                 cell.front() == '|' || cell.back() == ':' || cell.back() == '|');
        row.push_back(cell);
      }
    REQUIRE(parse_table(serialize_table(t)) == t);
  }

  CategorySet cs({"cat", "dog", "bird"});
  CHECK(cs.parse("dog") == std::vector<int>{1});
  CHECK(cs.parse(" bird , cat,bird") == std::vector<int>{0, 2});
  CHECK(cs.to_text({0, 2}) == "cat, bird");
  CHECK_THROWS_WITH_AS(cs.parse("cow"), doctest::Contains("unknown label 'cow'"), Error);
  CHECK_THROWS_AS(CategorySet({"a", "a"}), Error);
}

TEST_CASE("noise: BART span masking and random replacement, seeded") {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 100; ++i) ids.push_back(1000 + i);
  const int64_t M = Vocab::mask;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::mt19937_64 rng(seed);
    auto out = span_mask(ids, 0.3, M, rng);
    std::vector<int64_t> kept;
    int64_t masks = 0;
    for (int64_t x : out) {
      if (x == M) ++masks;
      else kept.push_back(x);
    }
    REQUIRE(kept.size() == 70);  // exactly round(100 * 0.3) tokens removed
    REQUIRE(std::is_sorted(kept.begin(), kept.end()));  // order kept, no duplicates
    REQUIRE(std::adjacent_find(kept.begin(), kept.end()) == kept.end());
    REQUIRE(masks >= 1);
    REQUIRE(masks <= 30 + 100);  // at most one per masked token plus insertions
    std::mt19937_64 again(seed);
    REQUIRE(span_mask(ids, 0.3, M, again) == out);  // deterministic by seed
  }
  std::mt19937_64 r0(1), r1(2);
  CHECK(span_mask(ids, 0.3, M, r0) != span_mask(ids, 0.3, M, r1));
  std::mt19937_64 rz(1);
  CHECK(span_mask(ids, 0.0, M, rz) == ids);
  std::mt19937_64 rf(1);
  auto all = span_mask(ids, 1.0, M, rf);
  CHECK(std::all_of(all.begin(), all.end(), [&](int64_t x) { return x == M; }));

  // Poisson(3) span lengths: the sampler's mean and variance are both 3.
  std::mt19937_64 rp(11);
  double s = 0, s2 = 0;
  const int N = 40000;
  for (int i = 0; i < N; ++i) {
    double k = double(poisson(rp, 3.0));
    s += k;
    s2 += k * k;
  }
  CHECK(s / N == doctest::Approx(3.0).epsilon(0.02));
  CHECK(s2 / N - (s / N) * (s / N) == doctest::Approx(3.0).epsilon(0.05));

  Vocab v({.n_text = 500});
  std::mt19937_64 rr(4);
  std::vector<int64_t> pos;
  auto noisy = random_replace(ids, 0.2, v.range(TokenKind::text), rr, &pos);
  REQUIRE(pos.size() == 20);
  std::set<int64_t> ps(pos.begin(), pos.end());
  CHECK(ps.size() == 20);
  for (int64_t i = 0; i < 100; ++i) {
    if (ps.count(i)) REQUIRE(v.range(TokenKind::text).contains(noisy[i]));
    else REQUIRE(noisy[i] == ids[i]);
  }
}

}  // TEST_SUITE
