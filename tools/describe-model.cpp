// build/describe-model SIZE|CONFIG [--vocab N] [--tensors]
//
// Prints a model's parameters by component and the total, computed from the config
// without allocating (so the huge sizes can be checked on any machine), next to the
// SPEC's target for the OFA sizes.
//   SIZE    an OFA size (micro tiny medium base large huge) or a Gato size prefixed with
//           gato- (gato-micro gato-79m gato-364m gato-1.18b) or gpt2-124m
//   CONFIG  a JSON file holding an OfaConfig/GatoConfig (its "model" key says which), or
//           a checkpoint (*.safetensors, models/checkpoint.h): its stored config
//   --vocab N   override the vocabulary size (default: the config's, 59457 for OFA)
//   --tensors   also build the model and list every tensor with its shape
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tools/tool_main.h"
#include "models/checkpoint.h"
#include "models/gato.h"
#include "models/ofa.h"

using namespace mm;

namespace {

const std::map<std::string, double> kSpecOfa{{"tiny", 33e6}, {"medium", 93e6}, {"base", 182e6},
                                              {"large", 472e6}, {"huge", 930e6}};

void print_table(const std::string& title, const std::vector<ParamRow>& rows) {
  std::printf("%s\n", title.c_str());
  std::printf("  %-62s %-52s %14s\n", "component", "shape", "parameters");
  for (auto& r : rows) std::printf("  %-62s %-52s %14lld\n", r.name.c_str(), r.detail.c_str(), (long long)r.count);
  std::printf("  %-62s %-52s %14lld  (%.2fM)\n", "total", "", (long long)sum_params(rows), double(sum_params(rows)) / 1e6);
}

void print_tensors(const Module& m) {
  for (auto& [name, t] : m.state_dict()) {
    std::ostringstream s;
    s << t.shape();
    std::printf("  %-70s %s\n", name.c_str(), s.str().c_str());
  }
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  MM_CHECK(f, "cannot open '", path, "' (not a known size either)");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SIZE|CONFIG.json [--vocab N] [--tensors]\n", argv[0]);
    return 2;
  }
  std::string what = argv[1];
  int64_t vocab = 0;
  bool tensors = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--vocab" && i + 1 < argc) vocab = std::stoll(argv[++i]);
    else if (a == "--tensors") tensors = true;
    else throw Error(cat("unknown argument '", a, "'"));
  }
  bool is_gato = false;
  OfaConfig oc;
  GatoConfig gc;
  bool known_ofa = false;
  for (auto& n : OfaConfig::preset_names()) known_ofa |= n == what;
  if (known_ofa) {
    oc = OfaConfig::preset(what);
  } else if (what.rfind("gato-", 0) == 0) {
    is_gato = true;
    gc = GatoConfig::preset(what.substr(5));
  } else if (what == "gpt2-124m") {
    is_gato = true;
    gc = GatoConfig::preset(what);
  } else {
    const bool ckpt = what.size() > 12 && what.substr(what.size() - 12) == ".safetensors";
    std::string text = ckpt ? read_checkpoint(what).config_json : read_text(what);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(what, " is not JSON: ", e.what()));
    }
    is_gato = j.is_object() && j.value("model", std::string()) == "gato";
    if (is_gato) gc = GatoConfig::from_json(text);
    else oc = OfaConfig::from_json(text);
  }
  if (is_gato) {
    if (vocab) gc.vocab_size = vocab;
    print_table(cat("Gato-style decoder '", gc.name, "': ", gc.layers, " layers, ", gc.heads, " heads, d ", gc.d_model,
                    ", FFN ", gc.ffn_dim, ", vocab ", gc.vocab_size),
                gc.parameter_table());
    if (tensors) {
      GatoModel m(gc);
      print_tensors(m);
    }
    return 0;
  }
  if (vocab) oc.vocab_size = vocab;
  print_table(cat("OFA '", oc.name, "': d ", oc.d_model, ", FFN ", oc.ffn_dim, ", ", oc.heads, " heads, ",
                  oc.encoder_layers, "/", oc.decoder_layers, " layers, image adaptor ", oc.image_adaptor,
                  ", vocab ", oc.vocab_size),
              oc.parameter_table());
  auto it = kSpecOfa.find(oc.name);
  if (it != kSpecOfa.end() && oc.vocab_size == 59457) {
    const double dev = (double(oc.parameter_count()) - it->second) / it->second * 100;
    std::printf("  SPEC: %.0fM; this config is %+.2f%% from it (limit +-2%%): %s\n", it->second / 1e6, dev,
                std::abs(dev) <= 2 ? "ok" : "OUT OF RANGE");
  }
  if (tensors) {
    OfaModel m(oc);
    print_tensors(m);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mm::tool_main("describe-model", argc, argv, run); }
