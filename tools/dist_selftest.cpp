// The distribution self-test: real processes, real MPI. tests/test_dist.cpp runs it.
//
//   build/dist_selftest --steps 20 --batch 16                   # one process, batch 16
//   mpirun -np 2 --oversubscribe build/dist_selftest --batch 16 # two ranks, 8 samples each
//   mpirun -np 2 --oversubscribe build/dist_selftest --zero     # the same with ZeRO-1
//   mpirun -np 2 --oversubscribe build/dist_selftest collectives
//
// Rank 0 prints one line per update, "step <n> loss <global mean loss>" (plus one mean per
// task with --tasks 2), the numbers the test compares between runs. Options:
//   --steps N --batch G (global micro-batch per task) --accum K --tasks T --hidden H
//   --depth D --lr X --clip X (0: off) --zero --bucket-bytes B --placement "A:0;B:1"
//   --save-at S --ckpt FILE --resume FILE --timeout SECONDS (collective watchdog)
//   --fail-rank R --fail-step S --fail-mode throw|exit|kill|hang   (failure injection)
#include <cstdio>
#include <cstring>
#include <string>

#include "runtime/blas.h"
#include "tools/dist_mlp.h"

using namespace mm;

namespace {

double expected_value(int rank, int64_t k) { return double((rank + 1) * (k % 97 + 1)); }

Tensor filled(int64_t n, DType dt, int rank, int64_t k0 = 0) {
  Tensor t = Tensor::empty({n}, dt);
  for (int64_t k = 0; k < n; ++k) store_from_double(t.raw_data(), dt, k, expected_value(rank, k0 + k));
  return t;
}

void expect(const Tensor& t, int64_t k, double want, const std::string& what) {
  const double got = load_as_double(t.raw_data(), t.dtype(), k);
  MM_CHECK(got == want, "collectives check: ", what, " ", dtype_name(t.dtype()), " element ", k, " is ", got,
           ", expected ", want);
}

// Every collective on odd, empty and large buffers against closed forms.
int check_collectives(dist::Comm& w) {
  const int W = w.size(), r = w.rank();
  const double tri = W * (W + 1) / 2.0;  // sum over ranks of (rank + 1)
  int checks = 0;
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(65537)}) {
    for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
      const std::string sz = cat(" n=", n);
      for (dist::Op op : {dist::Op::sum, dist::Op::max, dist::Op::min, dist::Op::avg}) {
        if (op == dist::Op::avg && !is_floating(dt)) continue;
        Tensor t = filled(n, dt, r);
        w.all_reduce(t, op);
        const double f = op == dist::Op::sum ? tri : op == dist::Op::max ? W : op == dist::Op::min ? 1 : tri / W;
        for (int64_t k = 0; k < n; ++k) expect(t, k, f * double(k % 97 + 1), cat("all_reduce ", dist::op_name(op), sz));
        ++checks;
      }
      Tensor b = filled(n, dt, r);
      w.broadcast(b, W - 1);
      for (int64_t k = 0; k < n; ++k) expect(b, k, expected_value(W - 1, k), "broadcast" + sz);
      Tensor g = w.all_gather(filled(n, dt, r));
      MM_CHECK(g.numel() == W * n, "all_gather: ", g.shape());
      for (int q = 0; q < W; ++q)
        for (int64_t k = 0; k < n; ++k) expect(g, q * n + k, expected_value(q, k), "all_gather" + sz);
      Tensor rs = w.reduce_scatter(filled(W * n, dt, r));
      for (int64_t k = 0; k < n; ++k) expect(rs, k, tri * double((r * n + k) % 97 + 1), "reduce_scatter" + sz);
      Tensor ga = w.gather(filled(n, dt, r), 0);
      if (r == 0)
        for (int q = 0; q < W; ++q)
          for (int64_t k = 0; k < n; ++k) expect(ga, q * n + k, expected_value(q, k), "gather" + sz);
      checks += 4;
    }
  }

  {  // one big odd buffer (4 MB), the size of a real gradient bucket
    const int64_t n = 1000003;
    Tensor t = Tensor::empty({n});
    float* p = t.data<float>();
    for (int64_t k = 0; k < n; ++k) p[k] = float(expected_value(r, k));
    w.all_reduce(t, dist::Op::sum);
    for (int64_t k = 0; k < n; ++k)
      MM_CHECK(p[k] == float(tri * double(k % 97 + 1)), "collectives check: all_reduce sum n=", n, " element ", k,
               " is ", p[k]);
    ++checks;
  }

  // Bucketed gradient sync: odd and empty parameters, 16-byte buckets (so most parameters
  // get a bucket of their own), gradients present on all / some / no ranks.
  std::vector<Tensor> ps;
  for (int64_t n : {3, 1, 0, 1000, 5}) ps.push_back(Tensor::zeros({n}).set_requires_grad(true));
  const std::vector<int> present = {W, 1, W, W, 0};  // gradient on ranks < present[i]
  for (size_t i = 0; i < ps.size(); ++i)
    if (r < present[i]) ps[i].impl()->grad = filled(ps[i].numel(), DType::f32, r).impl_ptr();
  GradSync sync(w, ps, {.bucket_bytes = 16});
  const int64_t global = sync.reduce(r + 1);
  MM_CHECK(global == int64_t(tri), "GradSync: global sample count ", global, ", expected ", tri);
  for (size_t i = 0; i < ps.size(); ++i) {
    Tensor g = ps[i].grad();
    MM_CHECK(g.defined() == (present[i] > 0), "GradSync: parameter ", i, " gradient defined=", g.defined());
    if (!g.defined()) continue;
    double ranks_sum = 0;
    for (int q = 0; q < present[i]; ++q) ranks_sum += q + 1;
    for (int64_t k = 0; k < g.numel(); ++k) {
      const double want = float(ranks_sum * double(k % 97 + 1)) * float(1.0 / tri);
      MM_CHECK(std::fabs(g.data<float>()[k] - want) <= 1e-6 * std::fabs(want), "GradSync: parameter ", i,
               " element ", k, " is ", g.data<float>()[k], ", expected ", want);
    }
  }
  checks += int(ps.size());
  std::vector<double> v = w.all_reduce(std::vector<double>{double(r), 1.0}, dist::Op::sum);
  MM_CHECK(v[0] == W * (W - 1) / 2.0 && v[1] == W, "all_reduce of doubles: ", v[0], " ", v[1]);
  if (r == 0) std::printf("collectives ok: %d checks on %d ranks\n", checks + 1, W);
  return 0;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "dist_selftest: %s\nsee the comment at the top of tools/dist_selftest.cpp\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  mm::ensure_blas_kernels(argv);
  distmlp::Config c;
  std::string mode = "train";
  double timeout = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "collectives" || a == "train") mode = a;
    else if (a == "--steps") c.steps = std::stoi(next());
    else if (a == "--batch") c.global_batch = std::stoll(next());
    else if (a == "--accum") c.accum = std::stoi(next());
    else if (a == "--tasks") c.tasks = std::stoi(next());
    else if (a == "--hidden") c.hidden = std::stoi(next());
    else if (a == "--depth") c.depth = std::stoi(next());
    else if (a == "--lr") c.lr = std::stod(next());
    else if (a == "--clip") c.clip = std::stod(next());
    else if (a == "--zero") c.zero = true;
    else if (a == "--bucket-bytes") c.bucket_bytes = std::stoll(next());
    else if (a == "--placement") c.placement = next();
    else if (a == "--save-at") c.save_at = std::stoi(next());
    else if (a == "--ckpt") c.ckpt = next();
    else if (a == "--resume") c.resume = next();
    else if (a == "--timeout") timeout = std::stod(next());
    else if (a == "--fail-rank") c.fail_rank = std::stoi(next());
    else if (a == "--fail-step") c.fail_step = std::stoi(next());
    else if (a == "--fail-mode") c.fail_mode = next();
    else usage(("unknown argument " + a).c_str());
  }
  if (c.tasks < 1 || c.tasks > 4) usage("--tasks must be 1..4");
  if (c.save_at > 0 && c.ckpt.empty()) usage("--save-at needs --ckpt");

  return dist::guarded([&] {
    dist::Session session({.timeout_s = timeout});
    dist::Comm& world = dist::world();
    if (mode == "collectives") return check_collectives(world);
    auto say = [&](const std::string& s) {
      if (world.is_main()) std::printf("# %s\n", s.c_str());
    };
    const distmlp::Timing t = distmlp::train(world, c, [&](const distmlp::StepLog& l) {
      if (!world.is_main()) return;
      std::printf("step %d loss %.9g", l.step, l.loss);
      if (c.tasks > 1)
        for (int k = 0; k < c.tasks; ++k) std::printf(" %s %.9g", distmlp::task_name(k), l.task_loss[size_t(k)]);
      std::printf("\n");
      std::fflush(stdout);
    }, say);
    say(cat("steps ", t.steps, " in ", t.total_s, " s, gradient communication ", t.comm_s, " s"));
    return 0;
  });
}
