// Text-side field preprocessing that needs no tokenizer: normalisation options
// (uncased, no_punctuation), STRUCT tables, CATEGORY label sets. The results are
// strings that the text tokenizer turns into ids.
//
//   normalize_text("What's THIS?", {.uncased = true, .no_punctuation = true}) == "what s this"
//   serialize_table({{"a","b","c"},{"d","e","f"}}) == "a : b : c | d : e : f"
//   CategorySet cs({"cat", "dog"});  cs.parse("dog, cat") == {0, 1}
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mm {

struct TextNormalization {
  bool uncased = false;         // ASCII A-Z -> a-z (other code points are left alone)
  bool no_punctuation = false;  // each ASCII punctuation character becomes a space
};
// Applies the options, then collapses runs of whitespace to one space and trims.
std::string normalize_text(std::string_view text, const TextNormalization& opt);

// STRUCT: rows of cells -> "a : b : c | d : e : f" (cells trimmed). Throws when a cell
// would make the text ambiguous (contains " : " or " | ", or starts/ends with ':' or '|').
std::string serialize_table(const std::vector<std::vector<std::string>>& rows);
// Exact inverse of serialize_table for the tables it accepts.
std::vector<std::vector<std::string>> parse_table(std::string_view text);
// A STRUCT data field: a JSON array of arrays (cells: strings or numbers) is serialised;
// any other text is taken as already serialised (trimmed).
std::string struct_field_to_text(std::string_view field);

// CATEGORY: a fixed, ordered set of labels. A field holds one or more labels separated
// by ','; they map to sorted, de-duplicated indices into the set.
class CategorySet {
 public:
  explicit CategorySet(std::vector<std::string> labels);  // throws on empty/duplicate labels
  const std::vector<std::string>& labels() const { return labels_; }
  int index_of(std::string_view label) const;  // throws naming the label and the set
  std::vector<int> parse(std::string_view field) const;
  // Indices -> "a, b" (the text the decoder produces for them).
  std::string to_text(const std::vector<int>& indices) const;

 private:
  std::vector<std::string> labels_;
};

}  // namespace mm
