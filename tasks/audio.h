// AUDIO preprocessing: decode any container/codec FFmpeg knows, resample to 16 kHz mono,
// 80-dim log-mel filterbank (Kaldi-compatible framing), optional SpecAugment.
//
//   Audio a = load_audio("utt.mp3");          // 16 kHz mono float samples in [-1, 1]
//   Fbank f = compute_fbank(a.samples);       // [frames, 80], frames = 1 + (n - 400) / 160
//   std::mt19937_64 rng(seed);
//   spec_augment(f, {}, rng);                 // training only
//
// For many clips build one FbankComputer and reuse it: it holds the window, FFT tables
// and mel filters.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace mm {

struct Audio {
  int sample_rate = 16000;
  std::vector<float> samples;  // [n], mono
  double seconds() const { return sample_rate > 0 ? double(samples.size()) / sample_rate : 0.0; }
};

// Decodes the best audio stream of a file -> [n] mono float at `sample_rate` Hz.
// Corrupt or undecodable input throws mm::Error naming the path and FFmpeg's reason.
Audio load_audio(const std::string& path, int sample_rate = 16000);
// Same from bytes in memory (a data-row field); `source` names them in errors.
Audio decode_audio(const uint8_t* bytes, size_t n, const std::string& source,
                   int sample_rate = 16000);

enum class Window { povey, hann, hamming };

struct FbankOptions {
  int sample_rate = 16000;
  int n_mels = 80;
  int frame_length = 400;  // 25 ms at 16 kHz
  int frame_shift = 160;   // 10 ms
  int n_fft = 512;         // power of two >= frame_length
  double low_freq = 20.0, high_freq = 8000.0;  // triangular filters span this range
  double preemphasis = 0.97;  // 0 turns it off
  bool remove_dc = true;      // subtract each frame's mean (Kaldi default)
  Window window = Window::povey;
  // Kaldi and fairseq feed int16-scaled samples; we scale [-1,1] floats the same way so
  // the features (and any model trained on them) agree with those pipelines.
  double input_scale = 32768.0;
  float energy_floor = 1.1920929e-07f;  // log(max(e, floor)): FLT_EPSILON, as Kaldi
};

// Log-mel features, row-major [frames, bins].
struct Fbank {
  int frames = 0, bins = 0;
  std::vector<float> data;
  float at(int t, int b) const { return data[size_t(t) * bins + b]; }
};

// Our own iterative radix-2 FFT of a real signal of length n (a power of two), via one
// complex FFT of n/2 points. Exposed for tests and the filterbank.
class RealFFT {
 public:
  explicit RealFFT(int n);
  int size() const { return n_; }
  // x: [n] real -> power: [n/2 + 1], |X[k]|^2.
  void power_spectrum(const float* x, float* power) const;
  // x: [n] real -> re, im: [n/2 + 1] each, X[k] = sum_j x[j] exp(-2 pi i jk/n).
  void forward(const float* x, float* re, float* im) const;

 private:
  int n_ = 0, m_ = 0;                  // m_ = n/2 complex points
  std::vector<int> bitrev_;            // [m_]
  std::vector<float> tw_re_, tw_im_;   // [m_/2] twiddles of the m-point FFT
  std::vector<float> sp_re_, sp_im_;   // [m_] split twiddles exp(-2 pi i k / n)
};

// Mel scale used throughout: mel(f) = 1127 ln(1 + f / 700).
double hz_to_mel(double hz);
double mel_to_hz(double mel);

class FbankComputer {
 public:
  explicit FbankComputer(const FbankOptions& opt = {});
  const FbankOptions& options() const { return opt_; }
  // Number of frames for n samples: 1 + (n - frame_length) / frame_shift, 0 if too short.
  int num_frames(size_t n) const;
  // samples [n] at options().sample_rate -> [num_frames(n), n_mels].
  Fbank compute(const float* samples, size_t n) const;
  Fbank compute(const std::vector<float>& samples) const { return compute(samples.data(), samples.size()); }

 private:
  FbankOptions opt_;
  RealFFT fft_;
  std::vector<float> window_;              // [frame_length]
  std::vector<int> mel_start_;             // [n_mels] first FFT bin of each filter
  std::vector<std::vector<float>> mel_w_;  // [n_mels][width] triangular weights
};

// samples [n] -> [frames, n_mels] with default-constructed computer for `opt`.
Fbank compute_fbank(const std::vector<float>& samples, const FbankOptions& opt = {});

// SpecAugment (Park et al. 2019) without time warping: `freq_masks` bands of up to
// `freq_width` bins and `time_masks` spans of up to min(time_width, time_ratio * frames)
// frames, filled with the mean of the features (they are not normalised, so 0 would be
// an out-of-distribution value).
struct SpecAugmentOptions {
  int freq_masks = 2, freq_width = 27;
  int time_masks = 2, time_width = 100;
  double time_ratio = 1.0;
};
void spec_augment(Fbank& f, const SpecAugmentOptions& opt, std::mt19937_64& rng);

}  // namespace mm
