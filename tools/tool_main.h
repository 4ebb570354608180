// The main() of every command-line tool: run, and turn an error into one line on stderr
// ("NAME: error: ...") and exit status 1, never an abort. First, the fast BLAS kernels
// (runtime/blas.h).
#pragma once
#include <cstdio>
#include <exception>

#include "runtime/blas.h"

namespace mm {

template <typename Run>
int tool_main(const char* name, int argc, char** argv, Run run) {
  ensure_blas_kernels(argv);  // before any work: it may re-execute the binary
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace mm
