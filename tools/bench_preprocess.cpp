// Prints preprocessing throughput per core (see tasks/preprocess_bench.h).
//   build/bench_preprocess [seconds per part, default 2]
#include <cstdio>
#include <cstdlib>

#include "tasks/preprocess_bench.h"

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const mm::PreprocessBench b = mm::bench_preprocess(seconds > 0 ? seconds : 2.0);
  std::printf("image 28x28 -> 128x128 bicubic + normalise: %9.0f images/s per core (target 2000, %ld timed)\n",
              b.images_per_s, b.images);
  std::printf("audio 1 s -> 80-dim log-mel fbank:         %9.0f audio s/s per core (target 200, %ld clips)\n",
              b.audio_seconds_per_s, b.audio_clips);
  return 0;
}
