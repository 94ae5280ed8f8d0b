// Reading GGUF files (the llama.cpp / Ollama format): the header, the metadata
// key-value pairs, the tensor table and the ggml block formats, dequantized to f32
// on the host at load. A GGUF model becomes the same two things a Hugging Face
// directory gives Model::load: a config (written as the config.json transformers'
// GGUF loader would make, then read by the one config parser) and a set of
// tensors under Hugging Face names, so it runs through the same model.cpp.
//
// Every offset and count is checked against the file before it is used: a
// truncated file, a string or array running past the end, a tensor outside the
// data section, a shape that does not match its byte size are all
// EngineError(model_load) naming the file and the key or tensor. A tensor type or
// architecture we cannot read is EngineError(unsupported) naming it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "batchgen/quant_weight.h"
#include "model/model.h"
#include "model/safetensors.h"

namespace bg {

// ggml tensor types (the numbers are the file format's).
enum class GgmlType : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15, bf16 = 30,
};

// "Q4_K", "F32", ... for every type the format defines; "type N" for others.
std::string ggml_type_name(uint32_t type);
// Whether ggml_dequantize reads this type.
bool ggml_type_supported(uint32_t type);
// Elements per block and bytes per block; {0, 0} for a type we cannot size.
struct GgmlBlock {
  int64_t elems = 0;
  int64_t bytes = 0;
};
GgmlBlock ggml_block(uint32_t type);
// Dequantizes n elements (a whole number of blocks) of `type` at src into dst,
// as ggml (and the gguf Python package) computes them in f32.
// Throws EngineError(unsupported) naming the type when it is not supported.
void ggml_dequantize(uint32_t type, const void* src, int64_t n, float* dst);

// One metadata value. Arrays keep their element type and count; their items are
// kept only for arrays of numbers and booleans (tokenizer.ggml.scores) and of
// strings (tokenizer.ggml.tokens, merges).
struct GgufValue {
  enum Type : uint32_t { u8 = 0, i8, u16, i16, u32, i32, f32, boolean, string, array, u64, i64, f64 };
  Type type = u8;
  int64_t i = 0;      // integer and bool types
  double f = 0;       // f32, f64 (and every numeric type, converted)
  std::string s;      // string
  Type elem = u8;     // array element type
  uint64_t count = 0; // array length
  std::vector<double> numbers;       // numeric / bool arrays
  std::vector<std::string> strings;  // string arrays

  bool is_integer() const { return type <= i32 || type == u64 || type == i64 || type == boolean; }
  bool is_number() const { return is_integer() || type == f32 || type == f64; }
};

struct GgufTensor {
  std::string name;
  uint32_t type = 0;
  std::vector<int64_t> ne;     // ggml order: ne[0] is the innermost (row length)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  // The shape in Hugging Face (row-major) order: ne reversed.
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  // Maps and validates `path`. Throws EngineError(model_load).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Validates an image already in memory (which must outlive the result). For tests.
  static std::unique_ptr<GgufFile> parse(const std::string& path, const uint8_t* bytes, size_t size);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  void parse_image(const uint8_t* bytes, size_t size);
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> by_name_;
};

// The GGUF file `path` names: the path itself when it is a file ending in .gguf,
// or the single .gguf file in the directory `path` when it has no config.json
// (a Hugging Face directory wins). "" when there is none.
// Throws EngineError(model_load) for a directory holding several.
std::string gguf_find(const std::string& path);

// The config.json (as text) that describes the model in `file`, with the keys and
// defaults transformers' GGUF loader uses; eos_token_id lists the end-of-sequence
// and end-of-turn tokens of the vocabulary. Throws EngineError(unsupported) naming
// an architecture we do not run.
std::string gguf_config_json(const GgufFile& file);
// That config, read by the one config parser (model_config_parse).
ModelConfig gguf_model_config(const GgufFile& file);

// Every tensor of `file` under its Hugging Face name, dequantized to f32 (F32, F16
// and BF16 tensors are used in place), with what llama.cpp's converter changed
// undone: Gemma's norm weights stored as 1 + w, Llama's q/k rows permuted for
// interleaved rotary. The set keeps `file` alive.
// With `int4` set, Q4_0 and Q4_K linear weights (the *_proj and lm_head weights)
// are repacked into our int4 there (gguf_repack_int4) instead of dequantized.
SafetensorsSet gguf_weights(std::shared_ptr<GgufFile> file, std::map<std::string, QuantWeight>* int4 = nullptr);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block, whose 12
// bytes of packed scales start at q (ggml's get_scale_min_k4).
void ggml_scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m);

// Whether a tensor type repacks into our int4 (Q4_0, Q4_K), and the repacking of a
// 2-D tensor of it: the same values ggml_dequantize gives (quant_gguf.cpp).
bool gguf_type_repacks_int4(uint32_t type);
QuantWeight gguf_repack_int4(const GgufTensor& t, const std::string& file);

// The Hugging Face name of a GGUF tensor ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"), or "" when it has none.
std::string gguf_tensor_hf_name(const std::string& arch, const std::string& gguf_name);

}  // namespace bg
