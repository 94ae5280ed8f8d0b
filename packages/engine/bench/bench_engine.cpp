// The engine benchmark (docs/benchmarks.md), on a random-weight model of a real shape
// in bf16 (Gemma 1/2/3, Qwen3, Llama 3.2), greedy with EOS ignored. Drives the C++ Engine directly: submit everything,
// step until done. Prints one JSON line like the peer (../shared/peers/hf_transformers.py);
// out_tok_s is the figure, prompt_tokens_computed / _cached the prompt work.
//  - workload A (default): N prompts of exactly IN random token ids, OUT tokens each;
//  - --workload shared-prefix: N prompts, each one of P random prefixes of
//    [prefix-min, prefix-max] tokens then [suffix-min, suffix-max] unique tokens, and
//    [out-min, out-max] generated tokens (defaults: 2000 lines, 8 prefixes of 500-1500,
//    20-150 unique, 100-250 out), each line drawing its prefix at random; inp and out
//    in the JSON line are then the mean prompt and output lengths.
//
//   bench_engine --shape gemma-2b --model-dir /dev/shm/bg-gemma-2b [--device cuda]
//                [--n 1024] [--inp 512] [--out 256] [--max-seqs N]
//                [--max-batch-tokens 8192] [--deterministic] [--seed 1] [--write-only]
//                [--workload a|shared-prefix] [--prefixes 8] [--prefix-min 500]
//                [--prefix-max 1500] [--suffix-min 20] [--suffix-max 150]
//                [--out-min 100] [--out-max 250] [--no-prefix-caching]
//                [--temperature 0] [--json-schema FIELDS] [--top-logprobs K] [--n-choices C]
//                [--top-p 1] [--sampled-every K]
//                [--loras N] [--lora-rank 16] [--max-loras M] [--lora-dir DIR]
//
// LoRA adapters (issue 15):
//   --loras N          N random adapters (peft layout, rank --lora-rank, lora_alpha =
//                      rank, all seven projections, bf16; bench/random_weights.h),
//                      written under --lora-dir (default MODEL_DIR/loras-rR/0..N-1)
//                      when not there yet (--write-only writes them too); the
//                      workload's lines name them round-robin, none the base
//   --max-loras M      adapter slots on the device (0: the engine's default, one per
//                      adapter up to 8); with M < N adapters load on demand (LRU) and
//                      lora_loads / lora_evictions in the JSON line say how often
//
// Running sequences: by default what the engine derives from its KV cache (sequences
// of max_model_len tokens, which is set to the workload's longest line, up to 1,024;
// ModelInfo::max_seqs); --max-seqs N sets the cap instead. The JSON line's max_seqs is
// the cap the engine ran with, host_ms_per_step and host_gap_ms_per_step its host
// time per step (EngineStats::host_ms, host_gap_ms).
//
// Sampling extras (issue 13), each on every line:
//   --json-schema F    response format json_schema with an F-field object (string,
//                      integer and boolean fields in turn); lines end when the JSON
//                      closes (EOS), so out_tok_s counts the tokens actually made;
//                      grammar_distinct_masks and grammar_host_ms_per_step say what
//                      the host built (it overlaps the forward pass on a GPU)
//   --top-logprobs K   logprobs with K alternatives per token
//   --n-choices C      n/C distinct prompts, each submitted C times with seeds
//                      seed..seed+C-1 (what the worker does for a line with n = C);
//                      compare with the same --n of distinct prompts
//   --temperature T    sampling temperature (default 0 = greedy; the n-choices
//                      comparison needs T > 0)
//   --top-p P          nucleus sampling (default 1 = off)
//   --sampled-every K  workload A: only every K-th line samples (--temperature,
//                      --top-p, seed + its index: a seed each), the others are
//                      greedy; K = 2 is "half the lines sampled" (issue 11)
// Without a tokenizer.json in the model directory, the grammar runs over a
// synthetic vocabulary: ids 3..258 are the 256 bytes, the rest printable pieces of
// 1-8 bytes, some with JSON punctuation.
//
// The model directory (config.json + model.safetensors) is written there first when
// it does not hold one yet (random bf16 weights scaled for O(1) activations: the
// layout tools/gpu_reference.py also loads into transformers). Shapes: gemma-2b,
// gemma-7b, gemma2-2b, gemma2-9b, gemma3-1b, gemma3-4b, gemma3-12b (text), qwen3-8b,
// llama3.2-3b; tiny-gemma and tiny-gemma3 are small models for trying it on a CPU.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend/dtype_convert.h"
#include "batchgen/engine.h"
#include "batchgen/sampling.h"
#include "random_weights.h"
#include "schema_fields.h"

