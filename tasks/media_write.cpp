#include "tasks/media_write.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "runtime/error.h"
#include "tasks/ffmpeg_io.h"

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

// The one translation unit that compiles stb_image_write (third-party C: its warnings
// are silenced here only).
#include "tasks/stb_warnings.h"  // pushes the diagnostic state; popped below
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace mm {

std::vector<uint8_t> encode_png(const uint8_t* rgb, int w, int h) {
  MM_CHECK(w > 0 && h > 0, "encode_png: bad size ", w, "x", h);
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int n) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    const size_t at = v->size();
    v->resize(at + size_t(n));
    std::memcpy(v->data() + at, data, size_t(n));
  };
  const int ok = stbi_write_png_to_func(sink, &out, w, h, 3, rgb, w * 3);
  MM_CHECK(ok != 0 && !out.empty(), "encode_png: stb_image_write failed for ", w, "x", h);
  return out;
}

void write_file(const std::string& path, const void* data, size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  MM_CHECK(f != nullptr, path, ": cannot open for writing (", std::strerror(errno), ")");
  const size_t wrote = n ? std::fwrite(data, 1, n, f) : 0;
  const bool closed = std::fclose(f) == 0;
  MM_CHECK(wrote == n && closed, path, ": write failed (", std::strerror(errno), ")");
}

std::vector<uint8_t> encode_wav(const std::vector<float>& samples, int rate) {
  MM_CHECK(rate > 0, "encode_wav: bad sample rate ", rate);
  const uint32_t data_bytes = uint32_t(samples.size() * 2);
  std::vector<uint8_t> b;
  b.reserve(44 + data_bytes);
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i))); };
  auto u16 = [&](uint16_t v) { b.push_back(uint8_t(v)); b.push_back(uint8_t(v >> 8)); };
  auto tag = [&](const char* s) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(s[i])); };
  tag("RIFF"); u32(36 + data_bytes); tag("WAVE");
  tag("fmt "); u32(16); u16(1); u16(1); u32(uint32_t(rate)); u32(uint32_t(rate) * 2); u16(2); u16(16);
  tag("data"); u32(data_bytes);
  for (float x : samples) {
    const float c = std::clamp(x, -1.0f, 1.0f);
    u16(uint16_t(int16_t(std::lrint(c * 32767.0f))));
  }
  return b;
}

void write_wav(const std::string& path, const std::vector<float>& samples, int rate) {
  std::vector<uint8_t> b = encode_wav(samples, rate);
  write_file(path, b.data(), b.size());
}

namespace {
// Owns the FFmpeg objects of one encode so every exit path frees them.
struct Mp4Encoder {
  AVFormatContext* oc = nullptr;
  AVCodecContext* ctx = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  AVStream* st = nullptr;
  std::string path;
  ~Mp4Encoder() {
    av_packet_free(&pkt);
    av_frame_free(&frame);
    sws_freeContext(sws);
    avcodec_free_context(&ctx);
    if (oc) {
      if (oc->pb) avio_closep(&oc->pb);
      avformat_free_context(oc);
    }
  }
  void check(int r, const char* what) const {
    MM_CHECK(r >= 0, path, ": ", what, " failed: ", av_error_string(r));
  }
  // Sends one frame (null: flush) and writes every packet the encoder returns.
  void encode(AVFrame* f) {
    check(avcodec_send_frame(ctx, f), "avcodec_send_frame");
    while (true) {
      const int r = avcodec_receive_packet(ctx, pkt);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      check(r, "avcodec_receive_packet");
      av_packet_rescale_ts(pkt, ctx->time_base, st->time_base);
      pkt->stream_index = st->index;
      check(av_interleaved_write_frame(oc, pkt), "av_interleaved_write_frame");
    }
  }
};
}  // namespace

void write_mp4(const std::string& path, const std::vector<std::vector<uint8_t>>& frames, int w,
               int h, int fps, int quality, int gop) {
  MM_CHECK(!frames.empty(), path, ": write_mp4 needs at least one frame");
  MM_CHECK(w > 0 && h > 0 && w % 2 == 0 && h % 2 == 0, path, ": write_mp4 needs an even size, got ",
           w, "x", h);
  MM_CHECK(fps > 0 && quality >= 1 && quality <= 31 && gop >= 1, path,
           ": write_mp4: bad fps/quality/gop ", fps, "/", quality, "/", gop);
  for (const auto& f : frames)
    MM_CHECK(f.size() == size_t(w) * size_t(h) * 3, path, ": write_mp4: a frame has ", f.size(),
             " bytes, expected ", size_t(w) * size_t(h) * 3);
  Mp4Encoder e;
  e.path = path;
  e.check(avformat_alloc_output_context2(&e.oc, nullptr, "mp4", path.c_str()), "mp4 muxer");
  e.oc->flags |= AVFMT_FLAG_BITEXACT;  // no encoder version string: same bytes everywhere
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  MM_CHECK(codec != nullptr, path, ": this FFmpeg has no MPEG-4 encoder");
  e.st = avformat_new_stream(e.oc, nullptr);
  MM_CHECK(e.st != nullptr, path, ": avformat_new_stream failed");
  e.ctx = avcodec_alloc_context3(codec);
  MM_CHECK(e.ctx != nullptr, path, ": avcodec_alloc_context3 failed");
  e.ctx->width = w;
  e.ctx->height = h;
  e.ctx->time_base = AVRational{1, fps};
  e.ctx->framerate = AVRational{fps, 1};
  e.ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  e.ctx->gop_size = gop;
  e.ctx->max_b_frames = 0;
  e.ctx->thread_count = 1;
  e.ctx->flags |= AV_CODEC_FLAG_BITEXACT | AV_CODEC_FLAG_QSCALE;
  e.ctx->global_quality = FF_QP2LAMBDA * quality;
  if (e.oc->oformat->flags & AVFMT_GLOBALHEADER) e.ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  e.check(avcodec_open2(e.ctx, codec, nullptr), "avcodec_open2(mpeg4)");
  e.check(avcodec_parameters_from_context(e.st->codecpar, e.ctx), "avcodec_parameters_from_context");
  e.st->time_base = e.ctx->time_base;
  e.check(avio_open(&e.oc->pb, path.c_str(), AVIO_FLAG_WRITE), "avio_open");
  e.check(avformat_write_header(e.oc, nullptr), "avformat_write_header");

  e.sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P,
                         SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT, nullptr, nullptr, nullptr);
  MM_CHECK(e.sws != nullptr, path, ": sws_getContext failed");
  e.frame = av_frame_alloc();
  e.pkt = av_packet_alloc();
  MM_CHECK(e.frame && e.pkt, path, ": out of memory");
  e.frame->format = AV_PIX_FMT_YUV420P;
  e.frame->width = w;
  e.frame->height = h;
  e.check(av_frame_get_buffer(e.frame, 0), "av_frame_get_buffer");
  for (size_t i = 0; i < frames.size(); ++i) {
    e.check(av_frame_make_writable(e.frame), "av_frame_make_writable");
    const uint8_t* src[1] = {frames[i].data()};
    const int stride[1] = {3 * w};
    sws_scale(e.sws, src, stride, 0, h, e.frame->data, e.frame->linesize);
    e.frame->pts = int64_t(i);
    e.encode(e.frame);
  }
  e.encode(nullptr);
  e.check(av_write_trailer(e.oc), "av_write_trailer");
}

}  // namespace mm
