// VIDEO preprocessing: FFmpeg decodes the frames, N of them are kept, evenly spaced over
// the stream, as RGB Images that then take the IMAGE path (resize, normalise, patches).
//
//   VideoClip v = load_video("clip.mp4", 8);   // 8 frames, in order
//   for (const Image& f : v.frames) ... resize(f, 224, 224) ...
//
// Seek-free sampling: we decode sequentially and keep the frame whose index is nearest
// each target index round(k * (total - 1) / (N - 1)), k = 0..N-1 (np.linspace, as video
// loaders such as decord/torchvision samplers do). Seeking lands on keyframes and is
// codec-dependent; a short clip decodes faster than a seek-heavy read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/image.h"

namespace mm {

struct VideoClip {
  std::vector<Image> frames;          // [N] of [H, W, 3]
  std::vector<int64_t> frame_index;   // [N] index of each kept frame in decode order
  int64_t total_frames = 0;           // frames in the stream
  double fps = 0;                     // average frame rate, 0 if unknown
};

// The N target indices for a stream of `total` frames: [N], non-decreasing, in [0, total).
std::vector<int64_t> sample_frame_indices(int64_t total, int n);

// Decodes `n_frames` evenly sampled frames of the best video stream of a file.
// Errors (unreadable file, no video stream, corrupt data) name the path and FFmpeg's reason.
VideoClip load_video(const std::string& path, int n_frames);
// Same from bytes in memory; `source` names them in errors.
VideoClip decode_video(const uint8_t* bytes, size_t n, const std::string& source, int n_frames);

// The `video_residual` preprocessor (`[VIDEO:clip,preprocess=video_residual]`): frame 0 stays,
// every later frame becomes its difference from the one before, in place: the keyframe plus
// residuals of compressed-video models (CoViAR, Wu et al. 2018). A moving item then shows up
// as a leading and a trailing edge in every patch it crosses, whatever its position, which the
// from-scratch demo model learns from where it did not learn to compare positions across
// plain frames (docs/canvas_learning.md). frames: [n, per] floats, per = 3 * H * W.
void frames_to_residuals(float* frames, int n, size_t per);

}  // namespace mm