using namespace bg;

namespace {

struct Shape {
  std::string arch;  // config.json model_type: gemma | gemma2 | gemma3_text | qwen3 | llama
  int hidden, inter, layers, heads, kv_heads, head_dim, vocab;
  bool tied;
  std::string extra;  // further config.json fields (rope, windows, caps), JSON members
};

// Gemma 3's rotary embeddings per layer type; `full` is the global layers' spec.
std::string gemma3_rope(const std::string& full) {
  return "\"rope_parameters\": {\"full_attention\": {" + full +
         "}, \"sliding_attention\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"}}";
}
const std::string kGemma2Extra =
    "\"query_pre_attn_scalar\": 256, \"attn_logit_softcapping\": 50.0, \"final_logit_softcapping\": 30.0, "
    "\"sliding_window\": 4096, \"max_position_embeddings\": 8192, "
    "\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"}";
const std::string kGemma3Scaled = "\"factor\": 8.0, \"rope_theta\": 1000000.0, \"rope_type\": \"linear\"";

const std::map<std::string, Shape> kShapes = {
    {"gemma-2b", {"gemma", 2048, 16384, 18, 8, 1, 256, 256000, true, "\"max_position_embeddings\": 8192"}},
    {"gemma-7b", {"gemma", 3072, 24576, 28, 16, 16, 256, 256000, true, "\"max_position_embeddings\": 8192"}},
    {"tiny-gemma", {"gemma", 128, 512, 2, 4, 1, 64, 1000, true, "\"max_position_embeddings\": 8192"}},
    {"gemma2-2b", {"gemma2", 2304, 9216, 26, 8, 4, 256, 256000, true, kGemma2Extra}},
    {"gemma2-9b", {"gemma2", 3584, 14336, 42, 16, 8, 256, 256000, true, kGemma2Extra}},
    {"gemma3-1b", {"gemma3_text", 1152, 6912, 26, 4, 1, 256, 262144, true,
                   "\"query_pre_attn_scalar\": 256, \"sliding_window\": 512, \"max_position_embeddings\": 32768, " +
                       gemma3_rope("\"rope_theta\": 1000000.0, \"rope_type\": \"default\"")}},
    {"gemma3-4b", {"gemma3_text", 2560, 10240, 34, 8, 4, 256, 262208, true,
                   "\"query_pre_attn_scalar\": 256, \"sliding_window\": 1024, \"max_position_embeddings\": 131072, " +
                       gemma3_rope(kGemma3Scaled)}},
    {"gemma3-12b", {"gemma3_text", 3840, 15360, 48, 16, 8, 256, 262208, true,
                    "\"query_pre_attn_scalar\": 256, \"sliding_window\": 1024, \"max_position_embeddings\": 131072, " +
                        gemma3_rope(kGemma3Scaled)}},
    {"tiny-gemma3", {"gemma3_text", 128, 512, 7, 4, 1, 64, 1000, true,
                     "\"query_pre_attn_scalar\": 64, \"sliding_window\": 64, \"max_position_embeddings\": 131072, " +
                         gemma3_rope(kGemma3Scaled)}},
    {"qwen3-8b", {"qwen3", 4096, 12288, 36, 32, 8, 128, 151936, false,
                  "\"max_position_embeddings\": 40960, \"use_sliding_window\": false, "
                  "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"}},
    {"llama3.2-3b", {"llama", 3072, 8192, 28, 24, 8, 128, 128256, true,
                     "\"max_position_embeddings\": 131072, \"rope_parameters\": {\"factor\": 32.0, "
                     "\"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192, "
                     "\"rope_theta\": 500000.0, \"rope_type\": \"llama3\"}"}},
};

