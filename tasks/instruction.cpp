#include "tasks/instruction.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "runtime/error.h"
#include "tasks/rng.h"

namespace mm {

namespace {

constexpr std::string_view kTypeNames[kNumSlotTypes] = {
    "TEXT", "IMAGE", "BOX", "AUDIO", "VIDEO", "PHONE", "STRUCT", "CATEGORY", "MOTION",
    "CONTINUOUS", "DISCRETE"};

// Per type: the preprocessors and adaptors it accepts, the first being the default.
struct TypeInfo {
  std::vector<std::string_view> preprocessors, adaptors;
  bool can_be_target;  // media (IMAGE, AUDIO, VIDEO, MOTION) cannot be decoded yet
};
const TypeInfo& type_info(SlotType t) {
  static const TypeInfo info[kNumSlotTypes] = {
      /*TEXT*/ {{"text"}, {"text_embed"}, true},
      /*IMAGE*/ {{"image_resize", "image_patch"}, {"image_resnet", "image_patch"}, false},
      /*BOX*/ {{"box_bins"}, {"text_embed"}, true},
      /*AUDIO*/ {{"audio_fbank"}, {"audio_conv"}, false},
      /*VIDEO*/ {{"video_frames", "video_residual"}, {"video_frames"}, false},
      /*PHONE*/ {{"phone"}, {"phone_embed"}, true},
      /*STRUCT*/ {{"struct_table"}, {"text_embed"}, true},
      /*CATEGORY*/ {{"category"}, {"text_embed"}, true},
      /*MOTION*/ {{"motion"}, {"continuous_embed"}, false},
      /*CONTINUOUS*/ {{"mulaw"}, {"continuous_embed", "continuous_token"}, true},
      /*DISCRETE*/ {{"discrete"}, {"discrete_embed"}, true},
  };
  return info[int(t)];
}

bool is_token_type(SlotType t) {  // lives in the shared vocabulary (decoder can emit it)
  return is_text_like(t) || t == SlotType::PHONE || t == SlotType::CONTINUOUS ||
         t == SlotType::DISCRETE;
}

std::string join(const std::vector<std::string_view>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::string(v[i]);
  return s;
}

const std::vector<std::string_view> kAttrKeys = {
    "no_loss", "closed_set", "mask_ratio", "noise_ratio", "max_length",
    "uncased", "no_punctuation", "preprocess", "adaptor"};

int code_point_column(std::string_view s, size_t byte_off) {
  int col = 1;
  for (size_t i = 0; i < byte_off && i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++col;
  return col;
}

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}
bool is_key_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Recursive-descent parser over byte offsets of the whole instruction.
class Parser {
 public:
  explicit Parser(std::string_view src) : s_(src) {}

  Plan parse() {
    Plan plan;
    plan.instruction = std::string(s_);
    // Templates are separated by '|||'; a '|' is never valid inside a slot, so a plain
    // split cannot cut a well-formed slot in two.
    const bool several = s_.find("|||") != std::string_view::npos;
    size_t b = 0;
    while (true) {
      size_t e = s_.find("|||", b);
      size_t end = e == std::string_view::npos ? s_.size() : e;
      plan.templates.push_back(parse_template(b, end, several));
      if (e == std::string_view::npos) break;
      b = e + 3;
    }
    check_templates_agree(plan);
    return plan;
  }

 private:
  std::string_view s_;
  size_t end_ = 0;  // end of the current template

  [[noreturn]] void fail(size_t byte_off, std::string_view what) const {
    throw Error(instruction_error(s_, code_point_column(s_, byte_off), what));
  }
  int col(size_t off) const { return code_point_column(s_, off); }
  std::string describe_char(size_t p) const {
    if (p >= end_) return "end of template";
    const auto c = static_cast<unsigned char>(s_[p]);
    if (c < 0x20 || c == 0x7f) return cat("byte 0x", "0123456789abcdef"[c >> 4],
                                          "0123456789abcdef"[c & 15]);
    return cat("'", s_[p], "'");
  }
  void skip_spaces(size_t& p) const {
    while (p < end_ && is_space(s_[p])) ++p;
  }

