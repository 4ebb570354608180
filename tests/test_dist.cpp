// Distribution: the world-of-one semantics, gradient bucketing, ZeRO-1 and task placement in
// process, then real multi-process runs of build/dist_selftest under mpirun (MPI builds).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/data_parallel.h"
#include "autograd/node.h"
#include "autograd/optim.h"
#include "autograd/zero.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "runtime/dist.h"
#include "tasks/placement.h"
#include "test_util.h"

using namespace mm;

TEST_SUITE("dist") {

TEST_CASE("a world of one: every collective is the identity, empty and odd buffers too") {
  dist::Comm& w = dist::world();  // the test binary is not launched by mpirun
  CHECK(w.size() == 1);
  CHECK(w.rank() == 0);
  CHECK(w.is_main());
  CHECK(w.where().find("rank 0/1") == 0);
  for (int64_t n : {0, 1, 7}) {
    Tensor t = test::random({n}, 1);
    const std::vector<double> before = t.to_vector();
    for (dist::Op op : {dist::Op::sum, dist::Op::avg, dist::Op::max, dist::Op::min}) {
      w.all_reduce(t, op);
      test::check_close(t, before, 0, 0, cat("all_reduce ", dist::op_name(op), " n=", n));
    }
    w.broadcast(t, 0);
    test::check_close(t, before, 0, 0, "broadcast");
    Tensor g = w.all_gather(t);
    CHECK(g.shape() == Shape{1, n});
    test::check_close(g, before, 0, 0, "all_gather");
    Tensor rs = w.reduce_scatter(t);
    CHECK(rs.shape() == Shape{n});
    test::check_close(rs, before, 0, 0, "reduce_scatter");
    Tensor ga = w.gather(t, 0);
    CHECK(ga.shape() == Shape{1, n});
  }
  CHECK(w.all_reduce(2.5) == 2.5);
  w.barrier();
}

TEST_CASE("collectives name what is wrong") {
  dist::Comm& w = dist::world();
  Tensor h = Tensor::zeros({4}, DType::bf16);
  test::check_throws_with([&] { w.all_reduce(h); }, {"all_reduce", "bf16"});
  Tensor i = Tensor::zeros({4}, DType::i64);
  test::check_throws_with([&] { w.all_reduce(i, dist::Op::avg); }, {"avg", "i64"});
  Tensor nc = test::random({3, 4}, 2).as_strided({4, 3}, {1, 4}, 0);
  test::check_throws_with([&] { w.all_reduce(nc); }, {"contiguous", "[4, 3]"});
  test::check_throws_with([&] { w.broadcast(nc, 0); }, {"broadcast"});
  Tensor t = Tensor::zeros({4});
  test::check_throws_with([&] { w.broadcast(t, 1); }, {"root 1"});
}

TEST_CASE("shard_range splits n items into contiguous, balanced blocks") {
  for (int world : {1, 2, 3, 8})
    for (int64_t n : {0, 1, 7, 16, 100}) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        dist::Range s = dist::shard_range(n, r, world);
        CHECK(s.begin == next);
        CHECK((s.size() == n / world || s.size() == n / world + 1));
        next = s.end;
      }
      CHECK(next == n);
    }
  CHECK(dist::shard_range(7, 0, 2).size() == 4);
  test::check_throws_with([] { dist::shard_range(4, 2, 2); }, {"rank 2 of 2"});
}

TEST_CASE("rank generators: rank 0 draws what one process draws, other ranks draw elsewhere") {
  Generator g0 = rank_generator(7, 0), g1 = rank_generator(7, 1), one(7);
  Tensor a = randn({16}, g0), b = randn({16}, one), c = randn({16}, g1);
  test::check_close(a, b, 0, 0, "rank 0");
  CHECK(a.to_vector() != c.to_vector());
  CHECK(g1.offset() == (uint64_t(1) << 40) + 1);
}

