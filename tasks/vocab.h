// The shared vocabulary: one id space, contiguous ranges per kind of token, in a fixed
// order, so "is this a location bin?" is a range check and constraints are cheap masks.
//
//   Vocab v({.n_text = 32000});                      // specials, text, image, ... phones
//   int64_t id = v.to_id(TokenKind::location, 17);   // <bin_17>
//   v.kind_of(id) == TokenKind::location; v.token_string(id) == "<bin_17>";
//   std::string j = v.to_json();  Vocab w = Vocab::from_json(j);   // saved with a checkpoint
//
// Order and default sizes (SPEC.md section 2):
//   special     6     <pad>=0 <bos>=1 <eos>=2 <unk>=3 <mask>=4 <sep>=5
//   text        n_text (from the text tokenizer, which returns ids in [0, n_text))
//   image       8192  (OFA image codes)            <code_i>
//   location    1000  (<bin_0> .. <bin_999>)
//   continuous  1024  (Gato mu-law bins)            <cont_i>
//   discrete    1024  (integer actions)             <disc_i>
//   phone       n_phone (configurable, default 0)   <phone_i>
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mm {

enum class TokenKind { special, text, image, location, continuous, discrete, phone };
constexpr int kNumTokenKinds = 7;
std::string_view token_kind_name(TokenKind k);  // "special", "text", ...

struct VocabSizes {
  int64_t n_text = 0;
  int64_t n_image = 8192;
  int64_t n_location = 1000;
  int64_t n_continuous = 1024;
  int64_t n_discrete = 1024;
  int64_t n_phone = 0;
};

struct IdRange {
  int64_t begin = 0, end = 0;  // [begin, end)
  int64_t size() const { return end - begin; }
  bool contains(int64_t id) const { return id >= begin && id < end; }
};

class Vocab {
 public:
  // Special ids are fixed forever: padding is 0 everywhere (batches pad with 0).
  static constexpr int64_t pad = 0, bos = 1, eos = 2, unk = 3, mask = 4, sep = 5;
  static constexpr int64_t kNumSpecials = 6;

  Vocab() : Vocab(VocabSizes{}) {}
  explicit Vocab(const VocabSizes& sizes);  // throws on negative sizes

  const VocabSizes& sizes() const { return sizes_; }
  int64_t size() const { return ranges_[kNumTokenKinds - 1].end; }  // total ids
  IdRange range(TokenKind k) const { return ranges_[int(k)]; }
  // Kind of a global id; throws naming the id and the vocabulary size when out of range.
  TokenKind kind_of(int64_t id) const;
  // Local index (e.g. bin number) of kind k -> global id; throws when out of range.
  int64_t to_id(TokenKind k, int64_t local) const;
  // Global id -> local index within kind k; throws when the id is of another kind.
  int64_t to_local(TokenKind k, int64_t id) const;
  // "<pad>", "<bin_17>", "<code_5>", "<cont_3>", "<disc_9>", "<phone_2>", "<text_123>".
  std::string token_string(int64_t id) const;
  // Inverse of token_string for every kind; nullopt when the string is not one of ours.
  std::optional<int64_t> id_of(std::string_view token) const;

  // {"format":"mm-vocab","version":1,"sizes":{...},"ranges":[...],"specials":[...]}
  std::string to_json() const;
  // Validates format, version, sizes and that the stored ranges match the fixed order.
  static Vocab from_json(std::string_view json);

  bool operator==(const Vocab& o) const;

 private:
  VocabSizes sizes_;
  IdRange ranges_[kNumTokenKinds];
};

}  // namespace mm
