// The CUDA C++ subset that kernels may use, implemented for the CPU emulator.
// Kernel sources include cuda/kernel_api.h, which includes this header when the compiler
// is not nvcc. See cuda/emu/README.md for the subset, what is checked and how it runs.
//
// Execution: a launch runs its blocks one after another (or on MM_EMU_THREADS OS threads);
// the threads of a block are fibers scheduled cooperatively on one OS thread. A thread
// runs until it exits or waits (__syncthreads, __syncwarp, a shuffle/vote); barriers are
// real: a waiting thread resumes only when every thread it waits for has arrived.
#pragma once
#include <math.h>

#include <atomic>
#include <bit>
#include <compare>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda/emu/half.h"
#include "cuda/emu/runtime_api.h"
#include "cuda/emu/vector_types.h"
#include "cuda/launch_limits.h"
#include "runtime/error.h"

#ifndef MM_CUDA_EMU
#define MM_CUDA_EMU 1
#endif

// ---- qualifiers: no meaning on the CPU ------------------------------------------------
// (__shared__ is deliberately left undefined: use MM_SHARED / MM_DYN_SHARED, which the
// emulator can check. __noinline__ is not defined because libstdc++ uses it as an
// attribute name.)
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

constexpr int warpSize = 32;

namespace mm::emu {

// One declaration site of shared memory (one per MM_SHARED / MM_DYN_SHARED expansion).
struct SharedSite {
  const char* name;
  const char* file;
  int line;
  uint32_t elem_size;
  uint32_t elem_align;
  uint32_t count;  // elements (static arrays); 0 for dynamic shared memory
  uint32_t cols;   // > 0 for MM_SHARED_2D: the row length
  bool dynamic;
};

enum class Access : uint8_t { read, write, atomic };

namespace detail {

struct BlockView {
  unsigned char* smem = nullptr;  // this block's shared memory
  bool checks = true;             // shadow-memory checks (race, uninitialised) on
  void* exec = nullptr;           // the Executor (exec.cpp)
};

// What kernel code sees of the current emulated thread.
struct ThreadView {
  uint3 thread_idx{0, 0, 0};
  uint3 block_idx{0, 0, 0};
  dim3 block_dim, grid_dim;
  BlockView* block = nullptr;
  uint32_t linear = 0, lane = 0, warp = 0;
};

// The emulated thread running on this OS thread (null outside a launch).
extern __thread ThreadView* tl_thread __attribute__((tls_model("initial-exec")));

[[noreturn]] void outside_kernel(const char* what);
inline ThreadView& cur(const char* what) {
  ThreadView* t = tl_thread;
  if (!t) [[unlikely]] outside_kernel(what);
  return *t;
}

// Shared memory (exec.cpp).
uint32_t smem_static(const SharedSite* site);   // byte offset of the array in the block
uint32_t smem_dynamic(const SharedSite* site);  // bytes of dynamic shared memory
[[noreturn]] void smem_bad_access(const SharedSite* site, uint32_t arr, uint32_t lo, uint32_t hi,
                                  int64_t off, uint32_t size, uint32_t align, Access a);
void smem_check(const SharedSite* site, uint32_t arr, int64_t off, uint32_t size, Access a);

// Barriers and warp-level operations (exec.cpp).
enum class BarKind : uint8_t { plain, count, all, any };
int block_barrier(BarKind kind, int pred, const std::source_location& loc);
enum class WarpOp : uint8_t { sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all };
uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int param, int width,
                 const std::source_location& loc);

template <class T>
uint64_t to_bits(const T& v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles move values of at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace detail

template <class T> class SharedRef;

// A pointer into one shared-memory array of the current block. Offsets are in bytes
// relative to the array; [lo, hi) is the range it may touch (a row of a 2-D array, or the
// whole array). Every dereference is bounds- and alignment-checked; with checks on, also
// race- and initialisation-checked (exec.cpp).
template <class T>
class SharedPtr {
 public:
  using value_type = std::remove_cv_t<T>;
  const SharedSite* site_ = nullptr;
  uint32_t arr_ = 0, lo_ = 0, hi_ = 0;
  int64_t off_ = 0;

  SharedPtr() = default;
  SharedPtr(const SharedSite* s, uint32_t arr, uint32_t lo, uint32_t hi, int64_t off)
      : site_(s), arr_(arr), lo_(lo), hi_(hi), off_(off) {}
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  SharedPtr(const SharedPtr<U>& o) : site_(o.site_), arr_(o.arr_), lo_(o.lo_), hi_(o.hi_), off_(o.off_) {}

  SharedRef<T> operator[](int64_t i) const { return SharedRef<T>(*this, off_ + i * int64_t(sizeof(T))); }
  SharedRef<T> operator*() const { return SharedRef<T>(*this, off_); }
  SharedPtr operator+(int64_t i) const { return {site_, arr_, lo_, hi_, off_ + i * int64_t(sizeof(T))}; }
  friend SharedPtr operator+(int64_t i, const SharedPtr& p) { return p + i; }
  SharedPtr operator-(int64_t i) const { return *this + (-i); }
  int64_t operator-(const SharedPtr& o) const { return (int64_t(arr_) + off_ - int64_t(o.arr_) - o.off_) / int64_t(sizeof(T)); }
  SharedPtr& operator+=(int64_t i) { off_ += i * int64_t(sizeof(T)); return *this; }
  SharedPtr& operator-=(int64_t i) { off_ -= i * int64_t(sizeof(T)); return *this; }
  SharedPtr& operator++() { off_ += int64_t(sizeof(T)); return *this; }
  SharedPtr& operator--() { off_ -= int64_t(sizeof(T)); return *this; }
  SharedPtr operator++(int) { SharedPtr p = *this; ++*this; return p; }
  SharedPtr operator--(int) { SharedPtr p = *this; --*this; return p; }
  friend bool operator==(const SharedPtr& a, const SharedPtr& b) { return a.addr() == b.addr(); }
  friend auto operator<=>(const SharedPtr& a, const SharedPtr& b) { return a.addr() <=> b.addr(); }

  // The same bytes seen as another type (reinterpret_cast<U*> under nvcc).
  template <class U>
  SharedPtr<U> cast() const { return {site_, arr_, lo_, hi_, off_}; }

  int64_t addr() const { return int64_t(arr_) + off_; }

  value_type load(int64_t off) const {
    access(off, Access::read);
    value_type v;
    std::memcpy(&v, detail::tl_thread->block->smem + arr_ + off, sizeof(T));
    return v;
  }
  void store(int64_t off, const value_type& v) const {
    static_assert(!std::is_const_v<T>, "store through a pointer to const shared memory");
    access(off, Access::write);
    std::memcpy(detail::tl_thread->block->smem + arr_ + off, &v, sizeof(T));
  }
  // An atomic read-modify-write: not a race with other atomics. Returns the old value.
  template <class F>
  value_type atomic_rmw(int64_t off, F&& f) const {
    access(off, Access::atomic);
    unsigned char* p = detail::tl_thread->block->smem + arr_ + off;
    value_type old;
    std::memcpy(&old, p, sizeof(T));
    value_type v = f(old);
    std::memcpy(p, &v, sizeof(T));
    return old;
  }

 private:
  void access(int64_t off, Access a) const {
    detail::ThreadView& t = detail::cur("shared memory access");
    if (off < int64_t(lo_) || off + int64_t(sizeof(T)) > int64_t(hi_) ||
        (uint64_t(arr_) + uint64_t(off)) % alignof(T) != 0) [[unlikely]]
      detail::smem_bad_access(site_, arr_, lo_, hi_, off, sizeof(T), alignof(T), a);
    if (t.block->checks) detail::smem_check(site_, arr_, off, sizeof(T), a);
  }
};

// What `tile[i]` returns: reads convert to T, writes assign. Never bind it with `auto`
// (it would read later, not now): write `float v = tile[i];`.
template <class T>
class SharedRef {
 public:
  using value_type = std::remove_cv_t<T>;
  SharedRef(const SharedPtr<T>& p, int64_t off) : p_(p), off_(off) {}
  SharedRef(const SharedRef&) = default;

  operator value_type() const { return p_.load(off_); }
  // A half/bf16 element converts to float directly (two user conversions otherwise).
  operator float() const
    requires(std::is_class_v<value_type> && std::is_convertible_v<value_type, float>)
  {
    return float(p_.load(off_));
  }
  SharedPtr<T> operator&() const { return SharedPtr<T>(p_.site_, p_.arr_, p_.lo_, p_.hi_, off_); }

  const SharedRef& operator=(const value_type& v) const { p_.store(off_, v); return *this; }
  const SharedRef& operator=(const SharedRef& o) const { p_.store(off_, value_type(o)); return *this; }
  template <class U> const SharedRef& operator+=(const U& v) const { value_type x = *this; x += v; return *this = x; }
  template <class U> const SharedRef& operator-=(const U& v) const { value_type x = *this; x -= v; return *this = x; }
  template <class U> const SharedRef& operator*=(const U& v) const { value_type x = *this; x *= v; return *this = x; }
  template <class U> const SharedRef& operator/=(const U& v) const { value_type x = *this; x /= v; return *this = x; }
  template <class U> const SharedRef& operator%=(const U& v) const { value_type x = *this; x %= v; return *this = x; }
  template <class U> const SharedRef& operator&=(const U& v) const { value_type x = *this; x &= v; return *this = x; }
  template <class U> const SharedRef& operator|=(const U& v) const { value_type x = *this; x |= v; return *this = x; }
  template <class U> const SharedRef& operator^=(const U& v) const { value_type x = *this; x ^= v; return *this = x; }
  const SharedRef& operator++() const { value_type x = *this; ++x; return *this = x; }
  const SharedRef& operator--() const { value_type x = *this; --x; return *this = x; }
  value_type operator++(int) const { value_type x = *this, y = x; ++y; *this = y; return x; }
  value_type operator--(int) const { value_type x = *this, y = x; --y; *this = y; return x; }

  const SharedPtr<T>& ptr() const { return p_; }
  int64_t offset() const { return off_; }

 private:
  SharedPtr<T> p_;
  int64_t off_;
};

// A 2-D static array `T name[rows][cols]`: name[r] is a row pointer confined to row r.
template <class T>
class Shared2D {
 public:
  Shared2D(const SharedSite* s, uint32_t arr) : site_(s), arr_(arr) {}
  SharedPtr<T> operator[](int64_t r) const {
    const int64_t row_bytes = int64_t(site_->cols) * int64_t(sizeof(T));
    const int64_t rows = int64_t(site_->count / site_->cols);
    // A row outside the array keeps an empty window: any access through it is reported.
    const int64_t rr = r < 0 ? 0 : (r > rows ? rows : r);
    const uint32_t lo = uint32_t(rr * row_bytes), hi = r >= 0 && r < rows ? uint32_t(lo + row_bytes) : lo;
    return SharedPtr<T>(site_, arr_, lo, hi, r * row_bytes);
  }
  operator SharedPtr<T>() const {
    return SharedPtr<T>(site_, arr_, 0, site_->count * uint32_t(sizeof(T)), 0);
  }

 private:
  const SharedSite* site_;
  uint32_t arr_;
};

namespace detail {
template <class T>
SharedPtr<T> shared_static(const SharedSite* s) {
  uint32_t off = smem_static(s);
  return SharedPtr<T>(s, off, 0, s->count * uint32_t(sizeof(T)), 0);
}
template <class T>
Shared2D<T> shared_static_2d(const SharedSite* s) {
  return Shared2D<T>(s, smem_static(s));
}
template <class T>
SharedPtr<T> shared_dynamic(const SharedSite* s) {
  uint32_t bytes = smem_dynamic(s);
  return SharedPtr<T>(s, 0, 0, bytes / uint32_t(sizeof(T)) * uint32_t(sizeof(T)), 0);
}
}  // namespace detail

// ---- launch ------------------------------------------------------------------------------
struct LaunchDesc {
  const char* name;
  const void* func;
  dim3 grid, block;
  size_t dyn_smem;
  void (*thunk)(void*);  // runs the kernel body for the current emulated thread
  void* ctx;
};
void run_launch(const LaunchDesc& d);  // throws mm::Error on a bad launch or a failed check

namespace detail {
template <class... P>
struct KernelCall {
  void (*kernel)(P...);
  std::tuple<std::decay_t<P>...>* params;
  static void run(void* c) {
    auto* k = static_cast<KernelCall*>(c);
    std::apply(k->kernel, *k->params);  // each thread gets its own copies of the parameters
  }
};
}  // namespace detail

// kernel<<<grid, block, dyn_smem, stream>>>(args...) on the CPU. Synchronous.
template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t dyn_smem,
            cudaStream_t /*stream*/, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  detail::KernelCall<P...> call{kernel, &params};
  run_launch(LaunchDesc{name, reinterpret_cast<const void*>(kernel), grid, block, dyn_smem,
                        &detail::KernelCall<P...>::run, &call});
}

// Shadow-memory checks (races, uninitialised reads): on unless MM_EMU_CHECKS=0.
void set_checks(bool on);
bool checks_enabled();
// OS threads that run blocks in parallel: 1 (deterministic) unless MM_EMU_THREADS=n.
void set_threads(int n);
int threads();
// Fiber stack size per emulated thread in KiB (MM_EMU_STACK_KB, default 128).
void set_stack_kb(int kb);

struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0;
  uint64_t switches = 0;  // fiber context switches (a thread that never waits costs none)
};
Stats stats();
void reset_stats();

}  // namespace mm::emu

