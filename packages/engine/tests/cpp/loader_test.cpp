// Model loading without a model: the JSON reader, safetensors validation on
// synthetic files (every way a header can lie), shard indexes, and config.json
// parsing for each supported architecture.
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "batchgen/tensor.h"
#include "check.h"
#include "model/json.h"
#include "model/model.h"
#include "model/safetensors.h"

using namespace bg;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the temp dir, removed when the test ends.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "bg-loader-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path = ::mkdtemp(buf.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors image: 8-byte length, the header as given, then `data_bytes` bytes.
std::string st_image(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data_bytes; ++i) data[i] = char(i * 7);
  return le64(claimed_len == UINT64_MAX ? header.size() : claimed_len) + header + data;
}

std::vector<SafetensorsTensor> parse(const std::string& image) {
  return safetensors_parse("test.safetensors", reinterpret_cast<const uint8_t*>(image.data()), image.size());
}

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(&s[0], v.data(), s.size());
  return s;
}

// A tiny complete safetensors file with the given f32 tensors (name, shape, values).
struct StTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};
std::string st_file(const std::vector<StTensor>& tensors) {
  std::string header = "{";
  std::string data;
  for (const StTensor& t : tensors) {
    std::string shape;
    for (int64_t d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    size_t b = data.size();
    data += f32_bytes(t.values);
    header += (header.size() > 1 ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"F32\",\"shape\":[" +
              shape + "],\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(data.size()) + "]}";
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  return le64(header.size()) + header + data;
}

std::string llama_config(const std::string& extra = "", int eos = 2) {
  return std::string("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",") +
         "\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2," +
         "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"eos_token_id\":" + std::to_string(eos) + extra + "}";
}

}  // namespace

// --- JSON ---------------------------------------------------------------------

TEST_CASE(json_parses_values) {
  Json j = json_parse(R"( {"a": [1, -2, 3.5, 1e3, 9007199254740993], "b": {"c": null, "d": true},
                           "s": "x\"y\\z\n\u00e9\ud83d\ude00", "e": false} )");
  CHECK(j.is_object());
  const Json* a = j.find("a");
  CHECK(a && a->is_array() && a->items().size() == 5);
  CHECK(a->items()[0].is_integer() && a->items()[0].as_int() == 1);
  CHECK(a->items()[1].as_int() == -2);
  CHECK(!a->items()[2].is_integer() && a->items()[2].as_double() == 3.5);
  CHECK(!a->items()[3].is_integer() && a->items()[3].as_double() == 1000.0);
  CHECK(a->items()[4].is_integer() && a->items()[4].as_int() == 9007199254740993LL);  // exact past 2^53
  CHECK(j.find("b")->find("c")->is_null());
  CHECK(j.find("b")->find_value("c") == nullptr);
  CHECK(j.find("b")->find("d")->as_bool());
  CHECK_EQ(j.find("s")->as_string(), std::string("x\"y\\z\n\xc3\xa9\xf0\x9f\x98\x80"));
  CHECK(j.find("missing") == nullptr);
  CHECK_EQ(j.members().front().first, std::string("a"));  // document order kept
}

