// GGUF reading without a model file: synthetic images written here (every way a
// header can lie), the block formats on hand-made blocks, tensor names, and the
// config a GGUF's metadata becomes. The dequantizers are also checked value for
// value against the gguf Python package by packages/engine/test/gguf.test.ts
// (through tests/cpp/gguf_check.cpp).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/dtype_convert.h"
#include "check.h"
#include "model/gguf.h"
#include "model/json.h"

using namespace bg;

namespace {

// Builds a GGUF v3 image: metadata entries, then tensor infos, then aligned data.
class GgufBuilder {
 public:
  void u32(const std::string& key, uint32_t v) { kv(key, 4, raw(v)); }
  void f32(const std::string& key, float v) { kv(key, 6, raw(v)); }
  void str(const std::string& key, const std::string& v) { kv(key, 8, string(v)); }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    std::string body = raw(uint32_t(8)) + raw(uint64_t(v.size()));
    for (const std::string& s : v) body += string(s);
    kv(key, 9, body);
  }
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, const std::string& bytes) {
    std::string info = string(name) + raw(uint32_t(ne.size()));
    for (uint64_t d : ne) info += raw(d);
    while (data_.size() % 32) data_ += '\0';
    info += raw(type) + raw(uint64_t(data_.size()));
    data_ += bytes;
    infos_ += info;
    ++n_tensors_;
  }
  std::string image(uint32_t version = 3) const {
    std::string s = "GGUF" + raw(version) + raw(uint64_t(n_tensors_)) + raw(uint64_t(n_kv_)) + kv_ + infos_;
    while (s.size() % 32) s += '\0';
    return s + data_;
  }

  template <typename T>
  static std::string raw(T v) {
    std::string s(sizeof(T), '\0');
    std::memcpy(&s[0], &v, sizeof(T));
    return s;
  }
  static std::string string(const std::string& s) { return raw(uint64_t(s.size())) + s; }

 private:
  void kv(const std::string& key, uint32_t type, const std::string& body) {
    kv_ += string(key) + raw(type) + body;
    ++n_kv_;
  }
  std::string kv_, infos_, data_;
  size_t n_kv_ = 0, n_tensors_ = 0;
};

std::unique_ptr<GgufFile> parse(const std::string& image) {
  return GgufFile::parse("test.gguf", reinterpret_cast<const uint8_t*>(image.data()), image.size());
}

// f16 bits of a normal value that f16 holds exactly (the values these tests use).
std::string f16(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  const uint16_t h = uint16_t(((b >> 16) & 0x8000) | ((((b >> 23) & 0xFF) - 112) << 10) | ((b >> 13) & 0x3FF));
  return GgufBuilder::raw(h);
}

std::string f32s(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(&s[0], v.data(), s.size());
  return s;
}

// A two-layer gemma3-shaped file (hidden 8, 2 heads of 4, 1 kv head).
GgufBuilder gemma3_file() {
  GgufBuilder b;
  b.str("general.architecture", "gemma3");
  b.u32("gemma3.context_length", 1024);
  b.u32("gemma3.embedding_length", 8);
  b.u32("gemma3.block_count", 2);
  b.u32("gemma3.feed_forward_length", 16);
  b.u32("gemma3.attention.head_count", 2);
  b.u32("gemma3.attention.head_count_kv", 1);
  b.u32("gemma3.attention.key_length", 4);
  b.u32("gemma3.attention.value_length", 4);
  b.f32("gemma3.rope.freq_base", 1000000.0f);
  b.f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  b.u32("gemma3.attention.sliding_window", 16);
  b.u32("tokenizer.ggml.eos_token_id", 1);
  b.u32("tokenizer.ggml.bos_token_id", 2);
  b.strings("tokenizer.ggml.tokens", {"<pad>", "<eos>", "<bos>", "a", "<end_of_turn>", "b", "c", "d"});
  b.tensor("token_embd.weight", {8, 8}, 0, f32s(std::vector<float>(64, 0.5f)));
  b.tensor("output_norm.weight", {8}, 0, f32s(std::vector<float>(8, 1.25f)));
  return b;
}

}  // namespace

TEST_CASE(gguf_parses_metadata_and_tensors) {
  GgufBuilder b = gemma3_file();
  auto f = parse(b.image());
  CHECK_EQ(f->version(), 3u);
  CHECK_EQ(f->find("general.architecture")->s, std::string("gemma3"));
  CHECK_EQ(f->find("gemma3.block_count")->i, 2);
  CHECK(std::fabs(f->find("gemma3.rope.freq_base")->f - 1e6) < 1e-3);
  CHECK_EQ(f->find("tokenizer.ggml.tokens")->strings.size(), size_t(8));
  CHECK_EQ(f->tensors().size(), size_t(2));
  const GgufTensor* e = f->tensor("token_embd.weight");
  CHECK(e && e->nbytes == 256 && e->shape() == (std::vector<int64_t>{8, 8}));
  float first;
  std::memcpy(&first, e->data, 4);
  CHECK_EQ(first, 0.5f);
  CHECK(f->tensor("missing") == nullptr);
}

