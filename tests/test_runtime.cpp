// Tensor metadata and views, allocator reuse, thread pool, Philox, half-precision
// conversions, safetensors (including a file written by the Python reference package).
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>

#include "ops/creation.h"
#include "runtime/blas.h"
#include "runtime/parallel.h"
#include "runtime/philox.h"
#include "runtime/safetensors.h"
#include "test_util.h"

using namespace mm;

TEST_SUITE("runtime") {

TEST_CASE("tensor metadata, strides and views share storage") {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.dim() == 2);
  CHECK(t.numel() == 6);
  CHECK(t.strides() == Shape{3, 1});
  CHECK(t.is_contiguous());
  Tensor v = t.as_strided({3, 2}, {1, 3}, 0);  // transpose
  CHECK_FALSE(v.is_contiguous());
  CHECK(v.at({2, 1}) == 6);
  CHECK(v.to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
  t.data<float>()[5] = 60;
  CHECK(v.at({2, 1}) == 60);  // same storage
  CHECK(t.size(-1) == 3);
  test::check_throws_with([&] { t.size(2); }, {"dimension 2", "[2, 3]"});
  test::check_throws_with([&] { t.as_strided({4, 2}, {2, 1}, 0); }, {"as_strided", "exceeds storage"});
  test::check_throws_with([&] { t.item(); }, {"item", "[2, 3]"});
  CHECK(Tensor::scalar(2.5).item() == 2.5);
  CHECK(Tensor::zeros({0, 3}).numel() == 0);
}

TEST_CASE("devices parse and unknown ones are rejected") {
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  test::check_throws_with([] { Device::parse("gpu"); }, {"unknown device 'gpu'"});
  test::check_throws_with([] { Device::parse("cuda:x"); }, {"cuda:x"});
}

TEST_CASE("the host allocator reuses freed blocks and tracks the peak") {
  Allocator& a = cpu_allocator();
  a.reset_peak();
  auto before = a.stats();
  void* p = nullptr;
  {
    Tensor t = Tensor::empty({1000, 1000});
    p = t.raw_data();
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    CHECK(a.stats().allocated >= before.allocated + 4000000);
  }
  auto mid = a.stats();
  CHECK(mid.peak_allocated >= before.allocated + 4000000);
  Tensor t2 = Tensor::empty({999, 1001});  // same size class -> the same block comes back
  CHECK(t2.raw_data() == p);
  CHECK(a.stats().n_reused > mid.n_reused);
  // Size classes waste at most 25%.
  for (size_t n : {1ul, 100ul, 257ul, 1000ul, 4097ul, 1000001ul}) {
    size_t c = CachingHostAllocator::size_class(n);
    CHECK(c >= n);
    CHECK(double(c) <= 1.25 * double(n) + 64);
  }
}

TEST_CASE("parallel_for covers every index exactly once") {
  for (int64_t n : {1, 7, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    parallel_for(n, 10, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    bool all_once = true;
    for (auto& h : hits) all_once = all_once && h.load() == 1;
    CHECK(all_once);
  }
  CHECK(num_threads() >= 1);
  // A parallel_for inside a parallel_for (a kernel calling a kernel) runs inline.
  std::atomic<int64_t> total{0};
  parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(1000, 10, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  CHECK(total.load() == 8000);
}

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  // From Random123's kat_vectors (philox4x32_10).
  Philox4 r = philox4x32(Philox4{{0, 0, 0, 0}}, 0, 0);
  CHECK(r.x[0] == 0x6627e8d5u);
  CHECK(r.x[1] == 0xe169c58du);
  CHECK(r.x[2] == 0xbc57ac4cu);
  CHECK(r.x[3] == 0x9b00dbd8u);
  r = philox4x32(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(r.x[0] == 0x408f276du);
  CHECK(r.x[1] == 0x41c83b0eu);
  CHECK(r.x[2] == 0xa20bc7c6u);
  CHECK(r.x[3] == 0x6d5451fdu);
  r = philox4x32(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK(r.x[0] == 0xd16cfe09u);
  CHECK(r.x[1] == 0x94fdccebu);
  CHECK(r.x[2] == 0x5001e420u);
  CHECK(r.x[3] == 0x24126ea1u);
}

TEST_CASE("random tensors: same seed same numbers, right moments") {
  Generator g1(7), g2(7);
  Tensor a = randn({20000}, g1), b = randn({20000}, g2);
  CHECK(a.to_vector() == b.to_vector());
  Tensor c = randn({20000}, g1);  // next offset: different numbers
  CHECK(a.to_vector() != c.to_vector());
  auto v = a.to_vector();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  s = std::sqrt(s / double(v.size()));
  CHECK(std::fabs(m) < 0.03);
  CHECK(std::fabs(s - 1) < 0.03);
  Tensor u = rand({20000}, g1, 2.0, 3.0);
  auto uv = u.to_vector();
  CHECK(*std::min_element(uv.begin(), uv.end()) >= 2.0);
  CHECK(*std::max_element(uv.begin(), uv.end()) < 3.0);
}

TEST_CASE("bf16 and f16 conversions round to nearest even") {
  CHECK(f32_to_bf16_bits(1.0f) == 0x3F80);
  CHECK(bf16_bits_to_f32(0xC000) == -2.0f);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even mantissa (1.0) wins.
  CHECK(f32_to_bf16_bits(1.0f + 1.0f / 256) == 0x3F80);
  CHECK(f32_to_bf16_bits(1.0f + 3.0f / 256) == 0x3F82);
  CHECK(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(NAN))));
  CHECK(f32_to_f16_bits(1.0f) == 0x3C00);
  CHECK(f32_to_f16_bits(65504.0f) == 0x7BFF);
  CHECK(f32_to_f16_bits(65520.0f) == 0x7C00);  // rounds to inf
  CHECK(f32_to_f16_bits(1.0f + 1.0f / 2048) == 0x3C00);  // tie -> even
  CHECK(f16_bits_to_f32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f32_to_f16_bits(std::ldexp(1.0f, -24)) == 0x0001);
  // Every f16 value survives f16 -> f32 -> f16.
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_bits_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    if (f32_to_f16_bits(f) != h) ++bad;
  }
  CHECK(bad == 0);
  Tensor x = Tensor::from_vector({1.0, -2.5, 3.140625}, {3});
  Tensor xb = cast(x, DType::bf16);
  CHECK(cast(xb, DType::f32).to_vector() == std::vector<double>{1.0, -2.5, 3.140625});
}

static std::string tmp_dir() {
  char tmpl[] = "/tmp/mm_test_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  return tmpl;
}

TEST_CASE("safetensors: round trip of every dtype, views and metadata") {
  std::string dir = tmp_dir(), path = dir + "/t.safetensors";
  Generator g(3);
  Tensor a = randn({3, 4}, g);
  Tensor at = a.as_strided({4, 3}, {1, 4}, 0);  // a non-contiguous view is written in logical order
  std::map<std::string, Tensor> in = {
      {"a", a}, {"at", at}, {"d", cast(a, DType::f64)}, {"h", cast(a, DType::f16)}, {"b", cast(a, DType::bf16)},
      {"i", Tensor::arange(5)}, {"s", Tensor::scalar(3)}, {"e", Tensor::empty({0, 2})}};
  save_safetensors(path, in, {{"step", "12"}});
  SafeTensors st = load_safetensors(path);
  CHECK(st.metadata.at("step") == "12");
  REQUIRE(st.tensors.size() == in.size());
  for (auto& [name, t] : in) {
    CAPTURE(name);
    const Tensor& r = st.tensors.at(name);
    CHECK(r.shape() == t.shape());
    CHECK(r.dtype() == t.dtype());
    CHECK(r.to_vector() == t.to_vector());
  }
  // No temp file left behind.
  CHECK(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK) != 0);
}

TEST_CASE("safetensors: reads the file written by the Python reference package") {
  SafeTensors st = load_safetensors("tests/data/reference.safetensors");
  CHECK(st.metadata.at("producer") == "safetensors-python");
  auto& f32 = st.tensors.at("f32");
  CHECK(f32.dtype() == DType::f32);
  CHECK(f32.shape() == Shape{2, 3});
  CHECK(f32.to_vector() == std::vector<double>{-1, -0.5, 0, 0.5, 1, 1.5});
  CHECK(st.tensors.at("f64").to_vector() == std::vector<double>{1, 0.5, 1.0 / 3, 0.25});
  CHECK(st.tensors.at("f16").dtype() == DType::f16);
  CHECK(st.tensors.at("f16").to_vector() == std::vector<double>{1.5, -2.25, 65504});
  CHECK(st.tensors.at("bf16").dtype() == DType::bf16);
  CHECK(st.tensors.at("bf16").shape() == Shape{2, 2});
  CHECK(st.tensors.at("bf16").to_vector() == std::vector<double>{1, -2, 0.5, 3});
  auto i64 = st.tensors.at("i64").to_vector();
  CHECK(st.tensors.at("i64").dtype() == DType::i64);
  CHECK(int64_t(i64[4]) == 4 * 1000000007LL);
  CHECK(st.tensors.at("i32").to_vector() == std::vector<double>{-1, 0, 7, 2147483647});
  CHECK(st.tensors.at("u8").to_vector() == std::vector<double>{0, 1, 128, 255});
  CHECK(st.tensors.at("bool").dtype() == DType::boolean);
  CHECK(st.tensors.at("bool").to_vector() == std::vector<double>{1, 0, 1});
  CHECK(st.tensors.at("scalar").dim() == 0);
  CHECK(st.tensors.at("scalar").item() == 42);
}

TEST_CASE("safetensors: corrupt and truncated files give errors naming file and offset") {
  std::ifstream f("tests/data/reference.safetensors", std::ios::binary);
  std::string good((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(good.size() > 100);
  test::check_throws_with([&] { parse_safetensors(good.substr(0, 5), "x.st"); }, {"x.st", "too short"});
  test::check_throws_with([&] { parse_safetensors(good.substr(0, 40), "x.st"); }, {"x.st", "header length", "exceeds"});
  test::check_throws_with([&] { parse_safetensors(good.substr(0, good.size() - 3), "x.st"); },
                          {"x.st", "tensor '", "exceed", "truncated"});
  std::string bad_json = good;
  bad_json[8] = 'X';  // the header's opening brace
  test::check_throws_with([&] { parse_safetensors(bad_json, "x.st"); }, {"x.st", "JSON", "offset"});
  std::string bad_dtype = good;
  auto pos = bad_dtype.find("\"F32\"");
  REQUIRE(pos != std::string::npos);
  bad_dtype.replace(pos, 5, "\"Q32\"");
  test::check_throws_with([&] { parse_safetensors(bad_dtype, "x.st"); }, {"x.st", "unsupported dtype", "Q32"});
  test::check_throws_with([&] { load_safetensors("/nonexistent/dir/m.safetensors"); }, {"/nonexistent/dir/m.safetensors"});
}

TEST_CASE("atomic writes: a write that fails midway (disk full) leaves the previous file intact") {
  std::string dir = tmp_dir(), path = dir + "/keep.bin";
  write_file_atomic(path, "first version");
  test::check_throws_with([&] { write_file_atomic(dir + "/missing/x.bin", "y"); }, {"missing/x.bin"});
  // Simulate a full disk: a file-size limit makes write() fail with EFBIG after 1 KiB.
  struct rlimit old;
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  struct rlimit small = old;
  small.rlim_cur = 1024;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  bool threw = false;
  std::string msg;
  try {
    write_file_atomic(path, std::string(100000, 'x'));
  } catch (const Error& e) {
    threw = true;
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK(threw);
  CHECK(msg.find("keep.bin") != std::string::npos);
  CHECK(msg.find("untouched") != std::string::npos);
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(s == "first version");
  CHECK(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK) != 0);  // temp removed
}

TEST_CASE("BLAS: the test binary runs OpenBLAS's kernels for this CPU, not the SSE3 fallback") {
  // tests/main.cpp called ensure_blas_kernels(argv) before any test (runtime/blas.h).
  __builtin_cpu_init();
  const std::string k = blas_kernels();
  MESSAGE("OpenBLAS kernels: ", k);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) CHECK(k != "Prescott");
}

}  // TEST_SUITE
