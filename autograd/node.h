// The autograd graph is a tape built as ops run (define-by-run, like PyTorch): every op
// whose inputs need gradients gives its output a Node that knows (a) the nodes that
// produced its inputs and (b) a rule mapping the output's gradient to the inputs'.
//
// An op records itself with one call next to its forward code, so the forward and the
// chain rule of an op sit side by side (tinygrad's "table of rules"):
//
//   Tensor out = ...forward...;
//   record(out, "mul", {a, b}, [a, b](const Tensor& g, const Node& n) {
//     return grads{n.needs(0) ? mul(g, b) : Tensor(), n.needs(1) ? mul(g, a) : Tensor()};
//   });
//
// Rules are written with ops, so they run on any device. Gradients that broadcasting
// expanded are summed back to the input's shape by the engine (sum_to), so rules may
// return the gradient at the broadcast (output) shape.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

#include "autograd/grad_mode.h"
#include "runtime/tensor.h"

namespace mm::autograd {

using grads = std::vector<Tensor>;

struct Node {
  std::string_view name;                    // the op, for error messages
  std::vector<std::shared_ptr<Node>> next;  // per input: its producer, or null (no grad)
  std::vector<Shape> in_shapes;             // per input: the shape its gradient must have
  std::vector<DType> in_dtypes;

  virtual ~Node() = default;
  // Gradient of the output -> gradients of the inputs (undefined where not needed).
  virtual grads apply(const Tensor& grad_out) = 0;
  // Frees what the rule saved (backward ran; the graph is not reused).
  virtual void release() {}
  bool needs(size_t i) const { return i < next.size() && next[i] != nullptr; }
};

// The sink of a leaf tensor that requires grad: adds into leaf.grad.
struct AccumulateGrad final : Node {
  std::shared_ptr<TensorImpl> leaf;
  grads apply(const Tensor& grad_out) override;
};

using Rule = std::function<grads(const Tensor& grad_out, const Node& node)>;

struct RuleNode final : Node {
  Rule rule;
  grads apply(const Tensor& grad_out) override;
  void release() override { rule = nullptr; }
};

// True when grad mode is on and some input requires grad: the op should record.
bool should_record(std::initializer_list<Tensor> inputs);
// Makes `out` the output of a new node over `inputs` with the given rule (no-op when
// should_record is false). Returns out for chaining.
Tensor& record(Tensor& out, std::string_view name, std::initializer_list<Tensor> inputs, Rule rule);
// Same, for inputs held in a vector (concat and other variadic ops).
Tensor& record(Tensor& out, std::string_view name, const std::vector<Tensor>& inputs, Rule rule);

// Runs backpropagation from `root`. With no grad_output, root must have one element and
// its gradient is 1. Gradients accumulate into the .grad of leaves that require grad.
void backward(const Tensor& root, const Tensor& grad_output = Tensor());

}  // namespace mm::autograd