TEST_CASE(gguf_rejects_lies) {
  GgufBuilder b = gemma3_file();
  const std::string good = b.image();
  CHECK_THROWS_WITH(parse("GGUX" + good.substr(4)), EngineError, "not a GGUF file");
  CHECK_THROWS_WITH(parse(GgufBuilder().image(1)), EngineError, "GGUF version 1 is not supported");
  // Cut anywhere in the header or data: named as truncation, never read past the end.
  for (size_t cut : {size_t(10), size_t(30), good.size() / 2, good.size() - 1}) {
    CHECK_THROWS_WITH(parse(good.substr(0, cut)), EngineError, "truncated");
  }
  GgufBuilder odd;
  odd.tensor("x", {7}, 8, std::string(34, '\0'));  // Q8_0 rows must be whole blocks of 32
  CHECK_THROWS_WITH(parse(odd.image()), EngineError, "not whole Q8_0 blocks");
  GgufBuilder unknown;
  unknown.tensor("x", {32}, 99, std::string(32, '\0'));
  CHECK_THROWS_WITH(parse(unknown.image()), EngineError, "unknown ggml type 99");
}

TEST_CASE(gguf_unsupported_types_and_architectures_are_named) {
  float out[256];
  std::string block(110, '\0');
  CHECK_THROWS_WITH(ggml_dequantize(11, block.data(), 256, out), EngineError, "Q3_K is not supported");
  CHECK(!ggml_type_supported(16));
  CHECK_EQ(ggml_type_name(16), std::string("IQ2_XXS"));
  for (uint32_t t : {0u, 1u, 2u, 3u, 6u, 7u, 8u, 12u, 13u, 14u, 30u}) CHECK(ggml_type_supported(t));

  GgufBuilder b;
  b.str("general.architecture", "mamba");
  b.tensor("token_embd.weight", {4, 4}, 0, std::string(64, '\0'));
  auto f = parse(b.image());
  CHECK_THROWS_WITH(gguf_config_json(*f), EngineError, "GGUF architecture \"mamba\" is not supported");

  GgufBuilder q;
  q.str("general.architecture", "llama");
  q.u32("llama.attention.head_count", 1);
  q.tensor("blk.0.attn_q.weight", {256}, 16, std::string(66, '\0'));
  auto qf = std::shared_ptr<GgufFile>(parse(q.image()));
  CHECK_THROWS_WITH(gguf_weights(qf), EngineError, "'blk.0.attn_q.weight' has type IQ2_XXS");
}

TEST_CASE(ggml_blocks_dequantize_by_hand) {
  // Q8_0: d * q.
  std::string q8 = f16(0.5f);
  for (int i = 0; i < 32; ++i) q8 += char(int8_t(i - 16));
  float y[256];
  ggml_dequantize(8, q8.data(), 32, y);
  CHECK_EQ(y[0], -8.0f);
  CHECK_EQ(y[31], 7.5f);
  // Q4_0: element j is the low nibble of byte j, element 16 + j the high one, minus 8.
  std::string q4 = f16(2.0f);
  for (int i = 0; i < 16; ++i) q4 += char(uint8_t((15 - i) << 4 | i));
  ggml_dequantize(2, q4.data(), 32, y);
  CHECK_EQ(y[0], -16.0f);   // 2 * (0 - 8)
  CHECK_EQ(y[15], 14.0f);   // 2 * (15 - 8)
  CHECK_EQ(y[16], 14.0f);   // high nibble of byte 0 = 15
  // Q5_0: the fifth bit of element j is bit j of qh.
  std::string q5 = f16(1.0f) + GgufBuilder::raw(uint32_t(1u | (1u << 16))) + std::string(16, '\0');
  ggml_dequantize(6, q5.data(), 32, y);
  CHECK_EQ(y[0], 0.0f);     // 16 - 16
  CHECK_EQ(y[1], -16.0f);
  CHECK_EQ(y[16], 0.0f);
  // Q4_K: sub-block scale 1 and min 0 for the first block of 32, so values are the nibbles.
  std::string q4k = f16(1.0f) + f16(1.0f);
  std::string scales(12, '\0');
  scales[0] = 1;  // scale of sub-block 0
  scales[4] = 3;  // min of sub-block 0
  q4k += scales;
  for (int i = 0; i < 128; ++i) q4k += char(uint8_t(i % 16));
  ggml_dequantize(12, q4k.data(), 256, y);
  CHECK_EQ(y[5], 5.0f - 3.0f);
  CHECK_EQ(y[32], 0.0f);  // sub-block 1: scale 0, min 0
}