TEST_CASE(json_rejects_malformed) {
  for (const char* bad : {"", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{\"a\":1}x", "\"abc", "01", "1.",
                          "-", "{\"a\":1,\"a\":2}", "tru", "\"\\q\"", "\"\\ud800\"", "{'a':1}", "[1 2]",
                          "\"a\tb\""}) {
    bool threw = false;
    try {
      json_parse(std::string(bad));
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    if (!threw) std::fprintf(stderr, "  accepted: %s\n", bad);
    CHECK(threw);
  }
  // Deep nesting is refused rather than overflowing the stack.
  CHECK_THROWS_WITH(json_parse(std::string(100000, '[')), std::invalid_argument, "nesting deeper");
  CHECK_THROWS_WITH(json_parse(std::string("{\"a\":1,}")), std::invalid_argument, "byte");
}

// --- safetensors -------------------------------------------------------------

TEST_CASE(safetensors_parses_dtypes_and_offsets) {
  std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"h":{"dtype":"F16","shape":[1,2],"data_offsets":[32,36]},)"
      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[36,36]},"i":{"dtype":"I64","shape":[1],"data_offsets":[36,44]}})";
  std::string img = st_image(header, 44);
  auto ts = parse(img);
  CHECK_EQ(ts.size(), size_t(5));
  const uint8_t* data0 = reinterpret_cast<const uint8_t*>(img.data()) + 8 + header.size();
  for (const auto& t : ts) {
    if (t.name == "w") {
      CHECK(t.supported && t.dtype == DType::f32 && t.shape == std::vector<int64_t>({2, 3}));
      CHECK(t.data == data0 && t.nbytes == 24 && t.numel() == 6);
    } else if (t.name == "b") {
      CHECK(t.supported && t.dtype == DType::bf16 && t.data == data0 + 24);
    } else if (t.name == "h") {
      CHECK(t.supported && t.dtype == DType::f16 && t.nbytes == 4);
    } else if (t.name == "e") {
      CHECK(t.nbytes == 0 && t.numel() == 0);
    } else {
      CHECK_EQ(t.name, std::string("i"));
      CHECK(!t.supported && t.st_dtype == "I64");
    }
  }
}

TEST_CASE(safetensors_rejects_lies) {
  const std::string one = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK_THROWS_WITH(parse(std::string("\x08\0\0", 3)), EngineError, "truncated safetensors file");
  CHECK_THROWS_WITH(parse(st_image(one, 8, one.size() + 100)), EngineError, "header length");
  CHECK_THROWS_WITH(parse(st_image(one, 8, uint64_t(1) << 62)), EngineError, "larger than the file");
  // Truncated data: the last tensor runs past the end.
  CHECK_THROWS_WITH(parse(st_image(one, 5)), EngineError, "run past the end");
  CHECK_THROWS_WITH(parse(st_image(one, 5)), EngineError, "tensor 'w'");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)), EngineError,
                    "need 12 bytes but data_offsets span 8");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})", 16)),
                    EngineError, "need 8 bytes");
  CHECK_THROWS_WITH(parse(st_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
                    EngineError, "overlaps");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}})", 1)), EngineError,
                    "unknown dtype \"Q4\"");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)), EngineError,
                    "end 0 < begin 8");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)), EngineError,
                    "non-negative");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8)), EngineError,
                    "data_offsets");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32","shape":[2]}})", 8)), EngineError, "data_offsets");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
                    EngineError, "impossibly large");
  CHECK_THROWS_WITH(parse(st_image(R"({"w":{"dtype":"F32",)", 8)), EngineError, "invalid JSON");
  CHECK_THROWS_WITH(parse(st_image("[1,2]", 8)), EngineError, "not a JSON object");
}

TEST_CASE(safetensors_file_maps_and_checks_truncation) {
  TempDir dir;
  std::string img = st_file({{"w", {2, 2}, {1, 2, 3, 4}}});
  write_file(dir.file("ok.safetensors"), img);
  auto f = SafetensorsFile::open(dir.file("ok.safetensors"));
  CHECK_EQ(f->tensors().size(), size_t(1));
  float v[4];
  std::memcpy(v, f->tensors()[0].data, 16);
  CHECK(v[0] == 1 && v[3] == 4);
  // The same file cut short by 4 bytes.
  write_file(dir.file("cut.safetensors"), img.substr(0, img.size() - 4));
  CHECK_THROWS_WITH(SafetensorsFile::open(dir.file("cut.safetensors")), EngineError, "cut.safetensors");
  CHECK_THROWS_WITH(SafetensorsFile::open(dir.file("cut.safetensors")), EngineError, "truncated");
  write_file(dir.file("empty.safetensors"), "");
  CHECK_THROWS_WITH(SafetensorsFile::open(dir.file("empty.safetensors")), EngineError, "truncated");
  CHECK_THROWS_WITH(SafetensorsFile::open(dir.file("none.safetensors")), EngineError, "cannot open");
}

