// Generation for any incremental decoder: greedy search, beam search (fairseq's), and
// top-k / top-p sampling, all batched, with forced prefixes (`no_loss` prompts), closed-set
// constraints (a trie behind a callback), token ranges (BOX bins, action tokens),
// min/max length and no-repeat-ngram.
//
//   MyStepDecoder dec(...);                         // a model's StepDecoder over B inputs
//   GenerationOptions o;                            // beam 5, len_penalty 1
//   o.no_repeat_ngram = 3;  o.max_len = 30;
//   Hypotheses h = beam_search(dec, o);             // h[b][0].answer(): best tokens of input b
//
//   o.allowed_next = [&](int64_t, const std::vector<int64_t>& g) { return trie.allowed_next(g); };
//   GenerationOptions box = fixed_length(o, 4, {bin_lo, bin_hi});   // exactly 4 location bins
//
// The search runs on the CPU over a copy of each step's logits (from any device). Every
// step, for each row: logits / temperature, then -inf outside the allowed tokens
// (range, allowed_next, EOS rules), then log_softmax (so constraints renormalise, as the
// closed-set training loss does), then the bans of fairseq applied in log space without
// renormalising (EOS before min_len, tokens completing a repeated n-gram).
//
// Words used below. An *input* is one of the B sequences being decoded; a *row* is one
// live hypothesis of an input (greedy/sampling: one per input; beam: up to beam_size).
// *Free* tokens are the ones the search chooses, i.e. not the start token and not the
// forced prefix. Lengths (min_len, max_len, the length penalty) count free tokens; scores
// sum the log-probabilities of free tokens only (the forced prefix is fed, not scored,
// like `no_loss` tokens in training; fairseq also scores and counts the prefix).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/philox.h"
#include "runtime/tensor.h"

namespace mm {

// The model side of generation: an autoregressive decoder with a per-row state (a KV
// cache, or the token history for a decoder that recomputes), advanced one token a step.
//
// Contract:
//  - It starts with num_rows() = B rows whose context is already consumed (OFA: the
//    encoder output per input; Gato: the prompt prefilled up to, not including, its last
//    token, which is then passed as the start token) and nothing of the target fed yet.
//  - step(last) feeds one token per row, last [N] i64 on the CPU (N = num_rows()), and
//    returns logits [N, V] for the next position (f32/bf16, any device; V = vocab_size()).
//    All rows advance together, so every row sits at the same position. A NaN or +inf
//    among a row's allowed logits is reported as an error, never decoded.
//  - reorder(rows) replaces the state: new row i continues old row rows[i]. rows may be
//    shorter (finished rows dropped), longer (an input expanded into beams) or repeat an
//    index; afterwards num_rows() == rows.size(). A KV cache does index_select on its
//    batch dimension. It is called between steps, never before the first one.
// The search never calls step() under a recording autograd graph (it holds NoGradGuard).
class StepDecoder {
 public:
  virtual ~StepDecoder() = default;
  virtual int64_t num_rows() const = 0;
  virtual int64_t vocab_size() const = 0;
  // last [N] i64 -> logits [N, V].
  virtual Tensor step(const Tensor& last) = 0;
  virtual void reorder(const std::vector<int64_t>& rows) = 0;
};

// Closed-set constraint: the ids that may follow the free tokens `generated` of input
// `input` (tasks' Trie::allowed_next with EOS in the answers). An empty answer means no
// way on: the row dies. Called from one thread, once per row and step.
using AllowedNextFn = std::function<std::vector<int64_t>(int64_t input, const std::vector<int64_t>& generated)>;

// Token ids [lo, hi) (a kind's range of the shared vocabulary). lo = hi = 0: no range.
struct TokenRange {
  int64_t lo = 0, hi = 0;
  bool active() const { return lo != 0 || hi != 0; }
};

enum class SearchMethod { greedy, beam, sample };

struct GenerationOptions {
  SearchMethod method = SearchMethod::beam;  // used by generate()

  // Tokens. The start token is fed first (OFA: <bos>); prefix[b] is forced, token by
  // token, before free decoding of input b (the `no_loss` prompt). Both per input; empty
  // vectors mean bos / no prefix for all.
  int64_t bos = 1, eos = 2;
  std::vector<int64_t> start_tokens;
  std::vector<std::vector<int64_t>> prefix;

  // Free tokens before EOS: at least min_len (EOS is banned before), at most max_len (EOS
  // is forced after max_len free tokens, scored with its log-probability). With
  // end_with_eos = false, EOS is never generated and every answer has exactly max_len
  // tokens (fixed-length decoding, see fixed_length()).
  int64_t min_len = 0, max_len = 200;
  bool end_with_eos = true;

  // Constraints on free tokens. range: non-EOS tokens must lie in it (EOS stays allowed
  // unless end_with_eos is false). allowed_next: only the ids it returns (EOS included
  // only if returned). Both: the intersection. A forced EOS still obeys allowed_next.
  TokenRange range;
  AllowedNextFn allowed_next;
  int no_repeat_ngram = 0;  // n > 0: never complete an n-gram already in the sequence
  double temperature = 1.0; // logits are divided by it (every method)

  // Beam search (fairseq): candidates are the 2*beam_size best extensions of an input's
  // rows; an EOS among the first beam_size finishes a hypothesis, the first beam_size
  // others go on; an input is done when beam_size hypotheses finished or none is live.
  // Finished ones rank by score / len^len_penalty (len: free tokens including EOS).
  int beam_size = 5;
  double len_penalty = 1.0;
  int nbest = 1;  // hypotheses returned per input, best first (<= beam_size)

  // Sampling: keep the top_k most likely tokens (0: all), then the smallest set of the
  // most likely whose renormalised mass reaches top_p (always at least one), and draw.
  int64_t top_k = 0;
  double top_p = 1.0;
};

struct Hypothesis {
  std::vector<int64_t> tokens;  // forced prefix, then free tokens (ending with EOS if it ended so)
  int64_t prefix_len = 0;       // how many leading tokens were forced
  double score = 0;             // sum of log-probs of the free tokens; -inf: the row died
  double norm_score = 0;        // score / len^len_penalty (len = free tokens, >= 1)
  bool ended_by_eos = false;    // the last token is the EOS the search chose
  // The free tokens without a final EOS: the answer to detokenize.
  std::vector<int64_t> answer() const;
};
using Hypotheses = std::vector<std::vector<Hypothesis>>;  // [B][up to nbest], best first

// One hypothesis per input: the argmax token each step. An input whose constraints allow
// nothing stops there with score -inf (its tokens so far, no EOS).
std::vector<Hypothesis> greedy_search(StepDecoder& dec, const GenerationOptions& o);
// Up to o.nbest hypotheses per input; an input whose every row died gets none.
Hypotheses beam_search(StepDecoder& dec, const GenerationOptions& o);
// One draw per input. Input b's draw at a step uses Philox element b of one offset of
// gen per step, so results depend only on the seed, the options and the logits.
std::vector<Hypothesis> sample(StepDecoder& dec, const GenerationOptions& o, Generator& gen);
// By o.method; sampling needs gen. Greedy and sampling give one hypothesis per input.
Hypotheses generate(StepDecoder& dec, const GenerationOptions& o, Generator* gen = nullptr);

// o set up for exactly n tokens from range r and no EOS: BOX (4 tokens from the location
// bins) and CONTINUOUS/DISCRETE actions (n tokens from their range), with o's method.
GenerationOptions fixed_length(GenerationOptions o, int64_t n, TokenRange r);

}  // namespace mm
