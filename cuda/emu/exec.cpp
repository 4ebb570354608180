// The CUDA emulator's executor: runs a launch's blocks, the threads of a block as fibers,
// and checks what CUDA would punish (README.md, "What is checked").
//
// Scheduling (deterministic): a block's threads start in linear order (x fastest). A
// thread runs until it exits or waits; then the next thread in a FIFO ready queue runs.
// A thread that exits hands its stack straight to the next thread that has not started,
// so threads that never wait cost no context switch at all. When the last thread a
// barrier or warp operation waits for arrives, it releases the others (queues them) and
// carries on. When the queue is empty and threads remain, they are deadlocked: an error.
//
// Happens-before for the shared-memory race check: every synchronisation event gets an
// id from a per-executor clock (block start, __syncthreads, each completed warp op);
// an access is stamped with the clock value. Access a (thread A, stamp tA) is ordered
// before the current access by thread B if a __syncthreads happened after it
// (tA < last_barrier), or A == B, or A and B are lanes of one warp and a warp op whose
// mask holds both completed after it (id > tA). Transitive orders through third lanes are
// not tracked (a possible false report, never a missed barrier).
#include <sys/mman.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda/emu/emu.h"
#include "cuda/emu/fiber.h"

namespace mm::emu {
namespace detail {

__thread ThreadView* tl_thread __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

// ---- settings -------------------------------------------------------------------------------
int env_int(const char* name, int dflt) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  char* end = nullptr;
  long v = std::strtol(e, &end, 10);
  return (end && *end == 0) ? int(v) : dflt;
}
std::atomic<int> g_checks{-1}, g_threads{-1}, g_stack_kb{-1};
std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_threads_run{0}, g_switches{0};

int stack_kb() {
  int v = g_stack_kb.load();
  if (v < 0) g_stack_kb = v = std::max(16, env_int("MM_EMU_STACK_KB", 128));
  return v;
}

// ---- per-thread and per-warp state ----------------------------------------------------------
enum class TState : uint8_t { ready, wait_block, wait_warp, exited };

struct ThreadCtx : ThreadView {
  Context ctx;
  TState state = TState::ready;
  bool started = false;
  uint32_t barriers = 0;  // __syncthreads passed in this block
  std::source_location loc;  // where it waits
  WarpOp wop = WarpOp::sync;
  uint32_t wmask = 0;
  int wparam = 0, wwidth = 32;
  uint64_t wvalue = 0, wresult = 0;
};

struct WarpState {
  uint32_t exists = 0;      // lanes that exist (the last warp of a block may be partial)
  uint32_t waiting = 0;     // lanes waiting in a warp op
  uint32_t at_barrier = 0;  // lanes waiting at __syncthreads
  uint32_t exited = 0;
  uint32_t last_all = 0;    // id of the last warp op whose mask held every lane
  std::vector<std::pair<uint32_t, uint32_t>> partial;  // (id, mask) of other warp ops since the last barrier
};

// Shadow state of one byte of shared memory.
struct Shadow {
  uint32_t w_time;  // clock stamp of the last write; < block_start: not written in this block
  uint32_t r_time;  // stamp of the latest read since the last write; < last_barrier: none
  uint32_t r_mask;  // lanes of warp r_warp that read
  uint16_t w_tid;   // linear thread index of the last writer
  uint16_t r_warp;
  uint16_t r_tid, r_tid2;  // a reader and another reader, for messages
  uint8_t w_atomic;
  uint8_t r_multiwarp;  // readers from more than one warp
};

struct StaticAlloc {
  const SharedSite* site;
  uint32_t off, bytes;
};

constexpr uint32_t kArenaBytes = uint32_t(cuda_limits::kMaxOptinSharedBytes) + 4096;

std::string idx3(uint3 v) { return cat("(", v.x, ",", v.y, ",", v.z, ")"); }
std::string where(const std::source_location& l) { return cat(l.file_name(), ":", l.line()); }
std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}
const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::sync: return "__syncwarp";
    case WarpOp::shfl_idx: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::ballot: return "__ballot_sync";
    case WarpOp::any: return "__any_sync";
    case WarpOp::all: return "__all_sync";
  }
  return "?";
}
bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

class Executor;
__thread Executor* tl_exec __attribute__((tls_model("initial-exec"))) = nullptr;
void install_overflow_handler();

