// The kernel study folder (cuda/study/): every numbered version of every studied kernel
// against its CPU reference, under the emulator, through the same run_checks() that
// `make study` runs (so `make test` covers them). Each check poisons the output with NaNs
// first, so a version that skips an element fails.
//
// The study files are .cu sources with a main(); they are included here with that main()
// left out. In the CUDA=1 build (real GPU, no emulator) they run from `make study-gpu`
// instead, so this file compiles to nothing there.
#if !defined(MM_CUDA_REAL)
#include <doctest/doctest.h>

#define MM_STUDY_NO_MAIN 1
#include "cuda/study/attention.cu"
#include "cuda/study/crossentropy.cu"
#include "cuda/study/layernorm.cu"
#include "cuda/study/matmul_bias_gelu.cu"
#include "cuda/study/softmax.cu"

namespace {

// Checks print failures only while a test runs.
struct Quiet {
  Quiet() { mm::study::g_verbose = false; }
  ~Quiet() { mm::study::g_verbose = true; }
};

}  // namespace

TEST_SUITE("cuda_study") {
  TEST_CASE("study softmax: v1..v4 match the CPU reference") {
    Quiet q;
    CHECK(mm::study::softmax::run_checks());
  }
  TEST_CASE("study layernorm: v1..v4 match the CPU reference") {
    Quiet q;
    CHECK(mm::study::layernorm::run_checks());
  }
  TEST_CASE("study cross-entropy: v1..v4 match the CPU reference") {
    Quiet q;
    CHECK(mm::study::crossentropy::run_checks());
  }
  TEST_CASE("study attention: v1..v4 match the CPU reference") {
    Quiet q;
    CHECK(mm::study::attention::run_checks());
  }
  TEST_CASE("study matmul + bias + GELU: v1..v4 match the CPU reference") {
    Quiet q;
    CHECK(mm::study::matmul_bias_gelu::run_checks());
  }
  TEST_CASE("study harness: a wrong result fails the comparison") {
    Quiet q;
    const std::vector<double> ref = {1.0, 2.0, 3.0};
    CHECK(mm::study::check_close("exact", {1.f, 2.f, 3.f}, ref, 0, 1e-6));
    CHECK_FALSE(mm::study::check_close("(expected to fail) off by 1e-3", {1.f, 2.001f, 3.f}, ref, 1e-5, 1e-5));
    CHECK_FALSE(mm::study::check_close("(expected to fail) NaN", {1.f, NAN, 3.f}, ref, 1e-5, 1e-5));
    CHECK_FALSE(mm::study::check_close("(expected to fail) short", {1.f, 2.f}, ref, 1e-5, 1e-5));
  }
}
#endif