TEST_CASE(safetensors_set_single_sharded_and_bad_indexes) {
  {
    TempDir dir;
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "no weights");
    write_file(dir.file("pytorch_model.bin"), "x");
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "not supported");
  }
  {
    TempDir dir;
    write_file(dir.file("model.safetensors"), st_file({{"a", {1}, {5}}, {"b", {2}, {6, 7}}}));
    SafetensorsSet set = SafetensorsSet::open_dir(dir.path);
    CHECK_EQ(set.size(), size_t(2));
    CHECK(set.find("b") && set.find("b")->numel() == 2);
    CHECK(set.find("c") == nullptr);
    CHECK_THROWS_WITH(set.get("c"), EngineError, "tensor 'c' is missing");
  }
  {
    TempDir dir;
    write_file(dir.file("model-1.safetensors"), st_file({{"a", {1}, {5}}}));
    write_file(dir.file("model-2.safetensors"), st_file({{"b", {1}, {6}}}));
    write_file(dir.file("model.safetensors.index.json"),
               R"({"metadata":{},"weight_map":{"a":"model-1.safetensors","b":"model-2.safetensors"}})");
    SafetensorsSet set = SafetensorsSet::open_dir(dir.path);
    CHECK_EQ(set.files().size(), size_t(2));
    float v;
    std::memcpy(&v, set.get("b").data, 4);
    CHECK(v == 6.0f);
    // The index places a tensor in a shard that lacks it.
    write_file(dir.file("model.safetensors.index.json"),
               R"({"weight_map":{"a":"model-2.safetensors","b":"model-2.safetensors"}})");
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "does not contain it");
    // A missing shard.
    write_file(dir.file("model.safetensors.index.json"), R"({"weight_map":{"a":"model-3.safetensors"}})");
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "missing weights file");
    // A shard path that leaves the directory.
    write_file(dir.file("model.safetensors.index.json"), R"({"weight_map":{"a":"../x.safetensors"}})");
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "bad file");
    // The same tensor in two shards.
    write_file(dir.file("model-2.safetensors"), st_file({{"a", {1}, {6}}}));
    write_file(dir.file("model.safetensors.index.json"),
               R"({"weight_map":{"a":"model-1.safetensors","b":"model-2.safetensors"}})");
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "appears in both");
    write_file(dir.file("model.safetensors.index.json"), "{\"weight_map\":");
    CHECK_THROWS_WITH(SafetensorsSet::open_dir(dir.path), EngineError, "model.safetensors.index.json");
  }
}

// --- config.json ---------------------------------------------------------------

TEST_CASE(config_errors_name_the_problem) {
  TempDir dir;
  CHECK_THROWS_WITH(model_config_load(dir.path + "/nope"), EngineError, "does not exist");
  CHECK_THROWS_WITH(model_config_load(dir.path), EngineError, "missing config.json");
  write_file(dir.file("config.json"), "{\"vocab_size\": 10,");
  CHECK_THROWS_WITH(model_config_load(dir.path), EngineError, "config.json: invalid JSON");

  auto code_of = [&](const std::string& cfg) {
    write_file(dir.file("config.json"), cfg);
    try {
      model_config_load(dir.path);
    } catch (const EngineError& e) {
      return std::make_pair(e.code, std::string(e.what()));
    }
    return std::make_pair(ErrorCode::internal, std::string("no error"));
  };
  auto r = code_of(R"({"architectures":["Phi3ForCausalLM"],"model_type":"phi3"})");
  CHECK(r.first == ErrorCode::unsupported);
  CHECK(r.second.find("Phi3ForCausalLM") != std::string::npos);
  CHECK(r.second.find("LlamaForCausalLM") != std::string::npos);  // lists what is supported
  r = code_of(R"({"model_type":"phi3"})");
  CHECK(r.first == ErrorCode::unsupported && r.second.find("phi3") != std::string::npos);
  r = code_of(R"({"hidden_size":4})");
  CHECK(r.first == ErrorCode::model_load && r.second.find("architectures") != std::string::npos);
  r = code_of(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64})");
  CHECK(r.first == ErrorCode::model_load && r.second.find("\"vocab_size\"") != std::string::npos);
  r = code_of(llama_config(",\"num_key_value_heads\":3"));
  CHECK(r.first == ErrorCode::model_load);  // duplicate key
  r = code_of(R"({"architectures":["LlamaForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":128,)"
              R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":3})");
  CHECK(r.first == ErrorCode::model_load && r.second.find("not a multiple") != std::string::npos);
  r = code_of(llama_config(",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":2}"));
  CHECK(r.first == ErrorCode::unsupported && r.second.find("yarn") != std::string::npos);
  r = code_of(llama_config(",\"hidden_act\":\"relu\""));
  CHECK(r.first == ErrorCode::unsupported && r.second.find("relu") != std::string::npos);
  r = code_of(llama_config(",\"rms_norm_eps\":\"x\""));
  CHECK(r.first == ErrorCode::model_load && r.second.find("rms_norm_eps") != std::string::npos);
  r = code_of(llama_config(",\"mlp_bias\":true"));
  CHECK(r.first == ErrorCode::unsupported);
  r = code_of(R"({"architectures":["LlamaForCausalLM"],"model_type":"qwen2"})");
  CHECK(r.first == ErrorCode::model_load && r.second.find("does not match") != std::string::npos);
}

