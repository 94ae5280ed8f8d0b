// Random bf16 weights written as safetensors, for the programs that need a model or
// a LoRA adapter of a real shape without Python: bench_engine (models and adapters),
// cuda_model_check --lora (adapters on any model directory) and the engine tests
// that need a model on disk (lora_loading_test).
//
//  - normal_at: about standard normal from a counter, cheap enough for billions;
//  - bf16_safetensors_write: one file, filled in parallel over fixed-size chunks, so
//    values depend on (tensor, element) and never on the thread count;
//  - random_model_write: a model directory (config.json, model.safetensors) of a
//    shape (Gemma 1/2/3, Qwen3, Llama), the layout tools/gpu_reference.py also
//    loads into transformers;
//  - random_lora_write: a peft LoRA adapter directory (adapter_config.json,
//    adapter_model.safetensors) of rank r, lora_alpha = r, on all seven projections
//    of a base, with random non-zero A and B.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend/dtype_convert.h"
#include "batchgen/sampling.h"
#include "model/lora.h"
#include "model/model.h"

namespace bg {

inline float normal_at(uint64_t seed, uint64_t i) {
  uint64_t h1 = rng_mix(seed ^ rng_mix(2 * i)), h2 = rng_mix(seed ^ rng_mix(2 * i + 1));
  float u = float(h1 & 0xFFFFFF) + float(h1 >> 40) + float(h2 & 0xFFFFFF) + float(h2 >> 40);
  return (u * (1.0f / 16777216.0f) - 2.0f) * 1.7320508f;  // sum of four uniforms, unit variance
}

struct RandomTensor {
  std::string name;
  int64_t rows, cols;  // cols == 0: a vector of `rows`
  int64_t numel() const { return cols ? rows * cols : rows; }
};

// Writes `path` (through path.tmp, renamed when complete). fill(tensor, begin, end,
// out) stores bf16 elements [begin, end) of tensors[tensor] at out[0 .. end - begin).
// Returns the file's size. Throws std::runtime_error when the file cannot be made.
template <class Fill>
size_t bf16_safetensors_write(const std::string& path, const std::vector<RandomTensor>& tensors, Fill fill) {
  std::string header = "{";
  int64_t offset = 0;
  std::vector<int64_t> offsets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const RandomTensor& t = tensors[i];
    const int64_t bytes = t.numel() * 2;
    offsets.push_back(offset);
    header += (i ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"BF16\",\"shape\":[" +
              std::to_string(t.rows) + (t.cols ? "," + std::to_string(t.cols) : "") + "],\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += ",\"__metadata__\":{\"format\":\"pt\"}}";
  while ((header.size() + 8) % 8) header += ' ';
  const size_t total = 8 + header.size() + size_t(offset);

  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::ftruncate(fd, off_t(total)) != 0) throw std::runtime_error("cannot create " + tmp);
  char* map = static_cast<char*>(::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) throw std::runtime_error("cannot map " + tmp);
  const uint64_t hlen = header.size();
  std::memcpy(map, &hlen, 8);
  std::memcpy(map + 8, header.data(), header.size());
  uint16_t* data = reinterpret_cast<uint16_t*>(map + 8 + header.size());

  struct Chunk {
    size_t tensor;
    int64_t begin, end;
  };
  std::vector<Chunk> chunks;
  constexpr int64_t kChunk = int64_t(1) << 22;
  for (size_t i = 0; i < tensors.size(); ++i)
    for (int64_t b = 0; b < tensors[i].numel(); b += kChunk)
      chunks.push_back({i, b, std::min(tensors[i].numel(), b + kChunk)});
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t c; (c = next.fetch_add(1)) < chunks.size();) {
      const Chunk& ch = chunks[c];
      fill(ch.tensor, ch.begin, ch.end, data + offsets[ch.tensor] / 2 + ch.begin);
    }
  };
  std::vector<std::thread> pool;
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) pool.emplace_back(worker);
  for (std::thread& th : pool) th.join();
  ::munmap(map, total);
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
  return total;
}

// A model's shape (bench_engine's --shape names them).
struct RandomShape {
  std::string arch;  // config.json model_type: gemma | gemma2 | gemma3_text | qwen3 | llama
  int hidden, inter, layers, heads, kv_heads, head_dim, vocab;
  bool tied;
  std::string extra;  // further config.json fields (rope, windows, caps), JSON members
};

inline bool random_shape_is_gemma(const RandomShape& s) { return s.arch.rfind("gemma", 0) == 0; }

struct RandomModelTensor {
  std::string name;
  int64_t rows, cols;  // cols == 0: a vector of `rows`
  enum Kind { linear, embed, norm, final_norm } kind;
  int64_t numel() const { return cols ? rows * cols : rows; }
};

