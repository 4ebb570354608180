// Closed-set tries: the answers of a closed_set task (token id sequences, EOS included)
// in a prefix tree. At each decoding step the allowed next ids are the children of the
// node the prefix leads to; training restricts the loss to the same ids.
//
//   Trie t({{17, 40, 2}, {17, 41, 2}, {90, 2}});   // answers, each ending in <eos>=2
//   t.allowed_next({}) == {17, 90};  t.allowed_next({17}) == {40, 41};
//   t.allowed_next({17, 40, 2}) == {};  t.allowed_next({5}) == {}  (not a prefix)
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace mm {

class Trie {
 public:
  Trie();
  explicit Trie(const std::vector<std::vector<int64_t>>& answers);
  void insert(const std::vector<int64_t>& answer);  // duplicates are stored once
  // Sorted ids that may follow `prefix`; empty when it leads nowhere or is complete.
  std::vector<int64_t> allowed_next(const std::vector<int64_t>& prefix) const;
  bool is_prefix(const std::vector<int64_t>& prefix) const;   // leads to a node
  bool contains(const std::vector<int64_t>& answer) const;     // a whole inserted answer
  size_t num_answers() const { return answers_; }
  size_t num_nodes() const { return nodes_.size(); }

 private:
  struct Node {
    std::map<int64_t, int> children;
    bool terminal = false;
  };
  int walk(const std::vector<int64_t>& prefix) const;  // node index, -1 when absent
  std::vector<Node> nodes_;
  size_t answers_ = 0;
};

}  // namespace mm
