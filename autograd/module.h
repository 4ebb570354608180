// Modules own parameters (trained) and buffers (saved, not trained: BatchNorm's running
// statistics) under stable dotted names, the names checkpoints use:
//
//   struct Mlp : Module {
//     Linear fc1, fc2;
//     Mlp(int c) : fc1(c, 4 * c), fc2(4 * c, c) { register_module("fc1", fc1); register_module("fc2", fc2); }
//   };
//   mlp.named_parameters()  ->  {"fc1.weight", ...}, {"fc1.bias", ...}, ...
//
// A module registers pointers to its own members, so modules are neither copied nor moved.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace mm {

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  int64_t num_parameters() const;

  // Parameters and buffers by name (what a checkpoint holds).
  std::map<std::string, Tensor> state_dict() const;
  // Copies values in place (parameters keep their identity, so optimizers stay valid).
  // Missing or unexpected names and shape/dtype mismatches are errors naming the tensor
  // and both shapes; strict=false ignores names absent on either side.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

  // Moves every parameter and buffer to `dev` (new leaves there; an optimizer built
  // before holds the old tensors, so move first, then build the optimizer).
  void to(Device dev);
  Device device() const;  // of the first parameter (CPU for a module without any)

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  void zero_grad();

 protected:
  // Registers a member; parameters get requires_grad.
  Tensor& register_parameter(const std::string& name, Tensor& t);
  Tensor& register_buffer(const std::string& name, Tensor& t);
  template <typename M> M& register_module(const std::string& name, M& m) {
    children_.emplace_back(name, &m);
    return m;
  }

 private:
  void collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

}  // namespace mm
