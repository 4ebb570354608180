// Row -> model inputs (tasks/sample.h): every SPEC section 1 example instruction on small
// rows made here, the BOX inverse back to original pixels, the closed-set mask against
// the trie, masking attributes, collation shapes, and bad rows naming file/line/field.
// References are computed independently: tokenizer output + vocabulary offsets by hand,
// box bins from the OFA formula, the trie's own allowed_next.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "tasks/base64.h"
#include "tasks/continuous.h"
#include "tasks/dataset.h"
#include "tasks/media_write.h"
#include "tasks/sample.h"
#include "tests/media_fixtures.h"

using namespace mm;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A tokenizer for the tests' words, and the vocabulary around it.
struct TextSetup {
  TextTokenizer tok;
  Vocab vocab;
  TextSetup() {
    std::vector<std::string> corpus = {
        "what does the image describe?", "which region does the text describe?",
        "a dog on a skateboard", "a sandal to the left of a pullover", "the sandal",
        "is the sentiment of text positive or negative?", "positive", "negative",
        "what is the text corresponding to the voice?", "what is in the video?",
        "solve the sudoku .", "1 0 3 4 4 0 0 1", "how many items are there?", "one two three",
        "what colour is the bag?", "red green blue", "the quick brown fox"};
    tok = TextTokenizer::train(corpus, {.vocab_size = 300});
    vocab = Vocab({.n_text = tok.size()});
  }
  std::vector<int64_t> ids(const std::string& s) const {
    std::vector<int64_t> out;
    for (int id : tok.encode(s)) out.push_back(vocab.range(TokenKind::text).begin + id);
    return out;
  }
};
const TextSetup& text_setup() {
  static const TextSetup t;
  return t;
}

Row make_row(std::vector<std::string> values, int64_t line = 2, int64_t index = 0) {
  Row r;
  r.index = index;
  r.line = line;
  r.values = std::move(values);
  return r;
}

