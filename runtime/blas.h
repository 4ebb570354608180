// The BLAS library (OpenBLAS) as the rest of the code sees it: its thread count, and the
// kernels it runs.
//
// OpenBLAS picks its kernels once, when the library loads, from the CPU's family and model.
// A CPU newer than the library (Debian 12's OpenBLAS 0.3.21 on a 5th-generation Xeon,
// model 207) falls back to the SSE3 "Prescott" kernels: about 3x slower sgemm on a CPU
// that has AVX-512. Too late to change from inside the process, so every binary calls
// ensure_blas_kernels(argv) first thing in main(): when that fallback happened on a CPU
// with AVX2 and FMA it sets OPENBLAS_CORETYPE (SkylakeX with AVX-512, else Haswell) and
// re-executes itself, same pid and arguments. A user's own OPENBLAS_CORETYPE is left alone.
#pragma once
#include <string>

namespace mm {

void ensure_blas_kernels(char** argv);
// The kernel set OpenBLAS runs, e.g. "SkylakeX", "Haswell", "Zen", "Prescott".
std::string blas_kernels();
// OpenBLAS's own threads (our pool owns the cores; see runtime/parallel.h).
void set_blas_threads(int n);

}  // namespace mm
