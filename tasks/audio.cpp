#include "tasks/audio.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "runtime/error.h"
#include "tasks/ffmpeg_io.h"
#include "tasks/rng.h"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>
}

namespace mm {

// ---------------------------------------------------------------- decoding

namespace {

// Converts decoded frames of any sample format / layout / rate to mono float at `rate`.
// The resampler is built from the first frame (not the codec context), because some
// decoders only know their output layout once they have decoded something.
class MonoResampler {
 public:
  MonoResampler(int rate, const std::string& source) : rate_(rate), source_(source) {}
  ~MonoResampler() { free_swr(); }

  void push(const AVFrame* f, std::vector<float>& out) {
    if (!swr_ || f->format != in_fmt_ || f->sample_rate != in_rate_ ||
        av_channel_layout_compare(&f->ch_layout, &frame_layout_) != 0) {
      flush(out);  // a mid-stream format change: finish the old stream, start anew
      init(f, out);
    }
    in_samples_ += f->nb_samples;
    convert(const_cast<const uint8_t**>(f->extended_data), f->nb_samples, out);
  }

  void flush(std::vector<float>& out) {
    if (!swr_) return;
    convert(nullptr, 0, out);
    // The flush also returns the resampling filter's tail (a few zero-padded samples):
    // trim the segment to its true length, in * rate / in_rate, as ffmpeg's CLI does.
    const size_t want = out_start_ + size_t(std::llround(double(in_samples_) * rate_ / in_rate_));
    if (out.size() > want) out.resize(want);
  }

 private:
  void init(const AVFrame* f, const std::vector<float>& out) {
    free_swr();
    in_samples_ = 0;
    out_start_ = out.size();
    in_fmt_ = f->format;
    in_rate_ = f->sample_rate;
    int rc = av_channel_layout_copy(&frame_layout_, &f->ch_layout);
    MM_CHECK(rc >= 0, source_, ": bad channel layout (", av_error_string(rc), ")");
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || f->ch_layout.nb_channels == 0) {
      // Only a channel count is known (raw PCM): assume the default layout for it.
      MM_CHECK(f->ch_layout.nb_channels > 0, source_, ": audio frame has no channels");
      av_channel_layout_default(&in_layout_, f->ch_layout.nb_channels);
    } else {
      int r = av_channel_layout_copy(&in_layout_, &f->ch_layout);
      MM_CHECK(r >= 0, source_, ": bad channel layout (", av_error_string(r), ")");
    }
    AVChannelLayout mono;
    av_channel_layout_default(&mono, 1);
    int r = swr_alloc_set_opts2(&swr_, &mono, AV_SAMPLE_FMT_FLT, rate_, &in_layout_,
                                AVSampleFormat(in_fmt_), in_rate_, 0, nullptr);
    av_channel_layout_uninit(&mono);
    if (r >= 0 && in_layout_.nb_channels > 1) {
      // Downmix = the plain mean of the channels ((L + R) / 2 for stereo, as ffmpeg -ac 1
      // and speech toolkits do); swr's own default matrix scales stereo by 0.707 instead.
      const int nch = in_layout_.nb_channels;
      std::vector<double> matrix(size_t(nch), 1.0 / nch);
      r = swr_set_matrix(swr_, matrix.data(), nch);
    }
    if (r >= 0) r = swr_init(swr_);
    if (r < 0) {
      free_swr();
      throw Error(cat(source_, ": cannot set up resampling to ", rate_, " Hz mono (", av_error_string(r), ")"));
    }
  }

  void convert(const uint8_t** in, int n_in, std::vector<float>& out) {
    for (;;) {
      const int cap = swr_get_out_samples(swr_, n_in) + 64;
      const size_t old = out.size();
      out.resize(old + size_t(cap));
      uint8_t* dst = reinterpret_cast<uint8_t*>(out.data() + old);
      const int got = swr_convert(swr_, &dst, cap, in, n_in);
      if (got < 0) {
        out.resize(old);
        throw Error(cat(source_, ": resampling failed (", av_error_string(got), ")"));
      }
      out.resize(old + size_t(got));
      // Feeding input: one call consumes it all. Flushing: repeat until nothing is left.
      if (in != nullptr || got == 0) return;
    }
  }

