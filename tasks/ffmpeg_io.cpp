#include "tasks/ffmpeg_io.h"

#include <cstring>

#include "runtime/error.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

namespace mm {

std::string av_error_string(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(err, buf, sizeof buf) < 0) return cat("FFmpeg error ", err);
  return buf;
}

namespace {

int mem_read(void* opaque, uint8_t* buf, int size) {
  auto* m = static_cast<MediaInput::Memory*>(opaque);
  const size_t left = m->size - m->pos;
  if (left == 0) return AVERROR_EOF;
  const size_t n = std::min(left, size_t(size));
  std::memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return int(n);
}

int64_t mem_seek(void* opaque, int64_t offset, int whence) {
  auto* m = static_cast<MediaInput::Memory*>(opaque);
  if (whence & AVSEEK_SIZE) return int64_t(m->size);  // demuxers ask for the size this way
  whence &= ~AVSEEK_FORCE;
  int64_t base = 0;
  if (whence == SEEK_SET) base = 0;
  else if (whence == SEEK_CUR) base = int64_t(m->pos);
  else if (whence == SEEK_END) base = int64_t(m->size);
  else return AVERROR(EINVAL);
  const int64_t p = base + offset;
  if (p < 0 || p > int64_t(m->size)) return AVERROR(EINVAL);
  m->pos = size_t(p);
  return p;
}

// FFmpeg logs warnings about odd input to stderr on its own; our errors already carry
// its reason, so keep the default chatter down to errors. An application that chose a
// level itself (anything but the default) keeps its choice.
void quiet_ffmpeg_logs() {
  static const bool once = [] {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_ERROR);
    return true;
  }();
  (void)once;
}

}  // namespace

MediaInput::MediaInput(const std::string& path) : source_(path) {
  quiet_ffmpeg_logs();
  open(path.c_str());
}

MediaInput::MediaInput(const uint8_t* data, size_t n, std::string source)
    : source_(std::move(source)) {
  quiet_ffmpeg_logs();
  MM_CHECK(data != nullptr && n > 0, source_, ": empty media data");
  mem_ = {data, n, 0};
  const int kBuf = 1 << 16;
  auto* buf = static_cast<unsigned char*>(av_malloc(kBuf));
  MM_CHECK(buf, source_, ": out of memory");
  avio_ = avio_alloc_context(buf, kBuf, 0, &mem_, mem_read, nullptr, mem_seek);
  if (!avio_) {
    av_free(buf);
    throw Error(cat(source_, ": cannot allocate an FFmpeg I/O context"));
  }
  fmt_ = avformat_alloc_context();
  if (!fmt_) {
    release();
    throw Error(cat(source_, ": out of memory"));
  }
  fmt_->pb = avio_;  // avformat_open_input then marks it AVFMT_FLAG_CUSTOM_IO
  open(nullptr);
}

void MediaInput::open(const char* url) {
  // On failure avformat_open_input frees fmt_ (and nulls it); our AVIOContext stays ours.
  int r = avformat_open_input(&fmt_, url ? url : "", nullptr, nullptr);
  if (r < 0) {
    const std::string why = av_error_string(r);
    release();
    throw Error(cat(source_, ": cannot open media (", why, ")"));
  }
  r = avformat_find_stream_info(fmt_, nullptr);
  if (r < 0) {
    const std::string why = av_error_string(r);
    release();  // the destructor will not run: the constructor is throwing
    throw Error(cat(source_, ": cannot read stream info (", why, ")"));
  }
}

MediaInput::~MediaInput() { release(); }

void MediaInput::release() {
  if (fmt_) avformat_close_input(&fmt_);
  if (avio_) {
    av_freep(&avio_->buffer);  // FFmpeg may have replaced our buffer: free the current one
    avio_context_free(&avio_);
  }
}

StreamDecoder::StreamDecoder(MediaInput& in, AVMediaType type) : in_(in) {
  const char* kind = av_get_media_type_string(type);
  const AVCodec* codec = nullptr;
  index_ = av_find_best_stream(in.fmt(), type, -1, -1, &codec, 0);
  if (index_ < 0)
    throw Error(cat(in.source(), ": no ", kind ? kind : "media", " stream (", av_error_string(index_), ")"));
  if (!codec) throw Error(cat(in.source(), ": no decoder for the ", kind, " codec"));
  ctx_ = avcodec_alloc_context3(codec);
  MM_CHECK(ctx_, in.source(), ": out of memory");
  int r = avcodec_parameters_to_context(ctx_, stream()->codecpar);
  if (r >= 0) {
    ctx_->pkt_timebase = stream()->time_base;
    r = avcodec_open2(ctx_, codec, nullptr);
  }
  if (r < 0) {
    avcodec_free_context(&ctx_);
    throw Error(cat(in.source(), ": cannot open the ", codec->name, " decoder (", av_error_string(r), ")"));
  }
}

StreamDecoder::~StreamDecoder() { avcodec_free_context(&ctx_); }

int64_t StreamDecoder::run(const std::function<bool(AVFrame*)>& on_frame) {
  struct Owned {  // frees the packet and frame on every exit path
    AVPacket* pkt = av_packet_alloc();
    AVFrame* frame = av_frame_alloc();
    ~Owned() { av_packet_free(&pkt); av_frame_free(&frame); }
  } o;
  MM_CHECK(o.pkt && o.frame, in_.source(), ": out of memory");
  int64_t delivered = 0;
  bool stop = false;
  const std::string& src = in_.source();

  // Pulls every frame the decoder has ready; false when on_frame asked to stop.
  auto drain = [&]() {
    for (;;) {
      int r = avcodec_receive_frame(ctx_, o.frame);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) throw Error(cat(src, ": decoding failed (", av_error_string(r), ")"));
      ++delivered;
      const bool go_on = on_frame(o.frame);
      av_frame_unref(o.frame);
      if (!go_on) { stop = true; return; }
    }
  };

  while (!stop) {
    int r = av_read_frame(in_.fmt(), o.pkt);
    if (r == AVERROR_EOF) break;
    if (r < 0) throw Error(cat(src, ": cannot read (", av_error_string(r), ")"));
    if (o.pkt->stream_index == index_) {
      r = avcodec_send_packet(ctx_, o.pkt);
      av_packet_unref(o.pkt);
      if (r < 0 && r != AVERROR(EAGAIN))
        throw Error(cat(src, ": decoding failed (", av_error_string(r), ")"));
      drain();
    } else {
      av_packet_unref(o.pkt);
    }
  }
  if (!stop) {
    // Flush: frames the decoder held back (B-frames, codec delay).
    int r = avcodec_send_packet(ctx_, nullptr);
    if (r < 0 && r != AVERROR_EOF)
      throw Error(cat(src, ": decoding failed (", av_error_string(r), ")"));
    drain();
  }
  return delivered;
}

}  // namespace mm
