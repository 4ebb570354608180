// Distribution: one communicator over the processes that mpirun started.
//
//   int main(int argc, char** argv) {
//     return dist::guarded([&] {                 // an exception on any rank stops the job
//       dist::Session session;                   // MPI when launched by mpirun, else one rank
//       dist::Comm& world = dist::world();
//       world.all_reduce(t, dist::Op::avg);      // in place, same call on every rank
//       if (world.is_main()) save(...);
//       return 0;
//     });
//   }
//
// Ranks: rank() in [0, size()); local_rank() among the ranks on this host (the ranks that
// share memory, MPI_Comm_split_type), which picks the GPU of a rank.
// CPU tensors go through MPI, CUDA tensors through the DeviceCollectives installed by
// init_nccl (runtime/dist_nccl.h, built with MM_HAVE_NCCL): this file is the one dispatch
// point. Without MPI (built with `make MPI=0`, or a binary not launched by mpirun) the
// world has one rank and every collective is the identity (avg too), so single-process
// code takes the same path with no branches.
//
// Failure handling, so that no rank waits forever:
//  - MPI errors return (MPI_ERRORS_RETURN on our communicator) and throw mm::Error naming
//    the collective and the rank;
//  - guarded() catches an exception on any rank, prints it with the rank and host, and
//    calls MPI_Abort: mpirun stops every other rank;
//  - a watchdog thread ends a rank whose collective waited longer than the timeout (a peer
//    died, hangs, or took another code path) with a message and exit code 3; mpirun then
//    stops the job. The timeout is InitOptions::timeout_s, else $MM_DIST_TIMEOUT, else 600 s.
// A rank killed by a signal is noticed by mpirun itself, which stops the others.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/tensor.h"

namespace mm::dist {

enum class Op : uint8_t { sum, avg, max, min };
const char* op_name(Op op);

// Whether init() starts MPI: when the environment says mpirun launched us (auto), always
// (mpi: a singleton run of an MPI program), or never (single).
enum class Launch : uint8_t { auto_detect, mpi, single };

struct InitOptions {
  Launch launch = Launch::auto_detect;
  // Seconds a collective may wait for the other ranks before the watchdog ends this rank.
  // < 0: $MM_DIST_TIMEOUT or 600; 0: no watchdog.
  double timeout_s = -1;
  // Unless MM_NUM_THREADS / OMP_NUM_THREADS is set, give each rank an equal share of the
  // host's cores, so N ranks on one host do not run N full-size thread pools.
  bool share_cores = true;
};

// True when the environment of this process was set by mpirun / a PMIx launcher.
bool launched_by_mpirun();

// Collectives over device memory, on the device's communication stream, ordered after the
// work already queued on the device and before work queued after them. NCCL implements
// this (runtime/dist_nccl.cpp); counts are elements; reduce_scatter's `in` holds size()*n.
struct DeviceCollectives {
  virtual ~DeviceCollectives() = default;
  virtual const char* name() const = 0;
  virtual void all_reduce(void* buf, int64_t n, DType dt, Op op) = 0;
  virtual void broadcast(void* buf, int64_t n, DType dt, int root) = 0;
  virtual void all_gather(const void* in, void* out, int64_t n, DType dt) = 0;
  virtual void reduce_scatter(const void* in, void* out, int64_t n, DType dt, Op op) = 0;
  // Blocks the host until every collective issued so far has completed.
  virtual void synchronize() = 0;
};

class Watchdog;
struct MpiState;  // the MPI handles (runtime/dist.cpp), so this header needs no mpi.h

class Comm {
 public:
  Comm();  // a world of one
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  bool is_main() const { return rank_ == 0; }
  bool uses_mpi() const { return mpi_; }
  const std::string& host() const { return host_; }
  // "rank 1/4 (node07)": the prefix of every message about this rank.
  std::string where() const;
  double timeout_s() const { return timeout_s_; }

