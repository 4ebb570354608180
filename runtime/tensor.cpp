#include "runtime/tensor.h"

#include <cstring>
#include <map>

namespace mm {

// ---- Shape --------------------------------------------------------------------------
Shape::Shape(std::initializer_list<int64_t> l) {
  for (int64_t x : l) push_back(x);
}
Shape::Shape(const std::vector<int64_t>& l) {
  for (int64_t x : l) push_back(x);
}
void Shape::push_back(int64_t x) {
  MM_CHECK(n < kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
  v[n++] = x;
}
void Shape::insert(int pos, int64_t x) {
  MM_CHECK(n < kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
  for (int i = n; i > pos; --i) v[i] = v[i - 1];
  v[pos] = x;
  ++n;
}
void Shape::erase(int pos) {
  for (int i = pos; i + 1 < n; ++i) v[i] = v[i + 1];
  --n;
}
int64_t Shape::numel() const {
  int64_t p = 1;
  for (int i = 0; i < n; ++i) p *= v[i];
  return p;
}
bool Shape::operator==(const Shape& o) const {
  if (n != o.n) return false;
  for (int i = 0; i < n; ++i)
    if (v[i] != o.v[i]) return false;
  return true;
}
std::ostream& operator<<(std::ostream& os, const Shape& s) {
  os << '[';
  for (int i = 0; i < s.n; ++i) os << (i ? ", " : "") << s.v[i];
  return os << ']';
}
Shape contiguous_strides(const Shape& shape) {
  Shape st;
  st.n = shape.n;
  int64_t acc = 1;
  for (int i = shape.n - 1; i >= 0; --i) {
    st.v[i] = acc;
    acc *= shape.v[i];
  }
  return st;
}

// ---- Storage and allocators ---------------------------------------------------------
static Allocator* g_device_allocators[2] = {nullptr, nullptr};

void register_device_allocator(DeviceType t, Allocator* a) { g_device_allocators[int(t)] = a; }

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return cpu_allocator();
  Allocator* a = g_device_allocators[int(d.type)];
  MM_CHECK(a, "device ", d, " is not available: this build has no CUDA backend "
              "(rebuild with `make CUDA=1` on a machine with the CUDA toolkit)");
  return *a;
}

Storage::Storage(size_t n, Device dev, Allocator* a) : nbytes(n), device(dev), allocator(a) {
  data = a->allocate(n);
}
Storage::Storage(void* d, size_t n, Device dev, std::shared_ptr<void> o)
    : data(d), nbytes(n), device(dev), owner(std::move(o)) {}
Storage::~Storage() {
  if (allocator) allocator->deallocate(data, nbytes);
}

// ---- Tensor -------------------------------------------------------------------------
Tensor Tensor::empty(const Shape& shape, DType dt, Device dev) {
  for (int i = 0; i < shape.n; ++i)
    MM_CHECK(shape[i] >= 0, "empty: negative size in shape ", shape);
  auto impl = std::make_shared<TensorImpl>();
  size_t nbytes = size_t(shape.numel()) * dtype_size(dt);
  impl->storage = std::make_shared<Storage>(nbytes, dev, &allocator_for(dev));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dt;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dt, Device dev) {
  Tensor t = empty(shape, dt, dev);
  MM_CHECK(dev.is_cpu(), "Tensor::zeros on ", dev, ": use ops::zeros for device tensors");
  std::memset(t.raw_data(), 0, size_t(t.numel()) * dtype_size(dt));
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dt) {
  Tensor t = empty(shape, dt);
  void* p = t.raw_data();
  const int64_t n = t.numel();
  if (dt == DType::f32) {
    float* f = static_cast<float*>(p);
    for (int64_t i = 0; i < n; ++i) f[i] = float(value);
  } else {
    for (int64_t i = 0; i < n; ++i) store_from_double(p, dt, i, value);
  }
  return t;
}

Tensor Tensor::arange(int64_t n, DType dt) {
  Tensor t = empty({n}, dt);
  for (int64_t i = 0; i < n; ++i) store_from_double(t.raw_data(), dt, i, double(i));
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dt) {
  MM_CHECK(int64_t(values.size()) == shape.numel(), "from_vector: ", values.size(),
           " values do not fill shape ", shape);
  Tensor t = empty(shape, dt);
  for (size_t i = 0; i < values.size(); ++i) store_from_double(t.raw_data(), dt, int64_t(i), values[i]);
  return t;
}
Tensor Tensor::from_vector_f(const std::vector<float>& values, const Shape& shape) {
  MM_CHECK(int64_t(values.size()) == shape.numel(), "from_vector: ", values.size(),
           " values do not fill shape ", shape);
  Tensor t = empty(shape, DType::f32);
  std::memcpy(t.raw_data(), values.data(), values.size() * 4);
  return t;
}
Tensor Tensor::from_vector_i(const std::vector<int64_t>& values, const Shape& shape, DType dt) {
  MM_CHECK(int64_t(values.size()) == shape.numel(), "from_vector: ", values.size(),
           " values do not fill shape ", shape);
  Tensor t = empty(shape, dt);
  for (size_t i = 0; i < values.size(); ++i)
    store_from_double(t.raw_data(), dt, int64_t(i), double(values[i]));
  return t;
}

int Tensor::wrap_dim(int d) const {
  int n = dim();
  MM_CHECK(d >= -n && d < (n == 0 ? 1 : n), "dimension ", d, " out of range for shape ", shape());
  return d < 0 ? d + n : d;
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

double load_as_double(const void* base, DType dt, int64_t i) {
  switch (dt) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::bf16: return bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::f16: return f16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i64: return double(static_cast<const int64_t*>(base)[i]);
    case DType::u8: case DType::boolean: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}
void store_from_double(void* base, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::f32: static_cast<float*>(base)[i] = float(v); break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::bf16: static_cast<uint16_t*>(base)[i] = f32_to_bf16_bits(float(v)); break;
    case DType::f16: static_cast<uint16_t*>(base)[i] = f32_to_f16_bits(float(v)); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = int32_t(v); break;
    case DType::i64: static_cast<int64_t*>(base)[i] = int64_t(v); break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = uint8_t(v); break;
    case DType::boolean: static_cast<uint8_t*>(base)[i] = v != 0; break;
  }
}

double Tensor::item() const {
  MM_CHECK(numel() == 1, "item: tensor of shape ", shape(), " has ", numel(), " elements, not 1");
  MM_CHECK(device().is_cpu(), "item: tensor is on ", device(), "; copy it to the CPU first");
  return load_as_double(impl_->storage->data, dtype(), offset());
}

std::vector<double> Tensor::to_vector() const {
  MM_CHECK(device().is_cpu(), "to_vector: tensor is on ", device(), "; copy it to the CPU first");
  std::vector<double> out;
  out.reserve(size_t(numel()));
  const void* base = impl_->storage->data;
  for_each_offset(shape(), strides(), offset(),
                  [&](int64_t o) { out.push_back(load_as_double(base, dtype(), o)); });
  return out;
}
std::vector<float> Tensor::to_vector_f() const {
  auto d = to_vector();
  return {d.begin(), d.end()};
}

double Tensor::at(std::initializer_list<int64_t> idx) const {
  MM_CHECK(int(idx.size()) == dim(), "at: ", idx.size(), " indices for shape ", shape());
  MM_CHECK(device().is_cpu(), "at: tensor is on ", device());
  int64_t o = offset();
  int d = 0;
  for (int64_t i : idx) {
    MM_CHECK(i >= 0 && i < shape()[d], "at: index ", i, " out of range for dim ", d, " of ", shape());
    o += i * strides()[d++];
  }
  return load_as_double(impl_->storage->data, dtype(), o);
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  MM_CHECK(shape.n == strides.n, "as_strided: shape ", shape, " and strides ", strides, " differ in rank");
  // The furthest element must stay inside the storage.
  int64_t hi = offset, lo = offset;
  for (int i = 0; i < shape.n; ++i) {
    if (shape[i] == 0) { hi = lo = offset; break; }
    int64_t span = (shape[i] - 1) * strides[i];
    if (span > 0) hi += span; else lo += span;
  }
  const int64_t cap = int64_t(impl_->storage->nbytes / dtype_size(dtype()));
  MM_CHECK(lo >= 0 && (shape.numel() == 0 || hi < cap), "as_strided: view ", shape, " strides ",
           strides, " offset ", offset, " exceeds storage of ", cap, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

Tensor& Tensor::set_requires_grad(bool r) {
  MM_CHECK(!r || is_floating(dtype()), "requires_grad: only floating tensors can require "
                                       "gradients, this one is ", dtype_name(dtype()));
  impl_->requires_grad = r;
  return *this;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return cat("Tensor(", dtype_name(dtype()), ", ", shape(), ", ", device(), ")");
}
std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace mm
