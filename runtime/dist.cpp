#include "runtime/dist.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/parallel.h"

#if MM_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: OpenMPI's C++ bindings do not build with -Werror
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace mm::dist {

const char* op_name(Op op) {
  switch (op) {
    case Op::sum: return "sum";
    case Op::avg: return "avg";
    case Op::max: return "max";
    case Op::min: return "min";
  }
  return "?";
}

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

Range shard_range(int64_t n, int rank, int world) {
  MM_CHECK(world >= 1 && rank >= 0 && rank < world && n >= 0, "dist::shard_range: rank ", rank, " of ", world,
           " ranks, ", n, " items");
  const int64_t base = n / world, extra = n % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

static int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- watchdog -------------------------------------------------------------------------
Watchdog::Watchdog(double timeout_s, std::string where) : timeout_s_(timeout_s), where_(std::move(where)) {
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::arm(const char* op, int64_t n, DType dt) {
  std::lock_guard<std::mutex> lk(mu_);
  armed_at_ns_ = now_ns();
  op_ = op;
  n_ = n;
  dt_ = dt;
}

void Watchdog::disarm() {
  std::lock_guard<std::mutex> lk(mu_);
  armed_at_ns_ = 0;
}

void Watchdog::loop() {
  // Poll often enough that the message comes within ~10% of the timeout.
  const auto poll = std::chrono::duration<double>(std::clamp(timeout_s_ / 10, 0.01, 1.0));
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    cv_.wait_for(lk, poll);
    if (stop_ || armed_at_ns_ == 0) continue;
    const double waited = double(now_ns() - armed_at_ns_) * 1e-9;
    if (waited < timeout_s_) continue;
    // No MPI call from this thread (MPI runs FUNNELED): print and leave. mpirun sees a rank
    // exit before MPI_Finalize and stops the job.
    std::fprintf(stderr,
                 "[%s] dist: %s of %lld %s elements waited %.1f s for the other ranks (the timeout is %.1f s; "
                 "MM_DIST_TIMEOUT sets it): a rank died, hangs, or took another code path; exiting\n",
                 where_.c_str(), op_, (long long)n_, std::string(dtype_name(dt_)).c_str(), waited, timeout_s_);
    std::fflush(stderr);
    std::_Exit(3);
  }
}

namespace {
// Arms the watchdog for the lifetime of one collective.
struct Armed {
  Watchdog* w;
  Armed(Watchdog* w_, const char* op, int64_t n, DType dt) : w(w_) { if (w) w->arm(op, n, dt); }
  ~Armed() { if (w) w->disarm(); }
  Armed(const Armed&) = delete;
  Armed& operator=(const Armed&) = delete;
};

void check_reducible(DType dt, Op op, const char* what) {
  MM_CHECK(dt != DType::bf16 && dt != DType::f16, "dist::", what, ": MPI cannot reduce ", dtype_name(dt),
           " (no such MPI type): reduce in f32 on the CPU, or through NCCL on the GPU");
  MM_CHECK(op != Op::avg || is_floating(dt), "dist::", what, ": avg needs a floating dtype, got ",
           dtype_name(dt));
}

// Divides n elements by d in place (the avg of a host sum).
[[maybe_unused]] void divide(void* buf, int64_t n, DType dt, double d) {
  if (dt == DType::f32) {
    float* p = static_cast<float*>(buf);
    const float s = float(1.0 / d);
    for (int64_t i = 0; i < n; ++i) p[i] *= s;
  } else {
    MM_ASSERT(dt == DType::f64);
    double* p = static_cast<double*>(buf);
    for (int64_t i = 0; i < n; ++i) p[i] /= d;
  }
}

Shape prepend(int64_t n, const Shape& s, const char* what) {
  MM_CHECK(s.size() < Shape::kMaxDims, "dist::", what, ": a ", s.size(), "-D tensor ", s,
           " has no room for the rank dimension");
  Shape out = s;
  out.insert(0, n);
  return out;
}

void check_tensor(const Tensor& t, const char* what) {
  MM_CHECK(t.defined(), "dist::", what, ": undefined tensor");
  MM_CHECK(t.is_contiguous(), "dist::", what, ": the tensor ", t.shape(), " must be contiguous");
}
}  // namespace

// ---- MPI state --------------------------------------------------------------------------
#if MM_HAVE_MPI
struct MpiState {
  MPI_Comm comm = MPI_COMM_NULL;   // a duplicate of MPI_COMM_WORLD: our traffic only
  MPI_Comm local = MPI_COMM_NULL;  // the ranks of this host
  bool we_initialised = false;
};

static MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: case DType::boolean: return MPI_UINT8_T;
    case DType::bf16: case DType::f16: return MPI_UINT16_T;  // moved, never reduced
  }
  return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(Op op) {
  switch (op) {
    case Op::sum: case Op::avg: return MPI_SUM;
    case Op::max: return MPI_MAX;
    case Op::min: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

// MPI counts are int: big buffers go in chunks of this many elements.
static constexpr int64_t kChunk = int64_t(1) << 30;

static void mpi_check(int rc, const Comm& c, const char* what, int64_t n) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(cat("dist: ", what, " of ", n, " elements failed on ", c.where(), ": ", std::string(msg, size_t(len)),
                  " (another rank has probably died)"));
}

static int fits_int(int64_t n, const char* what) {
  MM_CHECK(n <= INT_MAX, "dist::", what, ": ", n, " elements per rank exceed MPI's int count");
  return int(n);
}
#else
struct MpiState {};
#endif

// ---- Comm -------------------------------------------------------------------------------
static std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

Comm::Comm() : host_(host_name()) {}
Comm::~Comm() = default;

std::string Comm::where() const { return cat("rank ", rank_, "/", size_, " (", host_, ")"); }

void Comm::start_mpi(const InitOptions& o) {
#if MM_HAVE_MPI
  mpi_state_ = std::make_unique<MpiState>();
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    // FUNNELED: only the thread that called init talks MPI (the watchdog never does).
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    mpi_state_->we_initialised = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &mpi_state_->comm), *this, "init (MPI_Comm_dup)", 0);
  MPI_Comm_set_errhandler(mpi_state_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(mpi_state_->comm, &rank_);
  MPI_Comm_size(mpi_state_->comm, &size_);
  // Ranks sharing memory = ranks on this host: local rank picks the GPU.
  mpi_check(MPI_Comm_split_type(mpi_state_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &mpi_state_->local),
            *this, "init (MPI_Comm_split_type)", 0);
  MPI_Comm_rank(mpi_state_->local, &local_rank_);
  MPI_Comm_size(mpi_state_->local, &local_size_);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  host_.assign(name, size_t(len));
  mpi_ = true;
  (void)o;
#else
  (void)o;
  MM_ASSERT(false);
#endif
}

void Comm::stop_mpi() {
#if MM_HAVE_MPI
  if (!mpi_) return;
  barrier();  // under the watchdog: a rank that never arrives is reported, not waited for
  watchdog_.reset();
  MPI_Comm_free(&mpi_state_->local);
  MPI_Comm_free(&mpi_state_->comm);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (mpi_state_->we_initialised && !finalized) MPI_Finalize();
  mpi_state_.reset();
  device_.reset();
  mpi_ = false;
  rank_ = 0;
  size_ = local_size_ = 1;
  local_rank_ = 0;
#endif
}

DeviceCollectives& Comm::device_for(const char* what, Device dev) const {
  MM_CHECK(device_, "dist::", what, ": a tensor on ", dev, " needs device collectives (NCCL): build with "
           "MM_HAVE_NCCL (make cuda) and call dist::init_nccl after dist::init");
  return *device_;
}

void Comm::all_reduce(void* buf, int64_t n, DType dt, Op op, Device dev) {
  if (dev.is_cuda() && (size_ > 1 || device_)) return device_for("all_reduce", dev).all_reduce(buf, n, dt, op);
  check_reducible(dt, op, "all_reduce");
  if (size_ == 1 || n == 0) return;  // the sum / avg / max of one value is itself
#if MM_HAVE_MPI
  Armed a(watchdog_.get(), "all_reduce", n, dt);
  const size_t es = dtype_size(dt);
  for (int64_t off = 0; off < n; off += kChunk) {
    const int c = int(std::min(kChunk, n - off));
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(buf) + off * es, c, mpi_type(dt), mpi_op(op),
                            mpi_state_->comm), *this, "all_reduce", n);
  }
  if (op == Op::avg) divide(buf, n, dt, double(size_));
