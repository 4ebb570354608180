// NCCL collectives for CUDA tensors: the device half of runtime/dist.h (as the CUDA backend is
// the device half of ops/backend.h). Built only with MM_HAVE_NCCL (and MM_CUDA_REAL, the real
// CUDA runtime): the default CPU build compiles this to nothing.
//
//   dist::Comm& world = dist::init();
//   cuda::init_nccl(world, world.local_rank());   // one GPU per rank; collective
//   world.all_reduce(grads_on_gpu);               // now goes through NCCL
//
// The NCCL unique id is made on rank 0 and broadcast over MPI. Collectives run on a
// communication stream of their own: each waits for the work already queued on the
// calling thread's current stream (cuda/stream.h) and the current stream waits for it, so
// no host synchronisation is needed and compute can overlap with a collective issued from
// another stream. synchronize() bounds the wait by the communicator's timeout: a peer that
// died turns into ncclCommAbort and an mm::Error instead of a hang.
#pragma once
#if defined(MM_HAVE_NCCL)
#include "runtime/dist.h"

namespace mm::cuda {

// Creates the NCCL communicator over every rank of `comm` on GPU `device` and installs it
// as comm's device collectives. Every rank calls it.
void init_nccl(dist::Comm& comm, int device);

}  // namespace mm::cuda
#endif
