// TEXT tokenization: a SentencePiece BPE model trained in-process on the tasks' own
// text, or loaded from a file / serialized bytes (so a checkpoint can embed it).
//
//   TextTokenizer tok = TextTokenizer::train(texts, {.vocab_size = 8000}, "build/text.model");
//   std::vector<int> ids = tok.encode("a dog on a skateboard");  // each in [0, tok.size())
//   std::string back = tok.decode(ids);                          // == the input
//
// Ids are local: 0 is <unk>, the rest are subwords (and, with byte_fallback, the 256
// byte pieces <0x00>..<0xFF>). No pad/bos/eos live here: the shared vocabulary owns the
// specials and adds its text offset to these ids.
//
// SentencePiece's own normaliser is set to "identity" and keeps whitespace, so decode
// reproduces the encoded string exactly; the text normalisation the instruction asks
// for (uncased, no_punctuation) is normalize_text() in tasks/text_fields.h, applied
// before encode (train on normalised text too).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace mm {

struct TextTokenizerOptions {
  int vocab_size = 8000;      // upper bound: a small corpus yields fewer pieces
  bool hard_vocab_limit = false;  // true: fail if the corpus cannot fill vocab_size
  bool byte_fallback = true;  // unseen characters -> UTF-8 byte pieces, so every string
                              // round-trips (costs 256 ids)
  bool split_digits = false;  // one piece per digit (sudoku, numbers)
  double character_coverage = 1.0;
  int num_threads = 1;
  int max_sentence_length = 1 << 16;  // bytes; longer training lines are skipped
  bool quiet = true;                  // silence SentencePiece's training log
};

class TextTokenizer {
 public:
  TextTokenizer();
  ~TextTokenizer();
  TextTokenizer(TextTokenizer&&) noexcept;
  TextTokenizer& operator=(TextTokenizer&&) noexcept;

  // Trains a BPE model on `texts` (one sentence each). Writes it to `model_path` unless
  // empty. Deterministic for the same texts and options.
  static TextTokenizer train(const std::vector<std::string>& texts,
                             const TextTokenizerOptions& opt = {},
                             const std::string& model_path = "");
  // Loads a .model file written by train() or by spm_train.
  static TextTokenizer load(const std::string& path);
  // Loads from serialized model bytes (serialized()): for checkpoints.
  static TextTokenizer from_bytes(const std::string& bytes);

  bool loaded() const { return sp_ != nullptr; }
  // Number of ids: encode() returns ids in [0, size()).
  int size() const;
  int unk_id() const { return 0; }
  // The model bytes, for embedding in a checkpoint and from_bytes().
  const std::string& serialized() const { return bytes_; }
  void save(const std::string& path) const;

  // text -> ids [n], each in [0, size()).
  std::vector<int> encode(std::string_view text) const;
  // text -> the pieces (strings, "▁" marks a word start) [n].
  std::vector<std::string> encode_pieces(std::string_view text) const;
  // ids [n] -> text; ids outside [0, size()) are an mm::Error.
  std::string decode(const std::vector<int>& ids) const;
  std::string piece(int id) const;

 private:
  void init_from_bytes(std::string bytes, const std::string& source);
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string bytes_;
};

}  // namespace mm
