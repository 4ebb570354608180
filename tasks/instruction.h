// The Instruction interface: one line of text defines a task (SPEC.md section 1).
//
//   Plan p = parse_instruction("[IMAGE:img] what does the image describe? -> [TEXT:cap]");
//   validate(p, {"img", "cap"});                  // every named field exists in the data
//   const Template& t = p.templates[p.choose_template(seed, sample_id)];
//   const Slot& target = t.output.slots[t.target]; // TEXT 'cap', loss label_smoothed_ce
//
// Grammar (whitespace around tokens inside a slot is ignored):
//   instruction := template ('|||' template)*
//   template    := side '->' side                      exactly one '->' per template
//   side        := (literal | slot)*                    either side may be empty
//   slot        := '[' TYPE (':' NAME)? (',' ATTR)* ']'
//   ATTR        := key ('=' value)?
//   TYPE        := TEXT IMAGE BOX AUDIO VIDEO PHONE STRUCT CATEGORY MOTION CONTINUOUS DISCRETE
//   NAME        := [A-Za-z0-9_.-]+
// Literal text is prompt text: fed, never scored. A ']' outside a slot is an error
// (almost always a typo), and so is a '[' that does not open a well-formed slot.
//
// Binding: a named slot reads the data field of that name; an unnamed slot reads the
// column at its position among the template's slots (left to right over both sides).
// The target is the last slot on the right side. Runs of literal text and text-like
// slots (TEXT, BOX, STRUCT, CATEGORY) on one side form one token sequence (a Group);
// every other slot is a group of its own. Token groups get BOS/EOS added automatically.
//
// Errors are mm::Error with a message of three lines:
//   instruction error at column 14: unknown slot type 'TXT' (expected one of TEXT, ...)
//     [IMAGE:img] [TXT:q] -> [TEXT:a]
//                  ^
// Columns are 1-based and count Unicode code points of the whole instruction.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

enum class SlotType { TEXT, IMAGE, BOX, AUDIO, VIDEO, PHONE, STRUCT, CATEGORY, MOTION,
                      CONTINUOUS, DISCRETE };
constexpr int kNumSlotTypes = 11;

// "TEXT", "IMAGE", ...
std::string_view slot_type_name(SlotType t);
// TEXT, BOX, STRUCT, CATEGORY: their tokens merge with neighbouring literal text.
bool is_text_like(SlotType t);

// Attributes as written in the slot; defaults mean "not given".
struct SlotAttrs {
  bool no_loss = false;         // decoder tokens fed but not scored (forced prefix at inference)
  bool closed_set = false;      // answers come from a fixed set (trie-constrained)
  bool uncased = false;         // lower-case the text before tokenizing
  bool no_punctuation = false;  // drop ASCII punctuation before tokenizing
  double mask_ratio = 0;        // BART span masking ratio, in [0, 1]
  double noise_ratio = 0;       // random token replacement ratio, in [0, 1]
  int64_t max_length = 0;       // truncate to this many tokens/items; 0 = no limit
  std::string preprocess;       // preprocessor override; empty = the type's default
  std::string adaptor;          // input adaptor override; empty = the type's default
  std::vector<std::string> written;  // keys in the order written (for printing)
};

struct Slot {
  SlotType type = SlotType::TEXT;
  std::string name;         // data field; empty when bound by position
  int position = 0;         // index among the template's slots (both sides, left to right)
  int column = 0;           // 1-based column of the '[' in the whole instruction
  bool on_output = false;   // right side of '->'
  bool is_target = false;   // last slot on the right side
  SlotAttrs attrs;
  // Resolved pipeline (defaults by type, overridden by preprocess=/adaptor=):
  std::string preprocessor;  // e.g. text, image_resize, box_bins, mulaw
  std::string adaptor;       // e.g. text_embed, image_resnet, audio_conv, continuous_embed
  std::string loss;          // none (input side / no_loss), label_smoothed_ce, closed_set_ce
  std::string generator;     // target only: beam_text, closed_set_trie, box_4bins, ...; else none
  bool scored() const { return on_output && !attrs.no_loss; }
  // The field this slot reads: its name, or "#<position>" when bound by position.
  std::string field() const;
};

struct Segment {
  bool is_slot = false;
  std::string text;  // literal text, trimmed, never empty (when !is_slot)
  int slot = -1;     // index into Side::slots (when is_slot)
  int column = 0;    // 1-based column where the segment starts
};

// One input sequence for the model: either a run of literal text and text-like slots
// (tokens = true, one token sequence with BOS ... EOS) or a single non-text slot.
struct Group {
  std::vector<int> segments;  // indices into Side::segments, in order
  bool tokens = true;         // text-like run (BOS/EOS added) vs. one media/control slot
};

struct Side {
  std::vector<Segment> segments;
  std::vector<Slot> slots;
  std::vector<Group> groups;
  bool empty() const { return segments.empty(); }
};

struct Template {
  std::string source;  // the template's text as written (untrimmed)
  int column = 1;      // 1-based column where it starts in the whole instruction
  Side input, output;
  int target = -1;     // index into output.slots; -1 when the right side has no slot
};

struct Plan {
  std::string instruction;
  std::vector<Template> templates;  // >= 1; several when '|||' was used
  // Which template sample `sample_id` uses: a seeded hash, so the choice does not
  // depend on visiting order (reproducible under shuffling and resume).
  size_t choose_template(uint64_t seed, uint64_t sample_id) const;
  // Distinct fields read by any template (names and "#<position>"), first-seen order.
  std::vector<std::string> fields() const;
};

// Parses an instruction; throws mm::Error (column + caret) when malformed.
Plan parse_instruction(std::string_view instruction);

// Checks the plan against a data source's columns: every named slot must be a column,
// every positional slot's position < columns.size(). Throws mm::Error with the caret
// under the slot.
void validate(const Plan& plan, const std::vector<std::string>& columns);

// A human-readable multi-line description of the plan (what build/plan prints).
std::string describe(const Plan& plan);

// Formats an instruction error: header line, the instruction, a caret under `column`
// (1-based, in code points). Used by the parser and by validate().
std::string instruction_error(std::string_view instruction, int column, std::string_view what);

}  // namespace mm
