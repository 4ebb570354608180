// Metrics against values worked out by hand from the papers' definitions.
#include <cmath>

#include "tasks/metrics.h"
#include "test_util.h"

using namespace mm;

TEST_SUITE("metrics") {

TEST_CASE("accuracy and exact match") {
  CHECK(accuracy({"sandal", "bag", "coat"}, {{"sandal"}, {"shirt"}, {"coat"}}) == doctest::Approx(2.0 / 3));
  CHECK(accuracy({"Sandal"}, {{"sandal"}}) == 0.0);  // verbatim
  CHECK(exact_match({"Sandal!", " a  bag", "x"}, {{"sandal"}, {"the bag", "a bag"}, {"y"}}) == doctest::Approx(2.0 / 3));
  test::check_throws_with([] { accuracy({"a"}, {}); }, {"accuracy", "1 predictions", "0 reference"});
}

TEST_CASE("BLEU-4: clipped precisions, geometric mean, brevity penalty") {
  CHECK(bleu4({"the cat sat on the mat"}, {{"the cat sat on the mat"}}) == doctest::Approx(1.0));
  // cand a b c d e vs ref a b c d f g: p1..p4 = 4/5, 3/4, 2/3, 1/2; c = 5 < r = 6.
  const double expect = std::exp(1.0 - 6.0 / 5) * std::pow(0.8 * 0.75 * (2.0 / 3) * 0.5, 0.25);
  CHECK(bleu4({"a b c d e"}, {{"a b c d f g"}}) == doctest::Approx(expect).epsilon(1e-9));
  // Closest reference length, ties to the shorter: lengths 4 and 6 for a 5-word candidate
  // give r = 4, so no brevity penalty; precisions use the best reference counts.
  const double p = std::pow((5.0 / 5) * (4.0 / 4) * (3.0 / 3) * (2.0 / 2), 0.25);
  CHECK(bleu4({"a b c d e"}, {{"a b c d", "a b c d e f"}}) == doctest::Approx(p));
  // Clipping: "the" counted at most as often as in a reference; no 4-gram match -> 0.
  CHECK(bleu4({"the the the the"}, {{"the cat"}}) == 0.0);
  // Corpus-level: counts are summed before dividing.
  const double corpus = bleu4({"a b c d e", "a b c d"}, {{"a b c d e"}, {"a b c d"}});
  CHECK(corpus == doctest::Approx(1.0));
}

TEST_CASE("CIDEr-D: tf-idf over the corpus, clipped cosine, length penalty, x10") {
  // Two images with disjoint vocabularies: every n-gram has df = 1, idf = log 2, and a
  // candidate equal to its reference scores 10.
  CHECK(cider_d({"a b c d", "e f g h"}, {{"a b c d"}, {"e f g h"}}) == doctest::Approx(10.0));
  // One image only: idf = log(1) - log(1) = 0 everywhere, the known CIDEr degenerate case.
  CHECK(cider_d({"a b c d"}, {{"a b c d"}}) == 0.0);
  // cand "a b c" vs ref "a b c d": cosines sqrt(3)/2, 2/sqrt(6), 1/sqrt(2), 0 (no 4-gram)
  // and a length penalty exp(-1 / 72); averaged with image 2's perfect 10.
  const double s1 = 10.0 * std::exp(-1.0 / 72) * (std::sqrt(3.0) / 2 + 2 / std::sqrt(6.0) + 1 / std::sqrt(2.0)) / 4;
  CHECK(cider_d({"a b c", "e f g h"}, {{"a b c d"}, {"e f g h"}}) == doctest::Approx((s1 + 10.0) / 2).epsilon(1e-9));
  // n-grams in every image's references carry no information (idf 0): "x" adds nothing.
  CHECK(cider_d({"x a b c d", "x e f g h"}, {{"x a b c d"}, {"x e f g h"}}) == doctest::Approx(10.0));
}

TEST_CASE("ROUGE-L: LCS F-measure with beta 1.2") {
  // LCS(a b c d, a x c d e) = a c d: P = 3/4, R = 3/5.
  const double P = 0.75, R = 0.6, b2 = 1.44;
  CHECK(rouge_l({"a b c d"}, {{"a x c d e"}}) == doctest::Approx((1 + b2) * P * R / (R + b2 * P)));
  CHECK(rouge_l({"a b"}, {{"c d"}}) == 0.0);
  CHECK(rouge_l({"a b c"}, {{"z", "a b c"}}) == doctest::Approx(1.0));  // best reference
}

TEST_CASE("WER: corpus edit distance over reference words") {
  CHECK(wer({"a b d"}, {{"a b c d"}}) == doctest::Approx(0.25));              // one deletion
  CHECK(wer({"x b c d e"}, {{"a b c d"}}) == doctest::Approx(0.5));           // substitution + insertion
  CHECK(wer({"a b d", "x b c d e"}, {{"a b c d"}, {"a b c d"}}) == doctest::Approx(3.0 / 8));
  CHECK(wer({"Seven."}, {{"seven"}}) == 0.0);                                 // normalised
}

TEST_CASE("IoU and Acc@0.5") {
  CHECK(iou({0, 0, 2, 2}, {1, 1, 3, 3}) == doctest::Approx(1.0 / 7));
  CHECK(iou({0, 0, 2, 2}, {0, 0, 2, 2}) == doctest::Approx(1.0));
  CHECK(iou({0, 0, 1, 1}, {2, 2, 3, 3}) == 0.0);
  CHECK(iou_accuracy({{0, 0, 10, 10}, {0, 0, 10, 10}}, {{0, 0, 10, 12}, {5, 5, 15, 15}}) == doctest::Approx(0.5));
}

TEST_CASE("metrics by name") {
  CHECK(compute_metric("wer", {"a"}, {{"a"}}).value == 0.0);
  CHECK_FALSE(compute_metric("wer", {"a"}, {{"a"}}).higher_is_better);
  CHECK(compute_metric("cider", {"a b c d", "e f g h"}, {{"a b c d"}, {"e f g h"}}).value == doctest::Approx(10));
  test::check_throws_with([] { compute_metric("meteor", {"a"}, {{"a"}}); }, {"unknown text metric 'meteor'"});
  CHECK(mean({1.0, 2.0, 6.0}) == doctest::Approx(3.0));
}

}  // TEST_SUITE
