// The backward engine: topological order over the recorded graph, then each node's rule
// once, with the gradients of every consumer summed before the node runs.
#include <unordered_map>
#include <vector>

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mm::autograd {

namespace {
thread_local bool g_grad_enabled = true;
}
bool GradMode::enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool on) { g_grad_enabled = on; }

grads AccumulateGrad::apply(const Tensor& g) {
  // Leaves keep contiguous gradients in their own dtype (optimizers read them raw). The
  // first gradient is stored as is, even if another leaf shares it (add's rule hands the
  // same tensor to both inputs): gradients are never modified in place, only replaced.
  Tensor gc = contiguous(g);
  if (!leaf->grad) {
    leaf->grad = gc.impl_ptr();
  } else {
    leaf->grad = add(Tensor(leaf->grad), gc).impl_ptr();
  }
  return {};
}

grads RuleNode::apply(const Tensor& g) {
  MM_CHECK(rule, "backward through '", name, "' a second time: the graph was freed by the first "
                 "backward() (build the graph again)");
  return rule(g, *this);
}

static std::shared_ptr<Node> edge_of(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  // A leaf: reuse its accumulator so all uses of the leaf meet in one node.
  if (auto acc = impl->grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad>();
  acc->name = "accumulate_grad";
  acc->leaf = t.impl_ptr();
  impl->grad_accumulator = acc;
  return acc;
}

bool should_record(std::initializer_list<Tensor> inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

template <typename Range>
static Tensor& record_impl(Tensor& out, std::string_view name, const Range& inputs, Rule rule) {
  if (!GradMode::enabled()) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || t.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<RuleNode>();
  node->name = name;
  node->rule = std::move(rule);
  for (const Tensor& t : inputs) {
    node->next.push_back(edge_of(t));
    node->in_shapes.push_back(t.defined() ? t.shape() : Shape());
    node->in_dtypes.push_back(t.defined() ? t.dtype() : DType::f32);
  }
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

Tensor& record(Tensor& out, std::string_view name, std::initializer_list<Tensor> inputs, Rule rule) {
  return record_impl(out, name, inputs, std::move(rule));
}
Tensor& record(Tensor& out, std::string_view name, const std::vector<Tensor>& inputs, Rule rule) {
  return record_impl(out, name, inputs, std::move(rule));
}

void backward(const Tensor& root, const Tensor& grad_output) {
  MM_CHECK(root.defined(), "backward: undefined tensor");
  MM_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no input it was "
                                 "computed from requires grad, or it was computed under NoGradGuard)");
  Tensor g0 = grad_output;
  if (!g0.defined()) {
    MM_CHECK(root.numel() == 1, "backward: implicit gradient needs a one-element tensor, got shape ",
             root.shape(), "; pass grad_output");
    g0 = ones(root.shape(), root.dtype(), root.device());
  }
  MM_CHECK(g0.shape() == root.shape(), "backward: grad_output shape ", g0.shape(), " differs from ",
           root.shape());
  NoGradGuard ng;
  std::shared_ptr<Node> start = edge_of(root);

  // Count, for each node, how many edges point at it (from nodes reachable from root).
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{start.get()};
  deps[start.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& nx : n->next) {
      if (!nx) continue;
      auto [it, fresh] = deps.try_emplace(nx.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(nx.get());
    }
  }

  std::unordered_map<Node*, Tensor> pending;
  pending[start.get()] = g0;
  std::vector<std::shared_ptr<Node>> ready{start};
  while (!ready.empty()) {
    std::shared_ptr<Node> n = std::move(ready.back());
    ready.pop_back();
    Tensor g;
    if (auto it = pending.find(n.get()); it != pending.end()) {
      g = std::move(it->second);
      pending.erase(it);
    }
    // A node no gradient reached still runs through the loop below, so that the
    // dependency counts of its inputs drop and nodes reached by other paths run.
    grads gin;
    if (g.defined()) gin = n->apply(g);
    n->release();
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* nx = n->next[i].get();
      if (!nx) continue;
      Tensor gi = i < gin.size() ? gin[i] : Tensor();
      if (gi.defined()) {
        // Broadcasting rules may hand back the output-shaped gradient: fold it.
        if (gi.shape() != n->in_shapes[i]) gi = sum_to(gi, n->in_shapes[i]);
        MM_ASSERT(gi.dtype() == n->in_dtypes[i]);
        auto it = pending.find(nx);
        if (it == pending.end() || !it->second.defined()) pending[nx] = gi;
        else it->second = add(it->second, gi);
      }
      if (--deps[nx] == 0) ready.push_back(n->next[i]);
    }
  }
}

}  // namespace mm::autograd