  // ---- tensor collectives: contiguous tensors, the same shapes and dtypes on all ranks ----
  // In place: t = op over ranks of t. avg: floating dtypes only.
  void all_reduce(Tensor& t, Op op = Op::sum);
  // t on every rank = t on root.
  void broadcast(Tensor& t, int root = 0);
  // [size(), ...in.shape]: every rank's `in`, in rank order.
  Tensor all_gather(const Tensor& in);
  // in [size() * n, ...] -> out [n, ...] on rank r = op over ranks of in's r-th block.
  Tensor reduce_scatter(const Tensor& in, Op op = Op::sum);
  // [size(), ...in.shape] on root; an undefined tensor elsewhere.
  Tensor gather(const Tensor& in, int root = 0);
  void barrier();

  // ---- the same on raw memory of tensors' dtypes (device memory for the device path) ----
  void all_reduce(void* buf, int64_t n, DType dt, Op op, Device dev = Device::cpu());
  void broadcast(void* buf, int64_t n, DType dt, int root, Device dev = Device::cpu());
  void all_gather(const void* in, void* out, int64_t n, DType dt, Device dev = Device::cpu());
  void reduce_scatter(const void* in, void* out, int64_t n, DType dt, Op op, Device dev = Device::cpu());
  void gather(const void* in, void* out, int64_t n, DType dt, int root);  // host memory

  // Small host values (counts, losses, metrics): returns the reduced copy.
  std::vector<double> all_reduce(std::vector<double> v, Op op = Op::sum);
  double all_reduce(double v, Op op = Op::sum);

  void set_device_collectives(std::unique_ptr<DeviceCollectives> dc) { device_ = std::move(dc); }
  DeviceCollectives* device_collectives() const { return device_.get(); }

 private:
  friend Comm& init(const InitOptions&);
  friend void finalize();
  DeviceCollectives& device_for(const char* what, Device dev) const;
  void start_mpi(const InitOptions& o);
  void stop_mpi();

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool mpi_ = false;
  std::string host_;
  double timeout_s_ = 0;
  std::unique_ptr<MpiState> mpi_state_;
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<DeviceCollectives> device_;
};

// Starts the process-wide communicator (idempotent: a second call returns the first).
Comm& init(const InitOptions& o = {});
// The communicator init() made; a world of one before init().
Comm& world();
// Ends MPI (a barrier among the ranks first). Safe to call without init().
void finalize();

// init() in the constructor, finalize() in the destructor, except while an exception
// unwinds the stack: finalize's barrier would then wait for ranks that are inside another
// collective; guarded() aborts the job instead.
class Session {
 public:
  explicit Session(const InitOptions& o = {}) : exceptions_(std::uncaught_exceptions()) { init(o); }
  ~Session() {
    if (std::uncaught_exceptions() == exceptions_) finalize();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  int exceptions_;
};

// Rank `rank`'s contiguous block [begin, end) of n items split over `world` ranks: sizes
// differ by at most one, the first n % world ranks take the extra item. Blocks in rank
// order cover [0, n), so N ranks together see exactly one process's batch. (Epoch-level
// shuffling and sharding of a dataset's rows: shard_order in tasks/dataset.h.)
struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Range shard_range(int64_t n, int rank, int world);

// Prints "[rank r/n (host)] message" to stderr and stops the whole job: MPI_Abort when
// MPI runs, else exit(code).
[[noreturn]] void abort_job(const std::string& message, int code = 1);

// Runs f() and returns its result; an exception on this rank aborts the job with its
// message (so the other ranks exit too, instead of waiting in their next collective).
template <typename F>
int guarded(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    abort_job(std::string("error: ") + e.what());
  }
}

// ---- the watchdog (an implementation detail of Comm, declared here for its unique_ptr) ----
// One thread per process; a collective arms it on entry and disarms it on return.
class Watchdog {
 public:
  Watchdog(double timeout_s, std::string where);
  ~Watchdog();
  void arm(const char* op, int64_t n, DType dt);
  void disarm();

 private:
  void loop();
  const double timeout_s_;
  const std::string where_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t armed_at_ns_ = 0;  // steady clock; 0: no collective in flight
  const char* op_ = "";
  int64_t n_ = 0;
  DType dt_ = DType::f32;
  std::thread thread_;
};

}  // namespace mm::dist
