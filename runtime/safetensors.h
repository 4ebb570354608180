// safetensors I/O, the format of PyTorch / Hugging Face checkpoints:
//   [u64 little-endian N][N bytes of JSON header][raw little-endian tensor data]
//   header: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {"key": "value"}}   (offsets relative to the data section)
//
//   save_safetensors("ckpt/model.safetensors", {{"wte", wte}}, {{"step", "100"}});
//   SafeTensors st = load_safetensors("ckpt/model.safetensors");  st.tensors.at("wte")
//
// Writes are atomic: a temp file beside the target, fsync, rename, fsync of the folder;
// an interrupted save leaves the previous file intact. Loads validate everything and name
// the file, the tensor and the byte offset of what is wrong.
#pragma once
#include <map>
#include <string>

#include "runtime/tensor.h"

namespace mm {

struct SafeTensors {
  std::map<std::string, Tensor> tensors;          // CPU tensors, contiguous
  std::map<std::string, std::string> metadata;
};

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafeTensors load_safetensors(const std::string& path);
// Parses an in-memory file image; `name` is used in error messages.
SafeTensors parse_safetensors(const std::string& bytes, const std::string& name);

// Writes `bytes` to `path` atomically (temp + fsync + rename + fsync dir). Used by every
// file the trainer writes that must never be seen half-written.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace mm