// ---- built-in variables --------------------------------------------------------------------
#define threadIdx (static_cast<const ::uint3&>(::mm::emu::detail::cur("threadIdx").thread_idx))
#define blockIdx (static_cast<const ::uint3&>(::mm::emu::detail::cur("blockIdx").block_idx))
#define blockDim (static_cast<const ::dim3&>(::mm::emu::detail::cur("blockDim").block_dim))
#define gridDim (static_cast<const ::dim3&>(::mm::emu::detail::cur("gridDim").grid_dim))

// ---- barriers, warp operations -------------------------------------------------------------
inline void __syncthreads(std::source_location loc = std::source_location::current()) {
  ::mm::emu::detail::block_barrier(::mm::emu::detail::BarKind::plain, 0, loc);
}
inline int __syncthreads_count(int pred, std::source_location loc = std::source_location::current()) {
  return ::mm::emu::detail::block_barrier(::mm::emu::detail::BarKind::count, pred, loc);
}
inline int __syncthreads_and(int pred, std::source_location loc = std::source_location::current()) {
  return ::mm::emu::detail::block_barrier(::mm::emu::detail::BarKind::all, pred, loc);
}
inline int __syncthreads_or(int pred, std::source_location loc = std::source_location::current()) {
  return ::mm::emu::detail::block_barrier(::mm::emu::detail::BarKind::any, pred, loc);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location loc = std::source_location::current()) {
  ::mm::emu::detail::warp_op(::mm::emu::detail::WarpOp::sync, mask, 0, 0, 32, loc);
}
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return from_bits<T>(warp_op(WarpOp::shfl_idx, mask, to_bits(var), src_lane, width, loc));
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return from_bits<T>(warp_op(WarpOp::shfl_up, mask, to_bits(var), int(delta), width, loc));
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return from_bits<T>(warp_op(WarpOp::shfl_down, mask, to_bits(var), int(delta), width, loc));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return from_bits<T>(warp_op(WarpOp::shfl_xor, mask, to_bits(var), lane_mask, width, loc));
}
inline unsigned __ballot_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return unsigned(warp_op(WarpOp::ballot, mask, pred != 0, 0, 32, loc));
}
inline int __any_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return int(warp_op(WarpOp::any, mask, pred != 0, 0, 32, loc));
}
inline int __all_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  using namespace ::mm::emu::detail;
  return int(warp_op(WarpOp::all, mask, pred != 0, 0, 32, loc));
}
// The emulator's memory is sequentially consistent: fences have nothing to do.
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- atomics on global (host) memory: real atomics, blocks may run on several OS threads --
#define MM_EMU_ATOMIC_RMW(NAME, T, EXPR)                              \
  inline T NAME(T* address, T val) {                                  \
    std::atomic_ref<T> a(*address);                                   \
    T old = a.load(std::memory_order_relaxed);                        \
    while (!a.compare_exchange_weak(old, (EXPR), std::memory_order_seq_cst)) {} \
    return old;                                                       \
  }
