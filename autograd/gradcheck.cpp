#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace mm::autograd {

GradcheckResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  GradcheckResult res;
  std::vector<Tensor> xs;
  std::vector<int> wrt = opt.wrt;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (t.defined() && is_floating(t.dtype())) {
      Tensor c;
      {
        NoGradGuard ng;
        c = cast(to(t, Device::cpu()), DType::f64);
        if (c.impl() == t.impl()) c = clone(t);
      }
      c = c.detach();
      if (opt.wrt.empty()) wrt.push_back(int(i));
      xs.push_back(c);
    } else {
      xs.push_back(t);
    }
  }
  for (int i : wrt) xs[size_t(i)].set_requires_grad(true);

  Tensor out = f(xs);
  MM_CHECK(out.defined() && out.dtype() == DType::f64, "gradcheck: the function must return an f64 tensor "
                                                        "when given f64 inputs, got ", out.str());
  Generator gen(opt.seed);
  Tensor v = randn(out.shape(), gen, 0.0, 1.0, DType::f64);
  backward(sum(mul(out, v)));

  auto loss_at = [&]() {
    NoGradGuard ng;
    return sum(mul(f(xs), v)).item();
  };
  for (int i : wrt) {
    Tensor x = xs[size_t(i)];
    Tensor ga = x.grad();
    double* px = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double keep = px[j];
      px[j] = keep + opt.eps;
      const double lp = loss_at();
      px[j] = keep - opt.eps;
      const double lm = loss_at();
      px[j] = keep;
      const double numeric = (lp - lm) / (2 * opt.eps);
      const double analytic = ga.defined() ? ga.data<double>()[j] : 0.0;
      const double err = std::fabs(analytic - numeric);
      ++res.checked;
      if (err > res.max_abs_error) res.max_abs_error = err;
      if (res.ok && (!(err <= opt.atol + opt.rtol * std::fabs(numeric)) || (!ga.defined() && numeric != 0.0))) {
        res.ok = false;
        res.message = cat("gradcheck: input ", i, " ", x.shape(), " element ", j, ": analytic ",
                          ga.defined() ? cat(analytic) : std::string("(no gradient)"), " vs numeric ", numeric,
                          " (|diff| ", err, ")");
      }
    }
  }
  if (res.ok) res.message = cat("gradcheck ok: ", res.checked, " elements, max |diff| ", res.max_abs_error);
  return res;
}

}  // namespace mm::autograd