  Template parse_template(size_t b, size_t e, bool several) {
    end_ = e;
    Template t;
    t.source = std::string(s_.substr(b, e - b));
    t.column = col(b);
    if (trim(t.source).empty()) {
      if (several)
        fail(b, "empty template next to '|||' (expected 'input -> output')");
      fail(b, "empty instruction (expected 'input -> output', e.g. '[TEXT:src] -> [TEXT:tgt]')");
    }
    bool output = false;
    size_t arrow = 0;
    int position = 0;
    size_t lit = b;  // start of the pending literal text
    auto flush = [&](size_t upto) {
      std::string_view raw = s_.substr(lit, upto - lit);
      std::string_view txt = trim(raw);
      if (txt.empty()) return;
      Segment seg;
      seg.text = std::string(txt);
      seg.column = col(lit + (txt.data() - raw.data()));
      (output ? t.output : t.input).segments.push_back(std::move(seg));
    };
    size_t p = b;
    while (p < e) {
      char c = s_[p];
      if (c == '[') {
        flush(p);
        Side& side = output ? t.output : t.input;
        Slot slot = parse_slot(p, output);  // advances p past ']'
        slot.position = position++;
        Segment seg;
        seg.is_slot = true;
        seg.slot = int(side.slots.size());
        seg.column = slot.column;
        side.slots.push_back(std::move(slot));
        side.segments.push_back(std::move(seg));
        lit = p;
      } else if (c == ']') {
        fail(p, "unexpected ']' outside a slot (expected '[' to open a slot first)");
      } else if (c == '-' && p + 1 < e && s_[p + 1] == '>') {
        if (output)
          fail(p, cat("a second '->' (expected exactly one '->' per template; the first is at "
                      "column ", col(arrow), ")"));
        flush(p);
        output = true;
        arrow = p;
        p += 2;
        lit = p;
      } else {
        ++p;
      }
    }
    flush(e);
    if (!output) {
      size_t last = e;
      while (last > b && is_space(s_[last - 1])) --last;
      fail(last, "missing '->' (expected exactly one '->' between the input and the output)");
    }
    finish_side(t.input);
    finish_side(t.output);
    if (!t.output.slots.empty()) {
      t.target = int(t.output.slots.size()) - 1;
      t.output.slots[t.target].is_target = true;
    }
    resolve(t);
    return t;
  }

  // Groups: literal text and text-like slots merge; any other slot stands alone.
  static void finish_side(Side& side) {
    bool open = false;
    for (int i = 0; i < int(side.segments.size()); ++i) {
      const Segment& seg = side.segments[i];
      bool text = !seg.is_slot || is_text_like(side.slots[seg.slot].type);
      if (text) {
        if (!open) side.groups.push_back(Group{{}, true});
        side.groups.back().segments.push_back(i);
        open = true;
      } else {
        side.groups.push_back(Group{{i}, false});
        open = false;
      }
    }
  }