std::vector<int64_t> cat_ids(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A W x H PNG (as base64) whose pixel (x, y) is (x*4, y*4, 100).
std::string png_b64(int w, int h) {
  std::vector<uint8_t> rgb(size_t(w) * size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(size_t(y) * size_t(w) + size_t(x)) * 3];
      p[0] = uint8_t(x * 4); p[1] = uint8_t(y * 4); p[2] = 100;
    }
  std::vector<uint8_t> png = encode_png(rgb.data(), w, h);
  return base64_encode(png.data(), png.size());
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("sample: image captioning: <bos> prompt <eos> encoder, resized image, scored caption") {
  const TextSetup& ts = text_setup();
  SampleBuilder sb(parse_instruction("[IMAGE:img] what does the image describe? -> [TEXT:cap]"),
                   ts.vocab, &ts.tok, {.image_size = 32});
  Sample s = sb.build(make_row({png_b64(40, 20), "a dog on a skateboard"}), {"img", "cap"}, "mem.tsv");
  CHECK(s.encoder_tokens ==
        cat_ids({{Vocab::bos}, ts.ids("what does the image describe?"), {Vocab::eos}}));
  REQUIRE(s.images.size() == 1);
  CHECK(s.images[0].orig_w == 40);
  CHECK(s.images[0].orig_h == 20);
  CHECK(s.images[0].chw.size() == size_t(3 * 32 * 32));
  for (float v : s.images[0].chw) REQUIRE((v >= -1.f && v <= 1.f));
  CHECK(s.target.ids == cat_ids({ts.ids("a dog on a skateboard"), {Vocab::eos}}));
  CHECK(std::count(s.target.scored.begin(), s.target.scored.end(), 1) == int64_t(s.target.ids.size()));
  CHECK(s.target_begin == 0);
  CHECK(s.target_value == "a dog on a skateboard");
  TypedOutput y = sb.decode(s.target.ids, s);
  CHECK(y.text == "a dog on a skateboard");
}

TEST_CASE("sample: grounding: BOX target in location bins, decoded back to original pixels") {
  const TextSetup& ts = text_setup();
  SampleBuilder sb(parse_instruction(
                       "[IMAGE:img] which region does the text \" [TEXT:cap] \" describe? -> [BOX:region]"),
                   ts.vocab, &ts.tok, {.image_size = 48});
  const double box[4] = {10, 5, 70, 35};  // pixels of an 80 x 40 image
  Sample s = sb.build(make_row({png_b64(80, 40), "the sandal", "10 5 70 35"}),
                      {"img", "cap", "region"}, "g.tsv");
  REQUIRE(s.target.ids.size() == 5);  // 4 bins + <eos>
  // OFA: coordinate / original size (the resize scales both) * 999, rounded.
  const double sizes[4] = {80, 40, 80, 40};
  for (int k = 0; k < 4; ++k)
    CHECK(s.target.ids[size_t(k)] ==
          ts.vocab.to_id(TokenKind::location, std::llround(box[k] / sizes[k] * 999)));
  CHECK(s.target.ids[4] == Vocab::eos);
  TypedOutput y = sb.decode(s.target.ids, s);
  CHECK(y.type == SlotType::BOX);
  REQUIRE(y.complete);
  for (int k = 0; k < 4; ++k) CHECK(std::fabs(y.box[size_t(k)] - box[k]) <= 0.5 * sizes[k] / 999 + 1e-9);
  // A decoder that emits the corners swapped still yields a proper box.
  std::vector<int64_t> swapped = {s.target.ids[2], s.target.ids[3], s.target.ids[0], s.target.ids[1], Vocab::eos};
  TypedOutput z = sb.decode(swapped, s);
  CHECK(z.box[0] <= z.box[2]);
  CHECK(std::fabs(z.box[2] - box[2]) < 0.1);
  // Too few bins: incomplete, never a crash.
  CHECK_FALSE(sb.decode({s.target.ids[0], Vocab::eos}, s).complete);
  // The literal text around the caption is in the encoder, the caption in between.
  CHECK(s.encoder_tokens == cat_ids({{Vocab::bos}, ts.ids("which region does the text \""),
                                     ts.ids("the sandal"), ts.ids("\" describe?"), {Vocab::eos}}));
}

TEST_CASE("sample: VQA closed set: the [B, T, V] mask is exactly the trie's allowed ids") {
  const TextSetup& ts = text_setup();
  Plan plan = parse_instruction("[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set]");
  SampleBuilder sb(plan, ts.vocab, &ts.tok, {.image_size = 16});
  std::string tsv = "image\tquestion\tanswer\n";
  const std::string img = png_b64(8, 8);
  tsv += img + "\thow many items are there?\tone\n";
  tsv += img + "\twhat colour is the bag?\tred\n";
  tsv += img + "\twhat colour is the bag?\tgreen\n";
  Dataset d = Dataset::from_string(tsv, "vqa.tsv");
  std::vector<std::string> answers = closed_set_answers(plan, {&d});
  CHECK(answers == std::vector<std::string>{"green", "one", "red"});
  sb.set_answers(answers);
  std::vector<Sample> ss;
  for (int64_t i = 0; i < d.size(); ++i) ss.push_back(sb.build(d, i));
  SampleBatch b = collate_samples(ss, ts.vocab);
  const int64_t B = 3, T = b.decoder.prev_tokens.shape()[1], V = ts.vocab.size();
  REQUIRE(b.allowed.defined());
  CHECK(b.allowed.shape() == Shape{B, T, V});
  CHECK(b.allowed.dtype() == DType::u8);
  const Trie& trie = *sb.answers();
  const uint8_t* m = b.allowed.data<uint8_t>();
  for (int64_t i = 0; i < B; ++i) {
    const Sample& s = ss[size_t(i)];
    for (int64_t t = 0; t < T; ++t) {
      std::set<int64_t> got;
      for (int64_t v = 0; v < V; ++v)
        if (m[(i * T + t) * V + v]) got.insert(v);
      if (t < int64_t(s.target.ids.size())) {
        // Independent reference: the trie walked by the true prefix.
        std::vector<int64_t> prefix(s.target.ids.begin(), s.target.ids.begin() + t);
        std::vector<int64_t> want = trie.allowed_next(prefix);
        CHECK(got == std::set<int64_t>(want.begin(), want.end()));
        CHECK(got.count(s.target.ids[size_t(t)]) == 1);  // the truth is always allowed
      } else {
        CHECK(int64_t(got.size()) == V);  // padding: unconstrained
      }
    }
  }
  CHECK(trie.num_answers() == 3);
  CHECK(b.images.shape() == Shape{3, 3, 16, 16});
  // An answer outside the set is an error naming file, line and field.
  std::string bad = "image\tquestion\tanswer\n" + img + "\thow many items are there?\tseven\n";
  Dataset d2 = Dataset::from_string(bad, "bad_vqa.tsv");
  std::string e = error_of([&] { sb.build(d2, 0); });
  CHECK(e.find("bad_vqa.tsv:2") != std::string::npos);
  CHECK(e.find("field 'answer'") != std::string::npos);
  CHECK(e.find("not in the closed set") != std::string::npos);
}

TEST_CASE("sample: sentiment with a no_loss prefix: fed, not scored; decode skips it") {
  const TextSetup& ts = text_setup();
  Plan plan = parse_instruction(
      "is the sentiment of text \" [TEXT:sentence] \" positive or negative? -> is the sentiment "
      "of text \" [TEXT:sentence,no_loss] \" positive or negative? [TEXT:label,closed_set]");
  SampleBuilder sb(plan, ts.vocab, &ts.tok);
  sb.set_answers({"positive", "negative"});
  Sample s = sb.build(make_row({"the quick brown fox", "positive"}), {"sentence", "label"}, "s.tsv");
  const auto prefix = cat_ids({ts.ids("is the sentiment of text \""), ts.ids("the quick brown fox"),
                               ts.ids("\" positive or negative?")});
  CHECK(s.encoder_tokens == cat_ids({{Vocab::bos}, prefix, {Vocab::eos}}));
  CHECK(s.target.ids == cat_ids({prefix, ts.ids("positive"), {Vocab::eos}}));
  CHECK(s.target_begin == int64_t(prefix.size()));
  for (size_t i = 0; i < s.target.ids.size(); ++i)
    CHECK(int(s.target.scored[i]) == (i < prefix.size() ? 0 : 1));
  CHECK(sb.decode(s.target.ids, s).text == "positive");
  // Masks: only target positions are constrained.
  CHECK(allowed_at(s, 0).empty());
  CHECK_FALSE(allowed_at(s, s.target_begin).empty());
  SampleBatch b = collate_samples({s}, ts.vocab);
  CHECK(b.decoder.ntokens == int64_t(ts.ids("positive").size()) + 1);
  CHECK_FALSE(b.images.defined());
}

TEST_CASE("sample: speech and video from real media files; collate pads audio") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  const TextSetup& ts = text_setup();
  SampleBuilder sa(parse_instruction("[AUDIO:wav] what is the text corresponding to the voice? -> [TEXT:text]"),
                   ts.vocab, &ts.tok);
  // Relative media paths resolve against the data file's folder.
  Sample a1 = sa.build(make_row({"speech.wav", "the quick brown fox"}), {"wav", "text"}, fx.path("list.tsv"));
  Sample a2 = sa.build(make_row({fx.path("tone.wav"), "one"}, 3, 1), {"wav", "text"}, "x.tsv");
  REQUIRE(a1.audio.size() == 1);
  CHECK(a1.audio[0].bins == 80);
  CHECK(a2.audio[0].frames == 98);  // 1 s at 16 kHz: 1 + (16000 - 400) / 160
  SampleBatch b = collate_samples({a1, a2}, ts.vocab);
  const int64_t F = std::max(a1.audio[0].frames, a2.audio[0].frames);
  CHECK(b.audio.shape() == Shape{2, F, 80});
  CHECK(b.audio_mask.shape() == Shape{2, F});
  int64_t real = 0;
  for (int64_t i = 0; i < 2 * F; ++i) real += b.audio_mask.data<uint8_t>()[i];
  CHECK(real == a1.audio[0].frames + a2.audio[0].frames);

  SampleBuilder sv(parse_instruction("[VIDEO:video] what is in the video? -> [TEXT:label,closed_set]"),
                   ts.vocab, &ts.tok, {.image_size = 16, .video_frames = 4});
  sv.set_answers({"one", "two"});
  Sample v = sv.build(make_row({fx.path("video.mp4"), "two"}), {"video", "label"}, "v.tsv");
  REQUIRE(v.videos.size() == 1);
  CHECK(v.videos[0].frames.size() == size_t(4 * 3 * 16 * 16));
  // Frames are flat greys 20 + 10 k at frames 0, 6, 13, 19: brightness rises in order.
  float prev = -2;
  for (int k = 0; k < 4; ++k) {
    const float g = v.videos[0].frames[size_t(k) * 3 * 16 * 16 + 8 * 16 + 8];
    CHECK(g > prev);
    prev = g;
  }
  SampleBatch bv = collate_samples({v}, ts.vocab);
  CHECK(bv.video.shape() == Shape{1, 4, 3, 16, 16});
  CHECK(bv.allowed.defined());

  // preprocess=video_residual: frame 0 as it is, then each frame minus the one before.
  SampleBuilder sr(parse_instruction("[VIDEO:video,preprocess=video_residual] what is in the video? -> "
                                     "[TEXT:label,closed_set]"),
                   ts.vocab, &ts.tok, {.image_size = 16, .video_frames = 4});
  sr.set_answers({"one", "two"});
  Sample r = sr.build(make_row({fx.path("video.mp4"), "two"}), {"video", "label"}, "v.tsv");
  REQUIRE(r.videos.size() == 1);
  const std::vector<float>& fr = r.videos[0].frames;
  const std::vector<float>& fv = v.videos[0].frames;
  REQUIRE(fr.size() == fv.size());
  const size_t per = 3 * 16 * 16;
  for (size_t j = 0; j < fv.size(); ++j) {
    const float want = j < per ? fv[j] : fv[j] - fv[j - per];
    if (fr[j] != want) FAIL_CHECK("residual ", j, ": ", fr[j], " != ", want);
  }
  CHECK(fr[per + 8 * 16 + 8] > 0.0f);  // the greys brighten frame to frame

  // An undecodable audio file: the error names file, line and field.
  std::string e = error_of([&] {
    sa.build(make_row({fx.path("testsrc.png"), "x"}, 7), {"wav", "text"}, "speech.tsv");
  });
  CHECK(e.find("speech.tsv:7") != std::string::npos);
  CHECK(e.find("field 'wav'") != std::string::npos);
}

