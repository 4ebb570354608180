// AUDIO and VIDEO preprocessing on real media made by ffmpeg / espeak-ng at test time.
// References are independent of our decoders: the WAV header's own sample count, the
// mel formula evaluated here, a naive DFT, and the grey levels the video was made with.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "tasks/audio.h"
#include "tasks/video.h"
#include "tests/media_fixtures.h"

using namespace mm;

namespace {

// Duration of a PCM WAV from its header alone: data bytes / (rate * channels * bytes).
double wav_seconds(const std::vector<uint8_t>& b) {
  auto u32 = [&](size_t o) { uint32_t v; std::memcpy(&v, &b[o], 4); return v; };
  auto u16 = [&](size_t o) { uint16_t v; std::memcpy(&v, &b[o], 2); return v; };
  REQUIRE(b.size() > 44);
  REQUIRE(std::memcmp(b.data(), "RIFF", 4) == 0);
  uint32_t rate = 0, channels = 0, bits = 0;
  size_t off = 12;
  while (off + 8 <= b.size()) {
    const uint32_t size = u32(off + 4);
    if (std::memcmp(&b[off], "fmt ", 4) == 0) {
      channels = u16(off + 10);
      rate = u32(off + 12);
      bits = u16(off + 22);
    } else if (std::memcmp(&b[off], "data", 4) == 0) {
      REQUIRE(rate > 0);
      // espeak-ng streams its WAV and may leave a placeholder size: use the file's end.
      const size_t bytes = std::min<size_t>(size, b.size() - off - 8);
      return double(bytes) / (double(rate) * channels * (bits / 8));
    }
    off += 8 + size + (size & 1);
  }
  FAIL("no data chunk");
  return 0;
}

// Peak of the per-sample channel mean of a 16-bit PCM WAV, read straight from the file.
double wav_mono_peak(const std::vector<uint8_t>& b) {
  auto u32 = [&](size_t o) { uint32_t v; std::memcpy(&v, &b[o], 4); return v; };
  auto u16 = [&](size_t o) { uint16_t v; std::memcpy(&v, &b[o], 2); return v; };
  int channels = 0, bits = 0;
  size_t off = 12;
  while (off + 8 <= b.size()) {
    const uint32_t size = u32(off + 4);
    if (std::memcmp(&b[off], "fmt ", 4) == 0) {
      channels = u16(off + 10);
      bits = u16(off + 22);
    } else if (std::memcmp(&b[off], "data", 4) == 0) {
      REQUIRE(bits == 16);
      double peak = 0;
      const size_t end = std::min<size_t>(off + 8 + size, b.size());
      for (size_t p = off + 8; p + 2 * channels <= end; p += 2 * channels) {
        double m = 0;
        for (int c = 0; c < channels; ++c) m += int16_t(u16(p + 2 * c)) / 32768.0;
        peak = std::max(peak, std::fabs(m / channels));
      }
      return peak;
    }
    off += 8 + size + (size & 1);
  }
  FAIL("no data chunk");
  return 0;
}

double mean_value(const Image& im) {
  double s = 0;
  for (float v : im.data) s += v;
  return s / double(im.data.size());
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("audio: WAV, MP3 and Ogg/Vorbis decode to 16 kHz mono of the right duration") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  const double ref = wav_seconds(read_bytes(fx.path("speech.wav")));
  REQUIRE(ref > 1.0);
  FbankComputer fb;
  for (const char* name : {"speech.wav", "speech.mp3", "speech.ogg"}) {
    CAPTURE(name);
    const Audio a = load_audio(fx.path(name));
    CHECK(a.sample_rate == 16000);
    CHECK(std::fabs(a.seconds() - ref) / ref < 0.03);
    // Real speech, not silence: a healthy peak and some energy.
    float peak = 0;
    double energy = 0;
    for (float v : a.samples) { peak = std::max(peak, std::fabs(v)); energy += double(v) * v; }
    CHECK(peak > 0.05f);
    CHECK(peak <= 1.01f);
    CHECK(energy / a.samples.size() > 1e-4);

    const Fbank f = fb.compute(a.samples);
    const size_t n = a.samples.size();
    CHECK(f.frames == int(1 + (n - 400) / 160));
    CHECK(f.bins == 80);
    CHECK(f.data.size() == size_t(f.frames) * 80);
    int bad = 0;
    for (float v : f.data) bad += !std::isfinite(v);
    CHECK(bad == 0);
  }
}

TEST_CASE("audio: decoding from memory equals decoding the file") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  for (const char* name : {"speech.mp3", "speech.ogg"}) {
    CAPTURE(name);
    const std::vector<uint8_t> bytes = read_bytes(fx.path(name));
    const Audio a = decode_audio(bytes.data(), bytes.size(), "field wav");
    const Audio b = load_audio(fx.path(name));
    CHECK(a.samples.size() == b.samples.size());
    CHECK(a.samples == b.samples);
  }
}