inline std::vector<RandomModelTensor> random_model_tensors(const RandomShape& s) {
  const bool sandwich = s.arch == "gemma2" || s.arch == "gemma3_text";
  const bool qk_norm = s.arch == "gemma3_text" || s.arch == "qwen3";
  std::vector<RandomModelTensor> t;
  t.push_back({"model.embed_tokens.weight", s.vocab, s.hidden, RandomModelTensor::embed});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", s.hidden, 0, RandomModelTensor::norm});
    t.push_back({p + "self_attn.q_proj.weight", int64_t(s.heads) * s.head_dim, s.hidden, RandomModelTensor::linear});
    t.push_back({p + "self_attn.k_proj.weight", int64_t(s.kv_heads) * s.head_dim, s.hidden, RandomModelTensor::linear});
    t.push_back({p + "self_attn.v_proj.weight", int64_t(s.kv_heads) * s.head_dim, s.hidden, RandomModelTensor::linear});
    t.push_back({p + "self_attn.o_proj.weight", s.hidden, int64_t(s.heads) * s.head_dim, RandomModelTensor::linear});
    if (qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", s.head_dim, 0, RandomModelTensor::norm});
      t.push_back({p + "self_attn.k_norm.weight", s.head_dim, 0, RandomModelTensor::norm});
    }
    t.push_back({p + "post_attention_layernorm.weight", s.hidden, 0, RandomModelTensor::norm});
    if (sandwich) {
      t.push_back({p + "pre_feedforward_layernorm.weight", s.hidden, 0, RandomModelTensor::norm});
      t.push_back({p + "post_feedforward_layernorm.weight", s.hidden, 0, RandomModelTensor::norm});
    }
    t.push_back({p + "mlp.gate_proj.weight", s.inter, s.hidden, RandomModelTensor::linear});
    t.push_back({p + "mlp.up_proj.weight", s.inter, s.hidden, RandomModelTensor::linear});
    t.push_back({p + "mlp.down_proj.weight", s.hidden, s.inter, RandomModelTensor::linear});
  }
  t.push_back({"model.norm.weight", s.hidden, 0, RandomModelTensor::final_norm});
  if (!s.tied) t.push_back({"lm_head.weight", s.vocab, s.hidden, RandomModelTensor::linear});
  return t;
}

// Weight scale per kind (the recipe of tools/reference.py's randomize()): linear
// N(0, 1/in) keeps activations O(1); norms sit around 0 where Gemma applies them as
// (1 + w), around 1 elsewhere; a tied head's embeddings are small (Gemma also scales
// them by sqrt(hidden)) and the final norm's gain brings its logits back to O(1)-O(10)
// with clear top-1 margins; an untied model's embeddings are N(0, 1).
inline float random_weight_value(const RandomShape& s, const RandomModelTensor& t, uint64_t seed, int64_t i) {
  const float z = normal_at(seed, uint64_t(i));
  const float norm_base = random_shape_is_gemma(s) ? 0.0f : 1.0f;
  const float embed_std = s.tied ? (random_shape_is_gemma(s) ? 0.01f : 0.02f) : 1.0f;
  switch (t.kind) {
    case RandomModelTensor::linear: return z / std::sqrt(float(t.cols));
    case RandomModelTensor::embed: return embed_std * z;
    case RandomModelTensor::norm: return norm_base + 0.2f * z;
    case RandomModelTensor::final_norm:
      return s.tied ? norm_base - 1.0f + (0.2f / embed_std) * (1.0f + 0.2f * z) : norm_base + 0.2f * z;
  }
  return 0.0f;
}