bool is_gemma(const Shape& s) { return s.arch.rfind("gemma", 0) == 0; }

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr, "bench_engine: %s\n(see the comment at the top of bench/bench_engine.cpp)\n", msg.c_str());
  std::exit(2);
}

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// --- random-weight model writer -----------------------------------------------------

struct TensorSpec {
  std::string name;
  int64_t rows, cols;  // cols == 0: a vector of `rows`
  enum Kind { linear, embed, norm, final_norm } kind;
  int64_t numel() const { return cols ? rows * cols : rows; }
};

std::vector<TensorSpec> model_tensors(const Shape& s) {
  const bool sandwich = s.arch == "gemma2" || s.arch == "gemma3_text";
  const bool qk_norm = s.arch == "gemma3_text" || s.arch == "qwen3";
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", s.vocab, s.hidden, TensorSpec::embed});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", s.hidden, 0, TensorSpec::norm});
    t.push_back({p + "self_attn.q_proj.weight", int64_t(s.heads) * s.head_dim, s.hidden, TensorSpec::linear});
    t.push_back({p + "self_attn.k_proj.weight", int64_t(s.kv_heads) * s.head_dim, s.hidden, TensorSpec::linear});
    t.push_back({p + "self_attn.v_proj.weight", int64_t(s.kv_heads) * s.head_dim, s.hidden, TensorSpec::linear});
    t.push_back({p + "self_attn.o_proj.weight", s.hidden, int64_t(s.heads) * s.head_dim, TensorSpec::linear});
    if (qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", s.head_dim, 0, TensorSpec::norm});
      t.push_back({p + "self_attn.k_norm.weight", s.head_dim, 0, TensorSpec::norm});
    }
    t.push_back({p + "post_attention_layernorm.weight", s.hidden, 0, TensorSpec::norm});
    if (sandwich) {
      t.push_back({p + "pre_feedforward_layernorm.weight", s.hidden, 0, TensorSpec::norm});
      t.push_back({p + "post_feedforward_layernorm.weight", s.hidden, 0, TensorSpec::norm});
    }
    t.push_back({p + "mlp.gate_proj.weight", s.inter, s.hidden, TensorSpec::linear});
    t.push_back({p + "mlp.up_proj.weight", s.inter, s.hidden, TensorSpec::linear});
    t.push_back({p + "mlp.down_proj.weight", s.hidden, s.inter, TensorSpec::linear});
  }
  t.push_back({"model.norm.weight", s.hidden, 0, TensorSpec::final_norm});
  if (!s.tied) t.push_back({"lm_head.weight", s.vocab, s.hidden, TensorSpec::linear});
  return t;
}

// Weight scale per kind (the recipe of tools/reference.py's randomize()): linear
// N(0, 1/in) keeps activations O(1); norms sit around 0 where Gemma applies them as
// (1 + w), around 1 elsewhere; a tied head's embeddings are small (Gemma also scales
// them by sqrt(hidden)) and the final norm's gain brings its logits back to O(1)-O(10)
// with clear top-1 margins; an untied model's embeddings are N(0, 1).
float weight_value(const Shape& s, const TensorSpec& t, uint64_t seed, int64_t i) {
  const float z = normal_at(seed, uint64_t(i));
  const float norm_base = is_gemma(s) ? 0.0f : 1.0f;
  const float embed_std = s.tied ? (is_gemma(s) ? 0.01f : 0.02f) : 1.0f;
  switch (t.kind) {
    case TensorSpec::linear: return z / std::sqrt(float(t.cols));
    case TensorSpec::embed: return embed_std * z;
    case TensorSpec::norm: return norm_base + 0.2f * z;
    case TensorSpec::final_norm:
      return s.tied ? norm_base - 1.0f + (0.2f / embed_std) * (1.0f + 0.2f * z) : norm_base + 0.2f * z;
  }
  return 0.0f;
}