// y = sum((x W^T + b)^2) on a tiny problem, gradients on W and b.
static void tiny_backward(const Tensor& w, const Tensor& b, uint64_t seed, int64_t rows) {
  Tensor x = test::random({rows, w.size(1)}, seed);
  Tensor y = linear(x, w, b);
  autograd::backward(sum(mul(y, y)));
}

TEST_CASE("GradSync divides by the global sample count and keeps undefined gradients undefined") {
  Tensor w = test::random({5, 3}, 3).set_requires_grad(true);
  Tensor b = test::random({5}, 4).set_requires_grad(true);
  Tensor unused = test::random({2}, 5).set_requires_grad(true);
  GradSync sync(dist::world(), {w, b, unused}, {.bucket_bytes = 40});  // w: 60 bytes, alone
  CHECK(sync.num_buckets() == 2);
  tiny_backward(w, b, 6, 4);
  const std::vector<double> gw = w.grad().to_vector(), gb = b.grad().to_vector();
  CHECK(sync.reduce(4) == 4);
  std::vector<double> want_w, want_b;
  for (double v : gw) want_w.push_back(v / 4);
  for (double v : gb) want_b.push_back(v / 4);
  test::check_close(w.grad(), want_w, 1e-7, 1e-6, "w");
  test::check_close(b.grad(), want_b, 1e-7, 1e-6, "b");
  CHECK(w.grad().shape() == w.shape());
  CHECK_FALSE(unused.grad().defined());
  test::check_throws_with([&] { sync.reduce(0); }, {"no samples"});
}

TEST_CASE("ZeRO-1 on one rank steps exactly like GradSync + AdamW + clipping, and shares AdamW's state format") {
  auto make = [](uint64_t s) { return test::random({6, 4}, s).set_requires_grad(true); };
  Tensor w1 = make(10), b1 = test::random({6}, 11).set_requires_grad(true);
  Tensor w2 = make(10), b2 = test::random({6}, 11).set_requires_grad(true);
  AdamW ref({{{w1}, 0.1}, {{b1}, 0.0}}, {.lr = 0.05});
  GradSync sync(dist::world(), {w1, b1});
  ZeroAdamW zero(dist::world(), {{{w2}, 0.1}, {{b2}, 0.0}}, {.lr = 0.05}, {.max_grad_norm = 0.5});
  for (int step = 0; step < 4; ++step) {
    ref.zero_grad();
    zero.zero_grad();
    tiny_backward(w1, b1, 20 + step, 3);
    tiny_backward(w2, b2, 20 + step, 3);
    sync.reduce(3);
    clip_grad_norm({w1, b1}, 0.5);
    ref.step();
    CHECK(zero.step(3) == 3);
    test::check_close(w2, w1, 0, 0, cat("w after step ", step));
    test::check_close(b2, b1, 0, 0, cat("b after step ", step));
  }
  CHECK(zero.last_grad_norm() > 0.5);  // clipping was active
  // The states are interchangeable.
  auto zs = zero.state(), rs = ref.state();
  REQUIRE(zs.size() == rs.size());
  for (auto& [k, v] : rs) test::check_close(zs.at(k), v, 0, 0, k);
  ZeroAdamW back(dist::world(), {{{w2}, 0.1}, {{b2}, 0.0}}, {.lr = 0.05});
  back.load_state(rs);
  CHECK(back.steps() == 4);
  for (auto& [k, v] : back.state()) test::check_close(v, rs.at(k), 0, 0, "reloaded " + k);
  const auto m = back.memory();
  CHECK(m.optimizer_state == m.unsharded_state);  // one rank holds everything
  CHECK(m.optimizer_state == 2 * 30 * 4);
  test::check_throws_with([&] { back.load_state({{"step", Tensor::scalar(1, DType::i64)}}); }, {"exp_avg.0"});
}

