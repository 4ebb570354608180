// The models: PyTorch reference comparisons (tools/ref/ofa_ref.py, gato_ref.py write the
// files in tests/data/), overfitting one batch, incremental decoding, checkpoints, sizes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/node.h"
#include "autograd/optim.h"
#include "models/checkpoint.h"
#include "models/gato.h"
#include "models/loss.h"
#include "models/ofa.h"
#include "models/positions.h"
#include "ops/creation.h"
#include "ops/matmul.h"
#include "ops/shape.h"
#include "runtime/safetensors.h"
#include "tests/test_util.h"

using namespace mm;

namespace {

std::map<std::string, Tensor> with_prefix(const SafeTensors& st, const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : st.tensors)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_vector()) m = std::max(m, std::fabs(x));
  return m;
}

// Per-tensor relative error (llm.c test_gpt2 style): max |got - want| / max |want|, with
// max |want| floored at `floor` (see the gradient comparisons).
double rel_error(const Tensor& got, const Tensor& want, double floor = 0.0) {
  REQUIRE_MESSAGE(got.shape() == want.shape(), got.shape(), " vs ", want.shape());
  std::vector<double> a = got.to_vector(), b = want.to_vector();
  double diff = 0, scale = floor;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

// Compares every parameter's gradient with the reference's, 1e-3 relative per tensor.
// Gradients that are zero in exact arithmetic (key-projection biases: softmax ignores a
// shift shared by all keys) are rounding noise on both sides, so relative error means
// nothing there: when the reference's is below 1e-6 of the largest reference gradient,
// ours must be below 1e-5 of it.
void check_gradients(const Module& m, const std::map<std::string, Tensor>& grads, const std::string& model) {
  double largest = 0;
  for (auto& [name, g] : grads) largest = std::max(largest, max_abs(g));
  double worst = 0;
  std::string worst_name;
  int zero = 0;
  for (auto& [name, p] : m.named_parameters()) {
    REQUIRE_MESSAGE(grads.count(name), "the reference has no gradient for ", name);
    REQUIRE_MESSAGE(p.grad().defined(), name, " got no gradient");
    if (max_abs(grads.at(name)) < 1e-6 * largest) {
      ++zero;
      CHECK_MESSAGE(max_abs(p.grad()) < 1e-5 * largest, "gradient of ", name, " should be 0, is up to ",
                    max_abs(p.grad()));
      continue;
    }
    const double e = rel_error(p.grad(), grads.at(name));
    if (e > worst) worst = e, worst_name = name;
    CHECK_MESSAGE(e < 1e-3, "gradient of ", name, ": relative error ", e);
  }
  CHECK(m.named_parameters().size() == grads.size());
  MESSAGE(model, " vs PyTorch: worst gradient relative error ", worst, " (", worst_name, ") over ",
          grads.size(), " tensors (", zero, " exactly-zero gradients checked as zero)");
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

std::string tmp_path(const std::string& name) { return "/tmp/mm_test_models_" + name; }

OfaConfig micro_ofa(int64_t vocab = 64) {
  OfaConfig c = OfaConfig::preset("micro");
  c.vocab_size = vocab;
  c.dropout = 0.0;
  return c;
}

// Image + text -> text, B = 2, the second row padded.
OfaInputs micro_batch(uint64_t seed) {
  Generator g(seed);
  OfaInputs in;
  in.images = randn({2, 3, 32, 32}, g);
  in.src_tokens = Tensor::from_vector_i({1, 17, 23, 9, 40, 2, 1, 33, 12, 2, 0, 0}, {2, 6});
  in.prev_tokens = Tensor::from_vector_i({1, 50, 51, 52, 53, 1, 60, 61, 62, 0}, {2, 5});
  return in;
}
const std::vector<int64_t> kMicroTarget{50, 51, 52, 53, 2, 60, 61, 62, 2, 0};

}  // namespace

TEST_SUITE("models") {

// ---- PyTorch references -----------------------------------------------------------------

TEST_CASE("OFA micro matches the PyTorch reference: logits, loss, every gradient") {
  SafeTensors st = load_safetensors("tests/data/ofa_micro_ref.safetensors");
  OfaConfig cfg = OfaConfig::from_json(st.metadata.at("config"));
  OfaModel m(cfg);
  m.load_state_dict(with_prefix(st, "param/"));
  m.train();
  auto input = with_prefix(st, "input/");
  OfaInputs in;
  in.images = input.at("images");
  in.image_present = input.at("image_present");
  in.src_tokens = input.at("src_tokens");
  in.src_mask = input.at("src_mask");
  in.prev_tokens = input.at("prev_tokens");

  Tensor logits = m.forward(in);
  const double e_logits = rel_error(logits, st.tensors.at("out/logits"));
  CHECK_MESSAGE(e_logits < 1e-4, "logits relative error ", e_logits);

  LossOptions lo;
  lo.label_smoothing = std::stod(st.metadata.at("label_smoothing"));
  LossResult r = sequence_loss(logits, input.at("target"), input.at("loss_mask"), lo);
  CHECK(r.sample_size == std::stoll(st.metadata.at("sample_size")));
  const double want = std::stod(st.metadata.at("loss_f64"));
  CHECK_MESSAGE(std::fabs(r.loss.item() - want) <= 1e-5 * std::fabs(want), "loss ", r.loss.item(), " vs ", want);

  autograd::backward(r.loss);
  MESSAGE("OFA micro vs PyTorch: logits relative error ", e_logits);
  check_gradients(m, with_prefix(st, "grad/"), "OFA micro");
  // Training-mode BatchNorm updated its running statistics as PyTorch's did.
  for (auto& [name, buf] : with_prefix(st, "buffer/")) {
    Tensor mine = m.state_dict().at(name);
    CHECK_MESSAGE(rel_error(mine, buf) < 1e-4, "buffer ", name);
  }
}

TEST_CASE("Gato micro matches the PyTorch reference: logits, loss, every gradient") {
  SafeTensors st = load_safetensors("tests/data/gato_micro_ref.safetensors");
  GatoConfig cfg = GatoConfig::from_json(st.metadata.at("config"));
  GatoModel m(cfg);
  m.load_state_dict(with_prefix(st, "param/"));
  m.train();
  auto input = with_prefix(st, "input/");
  GatoInputs in;
  in.tokens = input.at("tokens");
  in.patch_mask = input.at("patch_mask");
  in.patches = input.at("patches");
  in.patch_row = input.at("patch_row");
  in.patch_col = input.at("patch_col");
  in.local_pos = input.at("local_pos");
  in.loss_mask = input.at("loss_mask");

  Tensor logits = m.forward(in);
  const double e_logits = rel_error(logits, st.tensors.at("out/logits"));
  CHECK_MESSAGE(e_logits < 1e-4, "logits relative error ", e_logits);
  auto [target, mask] = GatoModel::next_token_targets(in);
  LossResult r = sequence_loss(logits, target, mask);
  CHECK(r.sample_size == std::stoll(st.metadata.at("sample_size")));
  const double want = std::stod(st.metadata.at("loss_f64"));
  CHECK_MESSAGE(std::fabs(r.loss.item() - want) <= 1e-5 * std::fabs(want), "loss ", r.loss.item(), " vs ", want);

  autograd::backward(r.loss);
  MESSAGE("Gato micro vs PyTorch: logits relative error ", e_logits);
  check_gradients(m, with_prefix(st, "grad/"), "Gato micro");
}

// ---- training -----------------------------------------------------------------------------

TEST_CASE("OFA micro overfits one image+text batch: loss < 0.05 within 200 steps") {
  OfaModel m(micro_ofa());
  m.train();
  OfaInputs in = micro_batch(7);
  Tensor target = Tensor::from_vector_i(kMicroTarget, {2, 5});
  AdamWOptions ao;
  ao.lr = 1e-2;
  AdamW opt({{m.parameters(), 0.0}}, ao);
  double loss = 1e9;
  int step = 0;
  for (; step < 200 && loss >= 0.05; ++step) {
    LossResult r = sequence_loss(m.forward(in), target, Tensor());
    loss = r.loss.item() / double(r.sample_size);
    autograd::backward(r.loss);
    opt.step();
    opt.zero_grad();
  }
  MESSAGE("overfit: loss ", loss, " after ", step, " steps");
  CHECK(loss < 0.05);
}

TEST_CASE("label-smoothed loss: sample size counts scored, non-pad tokens; weight scales the sum") {
  Tensor logits = test::random({1, 4, 10}, 3);
  Tensor target = Tensor::from_vector_i({4, 5, 0, 6}, {1, 4});
  Tensor mask = Tensor::from_vector_i({0, 1, 1, 1}, {1, 4}, DType::boolean);  // first: no_loss
  LossOptions o;
  o.label_smoothing = 0.1;
  LossResult a = sequence_loss(logits, target, mask, o);
  CHECK(a.sample_size == 2);  // 5 and 6 (0 is padding, 4 is no_loss)
  // Reference by hand: (1-eps) nll + eps mean_j(-log p_j) over the two scored rows.
  std::vector<double> x = logits.to_vector();
  double want = 0;
  for (int t : {1, 3}) {
    double mx = -1e30, s = 0, mean_lp = 0;
    for (int j = 0; j < 10; ++j) mx = std::max(mx, x[size_t(t * 10 + j)]);
    for (int j = 0; j < 10; ++j) s += std::exp(x[size_t(t * 10 + j)] - mx);
    const double lse = mx + std::log(s);
    for (int j = 0; j < 10; ++j) mean_lp += (lse - x[size_t(t * 10 + j)]) / 10;
    const int64_t id = t == 1 ? 5 : 6;
    want += 0.9 * (lse - x[size_t(t * 10 + id)]) + 0.1 * mean_lp;
  }
  CHECK(a.loss.item() == doctest::Approx(want).epsilon(1e-5));
  o.weight = 2.5;
  CHECK(sequence_loss(logits, target, mask, o).loss.item() == doctest::Approx(2.5 * want).epsilon(1e-5));
  // closed set: only ids 4..6 allowed; the smoothing spreads over those 3.
  std::vector<int64_t> allow(10, 0);
  allow[4] = allow[5] = allow[6] = 1;
  o.weight = 1.0;
  o.allowed = Tensor::from_vector_i(allow, {10}, DType::u8);
  LossResult c = sequence_loss(logits, target, mask, o);
  CHECK(c.loss.item() < a.loss.item());
}

TEST_CASE("dropout, attention dropout and drop path: on in training only, reproducible by seed") {
  OfaConfig c = micro_ofa();
  c.dropout = 0.1;
  c.attention_dropout = 0.1;
  c.drop_path_rate = 0.2;
  c.resnet_drop_path_rate = 0.1;
  c.encoder_layers = c.decoder_layers = 2;
  OfaModel a(c), b(c);
  OfaInputs in = micro_batch(2);
  Tensor t1 = a.forward(in), t2 = a.forward(in), u1 = b.forward(in);
  CHECK(max_abs_diff(t1, t2) > 1e-3);   // new masks each call
  CHECK(max_abs_diff(t1, u1) == 0.0);   // same seed, same masks
  LossResult r = sequence_loss(t1, Tensor::from_vector_i(kMicroTarget, {2, 5}), Tensor());
  autograd::backward(r.loss);  // through the unfused attention-dropout path
  for (auto& [name, p] : a.named_parameters())  // (no audio or video in this batch)
    if (name.find("audio") == std::string::npos && name.find("frame_embedding") == std::string::npos)
      CHECK_MESSAGE(p.grad().defined(), name);
  a.eval();
  CHECK(max_abs_diff(a.forward(in), a.forward(in)) == 0.0);

  // The unfused path (taken whenever attention dropout is on) computes the same
  // attention as the fused op, masks and biases included, when nothing is dropped.
  OfaConfig f = micro_ofa(), u = micro_ofa();
  u.attention_dropout = 1e-12;
  OfaModel fused(f), unfused(u);
  OfaInputs in2 = micro_batch(4);
  CHECK(max_abs_diff(fused.forward(in2), unfused.forward(in2)) < 1e-5);
}

TEST_CASE("every modality: image (ResNet or patch adaptor), video, audio, text; padding masks") {
  OfaConfig c = micro_ofa();
  c.image_adaptor = "patch";
  OfaModel m(c);
  m.eval();
  autograd::NoGradGuard ng;
  Generator g(9);
  OfaInputs in = micro_batch(3);           // 32x32 images: 2x2 patches of 16
  in.video = randn({2, 3, 3, 32, 32}, g);  // 3 frames of 2x2 patches
  in.audio = randn({2, 10, 80}, g);        // 10 frames -> 3 tokens
  in.audio_mask = Tensor::from_vector_i({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}, {2, 10},
                                        DType::boolean);
  in.image_present = Tensor::from_vector_i({1, 0}, {2}, DType::boolean);
  EncoderOut e = m.encode(in);
  CHECK(e.x.shape() == Shape{2, 4 + 12 + 3 + 6, 32});
  std::vector<double> pad = e.padding.to_vector();
  const int64_t S = 25;
  CHECK(pad[0] == 0.0);                    // row 0 has its image
  CHECK(pad[size_t(S + 0)] == 1.0);        // row 1 has none: its patches are padding
  CHECK(pad[size_t(S + 16 + 1)] == 0.0);   // audio token 1 of row 1 starts at frame 4: real
  CHECK(pad[size_t(S + 16 + 2)] == 1.0);   // audio token 2 starts at frame 8: padding
  CHECK(pad[size_t(S + 19 + 4)] == 1.0);   // text padding of row 1
  CHECK(m.decode(e, in.prev_tokens).shape() == Shape{2, 5, c.vocab_size});

  // Masked inputs do not matter: row 1's (absent) image can change freely.
  Tensor before = m.forward(in);
  Tensor img = in.images.detach();
  in.images = concat({narrow(img, 0, 0, 1), randn({1, 3, 32, 32}, g)}, 0);
  Tensor after = m.forward(in);
  CHECK(max_abs_diff(before, after) < 1e-6);
  in.image_present = Tensor();             // now row 1's new image is seen
  CHECK(max_abs_diff(before, m.forward(in)) > 1e-4);
}

TEST_CASE("entangle_positions: a patch's content says where it is") {
  // A uniform image: every patch embeds to the same vector. OFA's positions reach only the
  // attention biases, and attention over equal values returns that value whatever the
  // weights, so every patch's output is the same. Entangled, the positions are in the content.
  OfaConfig c = micro_ofa();
  c.image_adaptor = "patch";
  OfaInputs in;
  in.images = Tensor::full({1, 3, 32, 32}, 0.3f);  // 2x2 patches of 16
  auto spread = [&](bool entangle) {
    c.entangle_positions = entangle;
    OfaModel m(c);
    m.eval();
    autograd::NoGradGuard ng;
    Tensor x = m.encode(in).x;  // [1, 4, d]
    return max_abs_diff(narrow(x, 1, 0, 1), narrow(x, 1, 3, 1));
  };
  CHECK(spread(false) < 1e-5);
  CHECK(spread(true) > 1e-2);
  c.entangle_positions = true;
  CHECK(OfaConfig::from_json(c.to_json()).entangle_positions);
}

// ---- incremental decoding -----------------------------------------------------------------

TEST_CASE("OFA incremental decoding with the KV cache equals full recomputation; reorder follows beams") {
  OfaModel m(micro_ofa());
  m.eval();
  autograd::NoGradGuard ng;
  OfaInputs in = micro_batch(11);
  EncoderOut enc = m.encode(in);
  Tensor full = m.decode(enc, in.prev_tokens);  // [2, 5, V]
  DecoderCache cache;
  for (int64_t t = 0; t < 5; ++t) {
    Tensor step = m.decode(enc, narrow(in.prev_tokens, 1, t, 1), &cache);
    CHECK_MESSAGE(max_abs_diff(step, narrow(full, 1, t, 1)) < 1e-5, "step ", t);
  }
  CHECK(cache.steps == 5);

  // Beam search swaps rows: after reordering the cache (and the encoder output), the next
  // step must equal full recomputation over the swapped prefixes.
  DecoderCache c2;
  m.decode(enc, narrow(in.prev_tokens, 1, 0, 3), &c2);
  c2.reorder({1, 0});
  EncoderOut swapped = select_rows(enc, {1, 0});
  Tensor prev_sw = Tensor::from_vector_i({1, 60, 61, 62, 0, 1, 50, 51, 52, 53}, {2, 5});  // rows swapped
  Tensor step = m.decode(swapped, narrow(prev_sw, 1, 3, 1), &c2);
  Tensor ref = m.decode(swapped, narrow(prev_sw, 1, 0, 4));
  CHECK(max_abs_diff(step, narrow(ref, 1, 3, 1)) < 1e-5);
}

TEST_CASE("Gato incremental decoding with the KV cache equals full recomputation") {
  GatoConfig c = GatoConfig::preset("micro");
  c.vocab_size = 64;
  c.max_positions = 32;  // exercise the learned absolute positions too
  GatoModel m(c);
  m.eval();
  autograd::NoGradGuard ng;
  GatoInputs in;
  in.tokens = Tensor::from_vector_i({7, 8, 9, 10, 11, 12, 13, 14, 20, 21, 22, 23}, {2, 6});
  in.local_pos = Tensor::from_vector_i({0, 1, 2, -1, 0, 1, 0, 1, -1, -1, 0, 1}, {2, 6});
  Tensor full = m.forward(in);
  DecoderCache cache;
  for (int64_t t = 0; t < 6; ++t) {
    GatoInputs s;
    s.tokens = narrow(in.tokens, 1, t, 1);
    s.local_pos = narrow(in.local_pos, 1, t, 1);
    CHECK_MESSAGE(max_abs_diff(m.forward(s, &cache), narrow(full, 1, t, 1)) < 1e-5, "step ", t);
  }
}

// ---- checkpoints ----------------------------------------------------------------------------

TEST_CASE("checkpoint save/load round trip gives identical logits; config and vocab travel along") {
  OfaConfig cfg = micro_ofa();
  OfaModel m(cfg);
  m.train();
  {  // one training step so BatchNorm statistics and weights differ from a fresh model
    LossResult r = sequence_loss(m.forward(micro_batch(3)), Tensor::from_vector_i(kMicroTarget, {2, 5}), Tensor());
    autograd::backward(r.loss);
    SGD opt({{m.parameters(), 0.0}}, {});
    opt.step();
  }
  m.eval();
  const std::string path = tmp_path("roundtrip.safetensors");
  save_checkpoint(path, m, "ofa", cfg.to_json(), "{\"format\":\"mm-vocab\"}", {{"step", "1"}});
  Checkpoint info;
  std::unique_ptr<OfaModel> back = load_ofa(path, &info);
  back->eval();
  CHECK(info.vocab_json == "{\"format\":\"mm-vocab\"}");
  CHECK(info.extra.at("step") == "1");
  CHECK(back->config().to_json() == cfg.to_json());
  autograd::NoGradGuard ng;
  OfaInputs in = micro_batch(5);
  CHECK(max_abs_diff(m.forward(in), back->forward(in)) == 0.0);

  GatoConfig gc = GatoConfig::preset("micro");
  gc.vocab_size = 64;
  GatoModel g(gc);
  save_checkpoint(tmp_path("gato.safetensors"), g, "gato", gc.to_json());
  auto g2 = load_gato(tmp_path("gato.safetensors"));
  GatoInputs gi;
  gi.tokens = Tensor::from_vector_i({5, 6, 7, 8}, {1, 4});
  g.eval();
  g2->eval();
  CHECK(max_abs_diff(g.forward(gi), g2->forward(gi)) == 0.0);
  std::remove(path.c_str());
  std::remove(tmp_path("gato.safetensors").c_str());
}

TEST_CASE("bad checkpoints: another config or a missing tensor name the tensor and both shapes") {
  OfaConfig cfg = micro_ofa();
  OfaModel m(cfg);
  const std::string path = tmp_path("bad.safetensors");
  save_checkpoint(path, m, "ofa", cfg.to_json());

  OfaConfig wider = cfg;
  wider.ffn_dim = 96;
  OfaModel other(wider);
  Checkpoint ck = read_checkpoint(path);
  test::check_throws_with([&] { load_weights(other, ck, path); },
                          {path, "encoder.layers.0.fc1.weight", "[64, 32]", "[96, 32]"});

  ck.tensors.erase("decoder.layers.0.fc2.bias");
  test::check_throws_with([&] { load_weights(m, ck, path); }, {"decoder.layers.0.fc2.bias", "[32]", "missing"});

  test::check_throws_with([&] { load_gato(path); }, {"not gato"});
  save_safetensors(path, {{"x", Tensor::zeros({2})}});
  test::check_throws_with([&] { load_ofa(path); }, {path, "format"});
  std::remove(path.c_str());
}

TEST_CASE("sequences longer than the position tables are rejected naming the limit") {
  OfaModel m(micro_ofa());
  m.eval();
  autograd::NoGradGuard ng;
  OfaInputs in;
  std::vector<int64_t> ids(1025, 7);
  in.src_tokens = Tensor::from_vector_i(ids, {1, 1025});
  in.prev_tokens = Tensor::from_vector_i({1}, {1, 1});
  test::check_throws_with([&] { m.encode(in); }, {"source text", "1025", "1024"});
  in.src_tokens = Tensor::from_vector_i({1, 2}, {1, 2});
  EncoderOut enc = m.encode(in);
  test::check_throws_with([&] { m.decode(enc, Tensor::from_vector_i(ids, {1, 1025})); }, {"target", "1024"});
  in.images = Tensor::zeros({1, 3, 16 * 43, 16});
  test::check_throws_with([&] { m.encode(in); }, {"43x1 patch grid", "42x42"});

  GatoConfig gc = GatoConfig::preset("micro");
  gc.vocab_size = 64;
  gc.max_positions = 8;
  GatoModel g(gc);
  GatoInputs gi;
  gi.tokens = Tensor::zeros({1, 9}, DType::i64);
  test::check_throws_with([&] { g.forward(gi); }, {"9 tokens", "8 positions"});
}

// ---- continuous value embedding -----------------------------------------------------------

TEST_CASE("continuous value embedding: bin rows are a smooth function of the value, trained in and out") {
  OfaConfig c = micro_ofa();
  c.continuous_begin = 40;
  c.continuous_bins = 16;  // tokens 40..55: the batch's source 40 and targets 50..53
  c.continuous_frequencies = 3;
  OfaModel m(c);
  REQUIRE(m.continuous_embed);
  CHECK(m.num_parameters() == c.parameter_count());
  const OfaConfig back = OfaConfig::from_json(c.to_json());
  CHECK(back.continuous_begin == 40);
  CHECK(back.continuous_bins == 16);
  CHECK(back.continuous_frequencies == 3);

  // Outside the range the table is embed_tokens; inside, the zero-initialised rows plus
  // the value embedding of phi(bin centre).
  const ContinuousValueEmbed& ve = *m.continuous_embed;
  CHECK(ve.features.shape() == Shape{16, 7});
  Tensor table = token_table(m.embed_tokens, &ve);
  Tensor value = linear(ve.features, ve.weight, ve.bias);
  const int64_t d = c.d_model;
  for (int64_t v : {0, 39, 56, 63})
    for (int64_t j = 0; j < d; ++j) CHECK(table.at({v, j}) == m.embed_tokens.weight.at({v, j}));
  double err = 0;
  for (int64_t i = 0; i < 16; ++i)
    for (int64_t j = 0; j < d; ++j) err = std::max(err, std::fabs(table.at({40 + i, j}) - value.at({i, j})));
  CHECK(err == 0);
  CHECK(ve.features.at({0, 0}) == doctest::Approx(-15.0 / 16.0));  // u of the first bin centre
  CHECK(ve.features.at({15, 0}) == doctest::Approx(15.0 / 16.0));

  // Neighbouring bins start closer to each other than to the far end of the range.
  auto row_dist = [&](int64_t a, int64_t b) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += std::pow(value.at({a, j}) - value.at({b, j}), 2);
    return std::sqrt(s);
  };
  CHECK(row_dist(7, 8) < row_dist(0, 15));

  // One loss reaches the value embedding through the encoder input, the decoder input and
  // the tied output projection.
  LossResult r = sequence_loss(m.forward(micro_batch(3)), Tensor::from_vector_i(kMicroTarget, {2, 5}), Tensor());
  autograd::backward(r.loss);
  REQUIRE(ve.weight.grad().defined());
  CHECK(max_abs(ve.weight.grad()) > 0);
  CHECK(max_abs(ve.bias.grad()) > 0);

  OfaConfig bad = c;
  bad.continuous_begin = 60;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("continuous range [60, 76)"), mm::Error);
}