TEST_CASE("sample: sudoku text task and control CONTINUOUS -> CONTINUOUS") {
  const TextSetup& ts = text_setup();
  SampleBuilder sk(parse_instruction("\" [TEXT:src] \" . solve the sudoku . -> [TEXT:tgt]"), ts.vocab, &ts.tok);
  Sample s = sk.build(make_row({"1 0 3 4", "1 2 3 4"}), {"src", "tgt"}, "k.tsv");
  CHECK(s.encoder_tokens == cat_ids({{Vocab::bos}, ts.ids("\""), ts.ids("1 0 3 4"),
                                     ts.ids("\" . solve the sudoku ."), {Vocab::eos}}));
  CHECK(sk.decode(s.target.ids, s).text == "1 2 3 4");

  // No text at all: no tokenizer needed.
  SampleBuilder sc(parse_instruction("[CONTINUOUS:obs] -> [CONTINUOUS:action]"), ts.vocab, nullptr);
  Sample c = sc.build(make_row({"0.5 -0.25 0 3", "1 -0.4"}), {"obs", "action"}, "c.tsv");
  CHECK(c.encoder_tokens == continuous_to_ids({0.5, -0.25, 0, 3}, ts.vocab));  // no <bos>/<eos>
  CHECK(c.target.ids == cat_ids({continuous_to_ids({1, -0.4}, ts.vocab), {Vocab::eos}}));
  TypedOutput y = sc.decode(c.target.ids, c);
  REQUIRE(y.values.size() == 2);
  // Within the bin: re-encoding the decoded value gives the same bin.
  CHECK(continuous_to_bin(y.values[0]) == continuous_to_bin(1.0));
  CHECK(continuous_to_bin(y.values[1]) == continuous_to_bin(-0.4));
  CHECK(error_of([&] { sc.build(make_row({"0.5 nan", "1"}), {"obs", "action"}, "c.tsv"); })
            .find("c.tsv:2: field 'obs'") != std::string::npos);
}