class Executor {
 public:
  Executor() {
    blk.exec = this;
    arena_ = static_cast<unsigned char*>(std::calloc(kArenaBytes, 1));
    if (!arena_) throw Error("CUDA emulator: out of memory for shared memory");
    blk.smem = arena_;
  }
  ~Executor() {
    if (tl_exec == this) tl_exec = nullptr;
    for (Stack& s : stacks_) stack_free(s);
    std::free(shadow_);
    std::free(arena_);
    if (altstack_) {
      stack_t ss{};
      ss.ss_flags = SS_DISABLE;
      sigaltstack(&ss, nullptr);
      std::free(altstack_);
    }
  }
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // ---- launch ----
  void prepare(const LaunchDesc& d) {
    L_ = &d;
    n_ = d.block.x * d.block.y * d.block.z;
    if (th_.size() < n_) th_.resize(n_);
    for (uint32_t i = 0; i < n_; ++i) {
      ThreadCtx& t = th_[i];
      t.linear = i;
      t.lane = i % 32;
      t.warp = i / 32;
      t.thread_idx = uint3{i % d.block.x, (i / d.block.x) % d.block.y, i / (d.block.x * d.block.y)};
      t.block_dim = d.block;
      t.grid_dim = d.grid;
      t.block = &blk;
    }
    nwarps_ = (n_ + 31) / 32;
    if (warps_.size() < nwarps_) warps_.resize(nwarps_);
    for (uint32_t w = 0; w < nwarps_; ++w) {
      uint32_t lanes = std::min<uint32_t>(32, n_ - 32 * w);
      warps_[w].exists = lanes == 32 ? ~0u : (1u << lanes) - 1;
    }
    ring_.resize(n_);
    dyn_ = uint32_t(d.dyn_smem);
    opt_in_ = shared_opt_in(d.func);
    static_begin_ = (dyn_ + 15u) & ~15u;
    blk.checks = checks_enabled();
    if (blk.checks && !shadow_) {
      shadow_ = static_cast<Shadow*>(std::calloc(kArenaBytes, sizeof(Shadow)));
      if (!shadow_) throw Error("CUDA emulator: out of memory for the shared-memory shadow");
    }
    stack_bytes_ = size_t(stack_kb()) * 1024;
    if (!stacks_.empty() && stacks_[0].size - stacks_[0].guard < stack_bytes_) {  // size changed
      for (Stack& s : stacks_) stack_free(s);
      stacks_.clear();
      free_.clear();
    }
    tl_exec = this;
    install_overflow_handler();
    ensure_altstack();
    switches_ = 0;
  }

  uint64_t switches() const { return switches_; }

  void run_block(uint64_t id) {
    const LaunchDesc& d = *L_;
    const uint3 bi{uint32_t(id % d.grid.x), uint32_t((id / d.grid.x) % d.grid.y),
                   uint32_t(id / (uint64_t(d.grid.x) * d.grid.y))};
    for (uint32_t i = 0; i < n_; ++i) {
      ThreadCtx& t = th_[i];
      t.block_idx = bi;
      t.state = TState::ready;
      t.started = false;
      t.barriers = 0;
      ring_[i] = &t;
    }
    for (uint32_t w = 0; w < nwarps_; ++w) {
      WarpState& ws = warps_[w];
      ws.waiting = ws.at_barrier = ws.exited = ws.last_all = 0;
      ws.partial.clear();
    }
    head_ = 0;
    count_ = n_;
    live_ = n_;
    nexited_ = 0;
    bar_waiting_ = 0;
    first_exited_ = first_bar_ = nullptr;
    allocs_.clear();
    static_end_ = static_begin_;
    if (clock_ > 0xf0000000u) {  // stamps are 32-bit: start over, forgetting all history
      if (shadow_) std::memset(shadow_, 0, sizeof(Shadow) * kArenaBytes);
      clock_ = 0;
    }
    block_start_ = last_barrier_ = ++clock_;
    try {
      while (live_ > 0) {
        ThreadCtx* next = pop();
        if (!next) diagnose_deadlock();
        dispatch(next, &main_ctx_);
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      }
    } catch (...) {
      recover();
      throw;
    }
    tl_thread = nullptr;
  }

  // ---- called from kernel code (on a fiber) ----
  ThreadCtx* current() { return cur_; }

  [[noreturn]] void fail(const ThreadCtx* t, const std::string& msg) const {
    throw Error(cat("CUDA emulator: kernel '", L_->name, "' block ", idx3(t->block_idx), " thread ",
                    idx3(t->thread_idx), ": ", msg));
  }

  int barrier(BarKind kind, int pred, const std::source_location& loc) {
    ThreadCtx* t = cur_;
    if (nexited_ > 0) [[unlikely]]
      barrier_after_exit(t, loc);
    if (warps_[t->warp].waiting) [[unlikely]]
      check_warp_waiters(t, [&] { return cat("reached __syncthreads() at ", where(loc)); });
    if (bar_waiting_ == 0) {
      bar_loc_ = loc;
      bar_kind_ = kind;
      first_bar_ = t;
      bar_acc_ = kind == BarKind::all ? 1 : 0;
    } else if (kind != bar_kind_ || !same_site(loc, bar_loc_)) [[unlikely]] {
      barrier_mismatch(t, loc);
    }
    switch (kind) {
      case BarKind::plain: break;
      case BarKind::count: bar_acc_ += pred != 0; break;
      case BarKind::all: bar_acc_ &= pred != 0; break;
      case BarKind::any: bar_acc_ |= pred != 0; break;
    }
    ++t->barriers;
    if (bar_waiting_ + 1 == live_) {  // the last one: release everybody
      bar_result_ = bar_acc_;
      last_barrier_ = ++clock_;
      for (uint32_t w = 0; w < nwarps_; ++w) {
        warps_[w].at_barrier = 0;
        warps_[w].partial.clear();
      }
      // Everybody resumes in thread order, this thread included (it queues itself), so
      // that each barrier interval runs threads 0, 1, 2, ... like the first one.
      t->state = TState::wait_block;
      for (uint32_t i = 0; i < n_; ++i)
        if (th_[i].state == TState::wait_block) {
          th_[i].state = TState::ready;
          push(&th_[i]);
        }
      bar_waiting_ = 0;
      block_current(t);
      return bar_result_;
    }
    t->state = TState::wait_block;
    t->loc = loc;
    ++bar_waiting_;
    warps_[t->warp].at_barrier |= 1u << t->lane;
    block_current(t);
    return bar_result_;
  }

