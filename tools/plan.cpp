// build/plan 'INSTRUCTION' [COLUMN...]
// Prints the task plan an instruction parses to: per side the token sequences, and per
// slot its field, attributes, preprocessor, adaptor, loss and generator. With columns
// given, also checks that every field the instruction names exists in the data.
// Exit status: 0 when the instruction is valid, 1 with the error (and a caret) when not.
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "tasks/instruction.h"

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
    std::fprintf(argc < 2 ? stderr : stdout,
                 "usage: plan 'INSTRUCTION' [COLUMN...]\n"
                 "  e.g. plan '[IMAGE:img] what does the image describe? -> [TEXT:cap]' img cap\n");
    return argc < 2 ? 2 : 0;
  }
  try {
    mm::Plan plan = mm::parse_instruction(argv[1]);
    if (argc > 2) mm::validate(plan, std::vector<std::string>(argv + 2, argv + argc));
    std::fputs(mm::describe(plan).c_str(), stdout);
    return 0;
  } catch (const mm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
