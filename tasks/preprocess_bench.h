// Preprocessing throughput on one core, for `make bench` and tools/bench_preprocess:
//   images: 28x28 grey (Fashion-MNIST size) -> RGB -> 128x128 bicubic -> [3,128,128] in [-1,1]
//   audio:  1 s of 16 kHz audio -> 80-dim log-mel filterbank [98, 80]
// Targets (per core): >= 2,000 images/s and >= 200 audio seconds/s.
#pragma once

namespace mm {

struct PreprocessBench {
  double images_per_s = 0;         // image items per second
  double audio_seconds_per_s = 0;  // seconds of audio turned into features per second
  long images = 0;                 // items timed
  long audio_clips = 0;            // 1 s clips timed
};

// Runs each part for about `seconds` of wall time on the calling thread.
PreprocessBench bench_preprocess(double seconds = 1.0);

}  // namespace mm