#endif
}

void Comm::broadcast(void* buf, int64_t n, DType dt, int root, Device dev) {
  MM_CHECK(root >= 0 && root < size_, "dist::broadcast: root ", root, " is not a rank of ", size_);
  if (dev.is_cuda() && (size_ > 1 || device_)) return device_for("broadcast", dev).broadcast(buf, n, dt, root);
  if (size_ == 1 || n == 0) return;
#if MM_HAVE_MPI
  Armed a(watchdog_.get(), "broadcast", n, dt);
  const size_t es = dtype_size(dt);
  for (int64_t off = 0; off < n; off += kChunk) {
    const int c = int(std::min(kChunk, n - off));
    mpi_check(MPI_Bcast(static_cast<char*>(buf) + off * es, c, mpi_type(dt), root, mpi_state_->comm), *this,
              "broadcast", n);
  }
#endif
}

void Comm::all_gather(const void* in, void* out, int64_t n, DType dt, Device dev) {
  if (dev.is_cuda()) return device_for("all_gather", dev).all_gather(in, out, n, dt);
  if (n == 0) return;
  if (size_ == 1) {
    if (in != out) std::memcpy(out, in, size_t(n) * dtype_size(dt));
    return;
  }
#if MM_HAVE_MPI
  Armed a(watchdog_.get(), "all_gather", n, dt);
  const int c = fits_int(n, "all_gather");
  mpi_check(MPI_Allgather(in, c, mpi_type(dt), out, c, mpi_type(dt), mpi_state_->comm), *this, "all_gather", n);
#endif
}

