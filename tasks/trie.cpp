#include "tasks/trie.h"

namespace mm {

Trie::Trie() : nodes_(1) {}

Trie::Trie(const std::vector<std::vector<int64_t>>& answers) : Trie() {
  for (const auto& a : answers) insert(a);
}

void Trie::insert(const std::vector<int64_t>& answer) {
  int n = 0;
  for (int64_t id : answer) {
    auto it = nodes_[n].children.find(id);
    if (it == nodes_[n].children.end()) {
      int next = int(nodes_.size());
      nodes_[n].children.emplace(id, next);
      nodes_.emplace_back();  // may reallocate: index, never hold references
      n = next;
    } else {
      n = it->second;
    }
  }
  if (!nodes_[n].terminal) ++answers_;
  nodes_[n].terminal = true;
}

int Trie::walk(const std::vector<int64_t>& prefix) const {
  int n = 0;
  for (int64_t id : prefix) {
    auto it = nodes_[n].children.find(id);
    if (it == nodes_[n].children.end()) return -1;
    n = it->second;
  }
  return n;
}

std::vector<int64_t> Trie::allowed_next(const std::vector<int64_t>& prefix) const {
  std::vector<int64_t> out;
  int n = walk(prefix);
  if (n < 0) return out;
  for (const auto& [id, child] : nodes_[n].children) out.push_back(id);
  return out;
}

bool Trie::is_prefix(const std::vector<int64_t>& prefix) const { return walk(prefix) >= 0; }

bool Trie::contains(const std::vector<int64_t>& answer) const {
  int n = walk(answer);
  return n >= 0 && nodes_[n].terminal;
}

}  // namespace mm