  // Fills preprocessor/adaptor/loss/generator and checks side-dependent rules.
  void resolve(Template& t) const {
    for (Slot& s : t.input.slots) {
      const TypeInfo& ti = type_info(s.type);
      if (s.preprocessor.empty()) s.preprocessor = std::string(ti.preprocessors[0]);
      if (s.adaptor.empty()) s.adaptor = std::string(ti.adaptors[0]);
      s.loss = "none";
      s.generator = "none";
    }
    for (Slot& s : t.output.slots) {
      const TypeInfo& ti = type_info(s.type);
      size_t at = byte_of_column(s.column);
      if (!is_token_type(s.type))
        fail(at, cat(slot_type_name(s.type), " cannot be on the right side of '->' (expected "
                     "a token type there: TEXT, BOX, STRUCT, CATEGORY, PHONE, CONTINUOUS or "
                     "DISCRETE)"));
      if (s.preprocessor.empty()) s.preprocessor = std::string(ti.preprocessors[0]);
      if (s.adaptor.empty()) s.adaptor = std::string(ti.adaptors[0]);
      if (s.attrs.closed_set && !s.is_target)
        fail(at, "closed_set on a slot that is not the target (expected it on the last slot "
                 "of the right side)");
      if (s.is_target && s.attrs.no_loss)
        fail(at, "no_loss on the target leaves nothing to learn (expected no_loss only on "
                 "slots before the target)");
      bool closed = s.attrs.closed_set || s.type == SlotType::CATEGORY;
      bool control = s.type == SlotType::CONTINUOUS || s.type == SlotType::DISCRETE;
      if (s.attrs.no_loss) s.loss = "none";
      else if (closed && s.is_target) s.loss = "closed_set_ce";
      else if (control) s.loss = "cross_entropy";  // Gato: no smoothing on actions
      else s.loss = "label_smoothed_ce";
      s.generator = "none";
      if (!s.is_target) continue;
      switch (s.type) {
        case SlotType::TEXT: case SlotType::STRUCT:
          s.generator = closed ? "closed_set_trie" : "beam_text"; break;
        case SlotType::CATEGORY: s.generator = "closed_set_trie"; break;
        case SlotType::BOX: s.generator = "box_4bins"; break;
        case SlotType::PHONE: s.generator = "beam_phone"; break;
        case SlotType::CONTINUOUS: s.generator = "continuous_sample"; break;
        case SlotType::DISCRETE: s.generator = "discrete_sample"; break;
        default: MM_ASSERT(false);
      }
    }
  }

