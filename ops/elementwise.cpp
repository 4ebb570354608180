#include "ops/elementwise.h"

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add"; case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul"; case BinaryOp::div: return "div";
    case BinaryOp::maximum: return "maximum"; case BinaryOp::minimum: return "minimum";
    case BinaryOp::eq: return "eq"; case BinaryOp::lt: return "lt"; case BinaryOp::gt: return "gt";
  }
  return "?";
}

// Forward of a broadcasting binary op, without autograd.
Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b, DType out_dt) {
  const char* name = binary_name(op);
  check_defined(name, a, "a");
  check_defined(name, b, "b");
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  Shape s = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(s, out_dt, a.device());
  autograd::NoGradGuard ng;  // the expand views are internal
  backend_of(a).binary(op, a.shape() == s ? a : expand(a, s), b.shape() == s ? b : expand(b, s), out);
  return out;
}

Tensor unary_op(UnaryOp op, const char* name, const Tensor& x, double alpha = 0.0) {
  check_defined(name, x, "x");
  check_floating(name, x);
  Tensor xc = contiguous(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_of(x).unary(op, xc, out, alpha);
  if (autograd::should_record({xc})) {
    Tensor y = out.detach();  // saved for derivatives that use the output (exp, tanh, ...)
    autograd::record(out, name, {xc}, [op, xc, y, alpha](const Tensor& g, const Node&) {
      Tensor gc = contiguous(g);
      Tensor gx = Tensor::empty(gc.shape(), gc.dtype(), gc.device());
      backend_of(gc).unary_backward(op, xc, y, gc, gx, alpha);
      return grads{gx};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::add, a, b, a.dtype());
  autograd::record(out, "add", {a, b}, [](const Tensor& g, const Node&) { return grads{g, g}; });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::sub, a, b, a.dtype());
  autograd::record(out, "sub", {a, b}, [](const Tensor& g, const Node& n) {
    return grads{g, n.needs(1) ? neg(g) : Tensor()};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::mul, a, b, a.dtype());
  autograd::record(out, "mul", {a, b}, [a, b](const Tensor& g, const Node& n) {
    return grads{n.needs(0) ? mul(g, b) : Tensor(), n.needs(1) ? mul(g, a) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::div, a, b, a.dtype());
  autograd::record(out, "div", {a, b}, [a, b](const Tensor& g, const Node& n) {
    // d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
    return grads{n.needs(0) ? div(g, b) : Tensor(),
                 n.needs(1) ? neg(div(mul(g, a), mul(b, b))) : Tensor()};
  });
  return out;
}

// Ties split the gradient in half between the operands (PyTorch does the same).
static Tensor minmax(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(op, a, b, a.dtype());
  autograd::record(out, name, {a, b}, [a, b, op](const Tensor& g, const Node& n) {
    Tensor win_a = binary_raw(op == BinaryOp::maximum ? BinaryOp::gt : BinaryOp::lt, a, b, DType::boolean);
    Tensor tie = binary_raw(BinaryOp::eq, a, b, DType::boolean);
    Tensor half = mul(g, 0.5);
    Tensor zero = zeros({}, g.dtype(), g.device());
    Tensor ga, gb;
    if (n.needs(0)) ga = where(win_a, g, where(tie, half, zero));
    if (n.needs(1)) gb = where(win_a, zero, where(tie, half, g));
    return grads{ga, gb};
  });
  return out;
}
Tensor maximum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::maximum, "maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::minimum, "minimum", a, b); }

Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::eq, a, b, DType::boolean); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::lt, a, b, DType::boolean); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::gt, a, b, DType::boolean); }

Tensor add(const Tensor& a, double s) { return unary_op(UnaryOp::add_scalar, "add_scalar", a, s); }
Tensor mul(const Tensor& a, double s) { return unary_op(UnaryOp::scale, "mul_scalar", a, s); }
Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::exp, "exp", x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::log, "log", x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, "tanh", x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, "sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::rsqrt, "rsqrt", x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::abs, "abs", x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, "sigmoid", x); }
Tensor pow(const Tensor& x, double p) { return unary_op(UnaryOp::pow, "pow", x, p); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, "relu", x); }
Tensor gelu(const Tensor& x, bool approximate) {
  return approximate ? unary_op(UnaryOp::gelu_tanh, "gelu_tanh", x) : unary_op(UnaryOp::gelu_erf, "gelu_erf", x);
}
Tensor silu(const Tensor& x) { return unary_op(UnaryOp::silu, "silu", x); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", cond, "cond");
  check_defined("where", a, "a");
  check_defined("where", b, "b");
  MM_CHECK(cond.dtype() == DType::boolean || cond.dtype() == DType::u8,
           "where: cond must be bool or u8, got ", dtype_name(cond.dtype()));
  check_same_device("where", cond, a);
  check_same_device("where", a, b);
  check_same_dtype("where", a, b);
  Shape s = broadcast_shapes("where", broadcast_shapes("where", cond.shape(), a.shape()), b.shape());
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  {
    autograd::NoGradGuard ng;
    backend_of(a).where(expand(cond, s), expand(a, s), expand(b, s), out);
  }
  autograd::record(out, "where", {a, b}, [cond](const Tensor& g, const Node& n) {
    Tensor zero = zeros({}, g.dtype(), g.device());
    return grads{n.needs(0) ? where(cond, g, zero) : Tensor(), n.needs(1) ? where(cond, zero, g) : Tensor()};
  });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined("masked_fill", x, "x");
  return where(mask, full({}, value, x.dtype(), x.device()), x);
}

}  // namespace mm
