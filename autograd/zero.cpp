#include "autograd/zero.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "autograd/grad_mode.h"
#include "ops/backend.h"

namespace mm {

// A contiguous 1-D view of n elements of t at element offset off (t contiguous).
static Tensor view1d(const Tensor& t, int64_t off, int64_t n) { return t.as_strided(Shape{n}, Shape{1}, t.offset() + off); }

ZeroAdamW::ZeroAdamW(dist::Comm& comm, std::vector<ParamGroup> groups, const AdamWOptions& o, const ZeroOptions& z)
    : Optimizer(std::move(groups), o.lr), comm_(comm), o_(o), z_(z) {
  bool first = true;
  for (auto& g : groups_)
    for (auto& p : g.params) {
      MM_CHECK(p.defined() && p.is_contiguous(), "ZeroAdamW: parameter ", slots_.size(), " must be contiguous");
      if (first) {
        dtype_ = p.dtype();
        device_ = p.device();
        first = false;
      }
      MM_CHECK(p.dtype() == dtype_ && p.device() == device_, "ZeroAdamW: parameter ", slots_.size(), " is ",
               dtype_name(p.dtype()), " on ", p.device(), ", the first is ", dtype_name(dtype_), " on ", device_,
               " (one flat space needs one dtype and device)");
      MM_CHECK(dtype_ == DType::f32 || dtype_ == DType::f64, "ZeroAdamW: parameters must be f32 or f64, got ",
               dtype_name(dtype_));
      slots_.push_back(Slot{p, total_, g.weight_decay});
      total_ += p.numel();
    }
  const int w = comm_.size();
  shard_ = (total_ + w - 1) / w;
  begin_ = std::min(total_, comm_.rank() * shard_);
  end_ = std::min(total_, begin_ + shard_);
  // Zeroed once: the padding past T stays zero in every buffer, so it never perturbs sums.
  flat_ = Tensor::zeros({w * shard_}, dtype_, device_);
  shard_g_ = Tensor::zeros({shard_}, dtype_, device_);
  shard_p_ = Tensor::zeros({shard_}, dtype_, device_);
  m_ = Tensor::zeros({shard_}, dtype_, device_);
  v_ = Tensor::zeros({shard_}, dtype_, device_);
}

int64_t ZeroAdamW::step(int64_t local_samples) {
  MM_CHECK(local_samples >= 0, "ZeroAdamW::step: negative sample count ", local_samples);
  autograd::NoGradGuard ng;
  Backend& be = backend_for(device_);
  auto timed = [&](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  // 1. Sample count and which gradients exist anywhere.
  std::vector<double> meta(slots_.size() + 1, 0.0);
  meta[0] = double(local_samples);
  for (size_t i = 0; i < slots_.size(); ++i) meta[i + 1] = slots_[i].param.grad().defined() ? 1.0 : 0.0;
  timed([&] { meta = comm_.all_reduce(meta, dist::Op::sum); });
  MM_CHECK(meta[0] > 0, "ZeroAdamW::step: no samples on any rank in this update");
  const int64_t global = int64_t(std::llround(meta[0]));

  // 2. Local gradients into the flat space; reduce-scatter: my shard's sums.
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    Tensor dst = view1d(flat_, s.offset, s.param.numel());
    Tensor g = s.param.grad();
    if (g.defined()) {
      MM_CHECK(g.numel() == s.param.numel() && g.is_contiguous(), "ZeroAdamW: parameter ", i, " ", s.param.shape(),
               " has gradient ", g.shape());
      be.copy(view1d(g, 0, g.numel()), dst);
    } else {
      be.fill(dst, 0.0);
    }
  }
  timed([&] {
    comm_.reduce_scatter(flat_.raw_data(), shard_g_.raw_data(), shard_, dtype_, dist::Op::sum, device_);
  });

  // 3. Normalise, then clip by the global norm.
  be.unary(UnaryOp::scale, shard_g_, shard_g_, 1.0 / double(global));
  if (z_.max_grad_norm > 0) {
    double ss = be.sum_squares(shard_g_);
    timed([&] { ss = comm_.all_reduce(ss, dist::Op::sum); });
    last_norm_ = std::sqrt(ss);
    if (std::isfinite(last_norm_) && last_norm_ > z_.max_grad_norm)
      be.unary(UnaryOp::scale, shard_g_, shard_g_, z_.max_grad_norm / (last_norm_ + 1e-6));
  }

  // 4. AdamW on the owned shard, one segment per parameter it overlaps.
  ++steps_;
  const double c1 = 1.0 - std::pow(o_.beta1, double(steps_)), c2 = 1.0 - std::pow(o_.beta2, double(steps_));
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    const int64_t lo = std::max(begin_, s.offset), hi = std::min(end_, s.offset + s.param.numel());
    if (lo >= hi) continue;
    Tensor p_seg = view1d(shard_p_, lo - begin_, hi - lo);
    be.copy(view1d(s.param, lo - s.offset, hi - lo), p_seg);
    if (meta[i + 1] == 0) continue;  // no rank has a gradient: AdamW skips the parameter
    Tensor g_seg = view1d(shard_g_, lo - begin_, hi - lo);
    Tensor m_seg = view1d(m_, lo - begin_, hi - lo), v_seg = view1d(v_, lo - begin_, hi - lo);
    be.adamw(p_seg, g_seg, m_seg, v_seg, lr_, o_.beta1, o_.beta2, o_.eps, s.weight_decay, c1, c2);
  }