TEST_CASE(config_llama_defaults_eos_and_rope) {
  TempDir dir;
  write_file(dir.file("config.json"), llama_config(",\"rope_theta\":500000.0,\"max_position_embeddings\":4096"));
  write_file(dir.file("generation_config.json"), R"({"eos_token_id":[7,2],"bos_token_id":1})");
  ModelConfig c = model_config_load(dir.path);
  CHECK_EQ(c.architecture, std::string("LlamaForCausalLM"));
  CHECK_EQ(c.head_dim, 16);
  CHECK_EQ(c.num_kv_heads, 2);
  CHECK(!c.tie_word_embeddings && !c.attention_bias && c.activation == Activation::silu);
  CHECK(c.norm_weight_offset == 0.0f && !c.scale_embeddings);
  CHECK(c.eos_token_ids == std::vector<int32_t>({7, 2}));
  CHECK_EQ(c.bos_token_id, 1);
  CHECK_EQ(c.max_position_embeddings, 4096);
  CHECK(c.rope_theta == 500000.0f && c.rope_scaling.type.empty());
  RopeConfig r = rope_config_make(c);
  CHECK_EQ(r.inv_freq.size(), size_t(8));
  CHECK(r.inv_freq[0] == 1.0f);
  CHECK(std::fabs(r.inv_freq[1] - float(std::pow(500000.0, -2.0 / 16))) < 1e-7f);

  // Old-style linear scaling divides every frequency by the factor.
  write_file(dir.file("config.json"),
             llama_config(",\"rope_theta\":500000.0,\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0}"));
  ModelConfig lin = model_config_load(dir.path);
  CHECK_EQ(lin.rope_scaling.type, std::string("linear"));
  RopeConfig rl = rope_config_make(lin);
  for (size_t i = 0; i < r.inv_freq.size(); ++i) CHECK(rl.inv_freq[i] == r.inv_freq[i] / 4.0f);

  // transformers 5 style llama3 scaling: high frequencies kept, low ones divided.
  write_file(dir.file("config.json"),
             llama_config(",\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,\"factor\":8.0,"
                          "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64}"));
  ModelConfig l3 = model_config_load(dir.path);
  CHECK_EQ(l3.rope_scaling.type, std::string("llama3"));
  CHECK_EQ(l3.rope_scaling.original_max_position_embeddings, 64);
  RopeConfig r3 = rope_config_make(l3);
  CHECK(r3.inv_freq[0] == r.inv_freq[0]);          // wavelength 2pi < 16: kept
  CHECK(r3.inv_freq[7] == r.inv_freq[7] / 8.0f);   // very long wavelength: divided by 8
}