TEST_CASE("audio: a 1 kHz tone peaks in the mel band that contains 1 kHz") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  const Audio a = load_audio(fx.path("tone.wav"));  // 44.1 kHz stereo -> 16 kHz mono
  CHECK(std::abs(int(a.samples.size()) - 16000) <= 16);
  // The mono mix is the channel mean: its peak matches the mean read from the PCM.
  float peak = 0;
  for (size_t i = 1000; i < a.samples.size() - 1000; ++i) peak = std::max(peak, std::fabs(a.samples[i]));
  const double want_peak = wav_mono_peak(read_bytes(fx.path("tone.wav")));
  CHECK(want_peak > 0.05);
  CHECK(peak == doctest::Approx(want_peak).epsilon(0.03));

  const Fbank f = compute_fbank(a.samples);
  REQUIRE(f.frames == 1 + (int(a.samples.size()) - 400) / 160);
  // The band from the mel formula, computed here: 82 points equally spaced in
  // mel(f) = 1127 ln(1 + f/700) from 20 Hz to 8 kHz; band b spans points b..b+2, and the
  // band containing 1 kHz most is the one whose triangle is highest there.
  auto mel = [](double hz) { return 1127.0 * std::log(1.0 + hz / 700.0); };
  const double lo = mel(20), hi = mel(8000), step = (hi - lo) / 81, m1k = mel(1000);
  int want = -1;
  double best = 0;
  for (int b = 0; b < 80; ++b) {
    const double l = lo + b * step, c = l + step, r = c + step;
    const double w = m1k <= l || m1k >= r ? 0 : m1k <= c ? (m1k - l) / step : (r - m1k) / step;
    if (w > best) { best = w; want = b; }
  }
  REQUIRE(want >= 0);
  std::vector<double> avg(80, 0.0);
  for (int t = 0; t < f.frames; ++t)
    for (int b = 0; b < 80; ++b) avg[b] += f.at(t, b) / f.frames;
  const int got = int(std::max_element(avg.begin(), avg.end()) - avg.begin());
  CHECK(got == want);
  // A pure tone: far bands are much quieter (log energy at least 5 nats lower).
  CHECK(avg[got] - avg[5] > 5.0);
  CHECK(avg[got] - avg[75] > 5.0);
}

TEST_CASE("audio: our FFT matches a naive DFT") {
  for (int n : {8, 64, 512}) {
    CAPTURE(n);
    std::mt19937 rng(n);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(n);
    for (auto& v : x) v = u(rng);
    RealFFT fft(n);
    std::vector<float> re(n / 2 + 1), im(n / 2 + 1), pw(n / 2 + 1);
    fft.forward(x.data(), re.data(), im.data());
    fft.power_spectrum(x.data(), pw.data());
    double max_err = 0;
    for (int k = 0; k <= n / 2; ++k) {
      std::complex<double> s = 0;
      for (int j = 0; j < n; ++j) s += double(x[j]) * std::polar(1.0, -2.0 * std::numbers::pi * j * k / n);
      max_err = std::max(max_err, std::abs(s - std::complex<double>(re[k], im[k])));
      CHECK(pw[k] == doctest::Approx(std::norm(s)).epsilon(1e-3));
    }
    CHECK(max_err < 1e-4 * n);
  }
  CHECK_THROWS_AS(RealFFT(100), mm::Error);
}

TEST_CASE("audio: fbank framing edge cases and SpecAugment") {
  FbankComputer fb;
  CHECK(fb.num_frames(399) == 0);
  CHECK(fb.num_frames(400) == 1);
  CHECK(fb.num_frames(559) == 1);
  CHECK(fb.num_frames(560) == 2);
  std::vector<float> silence(16000, 0.f);
  const Fbank s = fb.compute(silence);
  CHECK(s.frames == 98);
  CHECK(s.at(10, 10) == doctest::Approx(std::log(1.1920929e-07)));  // the floor

  std::mt19937 g(1);
  std::normal_distribution<float> nd(0, 0.1f);
  std::vector<float> noise(16000);
  for (auto& v : noise) v = nd(g);
  const Fbank f0 = fb.compute(noise);
  Fbank f1 = f0, f2 = f0;
  std::mt19937_64 r1(5), r2(5);
  SpecAugmentOptions opt;
  opt.freq_width = 10;
  opt.time_width = 20;
  spec_augment(f1, opt, r1);
  spec_augment(f2, opt, r2);
  CHECK(f1.data == f2.data);  // seeded: reproducible
  CHECK(f1.frames == f0.frames);
  int changed = 0;
  for (size_t i = 0; i < f0.data.size(); ++i) changed += f1.data[i] != f0.data[i];
  CHECK(changed > 0);
  CHECK(changed <= 2 * 10 * f0.frames + 2 * 20 * 80);  // at most the masks' area
}