  uint64_t warp_op(WarpOp op, uint32_t mask, uint64_t value, int param, int width,
                   const std::source_location& loc) {
    ThreadCtx* t = cur_;
    WarpState& w = warps_[t->warp];
    const uint32_t bit = 1u << t->lane;
    const bool shfl = op >= WarpOp::shfl_idx && op <= WarpOp::shfl_xor;
    if (!(mask & bit) || (mask & ~w.exists) || (mask & (w.exited | w.at_barrier)) ||
        (shfl && (width < 1 || width > 32 || (width & (width - 1))))) [[unlikely]]
      warp_op_invalid(t, op, mask, width, loc);
    t->wop = op;
    t->wmask = mask;
    t->wparam = param;
    t->wwidth = width;
    t->wvalue = value;
    t->loc = loc;
    if (((w.waiting | bit) & mask) != mask) {  // wait for the others
      t->state = TState::wait_warp;
      w.waiting |= bit;
      block_current(t);
      return t->wresult;
    }
    // Last lane of the group: check that everybody is in the same operation, then compute.
    for (uint32_t m = mask & ~bit; m; m &= m - 1) {
      const ThreadCtx& o = lane(t->warp, uint32_t(std::countr_zero(m)));
      if (o.wop != op || o.wmask != mask || (shfl && o.wwidth != width)) [[unlikely]]
        warp_op_mismatch(t, o);
    }
    complete_warp_op(t->warp, op, mask);
    w.waiting &= ~mask;
    const uint32_t id = ++clock_;
    if (mask == w.exists) {
      w.last_all = id;
    } else {
      w.partial.emplace_back(id, mask);
    }
    // The lanes resume in lane order, this one included (as after a barrier).
    for (uint32_t m = mask; m; m &= m - 1) {
      ThreadCtx& o = lane(t->warp, uint32_t(std::countr_zero(m)));
      o.state = TState::ready;
      push(&o);
    }
    block_current(t);
    return t->wresult;
  }

  // ---- error reports (cold: kept out of the hot paths above) ----
  [[noreturn, gnu::cold, gnu::noinline]] void barrier_after_exit(ThreadCtx* t, const std::source_location& loc) {
    fail(t, cat("__syncthreads() at ", where(loc), " reached after thread ", idx3(first_exited_->thread_idx),
                " exited: barrier divergence (every thread of the block must reach each __syncthreads(); "
                "an exited thread never will)"));
  }
  [[noreturn, gnu::cold, gnu::noinline]] void barrier_mismatch(ThreadCtx* t, const std::source_location& loc) {
    fail(t, cat("__syncthreads() at ", where(loc), " while thread ", idx3(first_bar_->thread_idx),
                " waits at the __syncthreads() at ", where(bar_loc_),
                ": barrier divergence (all threads of a block must reach the same barrier)"));
  }
  static std::string op_at(WarpOp op, uint32_t mask, const std::source_location& loc) {
    return cat(op_name(op), "(mask ", hex(mask), ") at ", where(loc));
  }
  [[noreturn, gnu::cold, gnu::noinline]] void warp_op_invalid(ThreadCtx* t, WarpOp op, uint32_t mask, int width,
                                                             const std::source_location& loc) {
    const WarpState& w = warps_[t->warp];
    const std::string what = op_at(op, mask, loc);
    if (!(mask & (1u << t->lane))) fail(t, cat(what, ": the calling lane ", t->lane, " is not in the mask"));
    if (mask & ~w.exists)
      fail(t, cat(what, ": the mask names lanes that do not exist (this warp has lanes ", hex(w.exists),
                  "; the block has ", n_, " threads)"));
    if (uint32_t gone = mask & w.exited) {
      const ThreadCtx& o = lane(t->warp, uint32_t(std::countr_zero(gone)));
      fail(t, cat(what, ": lane ", o.lane, " (thread ", idx3(o.thread_idx),
                  ") of the mask has exited: not all lanes of the mask participate"));
    }
    if (uint32_t bar = mask & w.at_barrier) {
      const ThreadCtx& o = lane(t->warp, uint32_t(std::countr_zero(bar)));
      fail(t, cat(what, ": lane ", o.lane, " (thread ", idx3(o.thread_idx), ") of the mask waits at __syncthreads() at ",
                  where(o.loc), " instead: not all lanes of the mask participate (deadlock)"));
    }
    fail(t, cat(what, ": width ", width, " is not a power of two in [1, 32]"));
  }
  [[noreturn, gnu::cold, gnu::noinline]] void warp_op_mismatch(ThreadCtx* t, const ThreadCtx& o) {
    fail(t, cat(op_at(t->wop, t->wmask, t->loc), " while lane ", o.lane, " (thread ", idx3(o.thread_idx), ") waits in ",
                op_at(o.wop, o.wmask, o.loc),
                ": the lanes of a mask must all execute the same warp operation with the same mask"));
  }