  void free_swr() {
    swr_free(&swr_);
    av_channel_layout_uninit(&in_layout_);
    av_channel_layout_uninit(&frame_layout_);
  }

  int rate_;
  std::string source_;
  SwrContext* swr_ = nullptr;
  int in_fmt_ = -1, in_rate_ = 0;
  int64_t in_samples_ = 0;  // input samples of the current segment (one swr setup)
  size_t out_start_ = 0;    // where the current segment starts in the output
  AVChannelLayout in_layout_{};     // what swr was told (unspecified -> default order)
  AVChannelLayout frame_layout_{};  // what the frames said, to spot a change
};

Audio decode_input(MediaInput& in, int sample_rate) {
  MM_CHECK(sample_rate > 0, in.source(), ": bad target sample rate ", sample_rate);
  StreamDecoder dec(in, AVMEDIA_TYPE_AUDIO);
  Audio a;
  a.sample_rate = sample_rate;
  MonoResampler rs(sample_rate, in.source());
  dec.run([&](AVFrame* f) {
    rs.push(f, a.samples);
    return true;
  });
  rs.flush(a.samples);
  MM_CHECK(!a.samples.empty(), in.source(), ": the audio stream decoded to no samples");
  return a;
}

}  // namespace

Audio load_audio(const std::string& path, int sample_rate) {
  MediaInput in(path);
  return decode_input(in, sample_rate);
}

Audio decode_audio(const uint8_t* bytes, size_t n, const std::string& source, int sample_rate) {
  MediaInput in(bytes, n, source);
  return decode_input(in, sample_rate);
}

// ---------------------------------------------------------------- FFT

RealFFT::RealFFT(int n) : n_(n), m_(n / 2) {
  MM_CHECK(n >= 4 && (n & (n - 1)) == 0, "RealFFT: size must be a power of two >= 4, got ", n);
  int bits = 0;
  while ((1 << bits) < m_) ++bits;
  bitrev_.resize(m_);
  for (int i = 0; i < m_; ++i) {
    int r = 0;
    for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
    bitrev_[i] = r;
  }
  // Twiddles in double then rounded once: accumulating them in float loses ~1e-5.
  tw_re_.resize(std::max(1, m_ / 2));
  tw_im_.resize(std::max(1, m_ / 2));
  for (int k = 0; k < m_ / 2; ++k) {
    const double a = -2.0 * std::numbers::pi * k / m_;
    tw_re_[k] = float(std::cos(a));
    tw_im_[k] = float(std::sin(a));
  }
  sp_re_.resize(m_);
  sp_im_.resize(m_);
  for (int k = 0; k < m_; ++k) {
    const double a = -2.0 * std::numbers::pi * k / n_;
    sp_re_[k] = float(std::cos(a));
    sp_im_[k] = float(std::sin(a));
  }
}

void RealFFT::forward(const float* x, float* re, float* im) const {
  const int m = m_;
  // Pack the real signal as m complex points z[j] = x[2j] + i x[2j+1], in bit-reversed
  // order so the iterative butterflies run in place.
  float zr[4096], zi[4096];
  std::vector<float> big_r, big_i;
  float* ar = zr;
  float* ai = zi;
  if (m > 4096) {
    big_r.resize(m);
    big_i.resize(m);
    ar = big_r.data();
    ai = big_i.data();
  }
  for (int j = 0; j < m; ++j) {
    const int r = bitrev_[j];
    ar[r] = x[2 * j];
    ai[r] = x[2 * j + 1];
  }
  // Radix-2 decimation in time: stage with butterflies of span `half`.
  for (int len = 2; len <= m; len <<= 1) {
    const int half = len >> 1, step = m / len;
    for (int s = 0; s < m; s += len) {
      for (int k = 0; k < half; ++k) {
        const float wr = tw_re_[k * step], wi = tw_im_[k * step];
        const int a = s + k, b = a + half;
        const float tr = ar[b] * wr - ai[b] * wi;
        const float ti = ar[b] * wi + ai[b] * wr;
        ar[b] = ar[a] - tr; ai[b] = ai[a] - ti;
        ar[a] += tr;        ai[a] += ti;
      }
    }
  }
  // Split: with E = FFT(even samples), O = FFT(odd samples),
  //   E[k] = (Z[k] + conj Z[m-k]) / 2,  O[k] = (Z[k] - conj Z[m-k]) / 2i,
  //   X[k] = E[k] + exp(-2 pi i k / n) O[k], for k = 0..m (Z[m] = Z[0]).
  for (int k = 0; k <= m; ++k) {
    const int k1 = k % m, k2 = (m - k) % m;
    const float zr1 = ar[k1], zi1 = ai[k1], zr2 = ar[k2], zi2 = -ai[k2];  // conj Z[m-k]
    const float er = 0.5f * (zr1 + zr2), ei = 0.5f * (zi1 + zi2);
    // (a + ib) / 2i = (b - ia) / 2 with a + ib = Z[k] - conj Z[m-k]
    const float dr = zr1 - zr2, di = zi1 - zi2;
    const float orr = 0.5f * di, oi = -0.5f * dr;
    float wr, wi;
    if (k < m) { wr = sp_re_[k]; wi = sp_im_[k]; } else { wr = -1.f; wi = 0.f; }
    re[k] = er + orr * wr - oi * wi;
    im[k] = ei + orr * wi + oi * wr;
  }
}