TEST_CASE("sample: uncased, no_punctuation, max_length, mask_ratio; templates by seed") {
  const TextSetup& ts = text_setup();
  SampleBuilder sb(parse_instruction("[TEXT:q,uncased,no_punctuation,max_length=3] -> [TEXT:a,uncased]"),
                   ts.vocab, &ts.tok);
  Sample s = sb.build(make_row({"What's THE Image?", "RED"}), {"q", "a"}, "t.tsv");
  std::vector<int64_t> q = ts.ids("what s the image");
  q.resize(3);
  CHECK(s.encoder_tokens == cat_ids({{Vocab::bos}, q, {Vocab::eos}}));
  CHECK(s.target.ids == cat_ids({ts.ids("red"), {Vocab::eos}}));

  SampleBuilder sm(parse_instruction("[TEXT:q,mask_ratio=0.5] -> [TEXT:q]"), ts.vocab, &ts.tok);
  Sample m = sm.build(make_row({"a sandal to the left of a pullover"}), {"q"}, "m.tsv");
  CHECK(std::count(m.encoder_tokens.begin(), m.encoder_tokens.end(), Vocab::mask) >= 1);
  CHECK(m.target.ids == cat_ids({ts.ids("a sandal to the left of a pullover"), {Vocab::eos}}));  // never masked
  // The same row and epoch masks the same way; another epoch draws anew somewhere.
  CHECK(sm.build(make_row({"a sandal to the left of a pullover"}), {"q"}, "m.tsv").encoder_tokens == m.encoder_tokens);
  bool differs = false;
  for (uint64_t ep = 1; ep < 8; ++ep)
    differs |= sm.build(make_row({"a sandal to the left of a pullover"}), {"q"}, "m.tsv", ep).encoder_tokens !=
               m.encoder_tokens;
  CHECK(differs);

  Plan two = parse_instruction("[TEXT:q] one -> [TEXT:a] ||| [TEXT:q] two -> [TEXT:a]");
  SampleBuilder st(two, ts.vocab, &ts.tok);
  std::set<size_t> used;
  for (int64_t i = 0; i < 16; ++i) {
    Sample x = st.build(make_row({"red", "blue"}, 2 + i, i), {"q", "a"}, "t.tsv");
    CHECK(x.template_index == two.choose_template(1, uint64_t(i)));
    used.insert(x.template_index);
  }
  CHECK(used.size() == 2);
}