  // ---- shared memory ----
  uint32_t smem_static(const SharedSite* s) {
    for (const StaticAlloc& a : allocs_)
      if (a.site == s) return a.off;
    ThreadCtx* t = cur_;
    const uint32_t align = std::max<uint32_t>(16, s->elem_align);
    const uint64_t off = (uint64_t(static_end_) + align - 1) / align * align;
    const uint64_t bytes = uint64_t(s->elem_size) * s->count;
    const uint64_t static_bytes = off + bytes - static_begin_;
    const uint64_t limit = opt_in_ ? cuda_limits::kMaxOptinSharedBytes : cuda_limits::kDefaultSharedBytes;
    if (static_bytes > cuda_limits::kMaxStaticSharedBytes)
      fail(t, cat("static shared memory: '", s->name, "' (", bytes, " bytes, ", s->file, ":", s->line,
                  ") brings the kernel's static shared memory to ", static_bytes,
                  " bytes, above the limit of 48 KiB (49152 bytes); use dynamic shared memory"));
    if (static_bytes + dyn_ > limit)
      fail(t, cat("shared memory: static ", static_bytes, " bytes (with '", s->name, "', ", s->file, ":", s->line,
                  ") + dynamic ", dyn_, " bytes = ", static_bytes + dyn_, " bytes exceed the limit of ", limit,
                  " bytes",
                  opt_in_ ? "" : " (48 KiB unless the kernel opts in with cudaFuncSetAttribute(kernel, "
                                 "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))"));
    allocs_.push_back({s, uint32_t(off), uint32_t(bytes)});
    static_end_ = uint32_t(off + bytes);
    return uint32_t(off);
  }
  uint32_t smem_dynamic() const { return dyn_; }

  [[noreturn]] void bad_access(const SharedSite* s, uint32_t lo, uint32_t hi, int64_t off, uint32_t size,
                               uint32_t align, Access a) {
    ThreadCtx* t = cur_;
    const char* what = a == Access::read ? "read" : a == Access::write ? "write" : "atomic";
    std::string desc = describe(s);
    if (off >= int64_t(lo) && off + int64_t(size) <= int64_t(hi))
      fail(t, cat("misaligned shared memory ", what, " of ", size, " bytes at byte offset ", off, " of ", desc,
                  ": needs ", align, "-byte alignment"));
    const int64_t es = s->elem_size;
    std::string at;
    if (s->cols > 0) {
      const int64_t row_bytes = es * s->cols, rows = s->count / s->cols;
      if (lo == hi) {  // the row index itself was out of range (see Shared2D)
        const int64_t r = off >= 0 ? off / row_bytes : -((-off + row_bytes - 1) / row_bytes);
        at = cat("row ", r, " is outside [0, ", rows, ")");
      } else {
        const int64_t r = lo / row_bytes, c = off - int64_t(lo);
        at = cat("row ", r, ", column ", c >= 0 ? c / es : -((-c + es - 1) / es), " is outside [0, ", s->cols, ")");
      }
    } else {
      const int64_t e = off >= 0 ? off / es : -((-off + es - 1) / es);
      at = cat("element ", e, " (byte offset ", off, ", ", size, "-byte access) is outside [0, ", hi / es, ")");
    }
    fail(t, cat("out-of-bounds shared memory ", what, " of ", desc, ": ", at));
  }

  void check(const SharedSite* s, uint32_t arr, int64_t off, uint32_t size, Access a) {
    ThreadCtx* t = cur_;
    const uint32_t b0 = arr + uint32_t(off);
    const uint16_t me = uint16_t(t->linear);
    const uint32_t bit = 1u << t->lane;
    for (uint32_t i = 0; i < size; ++i) {
      Shadow& sh = shadow_[b0 + i];
      if (a != Access::write && sh.w_time < block_start_)
        fail(t, cat("read of uninitialised shared memory: ", elem(s, off + i),
                    " was not written by any thread of this block"));
      if (sh.w_time >= last_barrier_ && sh.w_tid != me && !(a == Access::atomic && sh.w_atomic) &&
          !ordered(sh.w_time, sh.w_tid, t))
        race(t, s, off + i, a, sh.w_atomic ? "atomically wrote" : "wrote", sh.w_tid);
      if (a == Access::read) {
        if (sh.r_time < last_barrier_ || (sh.r_mask == 0 && !sh.r_multiwarp)) {
          sh.r_warp = uint16_t(t->warp);
          sh.r_mask = bit;
          sh.r_multiwarp = 0;
          sh.r_tid = sh.r_tid2 = me;
        } else {
          if (sh.r_warp != t->warp) sh.r_multiwarp = 1;
          else sh.r_mask |= bit;
          if (sh.r_tid != me) sh.r_tid2 = me;
        }
        sh.r_time = clock_;
        continue;
      }
      // write or atomic: every read since the last write must be ordered before it
      if (sh.r_time >= last_barrier_ && (sh.r_mask || sh.r_multiwarp)) {
        const uint16_t other = sh.r_tid != me ? sh.r_tid : sh.r_tid2;
        bool racy;
        if (sh.r_multiwarp) racy = true;
        else if (sh.r_warp != t->warp) racy = true;
        else racy = (sh.r_mask & ~bit) != 0 && !warp_ordered(t->warp, sh.r_time, sh.r_mask | bit);
        if (racy && other != me) race(t, s, off + i, a, "read", other);
      }
      sh.w_time = clock_;
      sh.w_tid = me;
      sh.w_atomic = a == Access::atomic;
      sh.r_time = 0;
      sh.r_mask = 0;
      sh.r_multiwarp = 0;
    }
  }

