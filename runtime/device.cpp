#include "runtime/device.h"

#include "runtime/error.h"

namespace mm {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    size_t used = 0;
    int i = -1;
    try { i = std::stoi(s.substr(5), &used); } catch (...) {}
    if (i >= 0 && used == s.size() - 5) return cuda(i);
  }
  throw Error(cat("unknown device '", s, "' (expected cpu, cuda or cuda:N)"));
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

}  // namespace mm
