// The doctest runner for every tests/test_*.cpp. Run a subset with
//   build/run_tests -tc='*layer_norm*'      or      make test TEST_ARGS='-ts=ops'
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "runtime/blas.h"

int main(int argc, char** argv) {
  mm::ensure_blas_kernels(argv);  // the fast BLAS kernels (may re-execute the binary)
  doctest::Context context(argc, argv);
  return context.run();
}
