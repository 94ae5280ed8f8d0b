// Reading Hugging Face safetensors weights: one file or a set of shards listed in
// model.safetensors.index.json. Files are memory-mapped; a tensor is a pointer into
// the mapping plus its dtype and shape, valid while the SafetensorsSet lives.
//
// Every header is validated before any byte of data is trusted: a truncated file,
// a header length larger than the file, bad JSON, an unknown dtype, a shape whose
// byte size differs from its data_offsets, offsets past the end of the file or
// overlapping another tensor are all EngineError(model_load) naming the file and
// the tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "batchgen/tensor.h"

namespace bg {

struct SafetensorsTensor {
  std::string name;
  std::string file;             // path of the file it lives in
  std::string st_dtype;         // as the header spells it: "BF16", "F32", "I64", ...
  bool supported = false;       // one of BF16, F16, F32 (the only ones weights may use)
  DType dtype = DType::f32;     // meaningful when supported
  std::vector<int64_t> shape;
  const void* data = nullptr;   // into the file mapping
  size_t nbytes = 0;

  int64_t numel() const;
};

// One mapped file. Move-only; unmaps on destruction.
class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws EngineError(model_load).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
};

// Validates a safetensors image already in memory (the whole file: 8-byte header
// length, JSON header, data). `path` is only used in messages. Exposed for tests.
std::vector<SafetensorsTensor> safetensors_parse(const std::string& path, const uint8_t* bytes,
                                                 size_t size);

// All weights of a model directory.
class SafetensorsSet {
 public:
  // Opens model.safetensors.index.json and its shards when the index exists, else
  // model.safetensors, else every *.safetensors file in the directory.
  // Throws EngineError(model_load) when there are none or any is invalid, and when
  // a tensor name appears twice or the index names a tensor its shard lacks.
  static SafetensorsSet open_dir(const std::string& model_dir);
  // A set over tensors that live elsewhere (a GGUF loader's dequantized buffers):
  // `keep_alive` owns the memory their data points into. `where` names the source
  // in messages. Throws EngineError(model_load) when a name appears twice.
  static SafetensorsSet from_tensors(const std::string& where, std::vector<SafetensorsTensor> tensors,
                                     std::shared_ptr<const void> keep_alive);

  // The tensor, or nullptr.
  const SafetensorsTensor* find(const std::string& name) const;
  // The tensor; throws EngineError(model_load) naming it when absent.
  const SafetensorsTensor& get(const std::string& name) const;
  const std::vector<std::string>& files() const { return file_paths_; }
  size_t size() const { return by_name_.size(); }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<std::string> file_paths_;
  std::map<std::string, const SafetensorsTensor*> by_name_;
  std::string dir_;
  std::shared_ptr<const std::vector<SafetensorsTensor>> own_tensors_;  // from_tensors
  std::shared_ptr<const void> keep_alive_;
};

}  // namespace bg