TEST_CASE("audio: corrupt or missing input is an mm::Error naming it and FFmpeg's reason") {
  std::vector<uint8_t> junk(2000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t((i * 7919) >> 3);
  try {
    decode_audio(junk.data(), junk.size(), "field wav");
    FAIL("no error");
  } catch (const mm::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("field wav") != std::string::npos);
    CHECK(msg.find("(") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(load_audio("/nonexistent/x.wav"), doctest::Contains("/nonexistent/x.wav"), mm::Error);
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  // A PNG is a valid file but has no audio stream.
  CHECK_THROWS_WITH_AS(load_audio(fx.path("grad.png")), doctest::Contains("no audio stream"), mm::Error);
}

TEST_CASE("video: N frames sampled evenly, in order, with the content they were made with") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  for (const char* name : {"video.mp4", "video.mkv"}) {
    CAPTURE(name);
    const VideoClip all = load_video(fx.path(name), 20);
    REQUIRE(all.total_frames == 20);
    REQUIRE(all.frames.size() == 20);
    CHECK(all.fps == doctest::Approx(10.0));
    std::vector<double> means;
    for (int i = 0; i < 20; ++i) {
      CHECK(all.frame_index[i] == i);
      CHECK(all.frames[i].H == 48);
      CHECK(all.frames[i].W == 64);
      means.push_back(mean_value(all.frames[i]));
      // Frame i was made as the full-range grey 20 + 10 i, stored as limited-range YUV:
      // decoding must undo the range mapping to get the same grey back.
      CHECK(means[i] == doctest::Approx(20 + 10 * i).epsilon(0.02));
      if (i > 0) CHECK(means[i] > means[i - 1] + 5);
    }
    // 5 of 20: linspace(0, 19, 5) = 0, 4.75, 9.5, 14.25, 19 -> nearest 0, 5, 10, 14, 19.
    const VideoClip five = load_video(fx.path(name), 5);
    REQUIRE(five.frames.size() == 5);
    const std::vector<int64_t> want = {0, 5, 10, 14, 19};
    CHECK(five.frame_index == want);
    for (int k = 0; k < 5; ++k) CHECK(mean_value(five.frames[k]) == doctest::Approx(means[want[k]]));
    // More samples than frames: frames repeat, order is kept.
    const VideoClip many = load_video(fx.path(name), 30);
    REQUIRE(many.frames.size() == 30);
    for (int k = 1; k < 30; ++k) CHECK(many.frame_index[k] >= many.frame_index[k - 1]);
    CHECK(many.frame_index.back() == 19);
  }
  const std::vector<uint8_t> bytes = read_bytes(fx.path("video.mp4"));
  const VideoClip mem = decode_video(bytes.data(), bytes.size(), "field video", 4);
  const VideoClip file = load_video(fx.path("video.mp4"), 4);
  REQUIRE(mem.frames.size() == 4);
  for (int k = 0; k < 4; ++k) CHECK(mem.frames[k].data == file.frames[k].data);
  CHECK(sample_frame_indices(9, 1) == std::vector<int64_t>{4});
}

TEST_CASE("video: corrupt input and files without video are mm::Errors naming the source") {
  std::vector<uint8_t> junk(4000, 0x47);  // looks like MPEG-TS sync bytes, but is not
  for (size_t i = 1; i < junk.size(); i += 3) junk[i] = uint8_t(i);
  CHECK_THROWS_WITH_AS(decode_video(junk.data(), junk.size(), "field video", 4),
                       doctest::Contains("field video"), mm::Error);
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  CHECK_THROWS_WITH_AS(load_video(fx.path("speech.wav"), 4), doctest::Contains("no video stream"), mm::Error);
  // An MP4 cut short loses its index (moov atom): unreadable, and said so.
  const std::vector<uint8_t> mp4 = read_bytes(fx.path("video.mp4"));
  CHECK_THROWS_WITH_AS(decode_video(mp4.data(), mp4.size() / 2, "field clip", 4),
                       doctest::Contains("field clip: cannot open media ("), mm::Error);
}

}  // TEST_SUITE
