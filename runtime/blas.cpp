#include "runtime/blas.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {
char* openblas_get_corename(void);
void openblas_set_num_threads(int);
}

namespace mm {

std::string blas_kernels() { return openblas_get_corename(); }

void set_blas_threads(int n) { openblas_set_num_threads(n); }

void ensure_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // chosen by the user, or by our first run
  if (std::strcmp(openblas_get_corename(), "Prescott") != 0) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;  // Prescott is right
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  setenv("OPENBLAS_CORETYPE", avx512 ? "SkylakeX" : "Haswell", 1);  // also stops a second re-exec
  std::fflush(nullptr);
  // The resolved path, not /proc/self/exe itself: the process keeps its name (ps, pkill).
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    execv(self, argv);
  }
  // Still here: exec failed (no /proc?). Run on with the slow kernels, and say so.
  std::fprintf(stderr, "warning: OpenBLAS runs its generic SSE3 kernels on this AVX2 CPU (re-exec failed: %s); "
                       "set OPENBLAS_CORETYPE=Haswell for about 3x faster matmuls\n", std::strerror(errno));
}

}  // namespace mm