  size_t byte_of_column(int column) const {
    int c = 1;
    for (size_t i = 0; i < s_.size(); ++i) {
      if ((static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80) {
        if (c == column) return i;
        ++c;
      }
    }
    return s_.size();
  }

  void check_templates_agree(const Plan& plan) const {
    const Template& first = plan.templates[0];
    for (size_t i = 1; i < plan.templates.size(); ++i) {
      const Template& t = plan.templates[i];
      auto desc = [](const Template& x) {
        if (x.target < 0) return std::string("no target");
        const Slot& s = x.output.slots[x.target];
        return cat(slot_type_name(s.type), " '", s.field(), "'");
      };
      bool same = (t.target < 0) == (first.target < 0);
      if (same && t.target >= 0) {
        const Slot &a = first.output.slots[first.target], &b = t.output.slots[t.target];
        same = a.type == b.type && a.field() == b.field() &&
               a.attrs.closed_set == b.attrs.closed_set;
      }
      if (!same) {
        size_t at = t.target >= 0 ? byte_of_column(t.output.slots[t.target].column)
                                  : byte_of_column(t.column);
        fail(at, cat("template ", i + 1, " has target ", desc(t), " but template 1 has ",
                     desc(first), " (expected every template of a task to share its target)"));
      }
    }
  }

  Slot parse_slot(size_t& p, bool output) {
    Slot slot;
    slot.on_output = output;
    slot.column = col(p);
    const size_t open = p;
    ++p;  // '['
    auto missing_close = [&]() {
      fail(p, cat("missing ']' (expected ']' to close the slot opened at column ", col(open),
                  ")"));
    };
    skip_spaces(p);
    size_t tb = p;
    while (p < end_ && std::isalpha(static_cast<unsigned char>(s_[p]))) ++p;
    std::string_view type = s_.substr(tb, p - tb);
    if (type.empty()) {
      if (p >= end_) missing_close();
      fail(p, cat("expected a slot type after '[' (one of ", join({std::begin(kTypeNames),
                  std::end(kTypeNames)}), "), got ", describe_char(p)));
    }
    int ti = -1;
    for (int i = 0; i < kNumSlotTypes; ++i)
      if (kTypeNames[i] == type) ti = i;
    if (ti < 0) {
      std::string upper(type);
      for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
      bool case_only = false;
      for (auto n : kTypeNames) case_only |= n == upper;
      fail(tb, cat("unknown slot type '", type, "' (expected one of ",
                   join({std::begin(kTypeNames), std::end(kTypeNames)}), ")",
                   case_only ? "; slot types are upper case" : ""));
    }
    slot.type = SlotType(ti);
    skip_spaces(p);
    if (p < end_ && s_[p] == ':') {
      ++p;
      skip_spaces(p);
      size_t nb = p;
      while (p < end_ && is_name_char(s_[p])) ++p;
      if (p == nb) {
        if (p >= end_) missing_close();
        fail(p, cat("empty field name after ':' (expected a name of letters, digits, '_', "
                    "'-' or '.'), got ", describe_char(p)));
      }
      slot.name = std::string(s_.substr(nb, p - nb));
      skip_spaces(p);
    } else if (p < end_ && s_[p] != ',' && s_[p] != ']') {
      fail(p, cat("unexpected ", describe_char(p), " after the slot type (expected ':', ',' "
                  "or ']')"));
    }
    while (true) {
      if (p >= end_) missing_close();
      if (s_[p] == ']') { ++p; break; }
      if (s_[p] != ',')
        fail(p, cat("unexpected ", describe_char(p), " in slot (expected ',' or ']')"));
      ++p;
      skip_spaces(p);
      parse_attr(p, slot);
      skip_spaces(p);
    }
    finish_attrs(slot, open);
    return slot;
  }

  void parse_attr(size_t& p, Slot& slot) {
    size_t kb = p;
    while (p < end_ && is_key_char(s_[p])) ++p;
    std::string key(s_.substr(kb, p - kb));
    if (key.empty()) {
      if (p >= end_) fail(p, "missing ']' (expected an attribute name after ',' and then ']')");
      fail(p, cat("expected an attribute name after ',' (one of ", join(kAttrKeys), "), got ",
                  describe_char(p)));
    }
    bool known = false;
    for (auto k : kAttrKeys) known |= k == key;
    if (!known)
      fail(kb, cat("unknown attribute '", key, "' (expected one of ", join(kAttrKeys), ")"));
    for (const auto& w : slot.attrs.written)
      if (w == key) fail(kb, cat("duplicate attribute '", key, "' (expected each attribute "
                                 "at most once)"));
    slot.attrs.written.push_back(key);
    skip_spaces(p);
    bool has_value = p < end_ && s_[p] == '=';
    size_t eq = p, vb = p;
    std::string value;
    if (has_value) {
      ++p;
      skip_spaces(p);
      vb = p;
      while (p < end_ && s_[p] != ',' && s_[p] != ']' && s_[p] != '[') ++p;
      value = std::string(trim(s_.substr(vb, p - vb)));
      if (value.empty()) fail(vb, cat("missing value after '", key, "=' (expected ",
                                      value_hint(key), ")"));
    }
    const bool flag = key == "no_loss" || key == "closed_set" || key == "uncased" ||
                      key == "no_punctuation";
    if (flag && has_value)
      fail(eq, cat("attribute '", key, "' takes no value (expected '", key, "' alone)"));
    if (!flag && !has_value)
      fail(kb, cat("attribute '", key, "' needs a value (expected ", key, "=",
                   value_hint(key), ")"));
    // Type- and side-dependent rules: where the attribute makes no sense, say so.
    const SlotType t = slot.type;
    auto require = [&](bool ok, std::string_view allowed) {
      if (!ok) fail(kb, cat("attribute '", key, "' does not apply to ", slot_type_name(t),
                            " (expected it on ", allowed, ")"));
    };
    const bool textual = t == SlotType::TEXT || t == SlotType::STRUCT || t == SlotType::CATEGORY;
    if (key == "no_loss") {
      if (!slot.on_output)
        fail(kb, "no_loss on the left side of '->' (expected it only on the right side, where "
                 "tokens are scored)");
      slot.attrs.no_loss = true;
    } else if (key == "closed_set") {
      require(textual, "TEXT, STRUCT or CATEGORY");
      if (!slot.on_output)
        fail(kb, "closed_set on the left side of '->' (expected it on the target, the last "
                 "slot of the right side)");
      slot.attrs.closed_set = true;
    } else if (key == "uncased") {
      require(textual, "TEXT, STRUCT or CATEGORY");
      slot.attrs.uncased = true;
    } else if (key == "no_punctuation") {
      require(textual, "TEXT, STRUCT or CATEGORY");
      slot.attrs.no_punctuation = true;
    } else if (key == "mask_ratio" || key == "noise_ratio") {
      require(textual || t == SlotType::PHONE, "TEXT, STRUCT, CATEGORY or PHONE");
      double v = parse_number(value, vb, key);
      if (!(v >= 0 && v <= 1))
        fail(vb, cat(key, " must be in [0, 1], got ", value, " (expected a ratio such as 0.3)"));
      (key == "mask_ratio" ? slot.attrs.mask_ratio : slot.attrs.noise_ratio) = v;
    } else if (key == "max_length") {
      int64_t v = 0;
      bool ok = !value.empty() && value.size() <= 9;
      for (char c : value) ok &= c >= '0' && c <= '9';
      if (ok) v = std::stoll(value);
      if (!ok || v < 1 || v > 100000000)
        fail(vb, cat("max_length must be a whole number in [1, 100000000], got '", value, "'"));
      slot.attrs.max_length = v;
    } else if (key == "preprocess" || key == "adaptor") {
      const TypeInfo& ti = type_info(t);
      const auto& allowed = key == "preprocess" ? ti.preprocessors : ti.adaptors;
      bool ok = false;
      for (auto a : allowed) ok |= a == value;
      if (!ok)
        fail(vb, cat("unknown ", key == "preprocess" ? "preprocessor" : "adaptor", " '", value,
                     "' for ", slot_type_name(t), " (expected one of ", join(allowed), ")"));
      (key == "preprocess" ? slot.attrs.preprocess : slot.attrs.adaptor) = value;
    }
  }

  static std::string value_hint(const std::string& key) {
    if (key == "mask_ratio" || key == "noise_ratio") return "a number in [0, 1]";
    if (key == "max_length") return "a whole number >= 1";
    if (key == "preprocess") return "a preprocessor name";
    if (key == "adaptor") return "an adaptor name";
    return "a value";
  }

  double parse_number(const std::string& v, size_t at, const std::string& key) const {
    errno = 0;
    char* endp = nullptr;
    double d = std::strtod(v.c_str(), &endp);
    if (endp != v.c_str() + v.size() || errno != 0 || !std::isfinite(d))
      fail(at, cat(key, " must be a number in [0, 1], got '", v, "'"));
    return d;
  }

  // Cross-attribute rules, checked once the slot is complete.
  void finish_attrs(Slot& slot, size_t open) const {
    SlotAttrs& a = slot.attrs;
    if (slot.type == SlotType::IMAGE) {
      // Gato patches need the patch adaptor and vice versa: pair them by default.
      if (a.preprocess.empty() && a.adaptor == "image_patch") a.preprocess = "image_patch";
      if (a.adaptor.empty() && a.preprocess == "image_patch") a.adaptor = "image_patch";
      if (!a.preprocess.empty() && !a.adaptor.empty() &&
          (a.preprocess == "image_patch") != (a.adaptor == "image_patch"))
        fail(open, cat("preprocess=", a.preprocess, " does not fit adaptor=", a.adaptor,
                       " (expected image_resize with image_resnet, or image_patch with "
                       "image_patch)"));
    }
    slot.preprocessor = a.preprocess;
    slot.adaptor = a.adaptor;
  }
};

}  // namespace

std::string_view slot_type_name(SlotType t) { return kTypeNames[int(t)]; }

bool is_text_like(SlotType t) {
  return t == SlotType::TEXT || t == SlotType::BOX || t == SlotType::STRUCT ||
         t == SlotType::CATEGORY;
}

std::string Slot::field() const { return name.empty() ? cat("#", position) : name; }

size_t Plan::choose_template(uint64_t seed, uint64_t sample_id) const {
  MM_ASSERT(!templates.empty());
  return size_t(mix64(seed ^ mix64(sample_id)) % templates.size());
}

std::vector<std::string> Plan::fields() const {
  std::vector<std::string> out;
  for (const Template& t : templates)
    for (const Side* side : {&t.input, &t.output})
      for (const Slot& s : side->slots) {
        std::string f = s.field();
        bool seen = false;
        for (const auto& o : out) seen |= o == f;
        if (!seen) out.push_back(f);
      }
  return out;
}

std::string instruction_error(std::string_view instruction, int column, std::string_view what) {
  std::string shown(instruction);
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  // Control bytes (a NUL would even cut what() short) are shown escaped in the message
  // and as spaces in the echoed instruction, which keeps one column per character.
  std::string said;
  for (char c : what) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) said += cat("\\x", "0123456789abcdef"[u >> 4], "0123456789abcdef"[u & 15]);
    else said += c;
  }
  return cat("instruction error at column ", column, ": ", said, "\n  ", shown, "\n  ",
             std::string(size_t(column > 0 ? column - 1 : 0), ' '), "^");
}