void Comm::reduce_scatter(const void* in, void* out, int64_t n, DType dt, Op op, Device dev) {
  if (dev.is_cuda()) return device_for("reduce_scatter", dev).reduce_scatter(in, out, n, dt, op);
  check_reducible(dt, op, "reduce_scatter");
  if (n == 0) return;
  if (size_ == 1) {
    if (in != out) std::memcpy(out, in, size_t(n) * dtype_size(dt));
    return;
  }
#if MM_HAVE_MPI
  Armed a(watchdog_.get(), "reduce_scatter", n, dt);
  const int c = fits_int(n, "reduce_scatter");
  mpi_check(MPI_Reduce_scatter_block(in, out, c, mpi_type(dt), mpi_op(op), mpi_state_->comm), *this,
            "reduce_scatter", n);
  if (op == Op::avg) divide(out, n, dt, double(size_));
#endif
}

void Comm::gather(const void* in, void* out, int64_t n, DType dt, int root) {
  MM_CHECK(root >= 0 && root < size_, "dist::gather: root ", root, " is not a rank of ", size_);
  if (n == 0) return;
  if (size_ == 1) {
    if (in != out) std::memcpy(out, in, size_t(n) * dtype_size(dt));
    return;
  }
#if MM_HAVE_MPI
  Armed a(watchdog_.get(), "gather", n, dt);
  const int c = fits_int(n, "gather");
  mpi_check(MPI_Gather(in, c, mpi_type(dt), out, c, mpi_type(dt), root, mpi_state_->comm), *this, "gather", n);
#endif
}

void Comm::barrier() {
  if (size_ == 1) return;
#if MM_HAVE_MPI
  Armed a(watchdog_.get(), "barrier", 0, DType::u8);
  mpi_check(MPI_Barrier(mpi_state_->comm), *this, "barrier", 0);
#endif
}

