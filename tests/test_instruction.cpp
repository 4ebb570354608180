// The Instruction parser: every SPEC.md section 1 example, and malformed instructions
// with their message and caret column.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "tasks/instruction.h"

using namespace mm;

namespace {

const Slot& target_of(const Template& t) {
  REQUIRE(t.target >= 0);
  return t.output.slots[t.target];
}

// Segment kinds of a side as a compact string: "S" slot, "t" literal text.
std::string shape(const Side& s) {
  std::string out;
  for (const auto& seg : s.segments) out += seg.is_slot ? 'S' : 't';
  return out;
}

// Group layout: "T" token group, "M" media/control group, with segment counts: "M1 T3".
std::string groups(const Side& s) {
  std::string out;
  for (const auto& g : s.groups) {
    if (!out.empty()) out += ' ';
    out += (g.tokens ? "T" : "M") + std::to_string(g.segments.size());
  }
  return out;
}

// Parses `instr`, expects an mm::Error whose message names `fragment`, reports
// `column`, repeats the instruction on the second line and puts the caret under it.
void expect_error(const std::string& instr, const std::string& fragment, int column) {
  CAPTURE(instr);
  std::string msg;
  try {
    parse_instruction(instr);
  } catch (const Error& e) {
    msg = e.what();
  }
  REQUIRE_MESSAGE(!msg.empty(), "no error for: " << instr);
  CAPTURE(msg);
  CHECK(msg.find(fragment) != std::string::npos);
  CHECK(msg.find("column " + std::to_string(column) + ":") != std::string::npos);
  std::vector<std::string> lines;
  size_t b = 0;
  for (size_t e; (e = msg.find('\n', b)) != std::string::npos; b = e + 1)
    lines.push_back(msg.substr(b, e - b));
  lines.push_back(msg.substr(b));
  REQUIRE(lines.size() == 3);
  std::string shown = instr;
  for (char& ch : shown)
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  CHECK(lines[1] == "  " + shown);
  CHECK(lines[2] == "  " + std::string(size_t(column - 1), ' ') + "^");
}

int col_of(const std::string& s, const std::string& needle, size_t from = 0) {
  size_t p = s.find(needle, from);
  REQUIRE(p != std::string::npos);
  return int(p) + 1;
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("instruction: image captioning (SPEC example 1)") {
  Plan p = parse_instruction("[IMAGE:img] what does the image describe? -> [TEXT:cap]");
  REQUIRE(p.templates.size() == 1);
  const Template& t = p.templates[0];
  CHECK(shape(t.input) == "St");
  CHECK(groups(t.input) == "M1 T1");
  CHECK(t.input.segments[1].text == "what does the image describe?");
  const Slot& img = t.input.slots[0];
  CHECK(img.type == SlotType::IMAGE);
  CHECK(img.name == "img");
  CHECK(img.column == 1);
  CHECK(img.preprocessor == "image_resize");
  CHECK(img.adaptor == "image_resnet");
  CHECK(img.loss == "none");
  CHECK_FALSE(img.on_output);
  CHECK(shape(t.output) == "S");
  const Slot& cap = target_of(t);
  CHECK(cap.type == SlotType::TEXT);
  CHECK(cap.name == "cap");
  CHECK(cap.is_target);
  CHECK(cap.on_output);
  CHECK(cap.position == 1);
  CHECK(cap.adaptor == "text_embed");
  CHECK(cap.loss == "label_smoothed_ce");
  CHECK(cap.generator == "beam_text");
  CHECK(p.fields() == std::vector<std::string>{"img", "cap"});
}

TEST_CASE("instruction: visual grounding (SPEC example 2)") {
  Plan p = parse_instruction(
      "[IMAGE:img] which region does the text \" [TEXT:cap] \" describe? -> [BOX:region]");
  const Template& t = p.templates[0];
  CHECK(shape(t.input) == "StSt");
  CHECK(groups(t.input) == "M1 T3");  // the quote text, TEXT:cap and the rest merge
  CHECK(t.input.segments[1].text == "which region does the text \"");
  CHECK(t.input.segments[3].text == "\" describe?");
  CHECK(t.input.slots[1].name == "cap");
  CHECK(t.input.slots[1].column == 42);
  const Slot& box = target_of(t);
  CHECK(box.type == SlotType::BOX);
  CHECK(box.name == "region");
  CHECK(box.preprocessor == "box_bins");
  CHECK(box.generator == "box_4bins");
  CHECK(box.loss == "label_smoothed_ce");
}

TEST_CASE("instruction: VQA with closed set (SPEC example 3)") {
  Plan p = parse_instruction("[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set]");
  const Template& t = p.templates[0];
  CHECK(groups(t.input) == "M1 T1");
  CHECK(t.input.slots[1].name == "question");
  const Slot& a = target_of(t);
  CHECK(a.name == "answer");
  CHECK(a.attrs.closed_set);
  CHECK(a.attrs.written == std::vector<std::string>{"closed_set"});
  CHECK(a.loss == "closed_set_ce");
  CHECK(a.generator == "closed_set_trie");
}

TEST_CASE("instruction: sentiment with no_loss prefix (SPEC example 4)") {
  Plan p = parse_instruction(
      "is the sentiment of text \" [TEXT:sentence] \" positive or negative? -> is the "
      "sentiment of text \" [TEXT:sentence,no_loss] \" positive or negative? "
      "[TEXT:label,closed_set]");
  const Template& t = p.templates[0];
  CHECK(shape(t.input) == "tSt");
  CHECK(groups(t.input) == "T3");
  CHECK(shape(t.output) == "tStS");
  CHECK(groups(t.output) == "T4");  // all text-like: one decoder sequence
  REQUIRE(t.output.slots.size() == 2);
  const Slot& prefix = t.output.slots[0];
  CHECK(prefix.name == "sentence");
  CHECK(prefix.attrs.no_loss);
  CHECK_FALSE(prefix.scored());
  CHECK(prefix.loss == "none");
  CHECK_FALSE(prefix.is_target);
  const Slot& label = target_of(t);
  CHECK(label.name == "label");
  CHECK(label.scored());
  CHECK(label.generator == "closed_set_trie");
  CHECK(t.target == 1);
  CHECK(p.fields() == std::vector<std::string>{"sentence", "label"});
}

TEST_CASE("instruction: ASR, video, sudoku, control (SPEC examples 5-8)") {
  {
    Plan p = parse_instruction("[AUDIO:wav] what is the text corresponding to the voice? -> [TEXT:text]");
    const Template& t = p.templates[0];
    CHECK(t.input.slots[0].type == SlotType::AUDIO);
    CHECK(t.input.slots[0].preprocessor == "audio_fbank");
    CHECK(t.input.slots[0].adaptor == "audio_conv");
    CHECK(groups(t.input) == "M1 T1");
    CHECK(target_of(t).name == "text");
    CHECK(target_of(t).generator == "beam_text");
  }
  {
    Plan p = parse_instruction("[VIDEO:video] what is in the video? -> [TEXT:label,closed_set]");
    const Template& t = p.templates[0];
    CHECK(t.input.slots[0].type == SlotType::VIDEO);
    CHECK(t.input.slots[0].adaptor == "video_frames");
    CHECK(target_of(t).attrs.closed_set);
    CHECK(target_of(t).generator == "closed_set_trie");
  }
  {
    Plan p = parse_instruction("\" [TEXT:src] \" . solve the sudoku . -> [TEXT:tgt]");
    const Template& t = p.templates[0];
    CHECK(shape(t.input) == "tSt");
    CHECK(t.input.segments[0].text == "\"");
    CHECK(t.input.segments[2].text == "\" . solve the sudoku .");
    CHECK(groups(t.input) == "T3");
    CHECK(target_of(t).name == "tgt");
  }
  {
    Plan p = parse_instruction("[CONTINUOUS:obs] -> [CONTINUOUS:action]");
    const Template& t = p.templates[0];
    CHECK(groups(t.input) == "M1");
    CHECK(groups(t.output) == "M1");  // not text-like: its own sequence
    CHECK(t.input.slots[0].adaptor == "continuous_embed");
    CHECK(t.input.slots[0].preprocessor == "mulaw");
    CHECK(target_of(t).type == SlotType::CONTINUOUS);
    CHECK(target_of(t).generator == "continuous_sample");
    CHECK(target_of(t).loss == "cross_entropy");
  }
}

TEST_CASE("instruction: attributes, whitespace, positional binding, empty sides") {
  Plan p = parse_instruction(
      "[ TEXT : src , mask_ratio = 0.3 , noise_ratio=0.1, max_length=128, uncased, "
      "no_punctuation ] -> [TEXT:tgt,max_length=32]");
  const Slot& s = p.templates[0].input.slots[0];
  CHECK(s.name == "src");
  CHECK(s.attrs.mask_ratio == doctest::Approx(0.3));
  CHECK(s.attrs.noise_ratio == doctest::Approx(0.1));
  CHECK(s.attrs.max_length == 128);
  CHECK(s.attrs.uncased);
  CHECK(s.attrs.no_punctuation);
  CHECK(s.attrs.written.size() == 5);
  CHECK(target_of(p.templates[0]).attrs.max_length == 32);

  Plan q = parse_instruction("[IMAGE] what is this? -> [TEXT]");
  CHECK(q.templates[0].input.slots[0].name.empty());
  CHECK(q.templates[0].input.slots[0].position == 0);
  CHECK(target_of(q.templates[0]).position == 1);
  CHECK(q.fields() == std::vector<std::string>{"#0", "#1"});
  validate(q, {"image", "caption"});
  CHECK_THROWS_WITH_AS(validate(q, {"image"}), doctest::Contains("binds to column 2"), Error);

  Plan g = parse_instruction("[IMAGE:i,adaptor=image_patch] -> [DISCRETE:a]");
  CHECK(g.templates[0].input.slots[0].preprocessor == "image_patch");  // paired default
  CHECK(g.templates[0].input.slots[0].adaptor == "image_patch");
  CHECK(target_of(g.templates[0]).generator == "discrete_sample");

  Plan left_only = parse_instruction("[TEXT:doc] ->");
  CHECK(left_only.templates[0].target == -1);
  CHECK(left_only.templates[0].output.empty());
  Plan right_only = parse_instruction("-> [TEXT:story]");
  CHECK(right_only.templates[0].input.empty());
  CHECK(target_of(right_only.templates[0]).name == "story");
}

TEST_CASE("instruction: several templates with |||, drawn per sample by seed") {
  Plan p = parse_instruction(
      "[IMAGE:img] what does the image describe? -> [TEXT:cap] ||| "
      "[IMAGE:img] describe the image . -> [TEXT:cap]|||[IMAGE:img] caption: -> [TEXT:cap]");
  REQUIRE(p.templates.size() == 3);
  CHECK(p.templates[1].input.segments[1].text == "describe the image .");
  CHECK(p.templates[2].input.segments[1].text == "caption:");
  CHECK(p.templates[1].column == col_of(p.instruction, "|||") + 3);
  CHECK(p.templates[2].input.slots[0].column == col_of(p.instruction, "[IMAGE", 70));
  int counts[3] = {0, 0, 0};
  for (uint64_t i = 0; i < 3000; ++i) {
    size_t k = p.choose_template(7, i);
    REQUIRE(k < 3);
    ++counts[k];
    CHECK(k == p.choose_template(7, i));  // deterministic
  }
  for (int c : counts) CHECK(c > 850);  // ~1000 each
  int differ = 0;
  for (uint64_t i = 0; i < 100; ++i) differ += p.choose_template(7, i) != p.choose_template(8, i);
  CHECK(differ > 30);  // the seed matters
}

TEST_CASE("instruction: validate against the data's columns") {
  Plan p = parse_instruction("[IMAGE:img] what does the image describe? -> [TEXT:cap]");
  validate(p, {"uid", "img", "cap"});
  std::string msg;
  try {
    validate(p, {"img", "caption"});
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("field 'cap' is not in the data") != std::string::npos);
  CHECK(msg.find("img, caption") != std::string::npos);
  int c = col_of(p.instruction, "[TEXT:cap]");
  CHECK(msg.find("column " + std::to_string(c) + ":") != std::string::npos);
  CHECK(msg.find("\n  " + std::string(size_t(c - 1), ' ') + "^") != std::string::npos);
}

TEST_CASE("instruction: malformed instructions report message and column") {
  // Each: instruction, expected message fragment, expected 1-based column.
  struct Case { std::string instr, fragment; int column; };
  std::vector<Case> cases;
  auto add = [&](std::string i, std::string f, int c) { cases.push_back({i, f, c}); };
  std::string s;

  s = "[IMAGE:img] [TXT:q] -> [TEXT:a]";
  add(s, "unknown slot type 'TXT' (expected one of TEXT, IMAGE, BOX", col_of(s, "TXT"));
  add("[text:q] -> [TEXT:a]", "slot types are upper case", 2);
  s = "[TEXT:q -> [TEXT:a]";
  add(s, "unexpected '-' in slot (expected ',' or ']')", col_of(s, "-"));
  s = "[TEXT:q] -> [TEXT:a";
  add(s, "missing ']' (expected ']' to close the slot opened at column 13)", int(s.size()) + 1);
  s = "[TEXT:q] -> [TEXT:a] -> [TEXT:b]";
  add(s, "a second '->' (expected exactly one '->' per template; the first is at column 10)",
      col_of(s, "->", 12));
  s = "[TEXT:q] [TEXT:a]";
  add(s, "missing '->'", int(s.size()) + 1);
  s = "[TEXT:q] - > [TEXT:a]";
  add(s, "missing '->'", int(s.size()) + 1);
  s = "[TEXT:q] -> [TEXT:a,foo]";
  add(s, "unknown attribute 'foo' (expected one of no_loss, closed_set", col_of(s, "foo"));
  s = "[TEXT:q] -> [TEXT:a,mask_ratio=1.5]";
  add(s, "mask_ratio must be in [0, 1], got 1.5", col_of(s, "1.5"));
  s = "[TEXT:q,noise_ratio=-0.1] -> [TEXT:a]";
  add(s, "noise_ratio must be in [0, 1], got -0.1", col_of(s, "-0.1"));
  s = "[TEXT:q] -> [TEXT:a,mask_ratio=abc]";
  add(s, "mask_ratio must be a number in [0, 1], got 'abc'", col_of(s, "abc"));
  s = "[TEXT:q] -> [TEXT:a,max_length=0]";
  add(s, "max_length must be a whole number in [1, 100000000], got '0'", col_of(s, "0]"));
  s = "[TEXT:q] -> [TEXT:a,max_length=2.5]";
  add(s, "max_length must be a whole number", col_of(s, "2.5"));
  s = "[TEXT:q] -> [TEXT:a,max_length=99999999999]";
  add(s, "max_length must be a whole number", col_of(s, "999"));
  s = "[TEXT:q] -> [TEXT:a,closed_set=yes]";
  add(s, "attribute 'closed_set' takes no value", col_of(s, "="));
  s = "[TEXT:q] -> [TEXT:a,mask_ratio]";
  add(s, "attribute 'mask_ratio' needs a value (expected mask_ratio=a number in [0, 1])",
      col_of(s, "mask_ratio"));
  s = "[TEXT:q] -> [TEXT:a,mask_ratio=]";
  add(s, "missing value after 'mask_ratio='", int(s.size()));
  add("[TEXT:] -> [TEXT:a]", "empty field name after ':'", 7);
  add("[] -> [TEXT:a]", "expected a slot type after '['", 2);
  add("[TEXT:q]] -> [TEXT:a]", "unexpected ']' outside a slot", 9);
  add("[TEXT:q,closed_set] -> [TEXT:a]", "closed_set on the left side of '->'", 9);
  add("[TEXT:q,no_loss] -> [TEXT:a]", "no_loss on the left side of '->'", 9);
  s = "[TEXT:q] -> [TEXT:a,no_loss]";
  add(s, "no_loss on the target leaves nothing to learn", col_of(s, "[TEXT:a"));
  s = "[TEXT:q] -> [TEXT:a,closed_set] [TEXT:b]";
  add(s, "closed_set on a slot that is not the target", col_of(s, "[TEXT:a"));
  s = "[TEXT:q] -> [IMAGE:a]";
  add(s, "IMAGE cannot be on the right side of '->'", col_of(s, "[IMAGE"));
  s = "[IMAGE:i,uncased] -> [TEXT:a]";
  add(s, "attribute 'uncased' does not apply to IMAGE (expected it on TEXT, STRUCT or CATEGORY)",
      col_of(s, "uncased"));
  s = "[IMAGE:i,preprocess=foo] -> [TEXT:a]";
  add(s, "unknown preprocessor 'foo' for IMAGE (expected one of image_resize, image_patch)",
      col_of(s, "foo"));
  s = "[IMAGE:i,adaptor=audio_conv] -> [TEXT:a]";
  add(s, "unknown adaptor 'audio_conv' for IMAGE (expected one of image_resnet, image_patch)",
      col_of(s, "audio_conv"));
  add("[IMAGE:i,preprocess=image_resize,adaptor=image_patch] -> [TEXT:a]",
      "preprocess=image_resize does not fit adaptor=image_patch", 1);
  s = "[TEXT:q,uncased,uncased] -> [TEXT:a]";
  add(s, "duplicate attribute 'uncased'", col_of(s, "uncased", 10));
  add("", "empty instruction", 1);
  add("   ", "empty instruction", 1);
  s = "[TEXT:q] -> [TEXT:a] |||";
  add(s, "empty template next to '|||'", int(s.size()) + 1);
  s = "[TEXT:q] -> [TEXT:a] |||  ||| [TEXT:q] -> [TEXT:a]";
  add(s, "empty template next to '|||'", col_of(s, "|||") + 3);
  s = "[TEXT:q] -> [TEXT:a] ||| [TEXT:q] -> [BOX:b]";
  add(s, "template 2 has target BOX 'b' but template 1 has TEXT 'a'", col_of(s, "[BOX"));
  s = "[TEXT:q] -> [TEXT:a] ||| [TEXT:q] -> [TEXT:a] ||| [TEXT:q] [TEXT:a]";
  add(s, "missing '->'", int(s.size()) + 1);
  s = "[TEXT:q] -> [TEXT:a,]";
  add(s, "expected an attribute name after ','", col_of(s, "]", 15));
  s = "[TEXT:q:r] -> [TEXT:a]";
  add(s, "unexpected ':' in slot (expected ',' or ']')", 8);
  s = "[TEXT q] -> [TEXT:a]";
  add(s, "unexpected 'q' after the slot type (expected ':', ',' or ']')", 7);
  s = "[CONTINUOUS:x,noise_ratio=0.1] -> [CONTINUOUS:y]";
  add(s, "attribute 'noise_ratio' does not apply to CONTINUOUS", col_of(s, "noise_ratio"));
  s = "[AUDIO:a] -> [TEXT:t,closed_set,no_loss]";
  add(s, "no_loss on the target", col_of(s, "[TEXT"));
  s = "[IMAGE:i] -> [TEXT:t,max_length=10";
  add(s, "missing ']'", int(s.size()) + 1);
  s = "[IMAGE:i] -> [TEXT:t, closed_set [TEXT:u]";
  add(s, "unexpected '[' in slot (expected ',' or ']')", col_of(s, "[TEXT:u"));
  // Columns count code points, not bytes: two CJK characters (3 bytes each) come first.
  add("[IMAGE:img] \xe5\x9b\xbe\xe7\x89\x87 [TXT:q] -> [TEXT:a]", "unknown slot type 'TXT'", 17);

  // Found by fuzzing: control bytes are escaped in the message (a NUL cut what() short)
  // and blanked in the echoed instruction so the caret stays aligned.
  add(std::string("[TEXT:a\0b] -> [TEXT:c]", 22), "unexpected byte 0x00 in slot", 8);

  CHECK(cases.size() >= 30);
  for (const Case& c : cases) expect_error(c.instr, c.fragment, c.column);
}

TEST_CASE("instruction: describe() names every resolved piece") {
  Plan p = parse_instruction("[IMAGE:img] [TEXT:question] -> [TEXT:answer,closed_set]");
  std::string d = describe(p);
  for (const char* part : {"slot IMAGE field=img", "preprocessor=image_resize",
                           "adaptor=image_resnet", "slot TEXT field=answer", "TARGET",
                           "attrs: closed_set", "loss=closed_set_ce",
                           "generator=closed_set_trie"})
    CHECK_MESSAGE(d.find(part) != std::string::npos, part);
}

}  // TEST_SUITE