TEST_CASE("ZeroAdamW needs one dtype for its flat space") {
  Tensor a = Tensor::zeros({2}).set_requires_grad(true);
  Tensor b = Tensor::zeros({2}, DType::f64).set_requires_grad(true);
  test::check_throws_with([&] { ZeroAdamW z(dist::world(), {{{a, b}, 0.0}}, {}); }, {"parameter 1", "f64"});
}

TEST_CASE("MetricAverager sums and counts named metrics") {
  MetricAverager m({"loss", "acc"});
  m.add("loss", 6.0, 3);
  m.add("loss", 2.0, 1);
  m.add("acc", 1.0);
  auto r = m.reduce(dist::world());
  CHECK(r["loss"].mean() == 2.0);
  CHECK(r["acc"].count == 1.0);
  CHECK(m.reduce(dist::world())["loss"].count == 0.0);  // cleared
  test::check_throws_with([&] { m.add("bleu", 1.0); }, {"unknown metric 'bleu'"});
}

TEST_CASE("task placement: parse, balance, shard, and errors that name the spec") {
  const std::vector<std::string> names{"caption", "vqa", "asr"};
  TaskPlacement p = TaskPlacement::parse("caption:0-1; vqa:2,3", names, 4);
  CHECK(p.ranks(0) == std::vector<int>{0, 1});
  CHECK(p.ranks(1) == std::vector<int>{2, 3});
  CHECK(p.ranks(2) == std::vector<int>{0, 1, 2, 3});  // not named: everywhere
  CHECK(p.tasks_on(2) == std::vector<int>{1, 2});
  CHECK_FALSE(p.runs(0, 3));
  CHECK(p.shard(0, 1, 9).begin == 5);
  CHECK(p.shard(0, 1, 9).end == 9);
  CHECK(p.shard(0, 3, 9).size() == 0);
  CHECK(p.str(names) == "caption:0-1;vqa:2-3;asr:0-3");
  CHECK(TaskPlacement::parse(p.str(names), names, 4).str(names) == p.str(names));
  CHECK(TaskPlacement::parse("", names, 2).str(names) == "caption:0-1;vqa:0-1;asr:0-1");

  test::check_throws_with([&] { TaskPlacement::parse("ocr:0", names, 4); }, {"no task named 'ocr'"});
  test::check_throws_with([&] { TaskPlacement::parse("caption:4", names, 4); }, {"rank 4 does not exist"});
  test::check_throws_with([&] { TaskPlacement::parse("caption", names, 4); }, {"task:ranks"});
  test::check_throws_with([&] { TaskPlacement::parse("caption:0;vqa:0;asr:0-1", names, 4); }, {"rank 2 runs no task"});
  test::check_throws_with([&] { TaskPlacement::parse("caption:0;caption:1", names, 2); }, {"placed twice"});
  test::check_throws_with([&] { TaskPlacement::parse("caption:x", names, 2); }, {"'x' is not a rank"});

  // 8 ranks, costs 3:1: 6 and 2 ranks.
  TaskPlacement b = TaskPlacement::balanced({3.0, 1.0}, 8);
  CHECK(b.ranks(0).size() == 6);
  CHECK(b.ranks(1) == std::vector<int>{6, 7});
  // More tasks than ranks: longest first onto the least loaded rank.
  TaskPlacement c = TaskPlacement::balanced({5.0, 4.0, 3.0, 2.0}, 2);
  CHECK(c.ranks(0) == std::vector<int>{0});
  CHECK(c.ranks(1) == std::vector<int>{1});
  CHECK(c.ranks(2) == std::vector<int>{1});
  CHECK(c.ranks(3) == std::vector<int>{0});
}