void write_model(const std::string& dir, const std::string& shape_name, const Shape& s) {
  ::mkdir(dir.c_str(), 0755);
  const std::vector<TensorSpec> specs = model_tensors(s);
  std::vector<RandomTensor> tensors;
  for (const TensorSpec& t : specs) tensors.push_back({t.name, t.rows, t.cols});
  const size_t total = bf16_safetensors_write(
      dir + "/model.safetensors", tensors, [&](size_t ti, int64_t begin, int64_t end, uint16_t* out) {
        const uint64_t seed = rng_mix(0xBE9C4ull + ti);
        for (int64_t i = begin; i < end; ++i) out[i - begin] = f32_to_bf16(weight_value(s, specs[ti], seed, i));
      });

  static const std::map<std::string, std::string> kClass = {
      {"gemma", "GemmaForCausalLM"}, {"gemma2", "Gemma2ForCausalLM"}, {"gemma3_text", "Gemma3ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"}, {"llama", "LlamaForCausalLM"}};
  const bool gemma = is_gemma(s);
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
  std::fprintf(stderr, "bench_engine: wrote %s (%.1f GB of random bf16 weights)\n", dir.c_str(), total / 1e9);
}

// Token bytes for a model without a tokenizer: 0..2 special (pad, eos, bos), then
// the 256 bytes, then printable pieces (a fixed stream).
std::vector<std::string> synthetic_vocab(int vocab) {
  std::vector<std::string> bytes(static_cast<size_t>(vocab));
  for (int b = 0; b < 256 && 3 + b < vocab; ++b) bytes[size_t(3 + b)] = std::string(1, char(b));
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;\"{}[]-_";
  uint64_t x = 0x5EED;
  for (int id = 259; id < vocab; ++id) {
    x = rng_mix(x);
    const int len = 1 + int(x % 8);
    std::string piece;
    for (int k = 0; k < len; ++k) piece += alphabet[rng_mix(x + uint64_t(k)) % (sizeof(alphabet) - 1)];
    bytes[size_t(id)] = piece;
  }
  return bytes;
}

std::string lora_name(int i) { return "lora-" + std::to_string(i); }