  // ---- scheduling ----
  static void fiber_entry(void* arg) {
    auto* ex = static_cast<Executor*>(arg);
    const uint32_t mine = ex->starting_stack_;
    for (;;) {
      ThreadCtx* t = ex->cur_;
      try {
        ex->L_->thunk(ex->L_->ctx);
        ex->thread_exit(t);
      } catch (...) {
        ex->error_ = std::current_exception();
      }
      if (ex->error_) {
        ex->free_.push_back(mine);
        context_switch(&ex->dead_ctx_, &ex->main_ctx_);
        __builtin_trap();
      }
      ThreadCtx* next = ex->pop();
      if (next && !next->started) {  // run it right here, on this stack: no switch
        next->started = true;
        ex->cur_ = next;
        tl_thread = next;
        continue;
      }
      ex->free_.push_back(mine);  // nobody reuses it before we have switched away
      if (next) {
        ex->cur_ = next;
        tl_thread = next;
        ++ex->switches_;
        context_switch(&ex->dead_ctx_, &next->ctx);
      } else {
        ++ex->switches_;
        context_switch(&ex->dead_ctx_, &ex->main_ctx_);
      }
      __builtin_trap();
    }
  }

  // For the stack-overflow handler: the thread whose stack has `addr` in its guard page.
  const ThreadCtx* guard_owner(const void* addr) const {
    for (const Stack& s : stacks_)
      if (stack_guard_hit(s, addr)) return cur_;
    return nullptr;
  }
  const char* kernel_name() const { return L_ ? L_->name : "?"; }

 private:
  void thread_exit(ThreadCtx* t) {
    t->state = TState::exited;
    --live_;
    ++nexited_;
    if (!first_exited_) first_exited_ = t;
    warps_[t->warp].exited |= 1u << t->lane;
    if (bar_waiting_ > 0)
      fail(t, cat("exited while ", bar_waiting_, " thread(s) of the block wait at the __syncthreads() at ",
                  where(bar_loc_), " (thread ", idx3(first_bar_->thread_idx),
                  " first): barrier divergence (every thread of the block must reach each __syncthreads())"));
    if (warps_[t->warp].waiting) check_warp_waiters(t, [] { return std::string("exited"); });
  }

  // Error if a lane of t's warp waits in a warp op whose mask includes t (which is now
  // doing something else: it would deadlock on a GPU).
  template <class Doing>
  [[gnu::cold, gnu::noinline]] void check_warp_waiters(ThreadCtx* t, Doing&& doing) {
    const WarpState& w = warps_[t->warp];
    for (uint32_t m = w.waiting; m; m &= m - 1) {
      const ThreadCtx& o = lane(t->warp, uint32_t(std::countr_zero(m)));
      if (o.wmask & (1u << t->lane))
        fail(t, cat(doing(), " while lane ", o.lane, " (thread ", idx3(o.thread_idx), ") waits in ", op_name(o.wop),
                    "(mask ", hex(o.wmask), ") at ", where(o.loc), ", whose mask includes this lane (", t->lane,
                    "): not all lanes of the mask participate"));
    }
  }

  void complete_warp_op(uint32_t warp, WarpOp op, uint32_t mask) {
    if (op == WarpOp::sync) return;
    if (op == WarpOp::ballot || op == WarpOp::any || op == WarpOp::all) {
      uint32_t ballot = 0;
      for (uint32_t m = mask; m; m &= m - 1) {
        uint32_t l = uint32_t(std::countr_zero(m));
        if (lane(warp, l).wvalue) ballot |= 1u << l;
      }
      uint64_t r = op == WarpOp::ballot ? ballot : op == WarpOp::any ? ballot != 0 : ballot == mask;
      for (uint32_t m = mask; m; m &= m - 1) lane(warp, uint32_t(std::countr_zero(m))).wresult = r;
      return;
    }
    // Shuffles, following PTX shfl.sync: lanes form segments of `width`; a source outside
    // the segment (up/down/xor) yields the lane's own value. A source lane outside the mask
    // is undefined on a GPU: here the result is all one bits (NaN for floats).
    for (uint32_t m = mask; m; m &= m - 1) {
      const int l = std::countr_zero(m);
      ThreadCtx& o = lane(warp, uint32_t(l));
      const int w = o.wwidth, base = l & ~(w - 1), last = base + w - 1;
      int src = l;
      switch (op) {
        case WarpOp::shfl_idx: src = base | (o.wparam & (w - 1)); break;
        case WarpOp::shfl_up: src = l - (o.wparam & 31); if (src < base) src = l; break;
        case WarpOp::shfl_down: src = l + (o.wparam & 31); if (src > last) src = l; break;
        case WarpOp::shfl_xor: src = l ^ (o.wparam & 31); if (src > last) src = l; break;
        default: break;
      }
      o.wresult = (mask >> src) & 1u ? lane(warp, uint32_t(src)).wvalue : ~uint64_t(0);
    }
  }

