// Tensor: a strided view (shape, strides, offset) of reference-counted storage.
//
//   Tensor x = Tensor::randn({B, T, C}, gen);       // f32 on the CPU
//   Tensor y = x.as_strided({B, C, T}, {T*C, 1, C}); // a view: no copy
//   float* p = x.data<float>();                      // first element of the view
//
// The runtime knows tensors and devices, not math: every op (including the views that
// record gradients, and copies between devices) lives in ops/. The autograd fields sit
// here, as PyTorch's AutogradMeta does, so a tensor can carry its gradient function.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "runtime/allocator.h"
#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

namespace mm {

namespace autograd { struct Node; }

// Up to 8 dimensions, stored inline so that small ops allocate nothing for their shapes.
struct Shape {
  static constexpr int kMaxDims = 8;
  int64_t v[kMaxDims] = {};
  int n = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> l);
  explicit Shape(const std::vector<int64_t>& l);
  template <typename It> Shape(It b, It e) { for (; b != e; ++b) push_back(int64_t(*b)); }

  int size() const { return n; }
  bool empty() const { return n == 0; }
  int64_t& operator[](int i) { return v[i]; }
  int64_t operator[](int i) const { return v[i]; }
  int64_t back() const { return v[n - 1]; }
  const int64_t* begin() const { return v; }
  const int64_t* end() const { return v + n; }
  void push_back(int64_t x);
  void insert(int pos, int64_t x);
  void erase(int pos);
  int64_t numel() const;
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
};
std::ostream& operator<<(std::ostream& os, const Shape& s);

// Row-major (C order) strides of a shape.
Shape contiguous_strides(const Shape& shape);

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* allocator = nullptr;  // null: memory owned elsewhere (kept alive by `owner`)
  std::shared_ptr<void> owner;

  Storage(size_t nbytes, Device dev, Allocator* a);
  Storage(void* data, size_t nbytes, Device dev, std::shared_ptr<void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

// Allocators per device; the CUDA backend registers its own when it is built in.
Allocator& allocator_for(Device d);
void register_device_allocator(DeviceType t, Allocator* a);

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;                 // accumulated into by backward()
  std::shared_ptr<autograd::Node> grad_fn;          // set on op outputs that need grad
  std::weak_ptr<autograd::Node> grad_accumulator;   // leaves: cached AccumulateGrad node
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation (uninitialised / filled); math-free, so they live here -------------
  static Tensor empty(const Shape& shape, DType dt = DType::f32, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dt = DType::f32, Device dev = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dt = DType::f32);
  static Tensor ones(const Shape& shape, DType dt = DType::f32) { return full(shape, 1.0, dt); }
  static Tensor scalar(double value, DType dt = DType::f32) { return full({}, value, dt); }
  static Tensor arange(int64_t n, DType dt = DType::i64);
  // Copies `values` (converted to dt) into a new CPU tensor of the given shape.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dt = DType::f32);
  static Tensor from_vector_f(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector_i(const std::vector<int64_t>& values, const Shape& shape,
                              DType dt = DType::i64);

  bool defined() const { return bool(impl_); }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata --------------------------------------------------------------------
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int dim() const { return impl_->shape.n; }
  int64_t numel() const { return impl_->shape.numel(); }
  int64_t size(int d) const { return impl_->shape[wrap_dim(d)]; }
  int64_t stride(int d) const { return impl_->strides[wrap_dim(d)]; }
  int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  bool is_contiguous() const;
  // Negative dims count from the end; out of range throws naming the shape.
  int wrap_dim(int d) const;

  // ---- raw access (CPU memory, or device memory for backends) ----------------------
  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data) + impl_->offset * dtype_size(dtype());
  }
  template <typename T> T* data() const { return static_cast<T*>(raw_data()); }
  // Value of a one-element CPU tensor, converted to double.
  double item() const;
  // All elements in logical (row-major) order, converted; CPU tensors only.
  std::vector<double> to_vector() const;
  std::vector<float> to_vector_f() const;
  // Element at a multi-index (CPU), converted to double. For tests and debugging.
  double at(std::initializer_list<int64_t> idx) const;

  // A view of the same storage: no copy, no autograd record (ops/shape.h records).
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  // A new tensor sharing the storage, detached from the autograd graph.
  Tensor detach() const;

  // ---- autograd --------------------------------------------------------------------
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Tensor& set_requires_grad(bool r = true);
  Tensor grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
  void zero_grad() { impl_->grad.reset(); }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return !impl_->grad_fn; }

  std::string str() const;  // "Tensor(f32, [2, 3], cpu)"

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Calls f(i) with the storage offset (in elements) of each element of a strided shape,
// in row-major order. The one place the runtime walks strides on the CPU.
template <typename F>
void for_each_offset(const Shape& shape, const Shape& strides, int64_t base, F&& f) {
  const int nd = shape.n;
  const int64_t total = shape.numel();
  if (total == 0) return;
  if (nd == 0) { f(base); return; }
  int64_t idx[Shape::kMaxDims] = {};
  int64_t off = base;
  const int64_t inner = shape[nd - 1], inner_stride = strides[nd - 1];
  for (int64_t done = 0; done < total; done += inner) {
    for (int64_t j = 0; j < inner; ++j) f(off + j * inner_stride);
    for (int d = nd - 2; d >= 0; --d) {
      off += strides[d];
      if (++idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// Reads element `i` of raw memory of dtype dt as double / writes a double into it.
double load_as_double(const void* base, DType dt, int64_t i);
void store_from_double(void* base, DType dt, int64_t i, double v);

}  // namespace mm
