// Batching: padding + masks per side, length bucketing, and sequence packing.
// Shape letters: B batch rows, T padded length, R packed rows.
//
//   EncoderBatch e = collate_encoder({{1, 17, 40, 2}, {1, 90, 2}});   // tokens [2, 4]
//   DecoderBatch d = collate_decoder({{{40, 2}, {}}, {{90, 91, 2}, {0, 1, 1}}});
//   auto batches = bucket_batches(lengths, /*batch_size=*/32, /*max_tokens=*/0, seed);
//   PackedBatch p = pack_sequences(seqs, /*row_len=*/1024);   // decoder-only (Gato)
//
// Padding id is 0 (<pad>) everywhere; masks are bool tensors, true = a real token.
// The builders work on std::vector; the *_tensors / collate_* functions wrap the result
// in CPU tensors for the model.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace mm {

// A token sequence with per-token "scored" flags (empty flags = every token scored).
struct TokenSeq {
  std::vector<int64_t> ids;
  std::vector<uint8_t> scored;
  bool is_scored(size_t i) const { return scored.empty() || scored[i] != 0; }
};

// ---- padding ------------------------------------------------------------------------
struct Padded {
  int64_t B = 0, T = 0;
  std::vector<int64_t> ids;      // [B, T], pad 0
  std::vector<uint8_t> mask;     // [B, T], 1 = real token
  std::vector<int64_t> lengths;  // [B]
};
// Pads to the longest sequence, rounded up to a multiple of pad_multiple (>= 1).
Padded pad_sequences(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_multiple = 1);

struct EncoderBatch {
  Tensor tokens;        // [B, T] i64, 0-padded
  Tensor padding_mask;  // [B, T] bool, true = real token
  Tensor lengths;       // [B] i64
};
// Encoder (or any input) side: seqs already carry <bos> ... <eos>.
EncoderBatch collate_encoder(const std::vector<std::vector<int64_t>>& seqs,
                             int64_t pad_multiple = 1);

struct DecoderBatch {
  Tensor prev_tokens;   // [B, T] i64: <bos> y_0 ... y_{T-2} (teacher forcing input)
  Tensor target;        // [B, T] i64: y_0 ... y_{T-1}; 0 where padded or not scored
  Tensor loss_mask;     // [B, T] bool: positions that count in the loss
  Tensor padding_mask;  // [B, T] bool, true = real token
  int64_t ntokens = 0;  // scored tokens: the sample size a loss is normalised by
};
// Decoder side: each target is the content ids ending in <eos>, without <bos> (added
// here in front of prev_tokens). Unscored tokens (no_loss prefix, prompt) are fed but
// do not count.
DecoderBatch collate_decoder(const std::vector<TokenSeq>& targets, int64_t pad_multiple = 1);

// ---- length bucketing ---------------------------------------------------------------
// Groups sample indices [0, lengths.size()) into batches of similar length: sorted by
// length (ties broken by a seeded shuffle), cut into batches of at most batch_size
// samples (0 = no limit) and at most max_tokens padded tokens, B * max_len (0 = no
// limit; a single longer sample gets a batch of its own), then the batch order is
// shuffled by the seed. Every index appears in exactly one batch.
std::vector<std::vector<int64_t>> bucket_batches(const std::vector<int64_t>& lengths,
                                                 int64_t batch_size, int64_t max_tokens,
                                                 uint64_t seed);

// ---- sequence packing (decoder-only models) -----------------------------------------
struct PackedBatch {
  int64_t R = 0, T = 0;
  std::vector<int64_t> ids;          // [R, T], 0-padded
  std::vector<int64_t> segment_ids;  // [R, T]: 1, 2, ... per sample in the row; 0 = padding
  std::vector<int64_t> positions;    // [R, T]: position within its own sample (restarts at 0)
  std::vector<uint8_t> loss_mask;    // [R, T]: scored tokens
  std::vector<std::vector<int64_t>> rows;  // [R] sample indices packed in each row, in order
};
// First-fit in the given order: each sample goes into the first row with room. Throws
// naming the sample when one is longer than row_len.
PackedBatch pack_sequences(const std::vector<TokenSeq>& seqs, int64_t row_len);
// [T, T] for one packed row: allowed(i, j) = same non-zero segment and j <= i
// (block-diagonal causal attention: samples never see each other).
std::vector<uint8_t> block_causal_mask(const int64_t* segment_ids, int64_t T);

struct PackedTensors {
  Tensor tokens;       // [R, T] i64
  Tensor segment_ids;  // [R, T] i64
  Tensor positions;    // [R, T] i64
  Tensor loss_mask;    // [R, T] bool
  Tensor attn_mask;    // [R, T, T] bool, block-diagonal causal
};
PackedTensors packed_tensors(const PackedBatch& p);

}  // namespace mm
