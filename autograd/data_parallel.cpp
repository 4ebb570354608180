#include "autograd/data_parallel.h"

#include <chrono>
#include <cmath>

#include "autograd/grad_mode.h"
#include "ops/backend.h"

namespace mm {

void broadcast_tensors(dist::Comm& comm, const std::vector<Tensor>& tensors, int root) {
  for (const Tensor& t : tensors) {
    Tensor v = t;
    comm.broadcast(v, root);
  }
}

void broadcast_parameters(dist::Comm& comm, const Module& model, int root) {
  std::vector<Tensor> all;
  for (auto& [name, t] : model.named_parameters()) all.push_back(t);
  for (auto& [name, t] : model.named_buffers()) all.push_back(t);
  broadcast_tensors(comm, all, root);
}

Generator rank_generator(uint64_t seed, int rank) {
  MM_CHECK(rank >= 0, "rank_generator: negative rank ", rank);
  Generator g(seed);
  g.set_state(seed, uint64_t(rank) << 40);
  return g;
}

// ---- GradSync -------------------------------------------------------------------------------
// A contiguous 1-D view of n elements of flat at element offset off.
static Tensor flat_view(const Tensor& flat, int64_t off, int64_t n) {
  return flat.as_strided(Shape{n}, Shape{1}, flat.offset() + off);
}

GradSync::GradSync(dist::Comm& comm, std::vector<Tensor> params, const GradSyncOptions& o)
    : comm_(comm), params_(std::move(params)) {
  MM_CHECK(o.bucket_bytes > 0, "GradSync: bucket_bytes must be positive, got ", o.bucket_bytes);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    MM_CHECK(p.defined() && p.is_contiguous(), "GradSync: parameter ", i, " must be a defined contiguous tensor");
    MM_CHECK(is_floating(p.dtype()), "GradSync: parameter ", i, " has dtype ", dtype_name(p.dtype()));
    const int64_t bytes = p.numel() * int64_t(dtype_size(p.dtype()));
    const bool fits = !buckets_.empty() && buckets_.back().dtype == p.dtype() &&
                      buckets_.back().device == p.device() &&
                      (buckets_.back().numel * int64_t(dtype_size(p.dtype())) + bytes <= o.bucket_bytes);
    if (!fits) buckets_.push_back(Bucket{p.dtype(), p.device(), {}, {}, 0, Tensor()});
    Bucket& b = buckets_.back();
    b.params.push_back(i);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
  }
  for (size_t k = 0; k < buckets_.size(); ++k) {
    Bucket& b = buckets_[k];
    b.flat = Tensor::zeros({b.numel + int64_t(b.params.size()) + (k == 0 ? 1 : 0)}, b.dtype, b.device);
  }
}

int64_t GradSync::reduce(int64_t local_samples) {
  MM_CHECK(local_samples >= 0, "GradSync::reduce: negative sample count ", local_samples);
  autograd::NoGradGuard ng;
  double scale = 0;
  int64_t global = 0;
  for (size_t k = 0; k < buckets_.size(); ++k) {
    Bucket& b = buckets_[k];
    Backend& be = backend_for(b.device);
    const int64_t np = int64_t(b.params.size()), meta_n = b.flat.numel() - b.numel;
    // Flags and the sample count are written on the host and moved with one copy, so the
    // same code serves device buckets.
    Tensor meta = Tensor::zeros({meta_n}, b.dtype);
    for (int64_t j = 0; j < np; ++j) {
      const Tensor& p = params_[b.params[size_t(j)]];
      Tensor g = p.grad();
      Tensor dst = flat_view(b.flat, b.offsets[size_t(j)], p.numel());
      if (g.defined()) {
        MM_CHECK(g.numel() == p.numel(), "GradSync: parameter ", b.params[size_t(j)], " ", p.shape(),
                 " has a gradient of shape ", g.shape());
        store_from_double(meta.raw_data(), b.dtype, j, 1.0);
        // After the previous reduce a gradient is already this view: nothing to copy.
        if (g.raw_data() != dst.raw_data()) be.copy(g.as_strided(Shape{p.numel()}, Shape{1}, g.offset()), dst);
      } else {
        be.fill(dst, 0.0);
      }
    }
    if (k == 0) store_from_double(meta.raw_data(), b.dtype, np, double(local_samples));
    Tensor meta_dst = flat_view(b.flat, b.numel, meta_n);
    be.copy(meta, meta_dst);

    const auto t0 = std::chrono::steady_clock::now();
    comm_.all_reduce(b.flat, dist::Op::sum);
    comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    Tensor reduced_meta = Tensor::empty({meta_n}, b.dtype);
    be.copy(meta_dst, reduced_meta);
    if (k == 0) {
      const double n = load_as_double(reduced_meta.raw_data(), b.dtype, np);
      MM_CHECK(n > 0, "GradSync::reduce: no samples on any rank in this update");
      MM_CHECK(b.dtype != DType::f32 || n < 16777216.0, "GradSync::reduce: ", n,
               " samples per update exceed what an f32 bucket counts exactly (2^24)");
      global = int64_t(std::llround(n));
      scale = 1.0 / double(global);
    }
    Tensor grads = flat_view(b.flat, 0, b.numel);
    be.unary(UnaryOp::scale, grads, grads, scale);
    for (int64_t j = 0; j < np; ++j) {
      Tensor& p = params_[b.params[size_t(j)]];
      if (load_as_double(reduced_meta.raw_data(), b.dtype, j) == 0) continue;  // no rank had one
      // The reduced gradient stays in the bucket: .grad becomes a view of it. Backward
      // replaces (never modifies) gradients, so the next step cannot write through it.
      Tensor view = b.flat.as_strided(p.shape(), contiguous_strides(p.shape()), b.flat.offset() + b.offsets[size_t(j)]);
      p.impl()->grad = view.impl_ptr();
    }
  }
  return global;
}

// ---- MetricAverager -------------------------------------------------------------------------
MetricAverager::MetricAverager(std::vector<std::string> names) : names_(std::move(names)), values_(2 * names_.size()) {}

void MetricAverager::add(const std::string& name, double sum, double count) {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) {
      values_[2 * i] += sum;
      values_[2 * i + 1] += count;
      return;
    }
  throw Error(cat("MetricAverager::add: unknown metric '", name, "' (declare it in the constructor on every rank)"));
}

std::map<std::string, MetricAverager::Value> MetricAverager::reduce(dist::Comm& comm) {
  std::vector<double> all = comm.all_reduce(values_, dist::Op::sum);
  std::map<std::string, Value> out;
  for (size_t i = 0; i < names_.size(); ++i) out[names_[i]] = Value{all[2 * i], all[2 * i + 1]};
  std::fill(values_.begin(), values_.end(), 0.0);
  return out;
}

}  // namespace mm
