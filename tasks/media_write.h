// Writing media files for the data builders: PNG (stb_image_write), 16-bit PCM WAV, and
// MP4 video encoded in-process with libavcodec (MPEG-4 part 2), so a builder makes
// thousands of clips without starting a process per clip. All outputs are bit-exact
// functions of their inputs (FFmpeg's BITEXACT flags: no version strings, one thread).
//
//   std::vector<uint8_t> png = encode_png(rgb, w, h);        // rgb: [h, w, 3] u8
//   write_wav("a.wav", samples, 16000);                      // [n] floats in [-1, 1]
//   write_mp4("v.mp4", frames, w, h, /*fps=*/8);             // frames: N x [h, w, 3] u8
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mm {

// [h, w, 3] u8 RGB -> PNG file bytes.
std::vector<uint8_t> encode_png(const uint8_t* rgb, int w, int h);

// Writes bytes to a file; throws naming the path when it cannot.
void write_file(const std::string& path, const void* data, size_t n);

// [n] samples in [-1, 1] (clipped) -> mono 16-bit PCM WAV at `rate` Hz.
std::vector<uint8_t> encode_wav(const std::vector<float>& samples, int rate);
void write_wav(const std::string& path, const std::vector<float>& samples, int rate);

// N frames of [h, w, 3] u8 RGB (w, h even) -> an MP4 file, MPEG-4 part 2 video in
// yuv420p at `fps`, every frame a keyframe candidate within a GOP of `gop` frames.
// `quality` is MPEG-4's fixed quantiser (2 = near-lossless .. 31 = coarse).
void write_mp4(const std::string& path, const std::vector<std::vector<uint8_t>>& frames, int w,
               int h, int fps, int quality = 3, int gop = 8);

}  // namespace mm