  bool warp_ordered(uint32_t warp, uint32_t t_a, uint32_t need) const {
    const WarpState& w = warps_[warp];
    if (w.last_all > t_a) return true;
    for (auto it = w.partial.rbegin(); it != w.partial.rend() && it->first > t_a; ++it)
      if ((it->second & need) == need) return true;
    return false;
  }
  bool ordered(uint32_t t_a, uint16_t a, const ThreadCtx* b) const {
    if (t_a < last_barrier_ || a == b->linear) return true;
    if (a / 32 != b->warp) return false;
    return warp_ordered(b->warp, t_a, (1u << (a % 32)) | (1u << b->lane));
  }

  [[noreturn]] void race(ThreadCtx* t, const SharedSite* s, int64_t off, Access a, const char* other_did,
                         uint16_t other) {
    const ThreadCtx& o = th_[other];
    const char* did = a == Access::read ? "reads" : a == Access::write ? "writes" : "atomically updates";
    std::string order = o.warp == t->warp
                            ? "thread " + idx3(o.thread_idx) +
                                  " is a lane of the same warp and no __syncwarp(), shuffle/vote or __syncthreads() "
                                  "orders the two accesses"
                            : "no __syncthreads() between the two accesses";
    fail(t, cat("data race on shared memory: this thread ", did, " ", elem(s, off), ", which thread ",
                idx3(o.thread_idx), " ", other_did, " in the same barrier interval (", order, ")"));
  }

  static std::string describe(const SharedSite* s) {
    if (s->dynamic)
      return cat("'", s->name, "' (MM_DYN_SHARED at ", s->file, ":", s->line, ", dynamic shared memory)");
    if (s->cols > 0)
      return cat("'", s->name, "' (MM_SHARED_2D at ", s->file, ":", s->line, ", [", s->count / s->cols, "][", s->cols,
                 "] elements of ", s->elem_size, " bytes)");
    return cat("'", s->name, "' (MM_SHARED at ", s->file, ":", s->line, ", ", s->count, " elements of ",
               s->elem_size, " bytes)");
  }
  static std::string elem(const SharedSite* s, int64_t byte_off) {
    const int64_t e = byte_off / s->elem_size;
    if (s->cols > 0)
      return cat("'", s->name, "'[", e / s->cols, "][", e % s->cols, "] (", s->file, ":", s->line, ")");
    return cat("'", s->name, "'[", e, "] (byte ", byte_off, "; ", s->file, ":", s->line, ")");
  }

  ThreadCtx& lane(uint32_t warp, uint32_t l) { return th_[warp * 32 + l]; }
  const ThreadCtx& lane(uint32_t warp, uint32_t l) const { return th_[warp * 32 + l]; }

  ThreadCtx* pop() {
    if (count_ == 0) return nullptr;
    ThreadCtx* t = ring_[head_];
    head_ = head_ + 1 == n_ ? 0 : head_ + 1;
    --count_;
    return t;
  }
  void push(ThreadCtx* t) {
    uint32_t i = head_ + count_;
    ring_[i >= n_ ? i - n_ : i] = t;
    ++count_;
  }

  uint32_t take_stack() {
    if (!free_.empty()) {
      uint32_t s = free_.back();
      free_.pop_back();
      return s;
    }
    stacks_.push_back(stack_alloc(stack_bytes_));
    return uint32_t(stacks_.size() - 1);
  }

  void dispatch(ThreadCtx* next, Context* save) {
    cur_ = next;
    tl_thread = next;
    ++switches_;
    if (!next->started) {
      next->started = true;
      starting_stack_ = take_stack();
      // 832 = 13 cache lines: consecutive stacks start in different L1 sets.
      context_init(&next->ctx, stacks_[starting_stack_], &fiber_entry, this, (starting_stack_ * 832u) % 4096u);
    }
    context_switch(save, &next->ctx);
  }

  void block_current(ThreadCtx* t) {
    ThreadCtx* next = pop();
    if (next) {
      dispatch(next, &t->ctx);
    } else {
      ++switches_;
      context_switch(&t->ctx, &main_ctx_);
    }
    // resumed: whoever switched here has set cur_ and tl_thread to t
  }

