#include "tasks/batch.h"

#include <algorithm>
#include <numeric>

#include "runtime/error.h"
#include "tasks/rng.h"
#include "tasks/vocab.h"

namespace mm {

namespace {
int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

Tensor bool_tensor(const std::vector<uint8_t>& v, const Shape& shape) {
  std::vector<int64_t> w(v.begin(), v.end());
  return Tensor::from_vector_i(w, shape, DType::boolean);
}
}  // namespace

Padded pad_sequences(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_multiple) {
  MM_CHECK(pad_multiple >= 1, "pad_sequences: pad_multiple must be >= 1, got ", pad_multiple);
  Padded p;
  p.B = int64_t(seqs.size());
  for (const auto& s : seqs) p.T = std::max(p.T, int64_t(s.size()));
  p.T = round_up(p.T, pad_multiple);
  p.ids.assign(size_t(p.B * p.T), Vocab::pad);
  p.mask.assign(size_t(p.B * p.T), 0);
  for (int64_t b = 0; b < p.B; ++b) {
    const auto& s = seqs[b];
    p.lengths.push_back(int64_t(s.size()));
    std::copy(s.begin(), s.end(), p.ids.begin() + b * p.T);
    std::fill_n(p.mask.begin() + b * p.T, s.size(), 1);
  }
  return p;
}

EncoderBatch collate_encoder(const std::vector<std::vector<int64_t>>& seqs,
                             int64_t pad_multiple) {
  Padded p = pad_sequences(seqs, pad_multiple);
  EncoderBatch e;
  e.tokens = Tensor::from_vector_i(p.ids, {p.B, p.T});
  e.padding_mask = bool_tensor(p.mask, {p.B, p.T});
  e.lengths = Tensor::from_vector_i(p.lengths, {p.B});
  return e;
}

DecoderBatch collate_decoder(const std::vector<TokenSeq>& targets, int64_t pad_multiple) {
  MM_CHECK(pad_multiple >= 1, "collate_decoder: pad_multiple must be >= 1");
  int64_t B = int64_t(targets.size()), T = 0;
  for (const auto& t : targets) {
    MM_CHECK(t.scored.empty() || t.scored.size() == t.ids.size(), "collate_decoder: ",
             t.scored.size(), " scored flags for ", t.ids.size(), " tokens");
    T = std::max(T, int64_t(t.ids.size()));
  }
  T = round_up(T, pad_multiple);
  std::vector<int64_t> prev(size_t(B * T), Vocab::pad), tgt(size_t(B * T), Vocab::pad);
  std::vector<uint8_t> loss(size_t(B * T), 0), pad(size_t(B * T), 0);
  DecoderBatch d;
  for (int64_t b = 0; b < B; ++b) {
    const TokenSeq& t = targets[b];
    for (size_t i = 0; i < t.ids.size(); ++i) {
      const int64_t at = b * T + int64_t(i);
      prev[at] = i == 0 ? Vocab::bos : t.ids[i - 1];  // shifted right by one
      pad[at] = 1;
      if (t.is_scored(i)) {
        tgt[at] = t.ids[i];
        loss[at] = 1;
        ++d.ntokens;
      }
    }
  }
  d.prev_tokens = Tensor::from_vector_i(prev, {B, T});
  d.target = Tensor::from_vector_i(tgt, {B, T});
  d.loss_mask = bool_tensor(loss, {B, T});
  d.padding_mask = bool_tensor(pad, {B, T});
  return d;
}

std::vector<std::vector<int64_t>> bucket_batches(const std::vector<int64_t>& lengths,
                                                 int64_t batch_size, int64_t max_tokens,
                                                 uint64_t seed) {
  MM_CHECK(batch_size >= 0 && max_tokens >= 0, "bucket_batches: limits must be >= 0");
  MM_CHECK(batch_size > 0 || max_tokens > 0, "bucket_batches: give batch_size or max_tokens");
  std::mt19937_64 rng(mix64(seed));
  std::vector<int64_t> order = permutation(int64_t(lengths.size()), rng);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> cur;
  int64_t cur_max = 0;
  for (int64_t i : order) {
    int64_t m = std::max(cur_max, lengths[i]);
    bool fits = (batch_size == 0 || int64_t(cur.size()) < batch_size) &&
                (max_tokens == 0 || m * int64_t(cur.size() + 1) <= max_tokens);
    if (!cur.empty() && !fits) {
      batches.push_back(std::move(cur));
      cur.clear();
      m = lengths[i];
    }
    cur.push_back(i);
    cur_max = m;
  }
  if (!cur.empty()) batches.push_back(std::move(cur));
  std::vector<int64_t> border = permutation(int64_t(batches.size()), rng);
  std::vector<std::vector<int64_t>> out;
  out.reserve(batches.size());
  for (int64_t k : border) out.push_back(std::move(batches[k]));
  return out;
}

PackedBatch pack_sequences(const std::vector<TokenSeq>& seqs, int64_t row_len) {
  MM_CHECK(row_len >= 1, "pack_sequences: row_len must be >= 1, got ", row_len);
  PackedBatch p;
  p.T = row_len;
  std::vector<int64_t> used;  // tokens used per row
  for (size_t s = 0; s < seqs.size(); ++s) {
    const TokenSeq& q = seqs[s];
    const int64_t n = int64_t(q.ids.size());
    MM_CHECK(n <= row_len, "pack_sequences: sample ", s, " has ", n, " tokens, longer than "
             "the row length ", row_len);
    MM_CHECK(q.scored.empty() || q.scored.size() == q.ids.size(), "pack_sequences: sample ", s,
             " has ", q.scored.size(), " scored flags for ", n, " tokens");
    size_t r = 0;
    while (r < used.size() && used[r] + n > row_len) ++r;
    if (r == used.size()) {
      used.push_back(0);
      p.rows.emplace_back();
      p.ids.resize(p.ids.size() + size_t(row_len), Vocab::pad);
      p.segment_ids.resize(p.ids.size(), 0);
      p.positions.resize(p.ids.size(), 0);
      p.loss_mask.resize(p.ids.size(), 0);
    }
    const int64_t seg = int64_t(p.rows[r].size()) + 1;
    for (int64_t i = 0; i < n; ++i) {
      const size_t at = size_t(int64_t(r) * row_len + used[r] + i);
      p.ids[at] = q.ids[i];
      p.segment_ids[at] = seg;
      p.positions[at] = i;
      p.loss_mask[at] = q.is_scored(size_t(i)) ? 1 : 0;
    }
    used[r] += n;
    p.rows[r].push_back(int64_t(s));
  }
  p.R = int64_t(p.rows.size());
  return p;
}

std::vector<uint8_t> block_causal_mask(const int64_t* seg, int64_t T) {
  std::vector<uint8_t> m(size_t(T * T), 0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j <= i; ++j)
      m[size_t(i * T + j)] = seg[i] != 0 && seg[i] == seg[j];
  return m;
}

PackedTensors packed_tensors(const PackedBatch& p) {
  PackedTensors t;
  t.tokens = Tensor::from_vector_i(p.ids, {p.R, p.T});
  t.segment_ids = Tensor::from_vector_i(p.segment_ids, {p.R, p.T});
  t.positions = Tensor::from_vector_i(p.positions, {p.R, p.T});
  t.loss_mask = bool_tensor(p.loss_mask, {p.R, p.T});
  std::vector<uint8_t> all;
  all.reserve(size_t(p.R * p.T * p.T));
  for (int64_t r = 0; r < p.R; ++r) {
    auto m = block_causal_mask(p.segment_ids.data() + r * p.T, p.T);
    all.insert(all.end(), m.begin(), m.end());
  }
  t.attn_mask = bool_tensor(all, {p.R, p.T, p.T});
  return t;
}

}  // namespace mm