TEST_CASE(config_gemma_qwen2_mistral_switches) {
  TempDir dir;
  write_file(dir.file("config.json"),
             R"({"architectures":["GemmaForCausalLM"],"model_type":"gemma","vocab_size":100,"hidden_size":64,)"
             R"("intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,)"
             R"("head_dim":256,"hidden_act":"gelu","eos_token_id":1,"bos_token_id":2})");
  ModelConfig g = model_config_load(dir.path);
  CHECK(g.activation == Activation::gelu_tanh && g.norm_weight_offset == 1.0f && g.scale_embeddings);
  CHECK(g.tie_word_embeddings && g.head_dim == 256 && g.heads().q_width() == 512);
  CHECK(g.eos_token_ids == std::vector<int32_t>({1}) && g.bos_token_id == 2);

  write_file(dir.file("config.json"),
             R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":128,)"
             R"("num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"tie_word_embeddings":true,)"
             R"("sliding_window":32,"use_sliding_window":false,"eos_token_id":[3,4]})");
  ModelConfig q = model_config_load(dir.path);
  CHECK(q.attention_bias && !q.attention_out_bias && q.tie_word_embeddings);
  CHECK_EQ(q.max_position_embeddings, 32768);
  CHECK(q.layer_windows == std::vector<int32_t>({0}) && q.attention_reach() == 0);  // window unused
  CHECK(q.eos_token_ids == std::vector<int32_t>({3, 4}));

  write_file(dir.file("config.json"),
             R"({"architectures":["MistralForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":128,)"
             R"("num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":36,)"
             R"("sliding_window":4096,"max_position_embeddings":32768})");
  ModelConfig m = model_config_load(dir.path);
  CHECK(!m.attention_bias && m.head_dim == 36);
  CHECK_EQ(m.max_position_embeddings, 32768);  // the window is applied in attention, not as a cap
  CHECK(m.layer_windows == std::vector<int32_t>({4096}) && m.attention_reach() == 4096);
  CHECK(m.eos_token_ids.empty());

  write_file(dir.file("config.json"), llama_config("", 100));
  CHECK_THROWS_WITH(model_config_load(dir.path), EngineError, "outside the vocabulary");
}

