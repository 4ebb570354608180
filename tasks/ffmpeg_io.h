// Thin RAII layer over FFmpeg's demux + decode loop, shared by AUDIO and VIDEO.
// Internal to tasks/: callers use tasks/audio.h and tasks/video.h.
//
//   MediaInput in("clip.mp4");                          // or MediaInput(bytes, n, "field wav")
//   StreamDecoder dec(in, AVMEDIA_TYPE_VIDEO);
//   dec.run([&](AVFrame* f) { ...; return true; });      // false stops early
//
// Every FFmpeg failure becomes an mm::Error naming the source and FFmpeg's own reason.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

namespace mm {

// FFmpeg's text for an AVERROR code ("Invalid data found when processing input").
std::string av_error_string(int err);

// An opened container: from a file path, or from bytes in memory through an AVIOContext
// (data-row fields, checkpoint-embedded media) without touching the file system.
class MediaInput {
 public:
  explicit MediaInput(const std::string& path);
  // The bytes must outlive this object; `source` names them in errors.
  MediaInput(const uint8_t* data, size_t n, std::string source);
  ~MediaInput();
  MediaInput(const MediaInput&) = delete;
  MediaInput& operator=(const MediaInput&) = delete;

  AVFormatContext* fmt() const { return fmt_; }
  const std::string& source() const { return source_; }

  // Position reader for the memory case (public so the C callbacks can reach it).
  struct Memory {
    const uint8_t* data = nullptr;
    size_t size = 0, pos = 0;
  };

 private:
  void open(const char* url);
  void release();
  AVFormatContext* fmt_ = nullptr;
  AVIOContext* avio_ = nullptr;
  Memory mem_;
  std::string source_;
};

// The decoder of the best stream of one media type in a MediaInput.
class StreamDecoder {
 public:
  StreamDecoder(MediaInput& in, AVMediaType type);
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;

  AVStream* stream() const { return in_.fmt()->streams[index_]; }
  AVCodecContext* codec() const { return ctx_; }

  // Reads, decodes and hands every frame of the stream, in presentation order, to
  // on_frame (which must not keep the pointer: the frame is reused). on_frame returns
  // false to stop early. Returns the number of frames delivered.
  int64_t run(const std::function<bool(AVFrame*)>& on_frame);

 private:
  MediaInput& in_;
  int index_ = -1;
  AVCodecContext* ctx_ = nullptr;
};

}  // namespace mm
