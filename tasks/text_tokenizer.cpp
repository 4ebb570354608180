#include "tasks/text_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <iterator>
#include <unordered_map>

#include "runtime/error.h"

namespace mm {

// ---------------------------------------------------------------- tokenizer

namespace {

// Feeds training sentences straight from memory: no temporary corpus file.
class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) { skip_empty(); }
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; skip_empty(); }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void skip_empty() {
    while (i_ < v_.size() && v_[i_].empty()) ++i_;
  }
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MM_CHECK(f.good(), "text tokenizer ", path, ": cannot open file");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

TextTokenizer::TextTokenizer() = default;
TextTokenizer::~TextTokenizer() = default;
TextTokenizer::TextTokenizer(TextTokenizer&&) noexcept = default;
TextTokenizer& TextTokenizer::operator=(TextTokenizer&&) noexcept = default;

TextTokenizer TextTokenizer::train(const std::vector<std::string>& texts,
                                   const TextTokenizerOptions& opt,
                                   const std::string& model_path) {
  size_t nonempty = 0;
  for (const auto& t : texts) nonempty += !t.empty();
  MM_CHECK(nonempty > 0, "text tokenizer: no training text (", texts.size(), " empty strings)");
  MM_CHECK(opt.vocab_size > 1, "text tokenizer: vocab_size must be > 1, got ", opt.vocab_size);
  std::unordered_map<std::string, std::string> kw = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"hard_vocab_limit", opt.hard_vocab_limit ? "true" : "false"},
      {"byte_fallback", opt.byte_fallback ? "true" : "false"},
      {"split_digits", opt.split_digits ? "true" : "false"},
      {"character_coverage", std::to_string(opt.character_coverage)},
      {"num_threads", std::to_string(opt.num_threads)},
      {"max_sentence_length", std::to_string(opt.max_sentence_length)},
      // The shared vocabulary owns the specials: only <unk> (id 0) lives in our id space.
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_id", "-1"},
      // Identity normalisation and kept whitespace: decode(encode(s)) == s.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      // Train on every sentence, in order: no sampling, so training is deterministic.
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"model_prefix", ""},
  };
  if (opt.quiet) kw["minloglevel"] = "2";
  VectorIterator it(texts);
  std::string bytes;
  const auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &bytes);
  MM_CHECK(st.ok(), "text tokenizer: SentencePiece training failed: ", st.ToString());
  TextTokenizer tok;
  tok.init_from_bytes(std::move(bytes), "trained model");
  if (!model_path.empty()) tok.save(model_path);
  return tok;
}

TextTokenizer TextTokenizer::load(const std::string& path) {
  TextTokenizer tok;
  tok.init_from_bytes(read_file(path), path);
  return tok;
}

TextTokenizer TextTokenizer::from_bytes(const std::string& bytes) {
  TextTokenizer tok;
  tok.init_from_bytes(bytes, "serialized model");
  return tok;
}

void TextTokenizer::init_from_bytes(std::string bytes, const std::string& source) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto st = sp->LoadFromSerializedProto(bytes);
  MM_CHECK(st.ok(), "text tokenizer ", source, ": not a SentencePiece model (", st.ToString(), ")");
  // Our id contract: <unk> = 0 and no other specials. A model from elsewhere (e.g. one
  // with bos/eos) still works, but its control ids would leak into the shared vocabulary.
  MM_CHECK(sp->unk_id() == 0, "text tokenizer ", source, ": expected <unk> at id 0, got ", sp->unk_id());
  sp_ = std::move(sp);
  bytes_ = std::move(bytes);
}

int TextTokenizer::size() const {
  MM_CHECK(sp_, "text tokenizer: no model loaded");
  return sp_->GetPieceSize();
}

void TextTokenizer::save(const std::string& path) const {
  MM_CHECK(sp_, "text tokenizer: no model loaded");
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  MM_CHECK(f.good(), "text tokenizer: cannot write ", path);
  f.write(bytes_.data(), std::streamsize(bytes_.size()));
  MM_CHECK(f.good(), "text tokenizer: write failed for ", path);
}

std::vector<int> TextTokenizer::encode(std::string_view text) const {
  MM_CHECK(sp_, "text tokenizer: no model loaded");
  std::vector<int> ids;
  const auto st = sp_->Encode(text, &ids);
  MM_CHECK(st.ok(), "text tokenizer: encode failed: ", st.ToString());
  return ids;
}

std::vector<std::string> TextTokenizer::encode_pieces(std::string_view text) const {
  MM_CHECK(sp_, "text tokenizer: no model loaded");
  std::vector<std::string> pieces;
  const auto st = sp_->Encode(text, &pieces);
  MM_CHECK(st.ok(), "text tokenizer: encode failed: ", st.ToString());
  return pieces;
}

std::string TextTokenizer::decode(const std::vector<int>& ids) const {
  MM_CHECK(sp_, "text tokenizer: no model loaded");
  const int n = sp_->GetPieceSize();
  for (size_t i = 0; i < ids.size(); ++i)
    MM_CHECK(ids[i] >= 0 && ids[i] < n, "text tokenizer: id ", ids[i], " at position ", i,
             " outside [0, ", n, ")");
  std::string text;
  const auto st = sp_->Decode(ids, &text);
  MM_CHECK(st.ok(), "text tokenizer: decode failed: ", st.ToString());
  return text;
}

std::string TextTokenizer::piece(int id) const {
  MM_CHECK(sp_, "text tokenizer: no model loaded");
  MM_CHECK(id >= 0 && id < sp_->GetPieceSize(), "text tokenizer: id ", id, " outside [0, ",
           sp_->GetPieceSize(), ")");
  return sp_->IdToPiece(id);
}

}  // namespace mm