// ---- sizes ---------------------------------------------------------------------------------

TEST_CASE("OFA sizes: parameter counts within 2% of the SPEC; building allocates exactly the count") {
  const std::vector<std::pair<std::string, double>> want{
      {"tiny", 33e6}, {"medium", 93e6}, {"base", 182e6}, {"large", 472e6}, {"huge", 930e6}};
  for (auto& [size, n] : want) {
    const double got = double(OfaConfig::preset(size).parameter_count());
    CHECK_MESSAGE(std::fabs(got - n) <= 0.02 * n, size, ": ", got, " parameters, SPEC ", n);
  }
  for (const char* size : {"micro", "tiny"}) {
    OfaConfig c = OfaConfig::preset(size);
    OfaModel m(c);
    CHECK_MESSAGE(m.num_parameters() == c.parameter_count(), size);
  }
  OfaConfig frozen = micro_ofa();  // frozen BatchNorm: affine kept as buffers, not trained
  frozen.freeze_bn = true;
  OfaModel fm(frozen);
  int64_t bn_affine = 0;
  for (auto& [name, t] : fm.named_buffers())
    if (name.find("bn") != std::string::npos || name.find("downsample.1") != std::string::npos)
      if (name.find("running") == std::string::npos) bn_affine += t.numel();
  CHECK(bn_affine > 0);
  CHECK(fm.num_parameters() + bn_affine == frozen.parameter_count());
  fm.train();
  Tensor rm = fm.encoder.embed_images->bn1.running_mean.detach();
  std::vector<double> before = rm.to_vector();
  fm.forward(micro_batch(1));
  CHECK(rm.to_vector() == before);  // running statistics are used, never updated

  OfaConfig light = micro_ofa();
  light.image_adaptor = "patch";
  OfaModel lm(light);
  CHECK(lm.num_parameters() == light.parameter_count());
}

