#include "autograd/module.h"

#include <set>

#include "ops/backend.h"
#include "ops/creation.h"

namespace mm {

Tensor& Module::register_parameter(const std::string& name, Tensor& t) {
  MM_CHECK(t.defined(), "register_parameter: '", name, "' is undefined");
  t.set_requires_grad(true);
  params_.emplace_back(name, &t);
  return t;
}
Tensor& Module::register_buffer(const std::string& name, Tensor& t) {
  buffers_.emplace_back(name, &t);
  return t;
}

void Module::collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, *t);
  for (auto& [n, m] : children_) m->collect(prefix + n + ".", params, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}
std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}
std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}
int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [n, t] : named_parameters()) out[n] = t;
  for (auto& [n, t] : named_buffers()) out[n] = t;
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::set<std::string> seen;
  auto load = [&](const std::string& name, const Tensor& dst) {
    auto it = state.find(name);
    if (it == state.end()) {
      MM_CHECK(!strict, "load_state_dict: tensor '", name, "' ", dst.shape(), " is missing from the checkpoint");
      return;
    }
    seen.insert(name);
    const Tensor& src = it->second;
    MM_CHECK(src.shape() == dst.shape(), "load_state_dict: tensor '", name, "' has shape ", src.shape(),
             " in the checkpoint but ", dst.shape(), " in the model (a checkpoint of another config?)");
    MM_CHECK(src.dtype() == dst.dtype(), "load_state_dict: tensor '", name, "' is ", dtype_name(src.dtype()),
             " in the checkpoint but ", dtype_name(dst.dtype()), " in the model");
    Tensor d = dst;
    backend_for(dst.device().is_cpu() ? src.device() : dst.device()).copy(src, d);
  };
  for (auto& [n, t] : named_parameters()) load(n, t);
  for (auto& [n, t] : named_buffers()) load(n, t);
  if (strict)
    for (auto& [n, t] : state)
      MM_CHECK(seen.count(n), "load_state_dict: the checkpoint has tensor '", n, "' ", t.shape(),
               " that the model does not have");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::to(Device dev) {
  for (auto& [n, p] : params_) {
    if (p->device() == dev) continue;
    Tensor moved = mm::to(*p, dev).detach();
    moved.set_requires_grad(true);
    *p = moved;
  }
  for (auto& [n, b] : buffers_)
    if (b->defined() && b->device() != dev) *b = mm::to(*b, dev).detach();
  for (auto& [n, m] : children_) m->to(dev);
}

Device Module::device() const {
  const auto ps = named_parameters();
  return ps.empty() ? Device::cpu() : ps.front().second.device();
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) t.zero_grad();
}

}  // namespace mm