void RealFFT::power_spectrum(const float* x, float* power) const {
  float re[4097], im[4097];
  std::vector<float> br, bi;
  float* r = re;
  float* i = im;
  if (m_ + 1 > 4097) {
    br.resize(m_ + 1);
    bi.resize(m_ + 1);
    r = br.data();
    i = bi.data();
  }
  forward(x, r, i);
  for (int k = 0; k <= m_; ++k) power[k] = r[k] * r[k] + i[k] * i[k];
}

// ---------------------------------------------------------------- filterbank

double hz_to_mel(double hz) { return 1127.0 * std::log(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::exp(mel / 1127.0) - 1.0); }

FbankComputer::FbankComputer(const FbankOptions& opt) : opt_(opt), fft_(opt.n_fft) {
  MM_CHECK(opt.frame_length > 0 && opt.frame_length <= opt.n_fft && opt.frame_shift > 0,
           "fbank: need 0 < frame_length (", opt.frame_length, ") <= n_fft (", opt.n_fft,
           ") and frame_shift > 0");
  MM_CHECK(opt.n_mels > 0 && opt.sample_rate > 0, "fbank: bad n_mels or sample_rate");
  const double nyquist = opt.sample_rate / 2.0;
  MM_CHECK(0 <= opt.low_freq && opt.low_freq < opt.high_freq && opt.high_freq <= nyquist,
           "fbank: need 0 <= low_freq < high_freq <= ", nyquist, " Hz, got ", opt.low_freq, "..",
           opt.high_freq);
  // Window, with L-1 in the denominator as Kaldi does.
  const int L = opt.frame_length;
  window_.resize(L);
  for (int i = 0; i < L; ++i) {
    const double a = 2.0 * std::numbers::pi * i / (L - 1);
    double w = 1.0;
    switch (opt.window) {
      case Window::hann: w = 0.5 - 0.5 * std::cos(a); break;
      case Window::hamming: w = 0.54 - 0.46 * std::cos(a); break;
      case Window::povey: w = std::pow(0.5 - 0.5 * std::cos(a), 0.85); break;
    }
    window_[i] = float(w);
  }
  // Triangular filters equally spaced on the mel scale: filter b rises from mel point b
  // to b+1 and falls to b+2. FFT bin k sits at k * sr / n_fft Hz.
  const int M = opt.n_mels;
  const double mlo = hz_to_mel(opt.low_freq), mhi = hz_to_mel(opt.high_freq);
  const double dm = (mhi - mlo) / (M + 1);
  const int nbins = opt.n_fft / 2 + 1;
  mel_start_.assign(M, 0);
  mel_w_.assign(M, {});
  for (int b = 0; b < M; ++b) {
    const double left = mlo + b * dm, centre = left + dm, right = centre + dm;
    int first = -1;
    std::vector<float> w;
    for (int k = 0; k < nbins; ++k) {
      const double mel = hz_to_mel(double(k) * opt.sample_rate / opt.n_fft);
      double v = 0;
      if (mel > left && mel < right) v = mel <= centre ? (mel - left) / dm : (right - mel) / dm;
      if (v > 0) {
        if (first < 0) first = k;
        w.resize(size_t(k - first + 1), 0.f);
        w[k - first] = float(v);
      }
    }
    // A filter narrower than one FFT bin gets no weight: the user asked for too many mels.
    MM_CHECK(first >= 0, "fbank: mel filter ", b, " covers no FFT bin (n_mels ", M,
             " too large for n_fft ", opt.n_fft, ")");
    mel_start_[b] = first;
    mel_w_[b] = std::move(w);
  }
}

