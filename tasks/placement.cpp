#include "tasks/placement.h"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <sstream>

namespace mm {

TaskPlacement::TaskPlacement(std::vector<std::vector<int>> ranks, int world) : ranks_(std::move(ranks)), world_(world) {
  for (auto& r : ranks_) std::sort(r.begin(), r.end());
}

TaskPlacement TaskPlacement::everywhere(int num_tasks, int world) {
  MM_CHECK(num_tasks >= 1 && world >= 1, "TaskPlacement: ", num_tasks, " tasks on ", world, " ranks");
  std::vector<int> all(size_t(world), 0);
  std::iota(all.begin(), all.end(), 0);
  return TaskPlacement(std::vector<std::vector<int>>(size_t(num_tasks), all), world);
}

static std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

static std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) out.push_back(trim(cur));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

static int parse_rank(const std::string& s, const std::string& spec, int world) {
  MM_CHECK(!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }),
           "task placement '", spec, "': '", s, "' is not a rank number");
  const long r = std::stol(s);
  MM_CHECK(r < world, "task placement '", spec, "': rank ", r, " does not exist (", world, " ranks: 0-", world - 1, ")");
  return int(r);
}

TaskPlacement TaskPlacement::parse(const std::string& spec, const std::vector<std::string>& tasks, int world) {
  TaskPlacement p = everywhere(int(tasks.size()), world);
  if (trim(spec).empty()) return p;
  std::vector<bool> named(tasks.size(), false);
  for (const std::string& entry : split(spec, ';')) {
    const size_t colon = entry.find(':');
    MM_CHECK(colon != std::string::npos, "task placement '", spec, "': '", entry,
             "' should be task:ranks (e.g. caption:0-3)");
    const std::string name = trim(entry.substr(0, colon));
    auto it = std::find(tasks.begin(), tasks.end(), name);
    MM_CHECK(it != tasks.end(), "task placement '", spec, "': no task named '", name, "'");
    const size_t t = size_t(it - tasks.begin());
    MM_CHECK(!named[t], "task placement '", spec, "': task '", name, "' is placed twice");
    named[t] = true;
    std::vector<int> ranks;
    for (const std::string& item : split(entry.substr(colon + 1), ',')) {
      const size_t dash = item.find('-');
      const int lo = parse_rank(dash == std::string::npos ? item : trim(item.substr(0, dash)), spec, world);
      const int hi = dash == std::string::npos ? lo : parse_rank(trim(item.substr(dash + 1)), spec, world);
      MM_CHECK(lo <= hi, "task placement '", spec, "': the range '", item, "' is empty");
      for (int r = lo; r <= hi; ++r)
        if (std::find(ranks.begin(), ranks.end(), r) == ranks.end()) ranks.push_back(r);
    }
    MM_CHECK(!ranks.empty(), "task placement '", spec, "': task '", name, "' has no ranks");
    p.ranks_[t] = ranks;
    std::sort(p.ranks_[t].begin(), p.ranks_[t].end());
  }
  for (int r = 0; r < world; ++r)
    MM_CHECK(!p.tasks_on(r).empty(), "task placement '", spec, "': rank ", r, " runs no task");
  return p;
}

TaskPlacement TaskPlacement::balanced(const std::vector<double>& cost, int world) {
  const int nt = int(cost.size());
  MM_CHECK(nt >= 1 && world >= 1, "TaskPlacement::balanced: ", nt, " tasks on ", world, " ranks");
  for (double c : cost) MM_CHECK(c > 0, "TaskPlacement::balanced: costs must be positive, got ", c);
  std::vector<std::vector<int>> ranks(static_cast<size_t>(nt));
  if (world >= nt) {
    // One rank each, then every spare rank to the task with the highest cost per rank.
    std::vector<int> count(size_t(nt), 1);
    for (int spare = world - nt; spare > 0; --spare) {
      int best = 0;
      for (int t = 1; t < nt; ++t)
        if (cost[size_t(t)] / count[size_t(t)] > cost[size_t(best)] / count[size_t(best)]) best = t;
      ++count[size_t(best)];
    }
    int next = 0;
    for (int t = 0; t < nt; ++t)
      for (int k = 0; k < count[size_t(t)]; ++k) ranks[size_t(t)].push_back(next++);
  } else {
    // Longest processing time first onto the least loaded rank.
    std::vector<int> order(static_cast<size_t>(nt));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return cost[size_t(a)] > cost[size_t(b)]; });
    std::vector<double> load(size_t(world), 0.0);
    for (int t : order) {
      const int r = int(std::min_element(load.begin(), load.end()) - load.begin());
      load[size_t(r)] += cost[size_t(t)];
      ranks[size_t(t)].push_back(r);
    }
  }
  return TaskPlacement(std::move(ranks), world);
}

const std::vector<int>& TaskPlacement::ranks(int task) const {
  MM_CHECK(task >= 0 && task < num_tasks(), "TaskPlacement: task ", task, " of ", num_tasks());
  return ranks_[size_t(task)];
}

std::vector<int> TaskPlacement::tasks_on(int rank) const {
  std::vector<int> out;
  for (int t = 0; t < num_tasks(); ++t)
    if (runs(t, rank)) out.push_back(t);
  return out;
}

bool TaskPlacement::runs(int task, int rank) const {
  const auto& r = ranks(task);
  return std::binary_search(r.begin(), r.end(), rank);
}

dist::Range TaskPlacement::shard(int task, int rank, int64_t n) const {
  const auto& r = ranks(task);
  auto it = std::lower_bound(r.begin(), r.end(), rank);
  if (it == r.end() || *it != rank) return {};
  return dist::shard_range(n, int(it - r.begin()), int(r.size()));
}

std::string TaskPlacement::str(const std::vector<std::string>& names) const {
  MM_CHECK(int(names.size()) == num_tasks(), "TaskPlacement::str: ", names.size(), " names for ", num_tasks(), " tasks");
  std::string out;
  for (int t = 0; t < num_tasks(); ++t) {
    if (t) out += ';';
    out += names[size_t(t)] + ':';
    const auto& r = ranks_[size_t(t)];
    for (size_t i = 0; i < r.size();) {
      size_t j = i;
      while (j + 1 < r.size() && r[j + 1] == r[j] + 1) ++j;
      if (i) out += ',';
      out += std::to_string(r[i]);
      if (j > i) out += '-' + std::to_string(r[j]);
      i = j + 1;
    }
  }
  return out;
}

}  // namespace mm
