#include "tasks/sample.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <random>
#include <set>
#include <sstream>

#include "runtime/error.h"
#include "tasks/base64.h"
#include "tasks/continuous.h"
#include "tasks/discrete.h"
#include "tasks/noise.h"
#include "tasks/rng.h"
#include "tasks/text_fields.h"
#include "tasks/video.h"

namespace mm {

namespace {

TextNormalization normalization_of(const Slot& s) {
  return {.uncased = s.attrs.uncased, .no_punctuation = s.attrs.no_punctuation};
}

// The text a text-like slot feeds, before tokenization.
std::string slot_text(const Slot& s, const std::string& value) {
  std::string v = s.type == SlotType::STRUCT ? struct_field_to_text(value) : value;
  return normalize_text(v, normalization_of(s));
}

// The value of the field a slot reads; throws naming the field.
const std::string& field_value(const Slot& s, const Row& row,
                               const std::vector<std::string>& columns) {
  int idx = s.position;
  if (!s.name.empty()) {
    idx = -1;
    for (size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == s.name) idx = int(i);
    MM_CHECK(idx >= 0, "missing from the data (columns: ", columns.size(), ")");
  }
  MM_CHECK(idx >= 0 && size_t(idx) < row.values.size(), "missing (the row has ",
           row.values.size(), " values, the slot reads column ", idx + 1, ")");
  return row.values[size_t(idx)];
}

// A media field: a path (it has a '.', which base64 never has) or base64 bytes.
bool is_path(const std::string& v) { return v.find('.') != std::string::npos; }

// Relative media paths are relative to the data file's folder (when it is there).
std::string media_path(const std::string& file, const std::string& value) {
  namespace fs = std::filesystem;
  fs::path p(value);
  if (p.is_absolute()) return value;
  fs::path dir = fs::path(file).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::path q = dir / p;
    if (fs::exists(q, ec)) return q.string();
  }
  return value;
}

void append(std::vector<int64_t>& dst, const std::vector<int64_t>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

std::string fmt_num(double x) {
  std::ostringstream os;
  os << std::setprecision(6) << x;
  return os.str();
}

}  // namespace

SampleBuilder::SampleBuilder(Plan plan, const Vocab& vocab, const TextTokenizer* tok,
                             SampleOptions opt)
    : plan_(std::move(plan)), vocab_(vocab), tok_(tok), opt_(opt) {
  MM_CHECK(!plan_.templates.empty(), "sample builder: the plan has no template");
  MM_CHECK(opt_.image_size > 0 && opt_.video_frames > 0 && opt_.video_size >= 0,
           "sample builder: image_size and video_frames must be > 0, video_size >= 0 (got ",
           opt_.image_size, ", ", opt_.video_frames, ", ", opt_.video_size, ")");
  MM_CHECK(tok_ == nullptr || tok_->size() <= vocab_.range(TokenKind::text).size(),
           "sample builder: the tokenizer has ", tok_ ? tok_->size() : 0,
           " ids but the vocabulary's text range holds ", vocab_.range(TokenKind::text).size());
  for (const Template& t : plan_.templates) {
    if (t.target < 0) continue;
    const Slot& target = t.output.slots[size_t(t.target)];
    if (!target.attrs.closed_set) continue;
    // The trie covers the target's tokens and the <eos> after them, so nothing may follow.
    const Segment& last = t.output.segments.back();
    MM_CHECK(last.is_slot && last.slot == t.target,
             instruction_error(plan_.instruction, last.column,
                               "text after a closed_set target (expected the closed_set "
                               "slot to end the right side)"));
  }
}

std::vector<int64_t> SampleBuilder::text_ids(const std::string& text) const {
  MM_CHECK(tok_ != nullptr && tok_->loaded(),
           "sample builder: the instruction has text but no text tokenizer was given");
  const int64_t off = vocab_.range(TokenKind::text).begin;
  std::vector<int64_t> out;
  for (int id : tok_->encode(text)) out.push_back(off + id);
  return out;
}

std::vector<int64_t> SampleBuilder::target_tokens(const std::string& value) const {
  const Template& t = plan_.templates[0];
  MM_CHECK(t.target >= 0, "sample builder: the instruction has no target slot");
  const Slot& s = t.output.slots[size_t(t.target)];
  std::vector<int64_t> ids;
  switch (s.type) {
    case SlotType::TEXT: case SlotType::STRUCT: case SlotType::CATEGORY:
      ids = text_ids(slot_text(s, value)); break;
    case SlotType::CONTINUOUS: ids = continuous_to_ids(parse_number_list(value), vocab_); break;
    case SlotType::DISCRETE: ids = discrete_to_ids(parse_int_list(value), vocab_); break;
    default:
      MM_CHECK(false, "sample builder: a closed set of ", slot_type_name(s.type),
               " answers is not supported (expected TEXT, STRUCT, CATEGORY, CONTINUOUS or "
               "DISCRETE)");
  }
  if (s.attrs.max_length > 0 && int64_t(ids.size()) > s.attrs.max_length)
    ids.resize(size_t(s.attrs.max_length));
  return ids;
}

void SampleBuilder::set_answers(const std::vector<std::string>& answers) {
  MM_CHECK(!answers.empty(), "sample builder: the closed set of answers is empty");
  auto trie = std::make_shared<Trie>();
  for (const std::string& a : answers) {
    std::vector<int64_t> ids = target_tokens(a);
    ids.push_back(Vocab::eos);
    trie->insert(ids);
  }
  trie_ = std::move(trie);
}

Sample SampleBuilder::build(const Row& row, const std::vector<std::string>& columns,
                            const std::string& file, uint64_t epoch) const {
  Sample s;
  s.file = file;
  s.line = row.line;
  s.index = row.index;
  s.template_index = plan_.choose_template(opt_.seed, uint64_t(row.index));
  const Template& t = plan_.templates[s.template_index];
  const std::string where = cat(file, ":", row.line, ": ");

  // Runs `f` for one slot; any error becomes "FILE:LINE: field 'NAME': PROBLEM".
  auto guarded = [&](const Slot& slot, const auto& f) {
    try {
      f();
    } catch (const Error& e) {
      throw Error(cat(where, "field '", slot.field(), "' (", slot_type_name(slot.type),
                      "): ", e.what()));
    }
  };
  auto rng_for = [&](const Slot& slot) {
    return std::mt19937_64(mix64(opt_.seed ^ mix64(uint64_t(row.index) ^
                                 mix64(epoch * 1024 + uint64_t(slot.position)))));
  };

  // Media first: BOX slots need the geometry of the template's first image.
  for (const Slot& slot : t.input.slots) {
    if (slot.type == SlotType::IMAGE) {
      guarded(slot, [&] {
        const std::string& v = field_value(slot, row, columns);
        MM_CHECK(!v.empty(), "empty (expected an image path or base64 bytes)");
        Image im = is_path(v) ? load_image(media_path(file, v))
                              : decode_image_base64(v, slot.field());
        ImageInput in;
        in.field = slot.field();
        in.orig_w = im.W;
        in.orig_h = im.H;
        in.size = opt_.image_size;
        in.chw = to_chw_normalized(resize(im, in.size, in.size, opt_.resize));
        if (!s.has_box_frame) {
          s.box_frame = box_frame_for_resize(im.W, im.H, in.size, in.size);
          s.has_box_frame = true;
        }
        s.images.push_back(std::move(in));
      });
    } else if (slot.type == SlotType::AUDIO) {
      guarded(slot, [&] {
        const std::string& v = field_value(slot, row, columns);
        MM_CHECK(!v.empty(), "empty (expected an audio path or base64 bytes)");
        Audio a;
        if (is_path(v)) {
          a = load_audio(media_path(file, v));
        } else {
          std::vector<uint8_t> bytes = base64_decode(v);
          a = decode_audio(bytes.data(), bytes.size(), cat("field ", slot.field()));
        }
        Fbank f = compute_fbank(a.samples);
        MM_CHECK(f.frames > 0, "audio of ", a.seconds(), " s is shorter than one 25 ms frame");
        if (slot.attrs.max_length > 0 && f.frames > slot.attrs.max_length) {
          f.frames = int(slot.attrs.max_length);
          f.data.resize(size_t(f.frames) * size_t(f.bins));
        }
        s.audio.push_back(std::move(f));
      });
    } else if (slot.type == SlotType::VIDEO) {
      guarded(slot, [&] {
        const std::string& v = field_value(slot, row, columns);
        MM_CHECK(!v.empty(), "empty (expected a video path or base64 bytes)");
        VideoClip clip;
        if (is_path(v)) {
          clip = load_video(media_path(file, v), opt_.video_frames);
        } else {
          std::vector<uint8_t> bytes = base64_decode(v);
          clip = decode_video(bytes.data(), bytes.size(), cat("field ", slot.field()),
                              opt_.video_frames);
        }
        MM_CHECK(!clip.frames.empty(), "the video has no frames");
        VideoInput in;
        in.field = slot.field();
        in.n = opt_.video_frames;
        in.size = opt_.video_size > 0 ? opt_.video_size : opt_.image_size;
        const size_t per = size_t(3) * size_t(in.size) * size_t(in.size);
        in.frames.resize(per * size_t(in.n));
        // Short streams repeat their last frame so every clip has N frames.
        for (int k = 0; k < in.n; ++k) {
          const Image& f = clip.frames[std::min(size_t(k), clip.frames.size() - 1)];
          to_chw_normalized(resize(f, in.size, in.size, opt_.resize), in.frames.data() + per * size_t(k));
        }
        if (slot.preprocessor == "video_residual") frames_to_residuals(in.frames.data(), in.n, per);
        s.videos.push_back(std::move(in));
      });
    } else if (slot.type == SlotType::MOTION) {
      guarded(slot, [&] { MM_CHECK(false, "MOTION slots have no preprocessor yet"); });
    }
  }

  // The token ids of one slot (no <bos>/<eos>).
  auto slot_ids = [&](const Slot& slot, bool is_target) {
    std::vector<int64_t> ids;
    guarded(slot, [&] {
      const std::string& v = field_value(slot, row, columns);
      bool text = false;
      switch (slot.type) {
        case SlotType::TEXT: case SlotType::STRUCT: case SlotType::CATEGORY: {
          const std::string norm = slot_text(slot, v);
          if (is_target) s.target_value = norm;
          ids = text_ids(norm);
          text = true;
          break;
        }
        case SlotType::BOX: {
          MM_CHECK(s.has_box_frame, "a BOX slot needs an IMAGE slot on the input side (its "
                   "coordinates are pixels of that image)");
          auto b = box_to_ids(parse_box(v), s.box_frame, vocab_);
          ids.assign(b.begin(), b.end());
          break;
        }
        case SlotType::CONTINUOUS: ids = continuous_to_ids(parse_number_list(v), vocab_); break;
        case SlotType::DISCRETE: ids = discrete_to_ids(parse_int_list(v), vocab_); break;
        case SlotType::PHONE:
          for (int64_t p : parse_int_list(v)) ids.push_back(vocab_.to_id(TokenKind::phone, p));
          break;
        default: MM_ASSERT(false);
      }
      if (is_target && !text) s.target_value = v;
      if (slot.attrs.max_length > 0 && int64_t(ids.size()) > slot.attrs.max_length)
        ids.resize(size_t(slot.attrs.max_length));
      // Masking and noise corrupt what is fed, never what is scored.
      if (text && !slot.scored() && (slot.attrs.mask_ratio > 0 || slot.attrs.noise_ratio > 0)) {
        std::mt19937_64 rng = rng_for(slot);
        if (slot.attrs.mask_ratio > 0) ids = span_mask(ids, slot.attrs.mask_ratio, Vocab::mask, rng);
        if (slot.attrs.noise_ratio > 0)
          ids = random_replace(ids, slot.attrs.noise_ratio, vocab_.range(TokenKind::text), rng);
      }
    });
    return ids;
  };
  auto is_token_slot = [](SlotType ty) {
    return is_text_like(ty) || ty == SlotType::CONTINUOUS || ty == SlotType::DISCRETE ||
           ty == SlotType::PHONE;
  };

  // Encoder: token groups in order; <bos>/<eos> around text-like runs.
  for (const Group& g : t.input.groups) {
    std::vector<int64_t> seq;
    bool any_tokens = false;
    for (int si : g.segments) {
      const Segment& seg = t.input.segments[size_t(si)];
      if (!seg.is_slot) {
        append(seq, text_ids(seg.text));
        any_tokens = true;
      } else if (is_token_slot(t.input.slots[size_t(seg.slot)].type)) {
        append(seq, slot_ids(t.input.slots[size_t(seg.slot)], false));
        any_tokens = true;
      }
    }
    if (!any_tokens) continue;
    if (g.tokens) s.encoder_tokens.push_back(Vocab::bos);
    append(s.encoder_tokens, seq);
    if (g.tokens) s.encoder_tokens.push_back(Vocab::eos);
  }

  // Decoder target: every output group's content, one <eos> at the end.
  for (const Group& g : t.output.groups) {
    for (int si : g.segments) {
      const Segment& seg = t.output.segments[size_t(si)];
      if (!seg.is_slot) {
        std::vector<int64_t> ids = text_ids(seg.text);
        append(s.target.ids, ids);
        s.target.scored.insert(s.target.scored.end(), ids.size(), 0);
        continue;
      }
      const Slot& slot = t.output.slots[size_t(seg.slot)];
      const bool is_target = seg.slot == t.target;
      std::vector<int64_t> ids = slot_ids(slot, is_target);
      if (is_target) {
        s.target_begin = int64_t(s.target.ids.size());
        s.target_end = s.target_begin + int64_t(ids.size());
        s.has_target = true;
        s.target_type = slot.type;
        s.closed_set = slot.attrs.closed_set;
      }
      append(s.target.ids, ids);
      s.target.scored.insert(s.target.scored.end(), ids.size(), slot.scored() ? 1 : 0);
    }
  }
  if (!t.output.empty()) {
    s.target.ids.push_back(Vocab::eos);
    s.target.scored.push_back(s.has_target ? 1 : 0);
  }

  if (s.closed_set) {
    const Slot& slot = t.output.slots[size_t(t.target)];
    MM_CHECK(trie_ != nullptr, where, "field '", slot.field(), "': closed_set target but no "
             "answers were given (SampleBuilder::set_answers, or the task's answers file)");
    std::vector<int64_t> answer(s.target.ids.begin() + s.target_begin, s.target.ids.end());
    MM_CHECK(trie_->contains(answer), where, "field '", slot.field(), "': answer '",
             s.target_value, "' is not in the closed set of ", trie_->num_answers(), " answers");
    s.answers = trie_;
  }
  return s;
}

TypedOutput SampleBuilder::decode(const std::vector<int64_t>& ids, const Sample& s) const {
  MM_CHECK(s.has_target, "decode: the sample's instruction has no target slot");
  TypedOutput out;
  out.type = s.target_type;
  std::vector<int64_t> body;
  for (size_t i = size_t(std::max<int64_t>(0, s.target_begin)); i < ids.size(); ++i) {
    if (ids[i] == Vocab::eos) break;
    body.push_back(ids[i]);
  }
  auto keep = [&](TokenKind k) {
    std::vector<int64_t> v;
    for (int64_t id : body)
      if (vocab_.range(k).contains(id)) v.push_back(id);
    return v;
  };
  switch (s.target_type) {
    case SlotType::TEXT: case SlotType::STRUCT: case SlotType::CATEGORY: {
      MM_CHECK(tok_ != nullptr, "decode: a text target needs the text tokenizer");
      std::vector<int> local;
      for (int64_t id : keep(TokenKind::text)) local.push_back(int(vocab_.to_local(TokenKind::text, id)));
      out.text = tok_->decode(local);
      break;
    }
    case SlotType::BOX: {
      MM_CHECK(s.has_box_frame, "decode: a BOX target needs the sample's image geometry");
      std::vector<int64_t> bins = keep(TokenKind::location);
      out.complete = bins.size() >= 4;
      if (out.complete) {
        std::array<int64_t, 4> b4 = {bins[0], bins[1], bins[2], bins[3]};
        // A decoder may emit corners out of order; a box is x0 <= x1, y0 <= y1.
        if (b4[0] > b4[2]) std::swap(b4[0], b4[2]);
        if (b4[1] > b4[3]) std::swap(b4[1], b4[3]);
        out.box = ids_to_box(b4, s.box_frame, vocab_);
        out.text = cat(fmt_num(out.box[0]), " ", fmt_num(out.box[1]), " ", fmt_num(out.box[2]),
                       " ", fmt_num(out.box[3]));
      }
      break;
    }
    case SlotType::CONTINUOUS:
      out.values = ids_to_continuous(keep(TokenKind::continuous), vocab_);
      for (size_t i = 0; i < out.values.size(); ++i) out.text += (i ? " " : "") + fmt_num(out.values[i]);
      break;
    case SlotType::DISCRETE:
      out.ints = ids_to_discrete(keep(TokenKind::discrete), vocab_);
      for (size_t i = 0; i < out.ints.size(); ++i) out.text += cat(i ? " " : "", out.ints[i]);
      break;
    case SlotType::PHONE:
      for (int64_t id : keep(TokenKind::phone)) out.ints.push_back(vocab_.to_local(TokenKind::phone, id));
      for (size_t i = 0; i < out.ints.size(); ++i) out.text += cat(i ? " " : "", out.ints[i]);
      break;
    default: MM_ASSERT(false);
  }
  return out;
}

std::vector<int64_t> allowed_at(const Sample& s, int64_t t) {
  if (!s.closed_set || !s.answers || t < s.target_begin || t >= int64_t(s.target.ids.size()))
    return {};
  std::vector<int64_t> prefix(s.target.ids.begin() + s.target_begin, s.target.ids.begin() + t);
  return s.answers->allowed_next(prefix);
}

SampleBatch collate_samples(const std::vector<Sample>& samples, const Vocab& vocab,
                            int64_t pad_multiple) {
  MM_CHECK(!samples.empty(), "collate_samples: no samples");
  SampleBatch b;
  b.B = int64_t(samples.size());
  const int64_t B = b.B;

  std::vector<std::vector<int64_t>> enc;
  std::vector<TokenSeq> dec;
  for (const Sample& s : samples) {
    MM_CHECK(s.images.size() <= 1 && s.audio.size() <= 1 && s.videos.size() <= 1, s.file, ":",
             s.line, ": collate_samples takes at most one IMAGE, AUDIO and VIDEO slot per "
             "sample (got ", s.images.size(), ", ", s.audio.size(), ", ", s.videos.size(), ")");
    enc.push_back(s.encoder_tokens);
    dec.push_back(s.target);
  }
  b.encoder = collate_encoder(enc, pad_multiple);
  b.decoder = collate_decoder(dec, pad_multiple);

  // Images [B, 3, S, S].
  int S = 0;
  for (const Sample& s : samples)
    if (!s.images.empty()) {
      MM_CHECK(S == 0 || S == s.images[0].size, "collate_samples: image sizes differ (", S,
               " vs ", s.images[0].size, ")");
      S = s.images[0].size;
    }
  if (S > 0) {
    const size_t per = size_t(3) * size_t(S) * size_t(S);
    b.images = Tensor::zeros({B, 3, S, S});
    b.image_present = Tensor::zeros({B}, DType::boolean);
    for (int64_t i = 0; i < B; ++i) {
      if (samples[size_t(i)].images.empty()) continue;
      std::memcpy(b.images.data<float>() + per * size_t(i), samples[size_t(i)].images[0].chw.data(),
                  per * sizeof(float));
      b.image_present.data<uint8_t>()[i] = 1;
    }
  }

  // Audio [B, F, bins], 0-padded to the longest.
  int F = 0, bins = 0;
  for (const Sample& s : samples)
    if (!s.audio.empty()) {
      F = std::max(F, s.audio[0].frames);
      MM_CHECK(bins == 0 || bins == s.audio[0].bins, "collate_samples: filterbank sizes differ");
      bins = s.audio[0].bins;
    }
  if (F > 0) {
    b.audio = Tensor::zeros({B, F, bins});
    b.audio_mask = Tensor::zeros({B, F}, DType::boolean);
    for (int64_t i = 0; i < B; ++i) {
      if (samples[size_t(i)].audio.empty()) continue;
      const Fbank& f = samples[size_t(i)].audio[0];
      std::memcpy(b.audio.data<float>() + size_t(i) * size_t(F) * size_t(bins), f.data.data(),
                  f.data.size() * sizeof(float));
      std::fill_n(b.audio_mask.data<uint8_t>() + i * F, f.frames, uint8_t(1));
    }
  }

  // Video [B, N, 3, S, S].
  int N = 0, VS = 0;
  for (const Sample& s : samples)
    if (!s.videos.empty()) {
      MM_CHECK(N == 0 || (N == s.videos[0].n && VS == s.videos[0].size),
               "collate_samples: video shapes differ");
      N = s.videos[0].n;
      VS = s.videos[0].size;
    }
  if (N > 0) {
    const size_t per = size_t(N) * 3 * size_t(VS) * size_t(VS);
    b.video = Tensor::zeros({B, N, 3, VS, VS});
    b.video_present = Tensor::zeros({B}, DType::boolean);
    for (int64_t i = 0; i < B; ++i) {
      if (samples[size_t(i)].videos.empty()) continue;
      std::memcpy(b.video.data<float>() + per * size_t(i), samples[size_t(i)].videos[0].frames.data(),
                  per * sizeof(float));
      b.video_present.data<uint8_t>()[i] = 1;
    }
  }

  // Closed-set mask [B, T, V]: the trie's children at target positions, all ids elsewhere.
  bool closed = false;
  for (const Sample& s : samples) closed |= s.closed_set && s.answers;
  if (closed) {
    const int64_t T = b.decoder.prev_tokens.shape()[1], V = vocab.size();
    b.allowed = Tensor::full({B, T, V}, 1.0, DType::u8);
    uint8_t* m = b.allowed.data<uint8_t>();
    for (int64_t i = 0; i < B; ++i)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<int64_t> ok = allowed_at(samples[size_t(i)], t);
        if (ok.empty()) continue;
        uint8_t* row = m + (i * T + t) * V;
        std::fill_n(row, V, uint8_t(0));
        for (int64_t id : ok) row[id] = 1;
      }
  }
  return b;
}

