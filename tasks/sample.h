// From a data row to model inputs, and from model outputs back to typed values: the glue
// between the instruction plan (tasks/instruction.h), the dataset rows (tasks/dataset.h),
// the shared vocabulary (tasks/vocab.h) and the modality preprocessors.
//
//   Plan plan = parse_instruction("[IMAGE:img] [TEXT:question] -> [TEXT:answer,closed_set]");
//   SampleBuilder sb(plan, vocab, &tok, {.image_size = 64});
//   sb.set_answers(closed_set_answers(plan, {&train, &valid}));  // closed_set: the trie
//   Sample s = sb.build(train.row(i), train.columns(), train.name());
//   SampleBatch b = collate_samples({s0, s1, ...}, vocab);       // CPU tensors
//   TypedOutput y = sb.decode(generated_ids, s);                 // text / box / values
//
// What build() does, per slot of the drawn template (one template per sample, chosen by
// Plan::choose_template(seed, row index), so the choice survives shuffling and resume):
//   TEXT      normalize_text (uncased / no_punctuation), SentencePiece, + the text offset,
//             then max_length, mask_ratio (BART spans -> <mask>), noise_ratio.
//   STRUCT    struct_field_to_text, then as TEXT.      CATEGORY  as TEXT.
//   BOX       "x0 y0 x1 y1" in original pixels of the template's first IMAGE -> 4 <bin_i>.
//   CONTINUOUS / DISCRETE / PHONE  number lists -> ids of their vocabulary range.
//   IMAGE     a path (relative: to the data file's folder) or base64 bytes -> resized
//             square [3, S, S] in [-1, 1].
//   AUDIO     path or base64 -> 16 kHz mono -> [F, 80] log-mel (max_length caps F).
//   VIDEO     path or base64 -> N evenly sampled frames -> [N, 3, S, S] in [-1, 1].
// A media field is a path when it contains a '.' (base64 never does), else base64.
// Literal text and text-like slots of one group form one sequence <bos> ... <eos>; each
// segment is tokenized on its own so the tokens of the target are exactly the tokens of
// its closed-set answer. Input-side groups are concatenated into the encoder tokens;
// output-side groups into the decoder target (without <bos>, ending in one <eos>), where
// literal text and no_loss slots are fed but not scored.
//
// Errors for a bad row read "FILE:LINE: field 'NAME': PROBLEM" (the dataset's format).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"
#include "tasks/audio.h"
#include "tasks/batch.h"
#include "tasks/box.h"
#include "tasks/dataset.h"
#include "tasks/image.h"
#include "tasks/instruction.h"
#include "tasks/text_tokenizer.h"
#include "tasks/trie.h"
#include "tasks/vocab.h"

namespace mm {

struct SampleOptions {
  int image_size = 480;   // IMAGE: square model-input side (OFA: 384 / 480 / 512)
  int video_frames = 8;   // VIDEO: frames kept per clip
  int video_size = 0;     // VIDEO: square frame side; 0 = image_size
  ResizeMode resize = ResizeMode::bicubic;
  uint64_t seed = 1;      // templates, span masking, noise
};

// One IMAGE slot's pixels and the geometry BOX slots need.
struct ImageInput {
  std::string field;
  int orig_w = 0, orig_h = 0;  // decoded image size (original pixels)
  int size = 0;                // model-input side S
  std::vector<float> chw;      // [3, S, S] in [-1, 1]
};

struct VideoInput {
  std::string field;
  int n = 0, size = 0;         // N frames of S x S
  std::vector<float> frames;   // [N, 3, S, S] in [-1, 1]
};

struct Sample {
  std::string file;            // where the row came from (messages)
  int64_t line = 0, index = 0;
  size_t template_index = 0;
  std::vector<int64_t> encoder_tokens;  // [S] input-side token groups, concatenated
  std::vector<ImageInput> images;       // one per IMAGE slot of the input side
  std::vector<Fbank> audio;             // one per AUDIO slot: [F, 80]
  std::vector<VideoInput> videos;       // one per VIDEO slot
  TokenSeq target;                      // decoder target: content ... <eos> (no <bos>)
  int64_t target_begin = 0;   // index in target.ids where the target slot's tokens start
  int64_t target_end = 0;     // one past its last token (the <eos> follows when it ends the side)
  bool has_target = false;
  SlotType target_type = SlotType::TEXT;
  std::string target_value;   // the target field as fed (normalised text), a reference
  bool closed_set = false;
  std::shared_ptr<const Trie> answers;  // the closed set (null when not closed_set)
  bool has_box_frame = false;
  BoxFrame box_frame;         // original pixels <-> model input, for BOX slots
};

// A decoded model output, typed by the target slot.
struct TypedOutput {
  SlotType type = SlotType::TEXT;
  std::string text;                 // TEXT / STRUCT / CATEGORY (and a rendering of the rest)
  std::array<double, 4> box{};      // BOX: x0 y0 x1 y1 in original image pixels
  std::vector<double> values;       // CONTINUOUS
  std::vector<int64_t> ints;        // DISCRETE / PHONE
  bool complete = true;             // false: too few tokens (e.g. a BOX with < 4 bins)
};

class SampleBuilder {
 public:
  // `tok` may be null when the plan has no text (literal or text-like slot).
  SampleBuilder(Plan plan, const Vocab& vocab, const TextTokenizer* tok,
                SampleOptions opt = {});

