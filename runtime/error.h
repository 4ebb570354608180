// One error type for everything a user can get wrong: bad shapes, bad files, bad
// instructions. Messages name the op / file / field so the user can act on them.
//
//   MM_CHECK(a.dim() == 2, "matmul: expected a 2-D tensor, got shape ", a.shape());
//
// Internal invariants (our bugs, not the user's) use MM_ASSERT, which throws too: a
// library must never abort() the process that embeds it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Concatenates anything streamable into a string: cat("x=", 3, " y=", v).
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace mm

#define MM_CHECK(cond, ...)                                   \
  do {                                                        \
    if (!(cond)) [[unlikely]] throw ::mm::Error(::mm::cat(__VA_ARGS__)); \
  } while (0)

#define MM_ASSERT(cond)                                                              \
  do {                                                                               \
    if (!(cond)) [[unlikely]]                                                        \
      throw ::mm::Error(::mm::cat("internal error: ", #cond, " at ", __FILE__, ":", __LINE__)); \
  } while (0)