int FbankComputer::num_frames(size_t n) const {
  if (n < size_t(opt_.frame_length)) return 0;
  return int(1 + (n - opt_.frame_length) / opt_.frame_shift);
}

Fbank FbankComputer::compute(const float* x, size_t n) const {
  Fbank f;
  f.frames = num_frames(n);
  f.bins = opt_.n_mels;
  f.data.resize(size_t(f.frames) * f.bins);
  const int L = opt_.frame_length, N = opt_.n_fft;
  std::vector<float> frame(N, 0.f), power(N / 2 + 1);
  const float scale = float(opt_.input_scale);
  const float pre = float(opt_.preemphasis);
  for (int t = 0; t < f.frames; ++t) {
    const float* src = x + size_t(t) * opt_.frame_shift;
    double mean = 0;
    for (int i = 0; i < L; ++i) {
      frame[i] = src[i] * scale;
      mean += frame[i];
    }
    if (opt_.remove_dc) {
      const float m = float(mean / L);
      for (int i = 0; i < L; ++i) frame[i] -= m;
    }
    if (pre != 0.f) {
      // Backwards so each step reads the un-filtered previous sample; x[0] uses itself.
      for (int i = L - 1; i > 0; --i) frame[i] -= pre * frame[i - 1];
      frame[0] -= pre * frame[0];
    }
    for (int i = 0; i < L; ++i) frame[i] *= window_[i];
    // frame[L..N) stays zero: the padding to the FFT size.
    fft_.power_spectrum(frame.data(), power.data());
    float* out = &f.data[size_t(t) * f.bins];
    for (int b = 0; b < f.bins; ++b) {
      const float* w = mel_w_[b].data();
      const float* p = power.data() + mel_start_[b];
      float e = 0;
      for (size_t k = 0; k < mel_w_[b].size(); ++k) e += w[k] * p[k];
      out[b] = std::log(std::max(e, opt_.energy_floor));
    }
  }
  return f;
}

Fbank compute_fbank(const std::vector<float>& samples, const FbankOptions& opt) {
  return FbankComputer(opt).compute(samples);
}

// ---------------------------------------------------------------- SpecAugment

namespace {
inline int randint(std::mt19937_64& rng, int lo, int hi) {  // uniform in [lo, hi], portable
  return lo + int(uniform_index(rng, uint64_t(hi - lo + 1)));
}
}  // namespace

void spec_augment(Fbank& f, const SpecAugmentOptions& opt, std::mt19937_64& rng) {
  if (f.frames == 0 || f.bins == 0) return;
  double sum = 0;
  for (float v : f.data) sum += v;
  const float fill = float(sum / double(f.data.size()));
  for (int i = 0; i < opt.freq_masks; ++i) {
    const int w = randint(rng, 0, std::min(opt.freq_width, f.bins));
    const int b0 = randint(rng, 0, f.bins - w);
    for (int t = 0; t < f.frames; ++t)
      for (int b = b0; b < b0 + w; ++b) f.data[size_t(t) * f.bins + b] = fill;
  }
  const int tmax = std::min(opt.time_width, int(opt.time_ratio * f.frames));
  for (int i = 0; i < opt.time_masks; ++i) {
    const int w = randint(rng, 0, std::max(0, tmax));
    const int t0 = randint(rng, 0, f.frames - w);
    std::fill(f.data.begin() + size_t(t0) * f.bins, f.data.begin() + size_t(t0 + w) * f.bins, fill);
  }
}

}  // namespace mm
