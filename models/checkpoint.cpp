#include "models/checkpoint.h"

#include "ops/creation.h"
#include "runtime/safetensors.h"

namespace mm {

void save_checkpoint(const std::string& path, const Module& m, const std::string& model_kind,
                     const std::string& config_json, const std::string& vocab_json,
                     const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> meta = extra;
  meta["format"] = "mm-checkpoint";
  meta["version"] = "1";
  meta["model"] = model_kind;
  meta["config"] = config_json;
  meta["vocab"] = vocab_json;
  save_safetensors(path, host_tensors(m.state_dict()), meta);
}

std::map<std::string, Tensor> host_tensors(const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : tensors) out[name] = to(t, Device::cpu()).detach();
  return out;
}

Checkpoint read_checkpoint(const std::string& path) {
  SafeTensors st = load_safetensors(path);
  auto get = [&](const char* key) -> std::string {
    auto it = st.metadata.find(key);
    MM_CHECK(it != st.metadata.end(), "checkpoint ", path, ": metadata entry '", key,
             "' is missing (not an mm checkpoint?)");
    return it->second;
  };
  MM_CHECK(get("format") == "mm-checkpoint", "checkpoint ", path, ": format is '", get("format"),
           "', expected mm-checkpoint");
  MM_CHECK(get("version") == "1", "checkpoint ", path, ": version ", get("version"), " is not supported (1)");
  Checkpoint ck;
  ck.model = get("model");
  ck.config_json = get("config");
  ck.vocab_json = get("vocab");
  for (auto& [k, v] : st.metadata)
    if (k != "format" && k != "version" && k != "model" && k != "config" && k != "vocab") ck.extra[k] = v;
  ck.tensors = std::move(st.tensors);
  return ck;
}

void load_weights(Module& m, const Checkpoint& ck, const std::string& path) {
  try {
    m.load_state_dict(ck.tensors, true);
  } catch (const Error& e) {
    throw Error(cat("checkpoint ", path, ": ", e.what()));
  }
}

std::unique_ptr<OfaModel> load_ofa(const std::string& path, Checkpoint* info) {
  Checkpoint ck = read_checkpoint(path);
  MM_CHECK(ck.model == "ofa", "checkpoint ", path, " holds a '", ck.model, "' model, not ofa");
  auto m = std::make_unique<OfaModel>(OfaConfig::from_json(ck.config_json));
  load_weights(*m, ck, path);
  if (info) *info = std::move(ck);
  return m;
}

std::unique_ptr<GatoModel> load_gato(const std::string& path, Checkpoint* info) {
  Checkpoint ck = read_checkpoint(path);
  MM_CHECK(ck.model == "gato", "checkpoint ", path, " holds a '", ck.model, "' model, not gato");
  auto m = std::make_unique<GatoModel>(GatoConfig::from_json(ck.config_json));
  load_weights(*m, ck, path);
  if (info) *info = std::move(ck);
  return m;
}

}  // namespace mm