  // 5. Every rank gets every updated shard.
  timed([&] { comm_.all_gather(shard_p_.raw_data(), flat_.raw_data(), shard_, dtype_, device_); });
  for (const Slot& s : slots_) {
    Tensor p = s.param;
    Tensor dst = view1d(p, 0, p.numel());
    be.copy(view1d(flat_, s.offset, p.numel()), dst);
  }
  // flat_'s padding came back from the shards' never-written tails: still zero.
  return global;
}

std::map<std::string, Tensor> ZeroAdamW::state() const {
  std::map<std::string, Tensor> s;
  s["step"] = Tensor::scalar(double(steps_), DType::i64);
  auto host = [&](const Tensor& t) {
    if (t.device().is_cpu()) return t;
    Tensor h = Tensor::empty(t.shape(), t.dtype());
    backend_for(t.device()).copy(t, h);
    return h;
  };
  Tensor all_m = comm_.gather(host(m_), 0), all_v = comm_.gather(host(v_), 0);  // [W, S] on rank 0
  if (!comm_.is_main()) return s;
  Backend& cpu = backend_for(Device::cpu());
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& sl = slots_[i];
    for (auto [key, all] : {std::pair{"exp_avg.", &all_m}, std::pair{"exp_avg_sq.", &all_v}}) {
      Tensor out = Tensor::empty(sl.param.shape(), dtype_);
      Tensor dst = view1d(out, 0, out.numel());
      cpu.copy(view1d(*all, sl.offset, out.numel()), dst);
      s[key + std::to_string(i)] = out;
    }
  }
  return s;
}

void ZeroAdamW::load_state(const std::map<std::string, Tensor>& s) {
  MM_CHECK(s.count("step"), "ZeroAdamW::load_state: no 'step' in the optimizer state");
  steps_ = int64_t(s.at("step").item());
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& sl = slots_[i];
    for (auto [key, dst] : {std::pair{"exp_avg.", &m_}, std::pair{"exp_avg_sq.", &v_}}) {
      auto it = s.find(key + std::to_string(i));
      MM_CHECK(it != s.end(), "ZeroAdamW::load_state: missing '", key, i, "'");
      const Tensor& src = it->second;
      MM_CHECK(src.shape() == sl.param.shape() && src.is_contiguous(), "ZeroAdamW::load_state: '", key, i,
               "' has shape ", src.shape(), ", the parameter ", sl.param.shape());
      const int64_t lo = std::max(begin_, sl.offset), hi = std::min(end_, sl.offset + sl.param.numel());
      if (lo >= hi) continue;
      Tensor d = view1d(*dst, lo - begin_, hi - lo);
      backend_for(src.device().is_cpu() ? d.device() : src.device()).copy(view1d(src, lo - sl.offset, hi - lo), d);
    }
  }
}

ZeroAdamW::Memory ZeroAdamW::memory() const {
  const int64_t es = int64_t(dtype_size(dtype_));
  Memory m;
  m.params = total_ * es;
  m.grads = total_ * es;
  m.optimizer_state = 2 * shard_ * es;
  m.unsharded_state = 2 * total_ * es;
  m.buffers = (flat_.numel() + shard_g_.numel() + shard_p_.numel()) * es;
  return m;
}

}  // namespace mm
