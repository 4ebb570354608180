#include "tasks/preprocess_bench.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "tasks/audio.h"
#include "tasks/image.h"

namespace mm {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Keeps results observable so the compiler cannot drop the work being timed.
volatile float g_sink = 0;

}  // namespace

PreprocessBench bench_preprocess(double seconds) {
  PreprocessBench r;
  // Images: a few distinct 28x28 grey inputs, cycled (content does not change the cost).
  std::vector<std::vector<uint8_t>> imgs(8, std::vector<uint8_t>(28 * 28));
  for (size_t k = 0; k < imgs.size(); ++k)
    for (int i = 0; i < 28 * 28; ++i) imgs[k][i] = uint8_t((i * 7 + k * 31 + (i / 28) * 13) & 0xff);
  float acc = 0;
  // Output goes to a reused batch of 64 [3, 128, 128] slots, as a data loader fills a
  // batch tensor; the resized image buffer is reused too.
  const size_t slot = size_t(3) * 128 * 128;
  std::vector<float> batch(64 * slot);
  Image resized;
  auto t0 = Clock::now();
  do {
    for (int rep = 0; rep < 64; ++rep, ++r.images) {
      const Image im = image_from_u8(imgs[r.images % imgs.size()].data(), 28, 28, 1);
      resize_into(im, 128, 128, ResizeMode::bicubic, resized);
      to_chw_normalized(resized, &batch[rep * slot]);
    }
    acc += batch[r.images % batch.size()];
  } while (since(t0) < seconds);
  r.images_per_s = double(r.images) / since(t0);

  // Audio: 1 s at 16 kHz, a chirp plus a little deterministic noise.
  std::vector<float> clip(16000);
  uint32_t s = 12345;
  for (size_t i = 0; i < clip.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    const double t = double(i) / 16000;
    clip[i] = float(0.3 * std::sin(2 * std::numbers::pi * (200 + 1500 * t) * t) +
                    0.01 * (double(s >> 8) / double(1 << 24) - 0.5));
  }
  const FbankComputer fb;  // built once, as a data loader would
  t0 = Clock::now();
  do {
    for (int rep = 0; rep < 8; ++rep, ++r.audio_clips) {
      const Fbank f = fb.compute(clip);
      acc += f.data[r.audio_clips % f.data.size()];
    }
  } while (since(t0) < seconds);
  r.audio_seconds_per_s = double(r.audio_clips) * (double(clip.size()) / 16000) / since(t0);
  g_sink = acc;
  return r;
}

}  // namespace mm