// Writes <dir>/config.json and <dir>/model.safetensors (dir is created); `shape_name`
// is recorded in the config. Returns the weights' file size.
inline size_t random_model_write(const std::string& dir, const std::string& shape_name, const RandomShape& s) {
  ::mkdir(dir.c_str(), 0755);
  const std::vector<RandomModelTensor> specs = random_model_tensors(s);
  std::vector<RandomTensor> tensors;
  for (const RandomModelTensor& t : specs) tensors.push_back({t.name, t.rows, t.cols});
  const size_t total = bf16_safetensors_write(
      dir + "/model.safetensors", tensors, [&](size_t ti, int64_t begin, int64_t end, uint16_t* out) {
        const uint64_t seed = rng_mix(0xBE9C4ull + ti);
        for (int64_t i = begin; i < end; ++i) out[i - begin] = f32_to_bf16(random_weight_value(s, specs[ti], seed, i));
      });

  static const std::map<std::string, std::string> kClass = {
      {"gemma", "GemmaForCausalLM"}, {"gemma2", "Gemma2ForCausalLM"}, {"gemma3_text", "Gemma3ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"}, {"llama", "LlamaForCausalLM"}};
  const bool gemma = random_shape_is_gemma(s);
  const int bos = gemma ? 2 : s.arch == "qwen3" ? 151643 : 128000;
  const int eos = gemma ? 1 : s.arch == "qwen3" ? 151645 : 128001;
  std::ofstream cfg(dir + "/config.json");
  cfg << "{\n  \"architectures\": [\"" << kClass.at(s.arch) << "\"],\n  \"model_type\": \"" << s.arch << "\",\n"
      << "  \"vocab_size\": " << s.vocab << ",\n  \"hidden_size\": " << s.hidden
      << ",\n  \"intermediate_size\": " << s.inter << ",\n  \"num_hidden_layers\": " << s.layers
      << ",\n  \"num_attention_heads\": " << s.heads << ",\n  \"num_key_value_heads\": " << s.kv_heads
      << ",\n  \"head_dim\": " << s.head_dim << ",\n";
  if (gemma) {
    cfg << "  \"hidden_act\": \"gelu_pytorch_tanh\",\n  \"hidden_activation\": \"gelu_pytorch_tanh\",\n"
        << "  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": 10000.0,\n  \"pad_token_id\": 0,\n";
  } else {
    cfg << "  \"hidden_act\": \"silu\",\n  \"rms_norm_eps\": " << (s.arch == "llama" ? "1e-05" : "1e-06") << ",\n";
  }
  cfg << "  " << s.extra << ",\n"
      << "  \"attention_bias\": false,\n  \"tie_word_embeddings\": " << (s.tied ? "true" : "false") << ",\n"
      << "  \"torch_dtype\": \"bfloat16\",\n  \"bos_token_id\": " << bos << ",\n  \"eos_token_id\": " << eos << ",\n"
      << "  \"batchgen_random_shape\": \"" << shape_name << "\"\n}\n";
  if (!cfg) throw std::runtime_error("cannot write " + dir + "/config.json");
  return total;
}

// Writes <dir>/adapter_config.json and <dir>/adapter_model.safetensors (dir is
// created): peft's tensor names, A [r, in] ~ N(0, 1/in) and B [out, r] ~
// N(0, 0.35^2 / r), so with lora_alpha = r an adapter moves each projection by about
// a third of the base weight's effect (tools/lora_reference.py's recipe). `seed`
// makes adapters differ. Returns the weights' file size.
inline size_t random_lora_write(const std::string& dir, const ModelConfig& base, int32_t rank, uint64_t seed) {
  ::mkdir(dir.c_str(), 0755);
  std::vector<RandomTensor> tensors;
  for (int32_t l = 0; l < base.num_layers; ++l) {
    for (int t = 0; t < kLoraTargets; ++t) {
      const auto dims = lora_target_dims(base, LoraTarget(t));
      const std::string p = "base_model.model.model.layers." + std::to_string(l) + (t < 4 ? ".self_attn." : ".mlp.") +
                            lora_target_name(LoraTarget(t));
      tensors.push_back({p + ".lora_A.weight", rank, dims[0]});
      tensors.push_back({p + ".lora_B.weight", dims[1], rank});
    }
  }
  const size_t bytes = bf16_safetensors_write(
      dir + "/adapter_model.safetensors", tensors, [&](size_t ti, int64_t begin, int64_t end, uint16_t* out) {
        const RandomTensor& t = tensors[ti];
        const bool is_a = ti % 2 == 0;
        const float scale = (is_a ? 1.0f : 0.35f) / std::sqrt(float(t.cols));
        const uint64_t s = rng_mix(seed * 0x9E3779B97F4A7C15ull + ti);
        for (int64_t i = begin; i < end; ++i) out[i - begin] = f32_to_bf16(scale * normal_at(s, uint64_t(i)));
      });
  std::string targets;
  for (int t = 0; t < kLoraTargets; ++t) targets += (t ? ", \"" : "\"") + std::string(lora_target_name(LoraTarget(t))) + "\"";
  std::ofstream cfg(dir + "/adapter_config.json");
  cfg << "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": " << rank << ", \"lora_alpha\": " << rank
      << ", \"lora_dropout\": 0.0, \"bias\": \"none\", \"use_rslora\": false, \"target_modules\": [" << targets
      << "], \"base_model_name_or_path\": null}\n";
  if (!cfg) throw std::runtime_error("cannot write " + dir + "/adapter_config.json");
  return bytes;
}

}  // namespace bg
