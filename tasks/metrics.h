// Evaluation metrics, each as the paper (or the reference scorer everyone reports)
// defines it. Text metrics first normalise both sides with normalize_text (lowercase,
// punctuation -> space) and split on whitespace, like coco-caption's PTB tokenisation.
//
//   double b = bleu4({"a dog runs"}, {{"a dog runs fast", "the dog runs"}});
//   double c = cider_d(cands, refs);          // corpus-level, x10 as coco-caption reports
//   MetricResult r = compute_metric("wer", predictions, references);
#pragma once
#include <array>
#include <string>
#include <vector>

namespace mm {

using Refs = std::vector<std::vector<std::string>>;  // per candidate: one or more references

// Fraction of predictions equal to their (first) reference, compared verbatim.
double accuracy(const std::vector<std::string>& pred, const Refs& refs);
// Fraction equal to any reference after normalisation (case, punctuation, spaces).
double exact_match(const std::vector<std::string>& pred, const Refs& refs);
// Corpus BLEU-4 (Papineni et al. 2002): clipped n-gram precisions n = 1..4 summed over the
// corpus, geometric mean, brevity penalty exp(1 - r/c) with r the closest reference length
// (ties: the shorter). No smoothing: 0 when some precision is 0. In [0, 1].
double bleu4(const std::vector<std::string>& cands, const Refs& refs);
// CIDEr-D (Vedantam et al. 2015, as coco-caption computes it): tf-idf n-gram vectors
// (n = 1..4, idf from the references' document frequencies over the corpus), clipped
// cosine similarity min(c, r) * r, Gaussian length penalty sigma = 6, averaged over
// references and n, times 10.
double cider_d(const std::vector<std::string>& cands, const Refs& refs);
// ROUGE-L (Lin 2004, coco-caption): LCS precision / recall (best over references),
// F-measure with beta = 1.2, averaged over candidates. In [0, 1].
double rouge_l(const std::vector<std::string>& cands, const Refs& refs);
// Word error rate: total word-level edit distance / total reference words (first reference).
double wer(const std::vector<std::string>& hyps, const Refs& refs);

using Box = std::array<double, 4>;  // x0, y0, x1, y1 (pixels)
double iou(const Box& a, const Box& b);
// Fraction of predicted boxes with IoU >= 0.5 against the ground truth (Acc@0.5).
double iou_accuracy(const std::vector<Box>& pred, const std::vector<Box>& truth, double threshold = 0.5);

double mean(const std::vector<double>& xs);  // e.g. episode returns

struct MetricResult {
  std::string name;
  double value = 0;
  bool higher_is_better = true;
};
// By name: accuracy, exact_match, bleu, bleu4, cider, ciderd, rouge_l, wer. Boxes and
// returns have their own entry points (their inputs are not strings).
MetricResult compute_metric(const std::string& name, const std::vector<std::string>& pred, const Refs& refs);
bool metric_higher_is_better(const std::string& name);

}  // namespace mm
