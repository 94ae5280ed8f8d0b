#include "model/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "model/json.h"
#include "model/model_files.h"

namespace bg {
namespace {

// Headers of real checkpoints are a few hundred KB; the format's own reader caps
// them at 100 MB, and so do we, so a lying length cannot make us allocate wildly.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }

// Element size of every dtype the format defines (0 = unknown name). Only bf16,
// f16 and f32 can be loaded, but the others must still be sized to validate offsets.
size_t st_dtype_size(const std::string& name) {
  if (name == "BOOL" || name == "U8" || name == "I8" || name == "F8_E5M2" || name == "F8_E4M3")
    return 1;
  if (name == "I16" || name == "U16" || name == "F16" || name == "BF16") return 2;
  if (name == "I32" || name == "U32" || name == "F32") return 4;
  if (name == "I64" || name == "U64" || name == "F64") return 8;
  return 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<SafetensorsTensor> safetensors_parse(const std::string& path, const uint8_t* bytes,
                                                 size_t size) {
  if (size < 8)
    load_error(path + ": truncated safetensors file (" + std::to_string(size) +
               " bytes, shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8)
    load_error(path + ": safetensors header length " + std::to_string(header_len) +
               " is larger than the file allows (" + std::to_string(size - 8) +
               " bytes after the length); the file is truncated or corrupt");
  if (header_len > kMaxHeaderBytes)
    load_error(path + ": safetensors header length " + std::to_string(header_len) +
               " exceeds the 100 MB limit");
  if (header_len < 2 || bytes[8] != '{')
    load_error(path + ": safetensors header is not a JSON object");

  Json header;
  try {
    header = json_parse(reinterpret_cast<const char*>(bytes + 8), size_t(header_len));
  } catch (const std::invalid_argument& e) {
    load_error(path + ": safetensors header: " + e.what());
  }
  if (!header.is_object()) load_error(path + ": safetensors header is not a JSON object");

  const uint8_t* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<SafetensorsTensor> out;
  std::vector<Span> spans;
  for (const auto& [name, info] : header.members()) {
    if (name == "__metadata__") continue;
    const std::string where = path + ": tensor '" + name + "'";
    if (!info.is_object()) load_error(where + ": entry is not an object");
    const Json* dtype = info.find("dtype");
    const Json* shape = info.find("shape");
    const Json* offsets = info.find("data_offsets");
    if (!dtype || !dtype->is_string()) load_error(where + ": missing or non-string \"dtype\"");
    if (!shape || !shape->is_array()) load_error(where + ": missing or non-array \"shape\"");
    if (!offsets || !offsets->is_array() || offsets->items().size() != 2)
      load_error(where + ": \"data_offsets\" must be [begin, end]");

    size_t elem = st_dtype_size(dtype->as_string());
    if (elem == 0) load_error(where + ": unknown dtype \"" + dtype->as_string() + "\"");

    SafetensorsTensor t;
    t.name = name;
    t.file = path;
    // Multiplying by the element size below must not overflow: bound the count.
    uint64_t numel = 1;
    for (const Json& d : shape->items()) {
      if (!d.is_integer() || d.as_int() < 0) load_error(where + ": shape entries must be non-negative integers");
      t.shape.push_back(d.as_int());
      uint64_t dim = uint64_t(d.as_int());
      if (dim != 0 && numel > (uint64_t(1) << 60) / dim) load_error(where + ": shape is impossibly large");
      numel *= dim;
    }
    const Json& b = offsets->items()[0];
    const Json& e = offsets->items()[1];
    if (!b.is_integer() || !e.is_integer() || b.as_int() < 0 || e.as_int() < 0)
      load_error(where + ": data_offsets must be non-negative integers");
    uint64_t begin = uint64_t(b.as_int()), end = uint64_t(e.as_int());
    if (end < begin) load_error(where + ": data_offsets end " + std::to_string(end) + " < begin " + std::to_string(begin));
    if (end > data_size)
      load_error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                 ") run past the end of the data (" + std::to_string(data_size) +
                 " bytes); the file is truncated or its header lies");
    if (end - begin != numel * elem)
      load_error(where + ": dtype " + dtype->as_string() + " and shape " + shape_string(t.shape) +
                 " need " + std::to_string(numel * elem) + " bytes but data_offsets span " +
                 std::to_string(end - begin));

    const std::string& dn = dtype->as_string();
    if (dn == "F32") t.dtype = DType::f32;
    else if (dn == "BF16") t.dtype = DType::bf16;
    else if (dn == "F16") t.dtype = DType::f16;
    else t.dtype = DType::i32;  // marker: present but not loadable (see `supported`)
    t.supported = (dn == "F32" || dn == "BF16" || dn == "F16");
    t.st_dtype = dn;
    t.data = data + begin;
    t.nbytes = size_t(end - begin);
    spans.push_back({begin, end, out.size()});
    out.push_back(std::move(t));
  }

  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span& prev = spans[i - 1];
    const Span& cur = spans[i];
    // Empty tensors occupy no bytes and overlap nothing.
    if (cur.begin == cur.end || prev.begin == prev.end) continue;
    if (cur.begin < prev.end)
      load_error(path + ": tensor '" + out[cur.index].name + "' overlaps tensor '" +
                 out[prev.index].name + "' (data_offsets [" + std::to_string(cur.begin) + ", " +
                 std::to_string(cur.end) + ") vs [" + std::to_string(prev.begin) + ", " +
                 std::to_string(prev.end) + "))");
  }
  return out;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) load_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    load_error("cannot stat " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    load_error(path + " is not a regular file");
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_size_ = size_t(st.st_size);
  if (f->map_size_ < 8) {
    ::close(fd);
    load_error(path + ": truncated safetensors file (" + std::to_string(f->map_size_) +
               " bytes, shorter than the 8-byte header length)");
  }
  void* m = ::mmap(nullptr, f->map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (m == MAP_FAILED) load_error("cannot map " + path + ": " + std::strerror(err));
  f->map_ = m;
  f->tensors_ = safetensors_parse(path, static_cast<const uint8_t*>(m), f->map_size_);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

SafetensorsSet SafetensorsSet::open_dir(const std::string& model_dir) {
  SafetensorsSet set;
  set.dir_ = model_dir;
  const std::string index_path = model_dir + "/model.safetensors.index.json";

  // shard file name -> tensor names the index assigns to it
  std::map<std::string, std::vector<std::string>> expected;
  std::vector<std::string> shard_names;
  if (is_regular_file(index_path)) {
    Json index;
    try {
      index = json_parse(read_text_file(index_path));
    } catch (const std::invalid_argument& e) {
      load_error(index_path + ": " + e.what());
    }
    const Json* map = index.find("weight_map");
    if (!map || !map->is_object() || map->members().empty())
      load_error(index_path + ": missing or empty \"weight_map\"");
    for (const auto& [tensor, file] : map->members()) {
      if (!file.is_string()) load_error(index_path + ": weight_map entry '" + tensor + "' is not a file name");
      const std::string& fname = file.as_string();
      // Shards live beside the index; a path that leaves the directory is refused.
      if (fname.empty() || fname.find('/') != std::string::npos || fname == "." || fname == "..")
        load_error(index_path + ": weight_map entry '" + tensor + "' names a bad file \"" + fname + "\"");
      if (!expected.count(fname)) shard_names.push_back(fname);
      expected[fname].push_back(tensor);
    }
  } else if (is_regular_file(model_dir + "/model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    DIR* d = ::opendir(model_dir.c_str());
    if (!d) load_error("cannot read model directory " + model_dir + ": " + std::strerror(errno));
    bool has_bin = false;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (ends_with(n, ".safetensors")) shard_names.push_back(n);
      if (ends_with(n, ".bin") || ends_with(n, ".pt") || ends_with(n, ".pth")) has_bin = true;
    }
    ::closedir(d);
    std::sort(shard_names.begin(), shard_names.end());
    if (shard_names.empty())
      load_error("no weights in " + model_dir +
                 ": expected model.safetensors, model.safetensors.index.json or *.safetensors" +
                 (has_bin ? " (PyTorch .bin/.pt checkpoints are not supported; convert them to safetensors)" : ""));
  }

  for (const std::string& name : shard_names) {
    const std::string path = model_dir + "/" + name;
    if (!is_regular_file(path)) load_error("missing weights file " + path + " (named by " + index_path + ")");
    std::shared_ptr<SafetensorsFile> f(SafetensorsFile::open(path));
    for (const SafetensorsTensor& t : f->tensors()) {
      auto [it, inserted] = set.by_name_.emplace(t.name, &t);
      if (!inserted)
        load_error("tensor '" + t.name + "' appears in both " + it->second->file + " and " + path);
    }
    auto want = expected.find(name);
    if (want != expected.end()) {
      for (const std::string& tn : want->second) {
        auto it = set.by_name_.find(tn);
        if (it == set.by_name_.end() || it->second->file != path)
          load_error(index_path + " places tensor '" + tn + "' in " + name + ", which does not contain it");
      }
    }
    set.file_paths_.push_back(path);
    set.files_.push_back(std::move(f));
  }
  return set;
}

SafetensorsSet SafetensorsSet::from_tensors(const std::string& where, std::vector<SafetensorsTensor> tensors,
                                            std::shared_ptr<const void> keep_alive) {
  SafetensorsSet set;
  set.dir_ = where;
  auto own = std::make_shared<const std::vector<SafetensorsTensor>>(std::move(tensors));
  for (const SafetensorsTensor& t : *own) {
    if (!set.by_name_.emplace(t.name, &t).second) load_error(where + ": tensor '" + t.name + "' appears twice");
  }
  set.file_paths_.push_back(where);
  set.own_tensors_ = std::move(own);
  set.keep_alive_ = std::move(keep_alive);
  return set;
}

const SafetensorsTensor* SafetensorsSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const SafetensorsTensor& SafetensorsSet::get(const std::string& name) const {
  const SafetensorsTensor* t = find(name);
  if (!t) load_error("tensor '" + name + "' is missing from the weights in " + dir_);
  return *t;
}

}  // namespace bg
