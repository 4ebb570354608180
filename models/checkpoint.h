// Model checkpoints: one safetensors file (runtime/safetensors.h) that Python can read.
//
//   save_checkpoint("ckpt.safetensors", model, "ofa", model.config().to_json(), vocab.to_json());
//   Checkpoint ck = read_checkpoint("ckpt.safetensors");        // metadata + tensors
//   std::unique_ptr<OfaModel> m = load_ofa("ckpt.safetensors");  // config from the file
//
// Layout:
//   tensors   the model's state_dict: parameters and buffers under the names listed in
//             models/ofa.h and models/gato.h (f32, contiguous)
//   metadata  "format": "mm-checkpoint", "version": "1", "model": "ofa" | "gato",
//             "config": the model config JSON (OfaConfig/GatoConfig::to_json),
//             "vocab": the vocabulary JSON (tasks/vocab.h Vocab::to_json; may be empty),
//             plus any caller entries (e.g. "step")
// Loading into a model of another config, or from a file missing a tensor, is an error
// naming the file, the tensor and both shapes.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "autograd/module.h"
#include "models/gato.h"
#include "models/ofa.h"

namespace mm {

struct Checkpoint {
  std::string model, config_json, vocab_json;
  std::map<std::string, std::string> extra;  // other metadata entries
  std::map<std::string, Tensor> tensors;
};

// Host copies of a model's (or an optimizer's) tensors, detached: files are written from
// CPU memory, whichever device trains.
std::map<std::string, Tensor> host_tensors(const std::map<std::string, Tensor>& tensors);

void save_checkpoint(const std::string& path, const Module& m, const std::string& model_kind,
                     const std::string& config_json, const std::string& vocab_json = "",
                     const std::map<std::string, std::string>& extra = {});
Checkpoint read_checkpoint(const std::string& path);
// Copies the checkpoint's tensors into m (strict: every name on both sides).
void load_weights(Module& m, const Checkpoint& ck, const std::string& path);

// Builds the model from the checkpoint's config and loads its weights.
std::unique_ptr<OfaModel> load_ofa(const std::string& path, Checkpoint* info = nullptr);
std::unique_ptr<GatoModel> load_gato(const std::string& path, Checkpoint* info = nullptr);

}  // namespace mm