  void recover() {
    free_.clear();
    for (uint32_t i = 0; i < stacks_.size(); ++i) free_.push_back(i);
    error_ = nullptr;
    cur_ = nullptr;
    tl_thread = nullptr;
  }

  [[noreturn]] void diagnose_deadlock() {
    for (uint32_t i = 0; i < n_; ++i) {
      ThreadCtx& t = th_[i];
      if (t.state != TState::wait_warp) continue;
      for (uint32_t m = t.wmask; m; m &= m - 1) {
        const ThreadCtx& o = lane(t.warp, uint32_t(std::countr_zero(m)));
        if (o.state == TState::wait_warp && o.wmask == t.wmask && o.wop == t.wop) continue;
        fail(&t, cat(op_name(t.wop), "(mask ", hex(t.wmask), ") at ", where(t.loc), " never completes: lane ", o.lane,
                     " (thread ", idx3(o.thread_idx), ") ",
                     o.state == TState::wait_warp
                         ? cat("waits in ", op_name(o.wop), "(mask ", hex(o.wmask), ") at ", where(o.loc))
                         : std::string("does not arrive"),
                     ": not all lanes of the mask participate (deadlock)"));
      }
    }
    for (uint32_t i = 0; i < n_; ++i)
      if (th_[i].state != TState::exited) fail(&th_[i], "deadlock: the block cannot make progress");
    throw Error(cat("CUDA emulator: kernel '", L_->name, "': internal scheduling error"));
  }

  void ensure_altstack() {
    if (altstack_) return;
    stack_t old{};
    if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return;  // one is set already
    const size_t bytes = 64 * 1024;
    altstack_ = std::malloc(bytes);
    if (!altstack_) return;
    stack_t ss{};
    ss.ss_sp = altstack_;
    ss.ss_size = bytes;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, nullptr) != 0) {
      std::free(altstack_);
      altstack_ = nullptr;
    }
  }

 public:
  BlockView blk;

 private:
  const LaunchDesc* L_ = nullptr;
  std::vector<ThreadCtx> th_;
  std::vector<WarpState> warps_;
  std::vector<ThreadCtx*> ring_;
  uint32_t head_ = 0, count_ = 0;
  uint32_t n_ = 0, nwarps_ = 0, live_ = 0, nexited_ = 0, bar_waiting_ = 0;
  ThreadCtx* first_exited_ = nullptr;
  ThreadCtx* first_bar_ = nullptr;
  std::source_location bar_loc_;
  BarKind bar_kind_ = BarKind::plain;
  int bar_acc_ = 0, bar_result_ = 0;
  ThreadCtx* cur_ = nullptr;
  Context main_ctx_, dead_ctx_;
  std::vector<Stack> stacks_;
  std::vector<uint32_t> free_;
  uint32_t starting_stack_ = 0;
  size_t stack_bytes_ = 0;
  std::exception_ptr error_;
  unsigned char* arena_ = nullptr;
  Shadow* shadow_ = nullptr;
  uint32_t dyn_ = 0, static_begin_ = 0, static_end_ = 0;
  bool opt_in_ = false;
  std::vector<StaticAlloc> allocs_;
  uint32_t clock_ = 0, block_start_ = 0, last_barrier_ = 0;
  uint64_t switches_ = 0;
  void* altstack_ = nullptr;
};

Executor& this_thread_executor() {
  thread_local Executor ex;
  return ex;
}
Executor& exec(const char* what) { return *static_cast<Executor*>(cur(what).block->exec); }

// ---- stack overflow: a fault in a fiber's guard page is reported before the crash -----------
struct sigaction g_prev_segv;
std::once_flag g_handler_once;

void put(char*& p, char* end, const char* s) {
  while (*s && p < end) *p++ = *s++;
}
void put_uint(char*& p, char* end, uint64_t v) {
  char b[24];
  int n = 0;
  do { b[n++] = char('0' + v % 10); v /= 10; } while (v);
  while (n && p < end) *p++ = b[--n];
}
void put3(char*& p, char* end, uint3 v) {
  put(p, end, "(");
  put_uint(p, end, v.x);
  put(p, end, ",");
  put_uint(p, end, v.y);
  put(p, end, ",");
  put_uint(p, end, v.z);
  put(p, end, ")");
}

void segv_handler(int sig, siginfo_t* info, void* uctx) {
  Executor* ex = tl_exec;
  if (ex) {
    if (const ThreadCtx* t = ex->guard_owner(info->si_addr)) {
      char buf[512], *p = buf, *end = buf + sizeof buf - 1;
      put(p, end, "CUDA emulator: stack overflow in kernel '");
      put(p, end, ex->kernel_name());
      put(p, end, "' block ");
      put3(p, end, t->block_idx);
      put(p, end, " thread ");
      put3(p, end, t->thread_idx);
      put(p, end, ": each emulated thread has a ");
      put_uint(p, end, uint64_t(stack_kb()));
      put(p, end, " KiB fiber stack (set MM_EMU_STACK_KB to change it)\n");
      ssize_t r = write(2, buf, size_t(p - buf));
      (void)r;
    }
  }
  // Hand over to whoever handled SIGSEGV before us (or the default action: terminate).
  if (g_prev_segv.sa_flags & SA_SIGINFO) {
    if (g_prev_segv.sa_sigaction) return g_prev_segv.sa_sigaction(sig, info, uctx);
  } else if (g_prev_segv.sa_handler != SIG_DFL && g_prev_segv.sa_handler != SIG_IGN) {
    return g_prev_segv.sa_handler(sig);
  }
  signal(SIGSEGV, SIG_DFL);  // returning re-runs the faulting instruction: default action
}

