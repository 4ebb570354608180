// The doctest runner for every tests/test_*.cpp. Run a subset with
//   build/run_tests -tc='*layer_norm*'      or      make test TEST_ARGS='-ts=ops'
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