MM_EMU_ATOMIC_RMW(atomicAdd, float, old + val)
MM_EMU_ATOMIC_RMW(atomicAdd, double, old + val)
MM_EMU_ATOMIC_RMW(atomicAdd, int, int(unsigned(old) + unsigned(val)))
MM_EMU_ATOMIC_RMW(atomicAdd, unsigned int, old + val)
MM_EMU_ATOMIC_RMW(atomicAdd, unsigned long long, old + val)
MM_EMU_ATOMIC_RMW(atomicSub, int, int(unsigned(old) - unsigned(val)))
MM_EMU_ATOMIC_RMW(atomicSub, unsigned int, old - val)
MM_EMU_ATOMIC_RMW(atomicMax, int, old > val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMax, unsigned int, old > val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMax, long long, old > val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMax, unsigned long long, old > val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMin, int, old < val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMin, unsigned int, old < val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMin, long long, old < val ? old : val)
MM_EMU_ATOMIC_RMW(atomicMin, unsigned long long, old < val ? old : val)
MM_EMU_ATOMIC_RMW(atomicExch, int, val)
MM_EMU_ATOMIC_RMW(atomicExch, unsigned int, val)
MM_EMU_ATOMIC_RMW(atomicExch, unsigned long long, val)
MM_EMU_ATOMIC_RMW(atomicExch, float, val)
MM_EMU_ATOMIC_RMW(atomicAnd, int, old & val)
MM_EMU_ATOMIC_RMW(atomicAnd, unsigned int, old & val)
MM_EMU_ATOMIC_RMW(atomicAnd, unsigned long long, old & val)
MM_EMU_ATOMIC_RMW(atomicOr, int, old | val)
MM_EMU_ATOMIC_RMW(atomicOr, unsigned int, old | val)
MM_EMU_ATOMIC_RMW(atomicOr, unsigned long long, old | val)
MM_EMU_ATOMIC_RMW(atomicXor, int, old ^ val)
MM_EMU_ATOMIC_RMW(atomicXor, unsigned int, old ^ val)
MM_EMU_ATOMIC_RMW(atomicXor, unsigned long long, old ^ val)
MM_EMU_ATOMIC_RMW(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
MM_EMU_ATOMIC_RMW(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
#undef MM_EMU_ATOMIC_RMW
#define MM_EMU_ATOMIC_CAS(T)                                                   \
  inline T atomicCAS(T* address, T compare, T val) {                           \
    std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);        \
    return compare; /* the old value either way */                             \
  }
MM_EMU_ATOMIC_CAS(int)
MM_EMU_ATOMIC_CAS(unsigned int)
MM_EMU_ATOMIC_CAS(unsigned long long)
#undef MM_EMU_ATOMIC_CAS

// ---- atomics on shared memory: checked accesses that never count as races with each other --
#define MM_EMU_SHARED_ATOMIC(NAME, EXPR)                                              \
  template <class T, class U>                                                         \
  std::remove_cv_t<T> NAME(::mm::emu::SharedPtr<T> p, U val_in) {                     \
    using V = std::remove_cv_t<T>;                                                    \
    const V val = V(val_in);                                                          \
    return p.atomic_rmw(p.off_, [&](V old) { return V(EXPR); });                      \
  }
MM_EMU_SHARED_ATOMIC(atomicAdd, old + val)
MM_EMU_SHARED_ATOMIC(atomicSub, old - val)
MM_EMU_SHARED_ATOMIC(atomicMax, old > val ? old : val)
MM_EMU_SHARED_ATOMIC(atomicMin, old < val ? old : val)
MM_EMU_SHARED_ATOMIC(atomicExch, val)
MM_EMU_SHARED_ATOMIC(atomicAnd, old & val)
MM_EMU_SHARED_ATOMIC(atomicOr, old | val)
MM_EMU_SHARED_ATOMIC(atomicXor, old ^ val)
MM_EMU_SHARED_ATOMIC(atomicInc, old >= val ? 0u : old + 1u)
MM_EMU_SHARED_ATOMIC(atomicDec, (old == 0u || old > val) ? val : old - 1u)
#undef MM_EMU_SHARED_ATOMIC
template <class T, class U>
std::remove_cv_t<T> atomicCAS(::mm::emu::SharedPtr<T> p, U compare, U val) {
  using V = std::remove_cv_t<T>;
  return p.atomic_rmw(p.off_, [&](V old) { return old == V(compare) ? V(val) : old; });
}

// ---- math intrinsics (the fast __ versions are computed accurately here) --------------------
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }  // NaN -> 0
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline double __longlong_as_double(long long i) { return std::bit_cast<double>(i); }
inline long long __double_as_longlong(double d) { return std::bit_cast<long long>(d); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(unsigned(x)); }
inline int __clzll(long long x) { return std::countl_zero((unsigned long long)x); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(unsigned(x)) + 1; }
inline int __ffsll(long long x) { return x == 0 ? 0 : std::countr_zero((unsigned long long)x) + 1; }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline int __mulhi(int a, int b) { return int((int64_t(a) * b) >> 32); }
inline int __mul24(int a, int b) { return int(uint32_t(a << 8 >> 8) * uint32_t(b << 8 >> 8)); }
template <class T>
T __ldg(const T* p) { return *p; }

// CUDA's device min/max overloads; float and double ones are fminf/fmaxf (NaN-ignoring).
template <class A, class B>
  requires(std::is_integral_v<A> && std::is_integral_v<B>)
std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B>
  requires(std::is_integral_v<A> && std::is_integral_v<B>)
std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(a) < C(b) ? C(b) : C(a);
}
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