  const Plan& plan() const { return plan_; }
  const SampleOptions& options() const { return opt_; }
  // The closed set of the target (answer texts, normalised like the target slot), each
  // tokenized + <eos> into the trie. Needed before build() when the target is closed_set.
  void set_answers(const std::vector<std::string>& answers);
  std::shared_ptr<const Trie> answers() const { return trie_; }

  // One row (values in `columns` order) -> a Sample. `epoch` re-draws masking / noise.
  Sample build(const Row& row, const std::vector<std::string>& columns,
               const std::string& file, uint64_t epoch = 0) const;
  Sample build(const Dataset& d, int64_t i, uint64_t epoch = 0) const {
    return build(d.row(i), d.columns(), d.name(), epoch);
  }

  // Decoder output ids (after <bos>, laid out like Sample::target.ids, forced prefix
  // included) -> the typed target value. Stops at the first <eos>.
  TypedOutput decode(const std::vector<int64_t>& ids, const Sample& s) const;
  // The target slot's token ids for a value (what the trie and the target hold), no <eos>.
  std::vector<int64_t> target_tokens(const std::string& value) const;

 private:
  std::vector<int64_t> text_ids(const std::string& text) const;
  Plan plan_;
  Vocab vocab_;
  const TextTokenizer* tok_;
  SampleOptions opt_;
  std::shared_ptr<const Trie> trie_;
};

// A batch of samples as CPU tensors. B samples; S encoder length; T decoder length;
// F audio frames; N video frames; V vocabulary size.
struct SampleBatch {
  int64_t B = 0;
  EncoderBatch encoder;   // tokens [B, S] i64 + padding_mask [B, S] bool
  Tensor images;          // [B, 3, H, W] f32, zeros where absent (undefined: no images)
  Tensor image_present;   // [B] bool
  Tensor audio;           // [B, F, 80] f32, 0-padded (undefined: no audio)
  Tensor audio_mask;      // [B, F] bool, true = a real frame
  Tensor video;           // [B, N, 3, H, W] f32 (undefined: no video)
  Tensor video_present;   // [B] bool
  DecoderBatch decoder;   // prev_tokens / target / loss_mask / padding_mask [B, T]
  Tensor allowed;         // [B, T, V] u8: closed-set ids allowed at each position
                          // (all 1 outside the target slot); undefined unless closed_set
};
// Collates samples of one task (one image / audio / video slot at most per sample).
SampleBatch collate_samples(const std::vector<Sample>& samples, const Vocab& vocab,
                            int64_t pad_multiple = 1);

// The closed-set allowed ids at decoder position t of a sample (empty outside the
// target slot); what SampleBatch::allowed holds, for generators that decode step by step.
std::vector<int64_t> allowed_at(const Sample& s, int64_t t);

// Text to train the tokenizer on: the plan's literal text and every text-like field of
// the first `max_rows` rows of each dataset (0 = all), normalised as each slot asks.
std::vector<std::string> tokenizer_corpus(const Plan& plan,
                                          const std::vector<const Dataset*>& data,
                                          int64_t max_rows = 0);
// The distinct values of the target field over the datasets (normalised as the target
// slot asks), sorted: the closed set when no answers file is given.
std::vector<std::string> closed_set_answers(const Plan& plan,
                                            const std::vector<const Dataset*>& data);

}  // namespace mm