// ---- real processes -------------------------------------------------------------------------
namespace {

struct Run {
  int rc = -1;
  std::string out;
  double seconds = 0;
};

Run run(const std::string& cmd) {
  Run r;
  const auto t0 = std::chrono::steady_clock::now();
  // A bound on every run: a hang fails the test instead of the suite.
  FILE* f = popen(("timeout -k 5 60 " + cmd + " 2>&1").c_str(), "r");
  REQUIRE_MESSAGE(f, "cannot start: ", cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  const int st = pclose(f);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// "step N loss L [A a B b]" lines -> {N: [L, a, b]}.
std::map<int, std::vector<double>> losses(const Run& r) {
  std::map<int, std::vector<double>> out;
  std::istringstream is(r.out);
  std::string line;
  while (std::getline(is, line)) {
    std::istringstream ls(line);
    std::string word, name;
    int step = 0;
    double v = 0;
    if (!(ls >> word >> step) || word != "step") continue;
    std::vector<double>& vals = out[step];
    while (ls >> name >> v) vals.push_back(v);
  }
  return out;
}

void check_same_losses(const Run& a, const Run& b, const std::string& what, int first_step = 1) {
  REQUIRE_MESSAGE(a.rc == 0, what, ": the first run failed:\n", a.out);
  REQUIRE_MESSAGE(b.rc == 0, what, ": the second run failed:\n", b.out);
  auto la = losses(a), lb = losses(b);
  int compared = 0;
  for (auto& [step, vb] : lb) {
    if (step < first_step) continue;
    REQUIRE_MESSAGE(la.count(step), what, ": step ", step, " missing from\n", a.out);
    const auto& va = la[step];
    REQUIRE(va.size() == vb.size());
    for (size_t i = 0; i < va.size(); ++i)
      CHECK_MESSAGE(std::fabs(va[i] - vb[i]) <= 1e-5 * std::fabs(vb[i]), what, ": step ", step, " value ", i, ": ",
                    va[i], " vs ", vb[i]);
    ++compared;
  }
  CHECK_MESSAGE(compared >= 10, what, ": compared only ", compared, " steps\n", b.out);
}

const std::string kSelftest = "build/dist_selftest";
const std::string kMpirun = "mpirun -np 2 --oversubscribe --allow-run-as-root ";

bool have_selftest() {
  if (std::FILE* f = std::fopen(kSelftest.c_str(), "r")) {
    std::fclose(f);
    return true;
  }
  FAIL_CHECK(kSelftest, " is missing: build it with `make build/dist_selftest` (make test-dist builds it and runs this suite)");
  return false;
}

// Multi-process runs need MPI in the build and mpirun on the PATH; an MPI build without
// mpirun is a broken install and fails, a build without MPI skips them with a message.
bool mpi_ready() {
#if MM_HAVE_MPI
  const bool found = std::system("command -v mpirun > /dev/null 2>&1") == 0;
  if (!found) FAIL_CHECK("this build has MPI (MM_HAVE_MPI) but mpirun is not on the PATH: install openmpi-bin, or build with make MPI=0");
  return found && have_selftest();
#else
  MESSAGE("built without MPI (MPI=0): multi-process runs skipped");
  return false;
#endif
}

std::string tmp_path(const std::string& name) {
  const char* d = std::getenv("TMPDIR");
  return std::string(d ? d : "/tmp") + "/mm_test_dist_" + std::to_string(getpid()) + "_" + name;
}

}  // namespace

TEST_CASE("one process trains and resumes from its own checkpoint (no MPI needed)") {
  if (!have_selftest()) return;
  const std::string ck = tmp_path("single.safetensors");
  Run full = run(kSelftest + " --batch 16 --save-at 10 --ckpt " + ck);
  Run resumed = run(kSelftest + " --batch 16 --resume " + ck);
  check_same_losses(full, resumed, "1 rank resumed at step 10", 11);
  CHECK(losses(full).size() == 20);
  std::remove(ck.c_str());
}

TEST_CASE("2 ranks train like 1 rank with twice the micro-batch, with and without ZeRO-1, and resume on 1 rank") {
  if (!mpi_ready()) return;
  const std::string ck_dp = tmp_path("dp.safetensors"), ck_zero = tmp_path("zero.safetensors");
  Run one = run(kSelftest + " --batch 16");
  Run dp = run(kMpirun + kSelftest + " --batch 16 --bucket-bytes 512 --save-at 10 --ckpt " + ck_dp);
  Run zero = run(kMpirun + kSelftest + " --batch 16 --zero --save-at 10 --ckpt " + ck_zero);
  check_same_losses(dp, one, "2 ranks x 8 vs 1 rank x 16");
  check_same_losses(zero, one, "2 ranks ZeRO-1 vs 1 rank");
  CHECK(dp.out.find("world 2") != std::string::npos);
  CHECK(zero.out.find("unsharded") != std::string::npos);  // memory per rank reported
  // A checkpoint of 2 ranks resumes on 1 rank, ZeRO's sharded state with plain AdamW too.
  Run dp_on_one = run(kSelftest + " --batch 16 --resume " + ck_dp);
  Run zero_on_one = run(kSelftest + " --batch 16 --resume " + ck_zero);
  check_same_losses(dp_on_one, dp, "2-rank checkpoint resumed on 1 rank", 11);
  check_same_losses(zero_on_one, zero, "2-rank ZeRO-1 checkpoint resumed on 1 rank without ZeRO", 11);
  CHECK(losses(dp_on_one).begin()->first == 11);
  std::remove(ck_dp.c_str());
  std::remove(ck_zero.c_str());
}

TEST_CASE("task placement: each rank computes one task, one all-reduce per update, exact") {
  if (!mpi_ready()) return;
  // 13 samples per task micro-batch, 2 micro-batches per update: odd sizes everywhere.
  const std::string args = " --tasks 2 --batch 13 --accum 2";
  Run one = run(kSelftest + args);
  Run placed = run(kMpirun + kSelftest + args + " --placement 'A:0;B:1' --zero");
  check_same_losses(placed, one, "tasks A on rank 0, B on rank 1 vs both on 1 rank");
  CHECK(placed.out.find("placement A:0;B:1") != std::string::npos);
}

TEST_CASE("collectives over MPI: odd, empty and 4 MB buffers, every op") {
  if (!mpi_ready()) return;
  Run r = run(kMpirun + kSelftest + " collectives");
  CHECK_MESSAGE(r.rc == 0, r.out);
  CHECK_MESSAGE(r.out.find("collectives ok") != std::string::npos, r.out);
}

TEST_CASE("a rank that throws, dies or hangs stops the whole job within seconds, with a message") {
  if (!mpi_ready()) return;
  const std::string fail = kMpirun + kSelftest + " --steps 1000 --fail-rank 1 --fail-step 5 --timeout 2 --fail-mode ";
  Run thrown = run(fail + "throw");
  CHECK(thrown.rc != 0);
  CHECK(thrown.seconds < 20);
  CHECK_MESSAGE(thrown.out.find("[rank 1/2") != std::string::npos, thrown.out);
  CHECK_MESSAGE(thrown.out.find("injected failure at step 5") != std::string::npos, thrown.out);

  Run killed = run(fail + "kill");
  CHECK(killed.rc != 0);
  CHECK(killed.seconds < 20);
  CHECK_MESSAGE(killed.out.find("rank 1") != std::string::npos, killed.out);  // mpirun names it

  Run hung = run(fail + "hang");  // rank 0's watchdog gives up after 2 s
  CHECK(hung.rc != 0);
  CHECK(hung.seconds < 20);
  CHECK_MESSAGE(hung.out.find("waited") != std::string::npos, hung.out);
  CHECK_MESSAGE(hung.out.find("[rank 0/2") != std::string::npos, hung.out);
  CHECK(losses(hung).size() == 4);  // steps 1-4 ran, nothing after the hang
}

}  // TEST_SUITE