// ---- tensor forms ------------------------------------------------------------------------
void Comm::all_reduce(Tensor& t, Op op) {
  check_tensor(t, "all_reduce");
  all_reduce(t.raw_data(), t.numel(), t.dtype(), op, t.device());
}

void Comm::broadcast(Tensor& t, int root) {
  check_tensor(t, "broadcast");
  broadcast(t.raw_data(), t.numel(), t.dtype(), root, t.device());
}

Tensor Comm::all_gather(const Tensor& in) {
  check_tensor(in, "all_gather");
  Tensor out = Tensor::empty(prepend(size_, in.shape(), "all_gather"), in.dtype(), in.device());
  all_gather(in.raw_data(), out.raw_data(), in.numel(), in.dtype(), in.device());
  return out;
}

Tensor Comm::reduce_scatter(const Tensor& in, Op op) {
  check_tensor(in, "reduce_scatter");
  MM_CHECK(in.dim() >= 1 && in.size(0) % size_ == 0, "dist::reduce_scatter: the first dimension of ", in.shape(),
           " must split into ", size_, " equal blocks (one per rank)");
  Shape s = in.shape();
  s[0] /= size_;
  Tensor out = Tensor::empty(s, in.dtype(), in.device());
  reduce_scatter(in.raw_data(), out.raw_data(), out.numel(), in.dtype(), op, in.device());
  return out;
}

Tensor Comm::gather(const Tensor& in, int root) {
  check_tensor(in, "gather");
  MM_CHECK(in.device().is_cpu(), "dist::gather: host tensors only, got one on ", in.device());
  Tensor out;
  if (rank_ == root) out = Tensor::empty(prepend(size_, in.shape(), "gather"), in.dtype(), in.device());
  gather(in.raw_data(), out.defined() ? out.raw_data() : nullptr, in.numel(), in.dtype(), root);
  return out;
}

std::vector<double> Comm::all_reduce(std::vector<double> v, Op op) {
  all_reduce(v.data(), int64_t(v.size()), DType::f64, op);
  return v;
}

double Comm::all_reduce(double v, Op op) {
  all_reduce(&v, 1, DType::f64, op);
  return v;
}

// ---- process-wide communicator -------------------------------------------------------------
static Comm& world_storage() {
  static Comm c;
  return c;
}

Comm& world() { return world_storage(); }

Comm& init(const InitOptions& o) {
  Comm& c = world_storage();
  if (c.mpi_) return c;
  const bool want = o.launch == Launch::mpi || (o.launch == Launch::auto_detect && launched_by_mpirun());
#if MM_HAVE_MPI
  if (want) c.start_mpi(o);
#else
  MM_CHECK(o.launch != Launch::mpi, "dist::init: MPI was asked for, but this build has none (built with MPI=0)");
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  MM_CHECK(!want || !n || std::atoi(n) <= 1, "dist::init: launched by mpirun with ", n,
           " ranks, but this build has no MPI (built with MPI=0): every rank would train alone. "
           "Rebuild with OpenMPI installed (make MPI=1)");
#endif
  double timeout = o.timeout_s;
  if (timeout < 0) {
    const char* env = std::getenv("MM_DIST_TIMEOUT");
    timeout = env ? std::atof(env) : 600.0;
  }
  c.timeout_s_ = timeout;
  if (c.size_ > 1 && timeout > 0) c.watchdog_ = std::make_unique<Watchdog>(timeout, c.where());
  if (o.share_cores && c.local_size_ > 1 && !std::getenv("MM_NUM_THREADS") && !std::getenv("OMP_NUM_THREADS")) {
    const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
    set_num_threads(std::max(1, std::min(num_threads(), hw / c.local_size_)));
  }
  return c;
}

void finalize() { world_storage().stop_mpi(); }

void abort_job(const std::string& message, int code) {
  const Comm& c = world_storage();
  std::fprintf(stderr, "[%s] %s\n", c.where().c_str(), message.c_str());
  std::fflush(stderr);
#if MM_HAVE_MPI
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace mm::dist