TEST_CASE("sample: bad rows and bad setups are errors naming file, line and field") {
  const TextSetup& ts = text_setup();
  SampleBuilder sb(parse_instruction("[IMAGE:img] what does the image describe? -> [TEXT:cap]"),
                   ts.vocab, &ts.tok, {.image_size = 16});
  std::string e = error_of([&] { sb.build(make_row({"aGVsbG8=", "x"}, 12), {"img", "cap"}, "data/c.tsv"); });
  CHECK(e.find("data/c.tsv:12: field 'img'") != std::string::npos);
  e = error_of([&] { sb.build(make_row({png_b64(4, 4)}, 5), {"img"}, "data/c.tsv"); });
  CHECK(e.find("data/c.tsv:5: field 'cap'") != std::string::npos);
  e = error_of([&] { sb.build(make_row({"missing/file.png", "x"}, 9), {"img", "cap"}, "data/c.tsv"); });
  CHECK(e.find("data/c.tsv:9: field 'img'") != std::string::npos);
  CHECK(e.find("missing/file.png") != std::string::npos);

  SampleBuilder sc(parse_instruction("[IMAGE:img] q -> [TEXT:a,closed_set]"), ts.vocab, &ts.tok);
  CHECK(error_of([&] { sc.build(make_row({png_b64(4, 4), "red"}), {"img", "a"}, "x.tsv"); })
            .find("no answers") != std::string::npos);
  CHECK(error_of([&] { SampleBuilder(parse_instruction("[TEXT:q] -> [TEXT:a,closed_set] ."), ts.vocab, &ts.tok); })
            .find("closed_set") != std::string::npos);
  SampleBuilder nt(parse_instruction("[TEXT:q] -> [TEXT:a]"), ts.vocab, nullptr);
  CHECK(error_of([&] { nt.build(make_row({"a", "b"}), {"q", "a"}, "x.tsv"); }).find("tokenizer") !=
        std::string::npos);
  SampleBuilder bx(parse_instruction("[TEXT:q] -> [BOX:b]"), ts.vocab, &ts.tok);
  CHECK(error_of([&] { bx.build(make_row({"a", "1 2 3 4"}), {"q", "b"}, "x.tsv"); }).find("IMAGE") !=
        std::string::npos);
}

}  // TEST_SUITE
