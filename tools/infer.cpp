// build/infer: runs an instruction against a trained checkpoint, alone or over a file.
//
//   build/infer --ckpt runs/demo/checkpoint_best
//       --instruction '[IMAGE:img] what does the image describe? -> [TEXT:cap]' --set img=photo.png
//   build/infer --ckpt runs/demo/checkpoint_best --task grounding --set img=canvas.png
//       --set cap='the sandal' --draw boxed.png                 # BOX drawn onto a PNG copy
//   build/infer --ckpt runs/demo/checkpoint_best --task vqa --input data/vqa/test.tsv --output out.jsonl
//
// Output: one JSON object per example: {"text": ...} for text, {"box": [x0, y0, x1, y1]}
// in original image pixels, {"values": [...]} for CONTINUOUS, {"ints": [...]} for DISCRETE.
// Options: --task NAME (a task of the checkpoint: its instruction, closed set and
// generator), --instruction TEXT, --set FIELD=VALUE (repeatable), --input FILE
// (.tsv/.jsonl rows), --output FILE (default stdout), --max-len N, --beam N, --draw PNG.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/tool_main.h"
#include "tasks/experiment.h"
#include "tasks/image.h"
#include "tasks/media_write.h"

using namespace mm;

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "%s\nusage: build/infer --ckpt DIR (--task NAME | --instruction TEXT) [--set FIELD=VALUE ...] "
                       "[--input FILE --output FILE] [--max-len N] [--beam N] [--draw OUT.png]\n", why.c_str());
  std::exit(2);
}

nlohmann::json to_json(const TypedOutput& o) {
  switch (o.type) {
    case SlotType::BOX: return {{"box", o.box}, {"complete", o.complete}};
    case SlotType::CONTINUOUS: return {{"values", o.values}};
    case SlotType::DISCRETE:
    case SlotType::PHONE: return {{"ints", o.ints}};
    default: return {{"text", o.text}};
  }
}

// A stand-in value for the target field when only the inputs are given: build() needs a
// well-formed value; generation never reads it.
std::string unread_target_value(SlotType t, const std::vector<std::string>& answers, int max_len) {
  if (!answers.empty()) return answers[0];
  switch (t) {
    case SlotType::BOX: return "0 0 1 1";
    case SlotType::CONTINUOUS:
    case SlotType::DISCRETE: {
      std::string v;
      for (int i = 0; i < std::max(1, max_len); ++i) v += i ? " 0" : "0";
      return v;
    }
    default: return "x";
  }
}

void draw_box(const std::string& image_path, const std::array<double, 4>& b, const std::string& out) {
  Image im = load_image(image_path);
  std::vector<uint8_t> rgb(size_t(im.W) * size_t(im.H) * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(std::clamp(im.data[i], 0.0f, 255.0f));
  auto put = [&](int x, int y) {
    if (x < 0 || y < 0 || x >= im.W || y >= im.H) return;
    uint8_t* p = &rgb[(size_t(y) * size_t(im.W) + size_t(x)) * 3];
    p[0] = 255, p[1] = 0, p[2] = 0;
  };
  const int x0 = int(b[0]), y0 = int(b[1]), x1 = int(b[2]), y1 = int(b[3]);
  for (int x = x0; x <= x1; ++x) put(x, y0), put(x, y1);
  for (int y = y0; y <= y1; ++y) put(x0, y), put(x1, y);
  auto png = encode_png(rgb.data(), im.W, im.H);
  write_file(out, png.data(), png.size());
}

int run(int argc, char** argv) {
  std::string ckpt, task_name, instruction, input, output, draw;
  std::vector<std::pair<std::string, std::string>> fields;
  int max_len = -1, beam = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value after " + a);
      return argv[++i];
    };
    if (a == "--ckpt") ckpt = next();
    else if (a == "--task") task_name = next();
    else if (a == "--instruction") instruction = next();
    else if (a == "--set") {
      const std::string kv = next();
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) usage("--set " + kv + ": expected FIELD=VALUE");
      fields.push_back({kv.substr(0, eq), kv.substr(eq + 1)});
    } else if (a == "--input") input = next();
    else if (a == "--output") output = next();
    else if (a == "--max-len") max_len = std::stoi(next());
    else if (a == "--beam") beam = std::stoi(next());
    else if (a == "--draw") draw = next();
    else usage("unknown argument " + a);
  }
  if (ckpt.empty()) usage("--ckpt is required");
  if (task_name.empty() == instruction.empty()) usage("give exactly one of --task and --instruction");
  auto ex = Experiment::from_checkpoint(ckpt);
  GeneratorConfig gen;
  std::unique_ptr<SampleBuilder> own;
  const SampleBuilder* builder = nullptr;
  std::vector<std::string> answers;
  if (!task_name.empty()) {
    TaskData& t = ex->task(task_name);
    builder = t.builder.get();
    gen = t.cfg.generator;
    answers = t.answers;
  } else {
    own = ex->builder_for(instruction);
    builder = own.get();
  }
  if (max_len > 0) gen.max_len = max_len;
  if (beam > 0) gen.beam = beam;
  const Template& tpl = builder->plan().templates[0];
  MM_CHECK(tpl.target >= 0, "infer: the instruction has no target slot on the right of '->'");
  const Slot& target = tpl.output.slots[size_t(tpl.target)];

  std::vector<Sample> samples;
  if (!input.empty()) {
    Dataset d = Dataset::open(input);
    for (int64_t i = 0; i < d.size(); ++i) samples.push_back(builder->build(d, i));
  } else {
    std::vector<std::string> cols, vals;
    for (auto& [k, v] : fields) cols.push_back(k), vals.push_back(v);
    if (std::find(cols.begin(), cols.end(), target.field()) == cols.end()) {
      cols.push_back(target.field());
      vals.push_back(unread_target_value(target.type, answers, gen.max_len));
    }
    validate(builder->plan(), cols);
    Row row;
    row.line = 1;
    row.values = vals;
    samples.push_back(builder->build(row, cols, "--set"));
  }
  std::vector<Prediction> preds = predict(*ex, *builder, gen, samples);
  std::ofstream file;
  if (!output.empty()) {
    file.open(output);
    MM_CHECK(file, "cannot write '", output, "'");
  }
  std::ostream& os = output.empty() ? std::cout : file;
  for (const Prediction& p : preds) os << to_json(p.output).dump() << "\n";
  if (!draw.empty()) {
    MM_CHECK(target.type == SlotType::BOX && input.empty(), "--draw needs a BOX target and one example (--set)");
    std::string image_field;
    for (const Slot& s : tpl.input.slots)
      if (s.type == SlotType::IMAGE) image_field = s.field();
    for (auto& [k, v] : fields)
      if (k == image_field) draw_box(v, preds[0].output.box, draw);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mm::tool_main("infer", argc, argv, run); }