TEST_CASE(config_gemma2_gemma3_qwen3_switches) {
  TempDir dir;
  // Gemma 2 as transformers 5 writes it: soft-caps, alternating layer types.
  write_file(dir.file("config.json"),
             R"({"architectures":["Gemma2ForCausalLM"],"model_type":"gemma2","vocab_size":100,"hidden_size":64,)"
             R"("intermediate_size":128,"num_hidden_layers":3,"num_attention_heads":2,"num_key_value_heads":1,)"
             R"("head_dim":32,"hidden_activation":"gelu_pytorch_tanh","query_pre_attn_scalar":24,)"
             R"("attn_logit_softcapping":50.0,"final_logit_softcapping":null,"sliding_window":16,)"
             R"("layer_types":["sliding_attention","full_attention","sliding_attention"],)"
             R"("rope_parameters":{"rope_theta":10000.0,"rope_type":"default"}})");
  ModelConfig g2 = model_config_load(dir.path);
  CHECK(g2.sandwich_norms && !g2.qk_norm && g2.norm_weight_offset == 1.0f && g2.tie_word_embeddings);
  CHECK(g2.query_pre_attn_scalar == 24.0f && g2.attn_logit_softcap == 50.0f && g2.final_logit_softcap == 0.0f);
  CHECK(g2.layer_windows == std::vector<int32_t>({16, 0, 16}) && g2.sliding_window == 16);
  CHECK_EQ(g2.attention_reach(), 0);  // a global layer reads the whole context
  // Without layer_types or caps: the class defaults (even layers local, caps 50 and 30).
  write_file(dir.file("config.json"),
             R"({"architectures":["Gemma2ForCausalLM"],"vocab_size":100,"hidden_size":64,)"
             R"("intermediate_size":128,"num_hidden_layers":4,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":32})");
  g2 = model_config_load(dir.path);
  CHECK(g2.layer_windows == std::vector<int32_t>({4096, 0, 4096, 0}));
  CHECK(g2.attn_logit_softcap == 50.0f && g2.final_logit_softcap == 30.0f && g2.query_pre_attn_scalar == 256.0f);

  // Gemma 3 text: per-layer-type rope, QK-norm, 5 local : 1 global by default.
  write_file(dir.file("config.json"),
             R"({"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text","vocab_size":100,"hidden_size":64,)"
             R"("intermediate_size":128,"num_hidden_layers":7,"num_attention_heads":2,"num_key_value_heads":1,)"
             R"("head_dim":32,"sliding_window":8,"rope_parameters":{"full_attention":{"rope_type":"linear",)"
             R"("factor":8.0,"rope_theta":1000000.0},"sliding_attention":{"rope_type":"default","rope_theta":10000.0}}})");
  ModelConfig g3 = model_config_load(dir.path);
  CHECK(g3.sandwich_norms && g3.qk_norm && g3.attn_logit_softcap == 0.0f && g3.final_logit_softcap == 0.0f);
  CHECK(g3.layer_windows == std::vector<int32_t>({8, 8, 8, 8, 8, 0, 8}));
  CHECK(g3.rope_theta == 1000000.0f && g3.rope_scaling.type == "linear" && g3.rope_scaling.factor == 8.0f);
  CHECK(g3.rope_local_theta == 10000.0f && g3.rope_local_scaling.type.empty());
  RopeConfig global = rope_config_make(g3), local = rope_config_make(g3, true);
  CHECK(global.inv_freq[1] == (1.0f / std::pow(1000000.0f, 2.0f / 32.0f)) / 8.0f);
  CHECK(local.inv_freq[1] == 1.0f / std::pow(10000.0f, 2.0f / 32.0f));
  // The Hub's older spelling (rope_theta + rope_scaling + rope_local_base_freq) inside a
  // multimodal checkpoint's text_config, shape fields left to Gemma3TextConfig's defaults.
  write_file(dir.file("config.json"),
             R"({"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3","eos_token_id":[1,106],)"
             R"("text_config":{"model_type":"gemma3_text","hidden_size":2560,"intermediate_size":10240,)"
             R"("num_hidden_layers":34,"rope_scaling":{"factor":8.0,"rope_type":"linear"},"sliding_window":1024},)"
             R"("vision_config":{"model_type":"siglip_vision_model"}})");
  g3 = model_config_load(dir.path);
  CHECK(g3.model_type == "gemma3" && g3.vocab_size == 262208 && g3.num_heads == 8 && g3.num_kv_heads == 4);
  CHECK(g3.head_dim == 256 && g3.query_pre_attn_scalar == 256.0f && g3.tie_word_embeddings);
  CHECK(g3.rope_theta == 1000000.0f && g3.rope_scaling.type == "linear" && g3.rope_local_theta == 10000.0f);
  CHECK(g3.layer_windows.size() == 34 && g3.layer_windows[4] == 1024 && g3.layer_windows[5] == 0);
  CHECK(g3.eos_token_ids == std::vector<int32_t>({1, 106}));

  // Qwen3: QK-norm, no biases by default; windows only with use_sliding_window.
  write_file(dir.file("config.json"),
             R"({"architectures":["Qwen3ForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":128,)"
             R"("num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,)"
             R"("use_sliding_window":true,"sliding_window":16,"max_window_layers":1})");
  ModelConfig q3 = model_config_load(dir.path);
  CHECK(q3.qk_norm && !q3.sandwich_norms && !q3.attention_bias && q3.norm_weight_offset == 0.0f);
  CHECK(q3.layer_windows == std::vector<int32_t>({0, 16, 16}));

  write_file(dir.file("config.json"), R"({"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3"})");
  CHECK_THROWS_WITH(model_config_load(dir.path), EngineError, "needs a \"text_config\" object");

  // Layer types we do not run are named.
  write_file(dir.file("config.json"),
             R"({"architectures":["Qwen3ForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":128,)"
             R"("num_hidden_layers":1,"num_attention_heads":4,"head_dim":32,"use_sliding_window":true,)"
             R"("layer_types":["chunked_attention"]})");
  CHECK_THROWS_WITH(model_config_load(dir.path), EngineError, "layer type \"chunked_attention\"");
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
