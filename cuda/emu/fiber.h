// Fibers for the CUDA emulator: stacks with a guard page, and a context switch.
// On x86-64 the switch is a few instructions of assembly (fiber.cpp) that save the
// callee-saved registers and the stack pointer; elsewhere it falls back to ucontext
// (swapcontext also saves the signal mask with a system call, so it is much slower).
// MXCSR and the x87 control word are not switched: kernels must not change the FP mode.
#pragma once
#include <cstddef>

#if defined(__x86_64__) && !defined(MM_EMU_UCONTEXT)
#define MM_EMU_ASM_SWITCH 1
extern "C" void mm_emu_ctx_switch(void** save_sp, void* new_sp);
#else
#include <ucontext.h>
#endif

namespace mm::emu::detail {

struct Stack {
  unsigned char* base = nullptr;  // mapping start; the lowest page is the guard
  size_t size = 0;                // whole mapping, guard included
  size_t guard = 0;
};

Stack stack_alloc(size_t usable_bytes);  // throws mm::Error when mmap fails
void stack_free(Stack& s);
bool stack_guard_hit(const Stack& s, const void* addr);

#if defined(MM_EMU_ASM_SWITCH)
struct Context {
  void* sp = nullptr;
};
inline void context_switch(Context* from, Context* to) { mm_emu_ctx_switch(&from->sp, to->sp); }
#else
struct Context {
  ucontext_t uc;
};
void context_switch(Context* from, Context* to);
#endif

// Prepares `c` so that switching to it calls fn(arg) on stack `s`; fn must never return.
// The stack starts `color` bytes below its top: stacks are a whole number of pages apart,
// so without an offset the hot frames of all fibers would fall into the same cache sets.
void context_init(Context* c, const Stack& s, void (*fn)(void*), void* arg, size_t color = 0);

}  // namespace mm::emu::detail
