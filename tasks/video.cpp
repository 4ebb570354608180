#include "tasks/video.h"

#include <cmath>
#include <functional>
#include <memory>

#include "runtime/error.h"
#include "tasks/ffmpeg_io.h"

extern "C" {
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace mm {

void frames_to_residuals(float* frames, int n, size_t per) {
  for (int k = n - 1; k >= 1; --k) {  // backwards: each difference reads an unchanged frame
    float* cur = frames + per * size_t(k);
    const float* prev = cur - per;
    for (size_t j = 0; j < per; ++j) cur[j] -= prev[j];
  }
}

std::vector<int64_t> sample_frame_indices(int64_t total, int n) {
  MM_CHECK(total > 0 && n > 0, "sample_frame_indices: need total > 0 and n > 0, got ", total, ", ", n);
  std::vector<int64_t> idx(n);
  if (n == 1) {
    idx[0] = (total - 1) / 2;  // one frame: the middle one
    return idx;
  }
  for (int k = 0; k < n; ++k)
    idx[k] = std::llround(double(k) * double(total - 1) / double(n - 1));
  return idx;
}

namespace {

// Frame -> RGB24 Image at the native size, honouring the frame's colour range and matrix
// (limited-range BT.601/709 YUV would otherwise come out washed out or tinted).
class RgbConverter {
 public:
  explicit RgbConverter(const std::string& source) : source_(source) {}
  ~RgbConverter() { sws_freeContext(sws_); }

  Image convert(const AVFrame* f) {
    MM_CHECK(f->width > 0 && f->height > 0, source_, ": video frame has no size");
    sws_ = sws_getCachedContext(sws_, f->width, f->height, AVPixelFormat(f->format), f->width,
                                f->height, AV_PIX_FMT_RGB24,
                                SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                nullptr, nullptr);
    MM_CHECK(sws_, source_, ": cannot convert pixel format ",
             av_get_pix_fmt_name(AVPixelFormat(f->format)) ? av_get_pix_fmt_name(AVPixelFormat(f->format)) : "?",
             " to RGB");
    const int space = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : int(f->colorspace);
    const int src_full = f->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
    // Only YUV sources take these details; for RGB sources swscale ignores them.
    sws_setColorspaceDetails(sws_, sws_getCoefficients(space), src_full,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    buf_.resize(size_t(f->width) * f->height * 3);
    uint8_t* dst[4] = {buf_.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {f->width * 3, 0, 0, 0};
    const int h = sws_scale(sws_, f->data, f->linesize, 0, f->height, dst, dst_stride);
    MM_CHECK(h == f->height, source_, ": pixel conversion produced ", h, " of ", f->height, " rows");
    return image_from_u8(buf_.data(), f->height, f->width, 3);
  }

 private:
  std::string source_;
  SwsContext* sws_ = nullptr;
  std::vector<uint8_t> buf_;
};

// Frame count of the video stream: the container's figure when it has one, else counted
// by a demux-only pass over the packets (cheap: nothing is decoded).
int64_t count_frames(const std::function<std::unique_ptr<MediaInput>()>& open) {
  auto in = open();
  StreamDecoder dec(*in, AVMEDIA_TYPE_VIDEO);
  if (dec.stream()->nb_frames > 0) return dec.stream()->nb_frames;
  const int index = dec.stream()->index;
  AVPacket* pkt = av_packet_alloc();
  MM_CHECK(pkt, in->source(), ": out of memory");
  int64_t n = 0;
  int r;
  while ((r = av_read_frame(in->fmt(), pkt)) >= 0) {
    if (pkt->stream_index == index) ++n;
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  if (r != AVERROR_EOF) throw Error(cat(in->source(), ": cannot read (", av_error_string(r), ")"));
  return n;
}

VideoClip decode_frames(const std::function<std::unique_ptr<MediaInput>()>& open, int n_frames) {
  MM_CHECK(n_frames > 0, "video: number of frames to sample must be > 0, got ", n_frames);
  const int64_t total = count_frames(open);
  auto in = open();
  MM_CHECK(total > 0, in->source(), ": the video stream has no frames");
  StreamDecoder dec(*in, AVMEDIA_TYPE_VIDEO);
  VideoClip clip;
  clip.total_frames = total;
  const AVRational fr = dec.stream()->avg_frame_rate;
  clip.fps = fr.den > 0 ? av_q2d(fr) : 0.0;
  const std::vector<int64_t> targets = sample_frame_indices(total, n_frames);
  RgbConverter rgb(in->source());
  size_t next = 0;
  int64_t index = 0;
  // A reference (no copy) to the latest decoded frame, for when the container
  // over-counted (edit lists, a truncated file) and targets remain at the end.
  struct Held {
    AVFrame* f = av_frame_alloc();
    ~Held() { av_frame_free(&f); }
  } held;
  MM_CHECK(held.f, in->source(), ": out of memory");
  dec.run([&](AVFrame* f) {
    if (targets[next] == index) {
      Image im = rgb.convert(f);
      // Several targets share a frame when N > total.
      while (next < targets.size() && targets[next] == index) {
        clip.frames.push_back(im);
        clip.frame_index.push_back(index);
        ++next;
      }
    } else {
      av_frame_unref(held.f);
      MM_CHECK(av_frame_ref(held.f, f) >= 0, in->source(), ": out of memory");
    }
    ++index;
    return next < targets.size();  // stop decoding once every target is filled
  });
  MM_CHECK(index > 0, in->source(), ": no video frame could be decoded");
  if (next < targets.size()) {
    const bool held_is_newer = held.f->buf[0] != nullptr &&
                               (clip.frame_index.empty() || clip.frame_index.back() < index - 1);
    Image im = held_is_newer ? rgb.convert(held.f) : clip.frames.back();
    const int64_t at = held_is_newer ? index - 1 : clip.frame_index.back();
    for (; next < targets.size(); ++next) {
      clip.frames.push_back(im);
      clip.frame_index.push_back(at);
    }
  }
  return clip;
}

}  // namespace

VideoClip load_video(const std::string& path, int n_frames) {
  return decode_frames([&] { return std::make_unique<MediaInput>(path); }, n_frames);
}

VideoClip decode_video(const uint8_t* bytes, size_t n, const std::string& source, int n_frames) {
  return decode_frames([&] { return std::make_unique<MediaInput>(bytes, n, source); }, n_frames);
}

}  // namespace mm
