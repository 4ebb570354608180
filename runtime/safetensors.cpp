#include "runtime/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace mm {
namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32"; case DType::f64: return "F64";
    case DType::bf16: return "BF16"; case DType::f16: return "F16";
    case DType::i32: return "I32"; case DType::i64: return "I64";
    case DType::u8: return "U8"; case DType::boolean: return "BOOL";
  }
  return "?";
}
bool parse_st_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16}, {"F16", DType::f16},
      {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8}, {"BOOL", DType::boolean}};
  for (auto& [name, dt] : table)
    if (s == name) { *out = dt; return true; }
  return false;
}

std::string errno_str() { return std::strerror(errno); }

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) dir = slash ? path.substr(0, slash) : "/";
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MM_CHECK(fd >= 0, "cannot create '", tmp, "': ", errno_str());
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      std::string why = errno_str();
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(cat("writing '", path, "' failed after ", done, " of ", bytes.size(),
                      " bytes: ", why, " (the previous file, if any, is untouched)"));
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string why = errno_str();
    ::unlink(tmp.c_str());
    throw Error(cat("writing '", path, "' failed at fsync/close: ", why));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = errno_str();
    ::unlink(tmp.c_str());
    throw Error(cat("cannot rename '", tmp, "' to '", path, "': ", why));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { ::fsync(dfd); ::close(dfd); }
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t off = 0;
  for (auto& [name, t] : tensors) {
    MM_CHECK(t.defined(), "save_safetensors '", path, "': tensor '", name, "' is undefined");
    MM_CHECK(t.device().is_cpu(), "save_safetensors '", path, "': tensor '", name, "' is on ",
             t.device(), "; copy it to the CPU first");
    size_t nb = size_t(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape().vec()},
                    {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section is 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + off);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(char((n >> (8 * i)) & 0xff));
  out += h;
  for (auto& [name, t] : tensors) {
    const size_t es = dtype_size(t.dtype());
    if (t.is_contiguous()) {
      out.append(static_cast<const char*>(t.raw_data()), size_t(t.numel()) * es);
    } else {
      const char* base = static_cast<const char*>(t.impl()->storage->data);
      for_each_offset(t.shape(), t.strides(), t.offset(),
                      [&](int64_t o) { out.append(base + o * int64_t(es), es); });
    }
  }
  write_file_atomic(path, out);
}

SafeTensors parse_safetensors(const std::string& bytes, const std::string& name) {
  MM_CHECK(bytes.size() >= 8, "safetensors '", name, "': file is ", bytes.size(),
           " bytes, too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  MM_CHECK(n <= bytes.size() - 8, "safetensors '", name, "': header length ", n,
           " at offset 0 exceeds the file size ", bytes.size(), " (truncated or not safetensors)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + int64_t(n));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(cat("safetensors '", name, "': bad JSON header at byte offset ", 8 + e.byte - 1,
                    ": ", e.what()));
  }
  MM_CHECK(header.is_object(), "safetensors '", name, "': header is not a JSON object");
  const size_t data0 = 8 + n, data_size = bytes.size() - data0;
  SafeTensors out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [key, v] : header.items()) {
    if (key == "__metadata__") {
      MM_CHECK(v.is_object(), "safetensors '", name, "': __metadata__ is not an object");
      for (auto& [mk, mv] : v.items()) {
        MM_CHECK(mv.is_string(), "safetensors '", name, "': metadata '", mk, "' is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    auto where = cat("safetensors '", name, "', tensor '", key, "'");
    MM_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
             where, ": entry needs dtype, shape and data_offsets");
    DType dt;
    MM_CHECK(v["dtype"].is_string() && parse_st_dtype(v["dtype"].get<std::string>(), &dt), where,
             ": unsupported dtype ", v["dtype"].dump());
    Shape shape;
    MM_CHECK(v["shape"].is_array() && v["shape"].size() <= size_t(Shape::kMaxDims), where, ": bad shape ",
             v["shape"].dump());
    for (auto& d : v["shape"]) {
      MM_CHECK(d.is_number_unsigned(), where, ": bad shape ", v["shape"].dump());
      shape.push_back(d.get<int64_t>());
    }
    auto& offs = v["data_offsets"];
    MM_CHECK(offs.is_array() && offs.size() == 2 && offs[0].is_number_unsigned() &&
                 offs[1].is_number_unsigned(), where, ": bad data_offsets ", offs.dump());
    uint64_t b = offs[0].get<uint64_t>(), e = offs[1].get<uint64_t>();
    MM_CHECK(b <= e && e <= data_size, where, ": data_offsets [", b, ", ", e, "] (file bytes ",
             data0 + b, "..", data0 + e, ") exceed the ", data_size,
             "-byte data section (file truncated?)");
    const uint64_t want = uint64_t(shape.numel()) * dtype_size(dt);
    MM_CHECK(e - b == want, where, ": ", e - b, " bytes at file offset ", data0 + b, " but shape ",
             shape, " of ", dtype_name(dt), " needs ", want);
    ranges.push_back({b, e});
    Tensor t = Tensor::empty(shape, dt);
    std::memcpy(t.raw_data(), bytes.data() + data0 + b, want);
    out.tensors.emplace(key, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    MM_CHECK(ranges[i].first >= ranges[i - 1].second, "safetensors '", name,
             "': tensor data overlaps at file offset ", data0 + ranges[i].first);
  return out;
}

SafeTensors load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MM_CHECK(f, "cannot open safetensors file '", path, "': ", errno_str());
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_safetensors(ss.str(), path);
}

}  // namespace mm
