// NCCL collectives (see cuda/nccl.h). Compiled to nothing without MM_HAVE_NCCL.
#include "cuda/nccl.h"

#if defined(MM_HAVE_NCCL)
#include <nccl.h>

#include <chrono>
#include <memory>
#include <thread>

#include "cuda/cuda_error.h"
#include "cuda/stream.h"

namespace mm::cuda {
namespace {

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: case DType::boolean: return ncclUint8;
  }
  throw Error("nccl: unknown dtype");
}

ncclRedOp_t nccl_op(dist::Op op) {
  switch (op) {
    case dist::Op::sum: return ncclSum;
    case dist::Op::avg: return ncclAvg;
    case dist::Op::max: return ncclMax;
    case dist::Op::min: return ncclMin;
  }
  throw Error("nccl: unknown reduction");
}

class NcclCollectives final : public dist::DeviceCollectives {
 public:
  NcclCollectives(dist::Comm& comm, int device)
      : where_(comm.where()), device_(device), timeout_s_(comm.timeout_s()) {
    MM_CUDA_CHECK(cudaSetDevice(device), "nccl init on ", where_, ": GPU ", device);
    ncclUniqueId id{};
    if (comm.is_main()) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    comm.broadcast(&id, int64_t(sizeof id), DType::u8, 0);  // over MPI
    check(ncclCommInitRank(&comm_, comm.size(), id, comm.rank()), "ncclCommInitRank");
    stream_ = std::make_unique<Stream>();
    ready_ = std::make_unique<Event>(false);
    done_ = std::make_unique<Event>(false);
  }

  ~NcclCollectives() override {
    if (comm_) {
      (void)cudaStreamSynchronize(stream_->handle());
      (void)ncclCommDestroy(comm_);
    }
  }

  const char* name() const override { return "nccl"; }

  void all_reduce(void* buf, int64_t n, DType dt, dist::Op op) override {
    if (n == 0) return;
    before();
    check(ncclAllReduce(buf, buf, size_t(n), nccl_type(dt), nccl_op(op), comm_, stream_->handle()), "ncclAllReduce");
    after();
  }

  void broadcast(void* buf, int64_t n, DType dt, int root) override {
    if (n == 0) return;
    before();
    check(ncclBroadcast(buf, buf, size_t(n), nccl_type(dt), root, comm_, stream_->handle()), "ncclBroadcast");
    after();
  }

  void all_gather(const void* in, void* out, int64_t n, DType dt) override {
    if (n == 0) return;
    before();
    check(ncclAllGather(in, out, size_t(n), nccl_type(dt), comm_, stream_->handle()), "ncclAllGather");
    after();
  }

  void reduce_scatter(const void* in, void* out, int64_t n, DType dt, dist::Op op) override {
    if (n == 0) return;
    before();
    check(ncclReduceScatter(in, out, size_t(n), nccl_type(dt), nccl_op(op), comm_, stream_->handle()),
          "ncclReduceScatter");
    after();
  }

  // Polls instead of blocking so that a dead peer (NCCL would wait forever) becomes an
  // error after the communicator's timeout.
  void synchronize() override {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_->handle());
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) MM_CUDA_CHECK(q, "nccl synchronize on ", where_);
      ncclResult_t async = ncclSuccess;
      check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
      if (async != ncclSuccess && async != ncclInProgress) fail(async, "an asynchronous NCCL error");
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (timeout_s_ > 0 && waited > timeout_s_) {
        (void)ncclCommAbort(comm_);
        comm_ = nullptr;
        throw Error(cat("nccl: collectives on ", where_, " did not finish within ", timeout_s_,
                        " s (MM_DIST_TIMEOUT): a rank died or hangs; the communicator was aborted"));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  void check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess && r != ncclInProgress) fail(r, what);
  }

  [[noreturn]] void fail(ncclResult_t r, const char* what) {
    const char* last = comm_ ? ncclGetLastError(comm_) : "";
    throw Error(cat("nccl: ", what, " failed on ", where_, " (GPU ", device_, "): ", ncclGetErrorString(r),
                    last && *last ? cat(": ", last) : std::string()));
  }

  // The communication stream starts after what the caller's stream has queued...
  void before() {
    MM_CHECK(comm_, "nccl: the communicator of ", where_, " was aborted after an earlier failure");
    ready_->record(current_stream());
    wait(stream_->handle(), *ready_);
  }
  // ... and the caller's stream continues after the collective.
  void after() {
    done_->record(stream_->handle());
    wait(current_stream(), *done_);
  }

  std::string where_;
  int device_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<Event> ready_, done_;
};

}  // namespace

void init_nccl(dist::Comm& comm, int device) {
  comm.set_device_collectives(std::make_unique<NcclCollectives>(comm, device));
}

}  // namespace mm::cuda
#endif