TEST_CASE("Gato sizes: built = computed; the GPT-2 config has GPT-2's 124,439,808 parameters") {
  GatoConfig c = GatoConfig::preset("micro");
  GatoModel m(c);
  CHECK(m.num_parameters() == c.parameter_count());
  CHECK(GatoConfig::preset("gpt2-124m").parameter_count() == 124439808);
  CHECK(GatoConfig::from_json(GatoConfig::preset("79m").to_json()).parameter_count() ==
        GatoConfig::preset("79m").parameter_count());
  test::check_throws_with([] { GatoConfig::from_json("{\"layers\": 2, \"colour\": 1}"); }, {"colour"});
  test::check_throws_with([] { OfaConfig::preset("enormous"); }, {"enormous", "tiny"});
}

TEST_CASE("relative position buckets: OFA's text and image formulas") {
  CHECK(token_rel_bucket(0, 0) == 255);
  CHECK(token_rel_bucket(5, 0) == 260);
  CHECK(token_rel_bucket(0, 128) == 255 - 128);
  CHECK(token_rel_bucket(1023, 0) == 510);  // the farthest distance: the last bucket
  CHECK(token_rel_bucket(0, 1023) == 0);
  CHECK(image_rel_bucket(0, 0, 0, 0) == 41 * 83 + 41);
  CHECK(image_rel_bucket(2, 3, 0, 0) == 43 * 83 + 44);
  CHECK(image_rel_table_size() == 83 * 83 + 3);
}

}  // TEST_SUITE
