// Fiber stacks and context switches for the CUDA emulator (see fiber.h).
#include "cuda/emu/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "runtime/error.h"

#if defined(MM_EMU_ASM_SWITCH)
// mm_emu_ctx_switch(save_sp, new_sp): push the SysV callee-saved registers, store rsp in
// *save_sp, load new_sp, pop the registers of the other context and return into it.
// mm_emu_ctx_start: first code of a fresh fiber; context_init leaves fn in r13, its argument
// in r12 and a 16-byte aligned rsp. CFI marks it as the outermost frame for unwinders.
asm(R"(
  .text
  .p2align 4
  .globl mm_emu_ctx_switch
  .hidden mm_emu_ctx_switch
  .type mm_emu_ctx_switch, @function
mm_emu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mm_emu_ctx_switch, .-mm_emu_ctx_switch

  .p2align 4
  .globl mm_emu_ctx_start
  .hidden mm_emu_ctx_start
  .type mm_emu_ctx_start, @function
mm_emu_ctx_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size mm_emu_ctx_start, .-mm_emu_ctx_start
)");
extern "C" void mm_emu_ctx_start();
#endif

namespace mm::emu::detail {

Stack stack_alloc(size_t usable_bytes) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  Stack s;
  s.guard = page;
  s.size = (usable_bytes + page - 1) / page * page + page;
  void* p = mmap(nullptr, s.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                 -1, 0);
  if (p == MAP_FAILED)
    throw Error(cat("CUDA emulator: cannot map a ", s.size, "-byte fiber stack: ", std::strerror(errno)));
  if (mprotect(p, page, PROT_NONE) != 0) {
    int e = errno;
    munmap(p, s.size);
    throw Error(cat("CUDA emulator: cannot protect a fiber stack guard page: ", std::strerror(e)));
  }
  s.base = static_cast<unsigned char*>(p);
  return s;
}

void stack_free(Stack& s) {
  if (s.base) munmap(s.base, s.size);
  s = Stack{};
}

bool stack_guard_hit(const Stack& s, const void* addr) {
  auto a = reinterpret_cast<uintptr_t>(addr), b = reinterpret_cast<uintptr_t>(s.base);
  return s.base && a >= b && a < b + s.guard;
}

#if defined(MM_EMU_ASM_SWITCH)
void context_init(Context* c, const Stack& s, void (*fn)(void*), void* arg, size_t color) {
  auto top = reinterpret_cast<uintptr_t>(s.base + s.size - color) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<void**>(top);
  // Popped by mm_emu_ctx_switch in this order: r15 r14 r13 r12 rbx rbp, then `ret`.
  *--sp = reinterpret_cast<void*>(&mm_emu_ctx_start);
  *--sp = nullptr;                              // rbp
  *--sp = nullptr;                              // rbx
  *--sp = arg;                                  // r12
  *--sp = reinterpret_cast<void*>(fn);          // r13
  *--sp = nullptr;                              // r14
  *--sp = nullptr;                              // r15
  c->sp = sp;  // after the pops and the ret, rsp == top: 16-byte aligned before the call
}
#else
namespace {
thread_local void (*g_start_fn)(void*);
thread_local void* g_start_arg;
void ucontext_start() {
  void (*fn)(void*) = g_start_fn;
  fn(g_start_arg);
}
}  // namespace

void context_init(Context* c, const Stack& s, void (*fn)(void*), void* arg, size_t color) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = s.base + s.guard;
  c->uc.uc_stack.ss_size = s.size - s.guard - color;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, &ucontext_start, 0);
  // One fiber starts at a time on an OS thread, right after its context_init.
  g_start_fn = fn;
  g_start_arg = arg;
}

void context_switch(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
#endif

}  // namespace mm::emu::detail
