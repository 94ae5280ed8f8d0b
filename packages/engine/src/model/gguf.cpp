#include "model/gguf.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "backend/dtype_convert.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }
[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

constexpr uint64_t kMaxStringBytes = 1ull << 30;  // no real key or value is near this

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A bounds-checked reader over the file image; every failure names the file and
// what was being read.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* p, size_t size) : path_(path), p_(p), size_(size) {}

  size_t pos() const { return pos_; }
  void need(uint64_t n, const std::string& what) const {
    if (n > size_ - pos_)
      load_error(path_ + ": truncated GGUF file: " + what + " runs past the end of the file (offset " +
                 std::to_string(pos_) + ", " + std::to_string(size_) + " bytes)");
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& what) {
    uint64_t n = read<uint64_t>(what);
    if (n > kMaxStringBytes) load_error(path_ + ": " + what + ": string length " + std::to_string(n) + " is impossible");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  void skip(uint64_t n, const std::string& what) {
    need(n, what);
    pos_ += size_t(n);
  }

 private:
  const std::string& path_;
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
};

size_t scalar_size(uint32_t t) {
  switch (t) {
    case GgufValue::u8: case GgufValue::i8: case GgufValue::boolean: return 1;
    case GgufValue::u16: case GgufValue::i16: return 2;
    case GgufValue::u32: case GgufValue::i32: case GgufValue::f32: return 4;
    case GgufValue::u64: case GgufValue::i64: case GgufValue::f64: return 8;
    default: return 0;
  }
}

// A scalar of type t at p, as (integer, double).
void read_scalar(uint32_t t, const uint8_t* p, int64_t& i, double& f) {
  auto get = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (t) {
    case GgufValue::u8: i = get(uint8_t()); break;
    case GgufValue::i8: i = get(int8_t()); break;
    case GgufValue::boolean: i = get(uint8_t()) != 0; break;
    case GgufValue::u16: i = get(uint16_t()); break;
    case GgufValue::i16: i = get(int16_t()); break;
    case GgufValue::u32: i = get(uint32_t()); break;
    case GgufValue::i32: i = get(int32_t()); break;
    case GgufValue::u64: i = int64_t(std::min<uint64_t>(get(uint64_t()), uint64_t(INT64_MAX))); break;
    case GgufValue::i64: i = get(int64_t()); break;
    case GgufValue::f32: f = get(float()); i = int64_t(f); return;
    case GgufValue::f64: f = get(double()); i = int64_t(f); return;
  }
  f = double(i);
}

// --- ggml block formats (ggml-common.h), dequantized as ggml-quants.c does ---

float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

void deq_q4_0(const uint8_t* b, float* y) {  // d, qs[16]
  const float d = h2f(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(int(b[2 + j] & 0x0F) - 8);
    y[j + 16] = d * float(int(b[2 + j] >> 4) - 8);
  }
}

void deq_q4_1(const uint8_t* b, float* y) {  // d, m, qs[16]
  const float d = h2f(b), m = h2f(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(b[4 + j] & 0x0F) + m;
    y[j + 16] = d * float(b[4 + j] >> 4) + m;
  }
}

void deq_q5_0(const uint8_t* b, float* y) {  // d, qh (u32), qs[16]
  const float d = h2f(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b[6 + j] & 0x0F) | int(((qh >> j) & 1u) << 4);
    const int hi = (b[6 + j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * float(lo - 16);
    y[j + 16] = d * float(hi - 16);
  }
}

void deq_q5_1(const uint8_t* b, float* y) {  // d, m, qh (u32), qs[16]
  const float d = h2f(b), m = h2f(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b[8 + j] & 0x0F) | int(((qh >> j) & 1u) << 4);
    const int hi = (b[8 + j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * float(lo) + m;
    y[j + 16] = d * float(hi) + m;
  }
}

void deq_q8_0(const uint8_t* b, float* y) {  // d, qs[32] (int8)
  const float d = h2f(b);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(b[2 + j])) * d;
}

void deq_q4_k(const uint8_t* b, float* y) {  // d, dmin, scales[12], qs[128]
  const float d = h2f(b), dmin = h2f(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < 8; j += 2, q += 32) {
    uint8_t sc, m;
    ggml_scale_min_k4(j, scales, sc, m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    ggml_scale_min_k4(j + 1, scales, sc, m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
  }
}

void deq_q5_k(const uint8_t* b, float* y) {  // d, dmin, scales[12], qh[32], qs[128]
  const float d = h2f(b), dmin = h2f(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < 8; j += 2, ql += 32, u1 = uint8_t(u1 << 2), u2 = uint8_t(u2 << 2)) {
    uint8_t sc, m;
    ggml_scale_min_k4(j, scales, sc, m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    ggml_scale_min_k4(j + 1, scales, sc, m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0x0F) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
  }
}

void deq_q6_k(const uint8_t* b, float* y) {  // ql[128], qh[64], scales[16] (int8), d
  const float d = h2f(b + 208);
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
  }
}

struct TypeInfo {
  uint32_t id;
  const char* name;
  int64_t elems, bytes;
  void (*dequant)(const uint8_t*, float*);  // null: plain float or unreadable
};
const TypeInfo kTypes[] = {
    {0, "F32", 1, 4, nullptr},      {1, "F16", 1, 2, nullptr},        {2, "Q4_0", 32, 18, deq_q4_0},
    {3, "Q4_1", 32, 20, deq_q4_1},  {6, "Q5_0", 32, 22, deq_q5_0},    {7, "Q5_1", 32, 24, deq_q5_1},
    {8, "Q8_0", 32, 34, deq_q8_0},  {9, "Q8_1", 32, 40, nullptr},     {10, "Q2_K", 256, 84, nullptr},
    {11, "Q3_K", 256, 110, nullptr}, {12, "Q4_K", 256, 144, deq_q4_k}, {13, "Q5_K", 256, 176, deq_q5_k},
    {14, "Q6_K", 256, 210, deq_q6_k}, {15, "Q8_K", 256, 292, nullptr}, {16, "IQ2_XXS", 256, 66, nullptr},
    {17, "IQ2_XS", 256, 74, nullptr}, {18, "IQ3_XXS", 256, 98, nullptr}, {19, "IQ1_S", 256, 50, nullptr},
    {20, "IQ4_NL", 32, 18, nullptr}, {21, "IQ3_S", 256, 110, nullptr}, {22, "IQ2_S", 256, 82, nullptr},
    {23, "IQ4_XS", 256, 136, nullptr}, {24, "I8", 1, 1, nullptr},       {25, "I16", 1, 2, nullptr},
    {26, "I32", 1, 4, nullptr},      {27, "I64", 1, 8, nullptr},       {28, "F64", 1, 8, nullptr},
    {29, "IQ1_M", 256, 56, nullptr}, {30, "BF16", 1, 2, nullptr},      {34, "TQ1_0", 256, 54, nullptr},
    {35, "TQ2_0", 256, 66, nullptr}, {39, "MXFP4", 32, 17, nullptr},
};

const TypeInfo* type_info(uint32_t type) {
  for (const TypeInfo& t : kTypes) {
    if (t.id == type) return &t;
  }
  return nullptr;
}

std::string supported_types() {
  std::string s;
  for (const TypeInfo& t : kTypes) {
    if (ggml_type_supported(t.id)) s += (s.empty() ? "" : ", ") + std::string(t.name);
  }
  return s;
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  const TypeInfo* t = type_info(type);
  return t ? t->name : "type " + std::to_string(type);
}

bool ggml_type_supported(uint32_t type) {
  const TypeInfo* t = type_info(type);
  return t && (t->dequant || type == 0 || type == 1 || type == 30);
}

GgmlBlock ggml_block(uint32_t type) {
  const TypeInfo* t = type_info(type);
  return t ? GgmlBlock{t->elems, t->bytes} : GgmlBlock{};
}

void ggml_dequantize(uint32_t type, const void* src, int64_t n, float* dst) {
  const TypeInfo* t = type_info(type);
  if (!ggml_type_supported(type))
    unsupported("GGUF tensor type " + ggml_type_name(type) + " is not supported (supported: " + supported_types() + ")");
  if (n % t->elems != 0)
    throw EngineError(ErrorCode::invalid_argument, std::to_string(n) + " elements is not a whole number of " +
                                                       t->name + " blocks of " + std::to_string(t->elems));
  const uint8_t* p = static_cast<const uint8_t*>(src);
  if (type == 0) {
    std::memcpy(dst, p, size_t(n) * 4);
  } else if (type == 1 || type == 30) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      dst[i] = type == 1 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  } else {
    for (int64_t b = 0; b < n / t->elems; ++b) t->dequant(p + b * t->bytes, dst + b * t->elems);
  }
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) load_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    load_error(path + " is not a regular file");
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_size_ = size_t(st.st_size);
  if (f->map_size_ == 0) {
    ::close(fd);
    load_error(path + ": empty file, not a GGUF model");
  }
  void* m = ::mmap(nullptr, f->map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (m == MAP_FAILED) load_error("cannot map " + path + ": " + std::strerror(err));
  f->map_ = m;
  f->parse_image(static_cast<const uint8_t*>(m), f->map_size_);
  return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const std::string& path, const uint8_t* bytes, size_t size) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->parse_image(bytes, size);
  return f;
}

GgufFile::~GgufFile() {
  if (map_) ::munmap(map_, map_size_);
}

void GgufFile::parse_image(const uint8_t* bytes, size_t size) {
  Cursor c(path_, bytes, size);
  c.need(4, "the magic number");
  if (std::memcmp(bytes, "GGUF", 4) != 0) load_error(path_ + ": not a GGUF file (no GGUF magic number)");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("the version");
  if (version_ != 2 && version_ != 3)
    unsupported(path_ + ": GGUF version " + std::to_string(version_) + " is not supported (2 and 3 are)");
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Each entry takes at least 8 bytes, which bounds honest counts by the file size.
  if (n_tensors > size / 8 || n_kv > size / 8)
    load_error(path_ + ": GGUF header claims " + std::to_string(n_tensors) + " tensors and " +
               std::to_string(n_kv) + " metadata entries, more than the file can hold; it is truncated or corrupt");

  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = c.string("metadata key " + std::to_string(k));
    const std::string what = "metadata '" + key + "'";
    GgufValue v;
    v.type = GgufValue::Type(c.read<uint32_t>(what));
    if (v.type == GgufValue::string) {
      v.s = c.string(what);
    } else if (v.type == GgufValue::array) {
      v.elem = GgufValue::Type(c.read<uint32_t>(what));
      v.count = c.read<uint64_t>(what);
      if (v.elem == GgufValue::string) {
        if (v.count > size / 8) load_error(path_ + ": " + what + " claims " + std::to_string(v.count) + " strings");
        v.strings.reserve(size_t(v.count));
        for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.string(what));
      } else {
        const size_t es = scalar_size(v.elem);
        if (es == 0) load_error(path_ + ": " + what + " is an array of unknown type " + std::to_string(v.elem));
        if (v.count > size / es) load_error(path_ + ": " + what + " runs past the end of the file");
        c.need(v.count * es, what);
        v.numbers.resize(size_t(v.count));
        for (uint64_t i = 0; i < v.count; ++i) {
          int64_t iv;
          double fv;
          read_scalar(v.elem, bytes + c.pos() + i * es, iv, fv);
          v.numbers[size_t(i)] = fv;
        }
        c.skip(v.count * es, what);
      }
    } else {
      const size_t es = scalar_size(v.type);
      if (es == 0) load_error(path_ + ": " + what + " has unknown type " + std::to_string(v.type));
      c.need(es, what);
      read_scalar(v.type, bytes + c.pos(), v.i, v.f);
      c.skip(es, what);
    }
    if (!kv_.emplace(key, std::move(v)).second) load_error(path_ + ": metadata key '" + key + "' appears twice");
  }

  std::vector<uint64_t> offsets;
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor info;
    info.name = c.string("tensor name " + std::to_string(t));
    const std::string what = "tensor '" + info.name + "'";
    const uint32_t n_dims = c.read<uint32_t>(what);
    if (n_dims == 0 || n_dims > 4) load_error(path_ + ": " + what + " has " + std::to_string(n_dims) + " dimensions");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.read<uint64_t>(what);
      if (dim == 0 || dim > (uint64_t(1) << 40) || numel > (uint64_t(1) << 50) / dim)
        load_error(path_ + ": " + what + " has an impossible shape");
      numel *= dim;
      info.ne.push_back(int64_t(dim));
    }
    info.type = c.read<uint32_t>(what);
    const GgmlBlock block = ggml_block(info.type);
    if (block.elems == 0) unsupported(path_ + ": " + what + " has unknown ggml type " + std::to_string(info.type));
    if (info.ne[0] % block.elems != 0)
      load_error(path_ + ": " + what + " rows of " + std::to_string(info.ne[0]) + " are not whole " +
                 ggml_type_name(info.type) + " blocks of " + std::to_string(block.elems));
    info.nbytes = size_t(numel / uint64_t(block.elems) * uint64_t(block.bytes));
    offsets.push_back(c.read<uint64_t>(what));
    if (!by_name_.emplace(info.name, tensors_.size()).second)
      load_error(path_ + ": tensor '" + info.name + "' appears twice");
    tensors_.push_back(std::move(info));
  }

  uint64_t alignment = 32;
  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->i <= 0 || (a->i & (a->i - 1)) != 0)
      load_error(path_ + ": general.alignment must be a power of two");
    alignment = uint64_t(a->i);
  }
  const uint64_t data_start = (uint64_t(c.pos()) + alignment - 1) / alignment * alignment;
  if (data_start > size && !tensors_.empty()) load_error(path_ + ": truncated GGUF file: no tensor data");
  const uint64_t data_size = size - std::min<uint64_t>(data_start, size);
  for (size_t t = 0; t < tensors_.size(); ++t) {
    GgufTensor& info = tensors_[t];
    const uint64_t off = offsets[t];
    if (off % alignment != 0) load_error(path_ + ": tensor '" + info.name + "' is not aligned");
    if (off > data_size || info.nbytes > data_size - off)
      load_error(path_ + ": tensor '" + info.name + "' (" + std::to_string(info.nbytes) + " bytes at offset " +
                 std::to_string(off) + ") runs past the end of the file; the file is truncated");
    info.data = bytes + data_start + off;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::string gguf_find(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  if (S_ISREG(st.st_mode)) return ends_with(path, ".gguf") ? path : "";
  if (!S_ISDIR(st.st_mode)) return "";
  struct stat cfg;
  if (::stat((path + "/config.json").c_str(), &cfg) == 0) return "";
  DIR* d = ::opendir(path.c_str());
  if (!d) return "";
  std::vector<std::string> found;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (ends_with(n, ".gguf")) found.push_back(n);
  }
  ::closedir(d);
  if (found.empty()) return "";
  std::sort(found.begin(), found.end());
  if (found.size() > 1) {
    std::string list;
    for (const std::string& n : found) list += (list.empty() ? "" : ", ") + n;
    load_error(path + " holds several GGUF files (" + list + "); name the one to load");
  }
  return path + "/" + found[0];
}

void ggml_scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = uint8_t((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace bg