void validate(const Plan& plan, const std::vector<std::string>& columns) {
  std::string cols;
  for (size_t i = 0; i < columns.size(); ++i) cols += (i ? ", " : "") + columns[i];
  for (const Template& t : plan.templates)
    for (const Side* side : {&t.input, &t.output})
      for (const Slot& s : side->slots) {
        if (!s.name.empty()) {
          bool found = false;
          for (const auto& c : columns) found |= c == s.name;
          if (!found)
            throw Error(instruction_error(plan.instruction, s.column,
                cat("field '", s.name, "' is not in the data (expected one of: ", cols, ")")));
        } else if (s.position >= int(columns.size())) {
          throw Error(instruction_error(plan.instruction, s.column,
              cat("unnamed slot ", s.position + 1, " binds to column ", s.position + 1,
                  " but the data has ", columns.size(), " column(s) (expected a name, or "
                  "more columns)")));
        }
      }
}

std::string describe(const Plan& plan) {
  std::ostringstream os;
  os << "instruction: " << plan.instruction << "\n";
  os << "templates: " << plan.templates.size()
     << (plan.templates.size() > 1 ? " (one drawn per sample)" : "") << "\n";
  for (size_t ti = 0; ti < plan.templates.size(); ++ti) {
    const Template& t = plan.templates[ti];
    os << "template " << ti + 1 << " (column " << t.column << ")\n";
    for (int si = 0; si < 2; ++si) {
      const Side& side = si == 0 ? t.input : t.output;
      os << "  " << (si == 0 ? "input (encoder)" : "output (decoder)") << ":"
         << (side.empty() ? " empty" : "") << "\n";
      for (size_t gi = 0; gi < side.groups.size(); ++gi) {
        const Group& g = side.groups[gi];
        os << "    sequence " << gi + 1 << (g.tokens ? " [tokens: <bos> ... <eos>]" : "")
           << "\n";
        for (int idx : g.segments) {
          const Segment& seg = side.segments[idx];
          if (!seg.is_slot) {
            os << "      text" << (si == 1 ? " (prompt, not scored)" : "") << ": " << seg.text
               << "\n";
            continue;
          }
          const Slot& s = side.slots[seg.slot];
          os << "      slot " << slot_type_name(s.type) << " field="
             << (s.name.empty() ? cat("#", s.position, " (by position)") : s.name)
             << " column=" << s.column << (s.is_target ? " TARGET" : "") << "\n";
          os << "        attrs:";
          if (s.attrs.written.empty()) os << " none";
          for (const auto& k : s.attrs.written) {
            os << " " << k;
            if (k == "mask_ratio") os << "=" << s.attrs.mask_ratio;
            else if (k == "noise_ratio") os << "=" << s.attrs.noise_ratio;
            else if (k == "max_length") os << "=" << s.attrs.max_length;
            else if (k == "preprocess") os << "=" << s.attrs.preprocess;
            else if (k == "adaptor") os << "=" << s.attrs.adaptor;
          }
          os << "\n        preprocessor=" << s.preprocessor << " adaptor=" << s.adaptor
             << " loss=" << s.loss << " generator=" << s.generator << "\n";
        }
      }
    }
    if (t.target >= 0) {
      const Slot& s = t.output.slots[t.target];
      os << "  target: " << slot_type_name(s.type) << " " << s.field() << " (generator "
         << s.generator << ")\n";
    } else {
      os << "  target: none\n";
    }
  }
  return os.str();
}

Plan parse_instruction(std::string_view instruction) { return Parser(instruction).parse(); }

}  // namespace mm