TEST_CASE(gguf_tensor_names_map_to_hugging_face) {
  CHECK_EQ(gguf_tensor_hf_name("gemma3", "token_embd.weight"), std::string("model.embed_tokens.weight"));
  CHECK_EQ(gguf_tensor_hf_name("gemma3", "blk.11.attn_q_norm.weight"),
           std::string("model.layers.11.self_attn.q_norm.weight"));
  CHECK_EQ(gguf_tensor_hf_name("gemma3", "blk.0.ffn_norm.weight"),
           std::string("model.layers.0.pre_feedforward_layernorm.weight"));
  CHECK_EQ(gguf_tensor_hf_name("llama", "blk.0.ffn_norm.weight"),
           std::string("model.layers.0.post_attention_layernorm.weight"));
  CHECK_EQ(gguf_tensor_hf_name("qwen2", "blk.3.attn_k.bias"), std::string("model.layers.3.self_attn.k_proj.bias"));
  CHECK_EQ(gguf_tensor_hf_name("llama", "blk.x.attn_q.weight"), std::string(""));
  CHECK_EQ(gguf_tensor_hf_name("llama", "rope_freqs.weight"), std::string(""));
}

TEST_CASE(gguf_gemma3_config_and_weights) {
  GgufBuilder b = gemma3_file();
  const std::string image = b.image();
  auto f = std::shared_ptr<GgufFile>(parse(image));
  Json cfg = json_parse(gguf_config_json(*f));
  CHECK_EQ(cfg.find("architectures")->items()[0].as_string(), std::string("Gemma3ForCausalLM"));
  CHECK_EQ(cfg.find("model_type")->as_string(), std::string("gemma3_text"));
  CHECK_EQ(cfg.find("vocab_size")->as_int(), 8);
  CHECK_EQ(cfg.find("head_dim")->as_int(), 4);
  CHECK_EQ(cfg.find("query_pre_attn_scalar")->as_int(), 4);
  CHECK_EQ(cfg.find("sliding_window")->as_int(), 16);
  CHECK(cfg.find("tie_word_embeddings")->as_bool());
  CHECK_EQ(cfg.find("rope_local_base_freq")->as_double(), 10000.0);
  CHECK_EQ(cfg.find("layer_types")->items()[0].as_string(), std::string("sliding_attention"));
  // eos: <eos> and <end_of_turn> (the instruction-tuned model ends turns with it).
  const auto& eos = cfg.find("eos_token_id")->items();
  CHECK(eos.size() == 2 && eos[0].as_int() == 1 && eos[1].as_int() == 4);
  CHECK_EQ(cfg.find("bos_token_id")->as_int(), 2);
  CHECK(std::fabs(cfg.find("rms_norm_eps")->as_double() - 1e-6) < 1e-12);

  SafetensorsSet w = gguf_weights(f);
  const SafetensorsTensor& norm = w.get("model.norm.weight");
  float v;
  std::memcpy(&v, norm.data, 4);
  CHECK_EQ(v, 0.25f);  // stored as 1 + w by llama.cpp's converter
  CHECK(norm.dtype == DType::f32 && norm.shape == std::vector<int64_t>{8});
  const SafetensorsTensor& e = w.get("model.embed_tokens.weight");
  CHECK(e.data == f->tensor("token_embd.weight")->data);  // F32 used in place
}

TEST_CASE(gguf_llama_unpermutes_q_and_k) {
  GgufBuilder b;
  b.str("general.architecture", "llama");
  b.u32("llama.attention.head_count", 1);
  b.u32("llama.attention.head_count_kv", 1);
  // 4 rows of 1: GGUF order is interleaved pairs (0, 2, 1, 3 of the Hugging Face rows).
  b.tensor("blk.0.attn_q.weight", {1, 4}, 0, f32s({10, 12, 11, 13}));
  auto f = std::shared_ptr<GgufFile>(parse(b.image()));
  SafetensorsSet w = gguf_weights(f);
  const float* q = static_cast<const float*>(w.get("model.layers.0.self_attn.q_proj.weight").data);
  CHECK(q[0] == 10 && q[1] == 11 && q[2] == 12 && q[3] == 13);
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
