// libFuzzer target: any byte string given to the Instruction parser either parses into
// a consistent plan or throws mm::Error; never a crash, hang or sanitizer report.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tools/fuzz/fuzz_instruction.cpp tasks/instruction.cpp tasks/rng.cpp -o build/fuzz_instruction
//   build/fuzz_instruction -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/error.h"
#include "tasks/instruction.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mm::Plan plan = mm::parse_instruction(text);
    // Invariants a caller relies on.
    MM_ASSERT(!plan.templates.empty());
    for (const mm::Template& t : plan.templates) {
      MM_ASSERT(t.target == (t.output.slots.empty() ? -1 : int(t.output.slots.size()) - 1));
      for (const mm::Side* s : {&t.input, &t.output}) {
        size_t covered = 0;
        for (const mm::Group& g : s->groups) covered += g.segments.size();
        MM_ASSERT(covered == s->segments.size());
        for (const mm::Segment& seg : s->segments)
          MM_ASSERT(seg.is_slot ? seg.slot >= 0 && seg.slot < int(s->slots.size()) : !seg.text.empty());
        for (const mm::Slot& sl : s->slots)
          MM_ASSERT(!sl.preprocessor.empty() && !sl.adaptor.empty() && !sl.loss.empty());
      }
    }
    (void)mm::describe(plan);
    (void)plan.choose_template(size, 3);
    mm::validate(plan, {"img", "cap", "text", "a"});
  } catch (const mm::Error& e) {
    // A user error, with its column and caret; an internal error (MM_ASSERT) is a bug.
    std::string m = e.what();
    if (m.rfind("instruction error at column ", 0) != 0) throw;
    if (m.find("\n  ") == std::string::npos || m.back() != '^') throw;
  }
  return 0;
}