// Adapters 0..n-1 as <dir>/<i>/, each written unless it is there already.
void write_loras(const std::string& dir, const std::string& model_dir, int n, int rank) {
  ::mkdir(dir.c_str(), 0755);
  const ModelConfig base = model_config_load(model_dir);
  size_t bytes = 0;
  int written = 0;
  for (int i = 0; i < n; ++i) {
    const std::string d = dir + "/" + std::to_string(i);
    if (file_exists(d + "/adapter_model.safetensors") && file_exists(d + "/adapter_config.json")) continue;
    bytes += random_lora_write(d, base, rank, uint64_t(i) + 1);
    ++written;
  }
  if (written)
    std::fprintf(stderr, "bench_engine: wrote %d rank-%d adapters under %s (%.2f GB)\n", written, rank, dir.c_str(),
                 bytes / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "gemma-2b", model_dir, device = "cuda";
  int n = -1, inp = 512, out = 256, max_seqs = 0, max_batch_tokens = 8192, block_size = 16;
  uint64_t seed = 1;
  bool deterministic = false, write_only = false, prefix_caching = true;
  std::string workload = "a";
  int prefixes = 8, prefix_min = 500, prefix_max = 1500, suffix_min = 20, suffix_max = 150, out_min = 100,
      out_max = 250;
  int json_fields = 0, top_logprobs = -1, n_choices = 1;
  float temperature = 0.0f, top_p = 1.0f;
  int sampled_every = 0;
  double kv_fraction = 0.9;
  int loras = 0, lora_rank = 16, max_loras = 0;
  std::string lora_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shape") shape = val();
    else if (a == "--model-dir") model_dir = val();
    else if (a == "--device") device = val();
    else if (a == "--n") n = std::stoi(val());
    else if (a == "--inp") inp = std::stoi(val());
    else if (a == "--out") out = std::stoi(val());
    else if (a == "--max-seqs") max_seqs = std::stoi(val());
    else if (a == "--max-batch-tokens") max_batch_tokens = std::stoi(val());
    else if (a == "--block-size") block_size = std::stoi(val());
    else if (a == "--kv-fraction") kv_fraction = std::stod(val());
    else if (a == "--seed") seed = std::stoull(val());
    else if (a == "--deterministic") deterministic = true;
    else if (a == "--write-only") write_only = true;
    else if (a == "--workload") workload = val();
    else if (a == "--prefixes") prefixes = std::stoi(val());
    else if (a == "--prefix-min") prefix_min = std::stoi(val());
    else if (a == "--prefix-max") prefix_max = std::stoi(val());
    else if (a == "--suffix-min") suffix_min = std::stoi(val());
    else if (a == "--suffix-max") suffix_max = std::stoi(val());
    else if (a == "--out-min") out_min = std::stoi(val());
    else if (a == "--out-max") out_max = std::stoi(val());
    else if (a == "--no-prefix-caching") prefix_caching = false;
    else if (a == "--json-schema") json_fields = std::stoi(val());
    else if (a == "--top-logprobs") top_logprobs = std::stoi(val());
    else if (a == "--n-choices") n_choices = std::stoi(val());
    else if (a == "--temperature") temperature = std::stof(val());
    else if (a == "--loras") loras = std::stoi(val());
    else if (a == "--lora-rank") lora_rank = std::stoi(val());
    else if (a == "--max-loras") max_loras = std::stoi(val());
    else if (a == "--lora-dir") lora_dir = val();
    else if (a == "--top-p") top_p = std::stof(val());
    else if (a == "--sampled-every") sampled_every = std::stoi(val());
    else usage("unknown option " + a);
  }
  auto it = kShapes.find(shape);
  if (it == kShapes.end()) {
    std::string names;
    for (const auto& [name, _] : kShapes) names += (names.empty() ? "" : ", ") + name;
    usage("unknown --shape " + shape + " (" + names + ")");
  }
  if (model_dir.empty()) usage("--model-dir is required (written there when empty)");
  const bool shared = workload == "shared-prefix";
  if (!shared && workload != "a") usage("unknown --workload " + workload + " (a, shared-prefix)");
  if (shared && (prefixes < 1 || prefix_min < 1 || prefix_max < prefix_min || suffix_min < 1 ||
                 suffix_max < suffix_min || out_min < 1 || out_max < out_min)) {
    usage("shared-prefix: need prefixes >= 1 and 1 <= min <= max for prefix, suffix and out");
  }
  // The larger shapes' KV caches hold fewer full sequences: half the prompts.
  if (n < 0) n = shared ? 2000 : it->second.layers * it->second.kv_heads * it->second.head_dim > 28 * 1024 ? 512 : 1024;
  if (loras < 0 || lora_rank < 1 || max_loras < 0) usage("need --loras >= 0, --lora-rank >= 1, --max-loras >= 0");
  if (lora_dir.empty()) lora_dir = model_dir + "/loras-r" + std::to_string(lora_rank);
  try {
    if (!file_exists(model_dir + "/model.safetensors")) write_model(model_dir, shape, it->second);
    if (loras > 0) write_loras(lora_dir, model_dir, loras, lora_rank);
  } catch (const std::exception& e) {
    usage(e.what());
  }
  if (write_only) return 0;

  try {
    EngineOptions o;
    o.model_dir = model_dir;
    o.device = device;
    o.max_seqs = max_seqs;
    o.max_batch_tokens = max_batch_tokens;
    o.block_size = block_size;
    o.kv_cache_memory_fraction = kv_fraction;
    // The longest line exactly: the derived sequence cap is then what the cache holds of them.
    o.max_model_len = shared ? prefix_max + suffix_max + out_max : inp + out;
    o.deterministic = deterministic;
    o.enable_prefix_caching = prefix_caching;
    for (int i = 0; i < loras; ++i) o.loras.push_back({lora_name(i), lora_dir + "/" + std::to_string(i)});
    o.max_loras = max_loras;
    if (json_fields > 0 && !file_exists(model_dir + "/tokenizer.json")) o.token_bytes = synthetic_vocab(it->second.vocab);
    const auto t_load = std::chrono::steady_clock::now();
    std::unique_ptr<Engine> engine = Engine::load(o);
    const double load_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
    const ModelInfo& info = engine->model_info();
    const int vocab = info.vocab_size;

    // Prompts like the peer's: ids in [1000, 200000) (clamped to small vocabularies).
    std::mt19937_64 rng(seed);
    const int lo = vocab > 200000 ? 1000 : 3, hi = std::min(vocab, 200000);
    std::uniform_int_distribution<int> tok(lo, hi - 1);
    const std::string schema = json_fields > 0 ? schema_of_fields(json_fields) : "";
    auto request = [&](const std::string& id, int len, int max_tokens) {
      GenerateRequest r;
      r.id = id;
      for (int i = 0; i < len; ++i) r.prompt.push_back(tok(rng));
      r.sampling.temperature = temperature;
      r.sampling.top_p = top_p;
      r.sampling.max_tokens = max_tokens;
      r.sampling.ignore_eos = json_fields == 0;
      r.sampling.logprobs = top_logprobs;
      r.has_seed = true;
      r.sampling.seed = seed;
      if (json_fields > 0) {
        r.sampling.format = SamplingParams::Format::json_schema;
        r.sampling.json_schema = schema;
      }
      return r;
    };
    // Warm-up: library handles, kernel first launches (the LoRA ones too).
    for (int i = 0; i < 4; ++i) {
      GenerateRequest w = request("warm-" + std::to_string(i), inp, 8);
      if (loras > 0) w.lora = lora_name(i % loras);
      engine->submit(w);
    }
    while (engine->has_work()) engine->step();

    std::vector<GenerateRequest> reqs;
    if (shared) {
      std::uniform_int_distribution<int> plen(prefix_min, prefix_max), slen(suffix_min, suffix_max),
          olen(out_min, out_max), which(0, prefixes - 1);
      std::vector<std::vector<int32_t>> heads;
      for (int p = 0; p < prefixes; ++p) heads.push_back(request("", plen(rng), 1).prompt);
      for (int i = 0; i < n; ++i) {
        const std::vector<int32_t>& head = heads[size_t(which(rng))];
        GenerateRequest r = request("r" + std::to_string(i), slen(rng), olen(rng));
        r.prompt.insert(r.prompt.begin(), head.begin(), head.end());
        reqs.push_back(std::move(r));
      }
    } else {
      for (int i = 0; i < n; ++i) {
        if (n_choices > 1 && i % n_choices != 0) {  // choice c of a prompt: the same prompt, seed + c
          GenerateRequest c = reqs[size_t(i - i % n_choices)];
          c.id = "r" + std::to_string(i);
          c.sampling.seed = seed + uint64_t(i % n_choices);
          reqs.push_back(c);
        } else {
          reqs.push_back(request("r" + std::to_string(i), inp, out));
          if (sampled_every > 0) {
            reqs.back().sampling.seed = seed + uint64_t(i);
            if (i % sampled_every != 0) reqs.back().sampling.temperature = 0.0f;
          }
        }
      }
    }
    // Adapters round-robin over the distinct prompts (the choices of one prompt share its adapter).
    if (loras > 0)
      for (size_t i = 0; i < reqs.size(); ++i) reqs[i].lora = lora_name(int(i / size_t(n_choices)) % loras);
    int64_t prompt_tokens = 0;
    for (const GenerateRequest& r : reqs) prompt_tokens += int64_t(r.prompt.size());
    const EngineStats before = engine->stats();
    const auto t0 = std::chrono::steady_clock::now();
    for (const GenerateRequest& r : reqs) engine->submit(r);
    int64_t tokens = 0, wrong = 0;
    while (engine->has_work()) {
      for (const GenerateResult& r : engine->step()) {
        tokens += int64_t(r.tokens.size());
        const int want = shared ? reqs[size_t(std::stoi(r.id.substr(1)))].sampling.max_tokens : out;
        const bool ended_early = json_fields > 0 && r.finish_reason == FinishReason::stop;
        if (r.finish_reason == FinishReason::error || (!ended_early && int(r.tokens.size()) != want)) ++wrong;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const EngineStats after = engine->stats();
    if (wrong) std::fprintf(stderr, "bench_engine: %lld requests did not produce the tokens asked for\n", (long long)wrong);
    std::printf(
        "{\"engine\":\"batchgen\",\"device\":\"%s\",\"gpu\":\"%s\",\"shape\":\"%s\",\"workload\":\"%s\","
        "\"n\":%d,\"inp\":%d,\"out\":%d,\"secs\":%.2f,\"out_tok_s\":%.1f,\"total_tok_s\":%.1f,"
        "\"deterministic\":%s,\"prefix_caching\":%s,\"prompt_tokens\":%lld,\"prompt_tokens_computed\":%lld,"
        "\"prompt_tokens_cached\":%lld,\"max_seqs\":%d,\"max_batch_tokens\":%d,\"kv_blocks\":%lld,"
        "\"block_size\":%d,\"steps\":%lld,\"preemptions\":%lld,\"load_s\":%.1f,\"wrong\":%lld,"
        "\"temperature\":%g,\"top_p\":%g,\"sampled_every\":%d,\"json_schema_fields\":%d,\"top_logprobs\":%d,\"n_choices\":%d,\"grammar_masks\":%lld,"
        "\"grammar_distinct_masks\":%lld,\"grammar_host_ms_per_step\":%.3f,\"max_seqs_derived\":%s,"
        "\"host_ms_per_step\":%.4f,\"host_gap_ms_per_step\":%.4f,\"loras\":%d,\"max_loras\":%d,"
        "\"lora_rank\":%d,\"lora_loads\":%lld,\"lora_evictions\":%lld}\n",
        info.device.c_str(), info.device_name.c_str(), shape.c_str(), workload.c_str(), n,
        shared ? int(prompt_tokens / std::max(1, n)) : inp, shared ? int(tokens / std::max(1, n)) : out, secs,
        tokens / secs, double(tokens + prompt_tokens) / secs, deterministic ? "true" : "false",
        prefix_caching ? "true" : "false", (long long)prompt_tokens,
        (long long)(after.prompt_tokens_processed - before.prompt_tokens_processed),
        (long long)(after.prompt_tokens_cached - before.prompt_tokens_cached), info.max_seqs, max_batch_tokens,
        (long long)info.kv_blocks, block_size, (long long)(after.steps - before.steps),
        (long long)(after.preemptions - before.preemptions), load_s, (long long)wrong, temperature, top_p, sampled_every, json_fields,
        top_logprobs, n_choices, (long long)(after.grammar_masks - before.grammar_masks),
        (long long)(after.grammar_distinct_masks - before.grammar_distinct_masks),
        (after.grammar_host_ms - before.grammar_host_ms) / double(std::max<int64_t>(1, after.steps - before.steps)),
        info.max_seqs_seq_len > 0 ? "true" : "false",
        (after.host_ms - before.host_ms) / double(std::max<int64_t>(1, after.steps - before.steps)),
        (after.host_gap_ms - before.host_gap_ms) / double(std::max<int64_t>(1, after.host_gaps - before.host_gaps)),
        loras, info.max_loras, loras > 0 ? info.lora_rank : 0, (long long)(after.lora_loads - before.lora_loads),
        (long long)(after.lora_evictions - before.lora_evictions));
    return wrong ? 1 : 0;
  } catch (const EngineError& e) {
    std::fprintf(stderr, "bench_engine: %s error: %s\n", error_code_name(e.code), e.what());
    return 1;
  }
}