std::vector<std::string> tokenizer_corpus(const Plan& plan,
                                          const std::vector<const Dataset*>& data,
                                          int64_t max_rows) {
  std::vector<std::string> out;
  std::set<std::string> literals;
  // Distinct (field, normalisation) pairs read by text-like slots: each read once per row.
  std::vector<const Slot*> slots;
  std::set<std::string> seen;
  for (const Template& t : plan.templates)
    for (const Side* side : {&t.input, &t.output}) {
      for (const Segment& seg : side->segments)
        if (!seg.is_slot && literals.insert(seg.text).second) out.push_back(seg.text);
      for (const Slot& s : side->slots) {
        if (!is_text_like(s.type) || s.type == SlotType::BOX) continue;
        if (seen.insert(cat(s.field(), "|", s.attrs.uncased, s.attrs.no_punctuation, int(s.type))).second)
          slots.push_back(&s);
      }
    }
  for (const Dataset* d : data) {
    const int64_t n = max_rows > 0 ? std::min(max_rows, d->size()) : d->size();
    for (int64_t i = 0; i < n; ++i) {
      Row r = d->row(i);
      for (const Slot* s : slots) {
        try {
          out.push_back(slot_text(*s, field_value(*s, r, d->columns())));
        } catch (const Error& e) {
          throw Error(cat(d->name(), ":", r.line, ": field '", s->field(), "': ", e.what()));
        }
      }
    }
  }
  return out;
}

std::vector<std::string> closed_set_answers(const Plan& plan,
                                            const std::vector<const Dataset*>& data) {
  const Template& t = plan.templates[0];
  MM_CHECK(t.target >= 0, "closed_set_answers: the instruction has no target slot");
  const Slot& s = t.output.slots[size_t(t.target)];
  std::set<std::string> set;
  for (const Dataset* d : data)
    for (int64_t i = 0; i < d->size(); ++i) {
      Row r = d->row(i);
      try {
        const std::string& v = field_value(s, r, d->columns());
        set.insert(is_text_like(s.type) && s.type != SlotType::BOX ? slot_text(s, v) : v);
      } catch (const Error& e) {
        throw Error(cat(d->name(), ":", r.line, ": field '", s.field(), "': ", e.what()));
      }
    }
  return std::vector<std::string>(set.begin(), set.end());
}

}  // namespace mm