void install_overflow_handler() {
  std::call_once(g_handler_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
  });
}

}  // namespace

// ---- entry points used by emu.h -------------------------------------------------------------
void outside_kernel(const char* what) {
  throw Error(cat("CUDA emulator: ", what, " used outside an emulated kernel launch"));
}
uint32_t smem_static(const SharedSite* site) { return exec("MM_SHARED").smem_static(site); }
uint32_t smem_dynamic(const SharedSite*) { return exec("MM_DYN_SHARED").smem_dynamic(); }
void smem_bad_access(const SharedSite* site, uint32_t, uint32_t lo, uint32_t hi, int64_t off, uint32_t size,
                     uint32_t align, Access a) {
  exec("shared memory").bad_access(site, lo, hi, off, size, align, a);
}
void smem_check(const SharedSite* site, uint32_t arr, int64_t off, uint32_t size, Access a) {
  exec("shared memory").check(site, arr, off, size, a);
}
int block_barrier(BarKind kind, int pred, const std::source_location& loc) {
  return exec("__syncthreads()").barrier(kind, pred, loc);
}
uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int param, int width, const std::source_location& loc) {
  return exec(op_name(op)).warp_op(op, mask, value, param, width, loc);
}

}  // namespace detail

// ---- launch -----------------------------------------------------------------------------------
void run_launch(const LaunchDesc& d) {
  if (detail::tl_thread)
    throw Error(cat("CUDA emulator: kernel '", d.name,
                    "' launched from inside a kernel (dynamic parallelism is not supported)"));
  cuda_limits::check_launch(d.name, d.grid.x, d.grid.y, d.grid.z, d.block.x, d.block.y, d.block.z, d.dyn_smem,
                            max_dynamic_shared_bytes(d.func));
  const uint64_t nblocks = uint64_t(d.grid.x) * d.grid.y * d.grid.z;
  const uint64_t nthreads = uint64_t(d.block.x) * d.block.y * d.block.z;
  const int nt = int(std::min<uint64_t>(uint64_t(std::max(1, threads())), nblocks));
  std::atomic<uint64_t> switches{0};
  std::exception_ptr err;
  if (nt <= 1) {
    detail::Executor& ex = detail::this_thread_executor();
    ex.prepare(d);
    try {
      for (uint64_t b = 0; b < nblocks; ++b) ex.run_block(b);
    } catch (...) {
      err = std::current_exception();
    }
    switches += ex.switches();
  } else {
    std::atomic<uint64_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mu;
    uint64_t err_block = ~uint64_t(0);
    auto worker = [&] {
      uint64_t b = ~uint64_t(0);
      detail::Executor* ex = nullptr;
      try {
        ex = &detail::this_thread_executor();
        ex->prepare(d);
        while (!stop.load(std::memory_order_relaxed)) {
          b = next.fetch_add(1);
          if (b >= nblocks) break;
          ex->run_block(b);
        }
      } catch (...) {
        std::lock_guard<std::mutex> g(mu);
        if (!err || b < err_block) {  // report the failing block with the lowest index
          err_block = b;
          err = std::current_exception();
        }
        stop = true;
      }
      if (ex) switches += ex->switches();
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < nt; ++i) pool.emplace_back(worker);
    worker();
    for (std::thread& t : pool) t.join();
  }
  detail::g_switches += switches;
  if (err) std::rethrow_exception(err);
  detail::g_launches += 1;
  detail::g_blocks += nblocks;
  detail::g_threads_run += nblocks * nthreads;
}

void set_checks(bool on) { detail::g_checks = on ? 1 : 0; }
bool checks_enabled() {
  int v = detail::g_checks.load();
  if (v < 0) detail::g_checks = v = detail::env_int("MM_EMU_CHECKS", 1) != 0 ? 1 : 0;
  return v != 0;
}
void set_threads(int n) { detail::g_threads = std::max(1, n); }
int threads() {
  int v = detail::g_threads.load();
  if (v < 0) detail::g_threads = v = std::max(1, detail::env_int("MM_EMU_THREADS", 1));
  return v;
}
void set_stack_kb(int kb) { detail::g_stack_kb = std::max(16, kb); }

Stats stats() {
  Stats s;
  s.launches = detail::g_launches;
  s.blocks = detail::g_blocks;
  s.threads = detail::g_threads_run;
  s.switches = detail::g_switches;
  return s;
}
void reset_stats() {
  detail::g_launches = 0;
  detail::g_blocks = 0;
  detail::g_threads_run = 0;
  detail::g_switches = 0;
}

}  // namespace mm::emu
