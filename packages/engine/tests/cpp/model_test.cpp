// The model and the CPU backend against Hugging Face transformers, plus the CPU
// kernels' own contracts (batch invariance, paged attention vs a naive one).
//
// Reference models and outputs come from tools/reference.py. Set BATCHGEN_REFERENCE_DIR
// to a directory it wrote (reference.py --out DIR) to reuse one; otherwise this
// test runs the script into a temporary directory (Python from BATCHGEN_PYTHON, else the
// repository's .venv, else python3 on PATH).
//
// Error measure: for each position (logits row) r,
//   rel_err(r) = max_i |engine[r,i] - ref[r,i]| / max_i |ref[r,i]|
// and every row of every prompt must have rel_err <= 1e-4.
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/dtype_convert.h"
#include "batchgen/backend.h"
#include "check.h"
#include "model/json.h"
#include "model/model.h"

using namespace bg;
namespace fs = std::filesystem;

namespace {

constexpr double kMaxRelErr = 1e-4;
constexpr int32_t kBlockSize = 16;

// --- reference data -------------------------------------------------------------

std::string python_for_tests() {
  if (const char* p = std::getenv("BATCHGEN_PYTHON")) return p;
  // __FILE__ is packages/engine/tests/cpp/model_test.cpp; the venv is at the repo root.
  fs::path venv = fs::path(__FILE__).parent_path() / "../../../../.venv/bin/python";
  std::error_code ec;
  // Not canonicalised: the venv's python is a symlink, and resolving it loses the venv.
  if (fs::exists(venv, ec)) return venv.lexically_normal().string();
  return "python3";
}

struct ReferenceDir {
  std::string path;
  bool owned = false;
  Json manifest;

  ReferenceDir() {
    if (const char* d = std::getenv("BATCHGEN_REFERENCE_DIR")) {
      path = d;
    } else {
      std::string tmpl = (fs::temp_directory_path() / "bg-model-test-XXXXXX").string();
      std::vector<char> buf(tmpl.begin(), tmpl.end());
      buf.push_back('\0');
      path = ::mkdtemp(buf.data());
      owned = true;
      std::string script = (fs::path(__FILE__).parent_path() / "../../tools/reference.py").string();
      std::string cmd = "'" + python_for_tests() + "' '" + script + "' --out '" + path + "'";
      std::fprintf(stderr, "generating reference models: %s\n", cmd.c_str());
      if (std::system(cmd.c_str()) != 0) {
        remove();
        throw std::runtime_error("reference.py failed: " + cmd);
      }
    }
    std::ifstream in(path + "/manifest.json");
    if (!in) throw std::runtime_error("no manifest.json in " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    manifest = json_parse(ss.str());
  }
  ~ReferenceDir() { remove(); }
  void remove() {
    if (owned) {
      std::error_code ec;
      fs::remove_all(path, ec);
      owned = false;
    }
  }
};

// Made once; when making it fails, every test that needs it fails with that error.
ReferenceDir& reference() {
  static std::unique_ptr<ReferenceDir> dir;
  static std::string error;
  if (!dir && error.empty()) {
    try {
      dir = std::make_unique<ReferenceDir>();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!dir) throw std::runtime_error(error);
  return *dir;
}

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  size_t n = size_t(in.tellg());
  std::vector<float> v(n / 4);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n));
  return v;
}

std::vector<int32_t> ids_of(const Json& arr) {
  std::vector<int32_t> v;
  for (const Json& x : arr.items()) v.push_back(int32_t(x.as_int()));
  return v;
}

// Worst rel_err over rows (see the header); also the row where it happens.
double max_rel_err(const float* got, const float* ref, int64_t rows, int64_t vocab, int64_t* worst_row = nullptr) {
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      diff = std::max(diff, std::fabs(double(got[r * vocab + i]) - double(ref[r * vocab + i])));
      scale = std::max(scale, std::fabs(double(ref[r * vocab + i])));
    }
    double e = diff / std::max(scale, 1e-30);
    if (std::isnan(e) || e > worst) {
      worst = std::isnan(e) ? INFINITY : e;
      if (worst_row) *worst_row = r;
    }
  }
  return worst;
}

// --- driving the model without the runtime -------------------------------------------

// One sequence's part of a step: `tokens` at positions start..start+n-1, stored in
// `blocks` (block ids, in order of position).
struct SeqPart {
  std::vector<int32_t> tokens;
  int32_t start = 0;
  const std::vector<int32_t>* blocks = nullptr;
  bool all_logits = false;  // else only the last token's row
};

StepBatch make_step(const std::vector<SeqPart>& parts) {
  StepBatch b;
  b.cu_seq_q.push_back(0);
  for (const SeqPart& p : parts) b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, int32_t(p.blocks->size()));
  for (const SeqPart& p : parts) {
    const int32_t n = int32_t(p.tokens.size());
    for (int32_t i = 0; i < n; ++i) {
      const int32_t pos = p.start + i;
      b.token_ids.push_back(p.tokens[size_t(i)]);
      b.positions.push_back(pos);
      b.slot_mapping.push_back((*p.blocks)[size_t(pos / kBlockSize)] * kBlockSize + pos % kBlockSize);
      if (p.all_logits || i == n - 1) b.logit_rows.push_back(int32_t(b.token_ids.size()) - 1);
    }
    b.cu_seq_q.push_back(int32_t(b.token_ids.size()));
    b.context_lens.push_back(p.start + n);
    for (int32_t k = 0; k < b.max_blocks_per_seq; ++k)
      b.block_tables.push_back(k < int32_t(p.blocks->size()) ? (*p.blocks)[size_t(k)] : -1);
    b.max_q_len = std::max(b.max_q_len, n);
    b.max_context_len = std::max(b.max_context_len, p.start + n);
  }
  return b;
}

struct Loaded {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  int64_t vocab = 0;
};

Loaded load_case(const std::string& model_dir, int threads = 2) {
  Loaded l;
  BackendOptions opt;
  opt.threads = threads;
  l.backend = backend_create(opt);
  l.model = Model::load(model_dir, *l.backend);
  l.model->kv_cache_alloc(96, kBlockSize);
  l.model->reserve(256, 8, 96 * kBlockSize);
  l.vocab = l.model->config().vocab_size;
  return l;
}

std::vector<float> run_step(Loaded& l, const StepBatch& b) {
  StepTensors st = l.backend->upload_step(b);
  Tensor logits = l.model->forward(st);
  std::vector<float> out(static_cast<size_t>(logits.rows * logits.cols));
  l.backend->copy_to_host_f32(logits, out.data());
  return out;
}

// Blocks 0..n-1 in a scrambled order, so paging (not contiguity) is what works.
std::vector<int32_t> scattered_blocks(int32_t n, int32_t offset) {
  std::vector<int32_t> b;
  for (int32_t i = 0; i < n; ++i) b.push_back(offset + (i * 7) % n);
  return b;
}

template <typename Fn>
void for_each_case(Fn fn) {
  const Json& cases = *reference().manifest.find("cases");
  for (const auto& [name, c] : cases.members()) fn(name, c, reference().path + "/" + c.find("model_dir")->as_string());
}

}  // namespace

// --- kernels --------------------------------------------------------------------------

TEST_CASE(dtype_conversions_are_exact) {
  CHECK(bf16_to_f32(0x3F80) == 1.0f);
  CHECK(bf16_to_f32(0xC040) == -3.0f);
  CHECK(f16_to_f32(0x3C00) == 1.0f);
  CHECK(f16_to_f32(0xC000) == -2.0f);
  CHECK(f16_to_f32(0x7BFF) == 65504.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(std::isinf(f16_to_f32(0x7C00)) && std::isnan(f16_to_f32(0x7E00)));
  CHECK(f16_to_f32(0x8000) == 0.0f && std::signbit(f16_to_f32(0x8000)));
  CHECK(f32_to_bf16(1.0f) == 0x3F80);
  CHECK(f32_to_bf16(bf16_to_f32(0x4049)) == 0x4049);
  // Round to nearest even: 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125.
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3F82);
}

TEST_CASE(linear_is_batch_invariant_and_accurate) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  ThreadPool pool(2);
  for (int64_t K : {1, 7, 8, 37, 300}) {
    const int64_t T = 11, N = 45;
    std::vector<float> x(static_cast<size_t>(T * K)), w(static_cast<size_t>(N * K)), bias(static_cast<size_t>(N));
    for (float& v : x) v = nd(rng);
    for (float& v : w) v = nd(rng);
    for (float& v : bias) v = nd(rng);
    std::vector<float> all(static_cast<size_t>(T * N));
    cpu::linear_f32(pool, x.data(), K, w.data(), K, bias.data(), all.data(), N, T, N, K);
    for (int64_t t = 0; t < T; ++t) {
      // The same row alone, and in a batch of 3 starting at it: bit-identical.
      std::vector<float> one(static_cast<size_t>(N)), three(static_cast<size_t>(3 * N));
      cpu::linear_f32(pool, x.data() + t * K, K, w.data(), K, bias.data(), one.data(), N, 1, N, K);
      int64_t t3 = std::min<int64_t>(t, T - 3);
      cpu::linear_f32(pool, x.data() + t3 * K, K, w.data(), K, bias.data(), three.data(), N, 3, N, K);
      CHECK(std::memcmp(one.data(), all.data() + t * N, size_t(N) * 4) == 0);
      CHECK(std::memcmp(three.data() + (t - t3) * N, all.data() + t * N, size_t(N) * 4) == 0);
      // A column subset (what another thread split gives) is bit-identical too.
      std::vector<float> cols(5);
      cpu::linear_f32(pool, x.data() + t * K, K, w.data() + 17 * K, K, bias.data() + 17, cols.data(), 5, 1, 5, K);
      CHECK(std::memcmp(cols.data(), all.data() + t * N + 17, 20) == 0);
      for (int64_t n = 0; n < N; ++n) {
        double ref = bias[size_t(n)];
        for (int64_t k = 0; k < K; ++k) ref += double(x[size_t(t * K + k)]) * double(w[size_t(n * K + k)]);
        CHECK(std::fabs(ref - all[size_t(t * N + n)]) <= 1e-5 * (1 + std::sqrt(double(K)) * 3));
      }
    }
  }
}

TEST_CASE(paged_attention_matches_naive_causal_gqa) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  BackendOptions opt;
  opt.threads = 2;
  auto be = backend_create(opt);
  const HeadLayout heads{6, 2, 12};  // GQA: 3 query heads per KV head; head_dim with a tail of 4
  const int32_t bs = 4, num_blocks = 16;
  KvLayer cache;
  cache.k = be->alloc(DType::f32, num_blocks * bs, heads.kv_width());
  cache.v = be->alloc(DType::f32, num_blocks * bs, heads.kv_width());
  cache.block_size = bs;
  be->reserve_scratch(64, 4, num_blocks * bs, heads);
  // Two sequences: A has 5 cached tokens and gets 3 new ones; B is a fresh prefill of 6.
  std::vector<int32_t> blocks_a = {9, 2, 14}, blocks_b = {5, 0};
  const int32_t cached_a = 5;
  std::vector<std::vector<float>> k_a(8), v_a(8), k_b(6), v_b(6);
  auto randv = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = nd(rng);
    return v;
  };
  auto slot = [&](const std::vector<int32_t>& blocks, int32_t pos) { return blocks[size_t(pos / bs)] * bs + pos % bs; };
  for (int32_t p = 0; p < 8; ++p) {
    k_a[size_t(p)] = randv(heads.kv_width());
    v_a[size_t(p)] = randv(heads.kv_width());
  }
  for (int32_t p = 0; p < 6; ++p) {
    k_b[size_t(p)] = randv(heads.kv_width());
    v_b[size_t(p)] = randv(heads.kv_width());
  }
  for (int32_t p = 0; p < cached_a; ++p) {
    std::memcpy(cache.k.ptr<float>() + slot(blocks_a, p) * heads.kv_width(), k_a[size_t(p)].data(), size_t(heads.kv_width()) * 4);
    std::memcpy(cache.v.ptr<float>() + slot(blocks_a, p) * heads.kv_width(), v_a[size_t(p)].data(), size_t(heads.kv_width()) * 4);
  }
  StepBatch b;
  b.cu_seq_q = {0, 3, 9};
  b.context_lens = {8, 6};
  b.max_blocks_per_seq = 3;
  b.block_tables = {9, 2, 14, 5, 0, -1};
  std::vector<std::vector<float>> q(9);
  Tensor qkv = be->alloc(DType::f32, 9, heads.qkv_width());
  for (int32_t t = 0; t < 9; ++t) {
    const bool in_a = t < 3;
    const int32_t pos = in_a ? cached_a + t : t - 3;
    b.token_ids.push_back(0);
    b.positions.push_back(pos);
    b.slot_mapping.push_back(in_a ? slot(blocks_a, pos) : slot(blocks_b, pos));
    q[size_t(t)] = randv(heads.q_width());
    float* row = qkv.ptr<float>() + t * heads.qkv_width();
    std::memcpy(row, q[size_t(t)].data(), size_t(heads.q_width()) * 4);
    const auto& kk = in_a ? k_a[size_t(pos)] : k_b[size_t(pos)];
    const auto& vv = in_a ? v_a[size_t(pos)] : v_b[size_t(pos)];
    std::memcpy(row + heads.q_width(), kk.data(), size_t(heads.kv_width()) * 4);
    std::memcpy(row + heads.q_width() + heads.kv_width(), vv.data(), size_t(heads.kv_width()) * 4);
  }
  b.max_q_len = 6;
  b.max_context_len = 8;
  b.logit_rows = {2, 8};
  StepTensors st = be->upload_step(b);
  be->kv_write(qkv, st, heads, cache);
  Tensor out = be->alloc(DType::f32, 9, heads.q_width());
  const float scale = 1.0f / std::sqrt(12.0f);
  // The naive f64 result of a window and soft-cap (0: none), worst error vs `out`.
  auto check_naive = [&](int32_t window, double softcap) {
    double worst = 0;
    for (int32_t t = 0; t < 9; ++t) {
      const bool in_a = t < 3;
      const int32_t pos = in_a ? cached_a + t : t - 3;
      const int32_t lo = window > 0 ? std::max(0, pos - window + 1) : 0;
      for (int32_t h = 0; h < heads.num_heads; ++h) {
        const int32_t kvh = h / 3;
        std::vector<double> s(static_cast<size_t>(pos + 1), 0.0);
        double m = -1e300;
        for (int32_t j = lo; j <= pos; ++j) {
          const auto& kk = in_a ? k_a[size_t(j)] : k_b[size_t(j)];
          double d = 0;
          for (int32_t i = 0; i < 12; ++i) d += double(q[size_t(t)][size_t(h * 12 + i)]) * kk[size_t(kvh * 12 + i)];
          s[size_t(j)] = softcap > 0 ? std::tanh(d * scale / softcap) * softcap : d * scale;
          m = std::max(m, s[size_t(j)]);
        }
        double sum = 0;
        for (int32_t j = lo; j <= pos; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - m));
        for (int32_t i = 0; i < 12; ++i) {
          double o = 0;
          for (int32_t j = lo; j <= pos; ++j) o += s[size_t(j)] / sum * (in_a ? v_a[size_t(j)] : v_b[size_t(j)])[size_t(kvh * 12 + i)];
          worst = std::max(worst, std::fabs(o - out.ptr<float>()[t * heads.q_width() + h * 12 + i]));
        }
      }
    }
    return worst;
  };
  AttentionParams params;
  params.scale = scale;
  be->attention(qkv, st, heads, cache, params, out);
  double worst = check_naive(0, 0);
  std::fprintf(stderr, "  paged attention max abs error vs naive f64: %.3g\n", worst);
  CHECK(worst < 1e-5);
  // A sliding window of 3 with soft-capped scores (cap 2 bends every score here).
  params.window = 3;
  params.softcap = 2.0f;
  be->attention(qkv, st, heads, cache, params, out);
  worst = check_naive(3, 2.0);
  std::fprintf(stderr, "  windowed, soft-capped attention max abs error vs naive f64: %.3g\n", worst);
  CHECK(worst < 1e-5);
  // Window 2: A's first query (position 5) reaches back to 4, so its block 0 (positions
  // 0-3) is never read, and may be given back (-1) without harm.
  params.window = 2;
  params.softcap = 0.0f;
  b.block_tables[0] = -1;
  StepTensors freed = be->upload_step(b);
  be->attention(qkv, freed, heads, cache, params, out);
  worst = check_naive(2, 0);
  CHECK(worst < 1e-5);
  b.block_tables[0] = 9;
  params.window = 0;
  // A block id outside the cache is refused, not read.
  b.block_tables[0] = 99;
  StepTensors bad = be->upload_step(b);
  CHECK_THROWS_WITH(be->attention(qkv, bad, heads, cache, params, out), EngineError, "outside the cache");
  for (Tensor* t : {&cache.k, &cache.v, &qkv, &out}) be->free(*t);
}

TEST_CASE(backend_create_names_devices) {
  BackendOptions opt;
  opt.device = "cpu";
  CHECK(backend_create(opt)->info().name == "cpu");
  opt.device = "tpu";
  CHECK_THROWS_WITH(backend_create(opt), EngineError, "unknown device \"tpu\"");
#ifndef BG_WITH_CUDA
  opt.device = "cuda:0";
  try {
    backend_create(opt);
    CHECK(false);
  } catch (const EngineError& e) {
    CHECK(e.code == ErrorCode::unsupported);
    CHECK(std::string(e.what()).find("no CUDA backend") != std::string::npos);
  }
#endif
  CHECK_EQ(std::string(error_code_name(ErrorCode::model_load)), std::string("model_load"));
  CHECK_EQ(std::string(dtype_name(DType::bf16)), std::string("bf16"));
}

// --- the model against transformers --------------------------------------------------

TEST_CASE(rope_frequencies_match_transformers) {
  for_each_case([](const std::string& name, const Json& c, const std::string& dir) {
    RopeConfig r = rope_config_make(model_config_load(dir));
    const auto& ref = c.find("inv_freq")->items();
    CHECK_EQ(r.inv_freq.size(), ref.size());
    double worst = 0;
    for (size_t i = 0; i < std::min(ref.size(), r.inv_freq.size()); ++i)
      worst = std::max(worst, std::fabs(r.inv_freq[i] - ref[i].as_double()) / ref[i].as_double());
    std::fprintf(stderr, "  %-22s inv_freq max rel diff %.3g\n", name.c_str(), worst);
    CHECK(worst <= 2e-7);  // at most an ulp of f32
  });
}

TEST_CASE(prompt_logits_match_transformers) {
  for_each_case([](const std::string& name, const Json& c, const std::string& dir) {
    Loaded l = load_case(dir);
    for (const Json& p : c.find("prompts")->items()) {
      std::vector<int32_t> ids = ids_of(*p.find("ids"));
      std::vector<float> ref = read_f32(reference().path + "/" + p.find("logits")->as_string());
      std::vector<int32_t> blocks = scattered_blocks(int32_t(ids.size() + kBlockSize - 1) / kBlockSize, 3);
      std::vector<float> got = run_step(l, make_step({{ids, 0, &blocks, true}}));
      CHECK_EQ(got.size(), ref.size());
      int64_t row = -1;
      double err = max_rel_err(got.data(), ref.data(), int64_t(ids.size()), l.vocab, &row);
      std::fprintf(stderr, "  %-22s len %3zu  max rel err %.3g (row %lld)\n", name.c_str(), ids.size(), err,
                   (long long)row);
      CHECK(err <= kMaxRelErr);
    }
  });
}

// The longest prompt again, fed in chunks of 50 over successive steps (prefill
// chunks reading earlier steps' K/V from the paged cache).
TEST_CASE(chunked_prefill_matches_transformers) {
  for_each_case([](const std::string& name, const Json& c, const std::string& dir) {
    Loaded l = load_case(dir);
    const Json& p = c.find("prompts")->items().back();
    std::vector<int32_t> ids = ids_of(*p.find("ids"));
    std::vector<float> ref = read_f32(reference().path + "/" + p.find("logits")->as_string());
    std::vector<int32_t> blocks = scattered_blocks(int32_t(ids.size() + kBlockSize - 1) / kBlockSize, 0);
    double worst = 0;
    for (size_t s = 0; s < ids.size(); s += 50) {
      size_t n = std::min<size_t>(50, ids.size() - s);
      std::vector<int32_t> chunk(ids.begin() + int64_t(s), ids.begin() + int64_t(s + n));
      std::vector<float> got = run_step(l, make_step({{chunk, int32_t(s), &blocks, true}}));
      worst = std::max(worst, max_rel_err(got.data(), ref.data() + s * size_t(l.vocab), int64_t(n), l.vocab));
    }
    std::fprintf(stderr, "  %-22s chunked prefill max rel err %.3g\n", name.c_str(), worst);
    CHECK(worst <= kMaxRelErr);
  });
}

// Greedy decoding through Backend::sample (temperature 0), 64 tokens, EOS ignored.
TEST_CASE(greedy_generation_matches_transformers) {
  for_each_case([](const std::string& name, const Json& c, const std::string& dir) {
    Loaded l = load_case(dir);
    for (const Json& g : c.find("greedy")->items()) {
      std::vector<int32_t> prompt = ids_of(*g.find("prompt"));
      std::vector<int32_t> want = ids_of(*g.find("tokens"));
      std::vector<int32_t> blocks = scattered_blocks(int32_t(prompt.size() + want.size()) / kBlockSize + 1, 1);
      std::vector<int32_t> got;
      std::vector<int32_t> next = prompt;
      int32_t pos = 0;
      while (got.size() < want.size()) {
        StepTensors st = l.backend->upload_step(make_step({{next, pos, &blocks, false}}));
        Tensor logits = l.model->forward(st);
        int32_t id = -1;
        l.backend->sample(logits, {SampleRow{0.0f, 0, 1.0f, 0.0f, 0, pos + int32_t(next.size())}}, &id);
        pos += int32_t(next.size());
        got.push_back(id);
        next = {id};
      }
      size_t first_diff = 0;
      while (first_diff < want.size() && got[first_diff] == want[first_diff]) ++first_diff;
      std::fprintf(stderr, "  %-22s greedy prompt %2zu: %zu/%zu tokens equal\n", name.c_str(), prompt.size(),
                   first_diff, want.size());
      CHECK(got == want);
    }
  });
}

// A sequence's logits are bit-identical alone and next to other sequences, in
// prefill and in decode.
TEST_CASE(model_is_batch_invariant) {
  const Json& cases = *reference().manifest.find("cases");
  for (const char* name : {"gemma-2b-mqa", "llama-gqa", "qwen2-bias"}) {
    const Json& c = *cases.find(name);
    Loaded l = load_case(reference().path + "/" + c.find("model_dir")->as_string());
    std::vector<int32_t> a = ids_of(*c.find("prompts")->items()[2].find("ids"));  // 33 tokens
    std::vector<int32_t> b = ids_of(*c.find("prompts")->items()[1].find("ids"));  // 7 tokens
    std::vector<int32_t> blocks_a = {0, 1, 2, 3}, blocks_b = {10, 11}, blocks_c = {20};
    std::vector<float> alone = run_step(l, make_step({{a, 0, &blocks_a, true}}));
    std::vector<float> mixed = run_step(l, make_step({{b, 0, &blocks_b, true}, {a, 0, &blocks_a, true}}));
    const size_t V = size_t(l.vocab);
    CHECK(std::memcmp(alone.data(), mixed.data() + b.size() * V, a.size() * V * 4) == 0);
    // Decode one token of A next to a fresh 5-token prefill C.
    std::vector<float> dec_alone = run_step(l, make_step({{{a[0]}, int32_t(a.size()), &blocks_a, false}}));
    std::vector<float> dec_mixed = run_step(
        l, make_step({{{a[0]}, int32_t(a.size()), &blocks_a, false}, {{5, 6, 7, 8, 9}, 0, &blocks_c, false}}));
    CHECK(std::memcmp(dec_alone.data(), dec_mixed.data(), V * 4) == 0);
    // One thread gives the same bits as two.
    Loaded l1 = load_case(reference().path + "/" + c.find("model_dir")->as_string(), 1);
    std::vector<float> alone1 = run_step(l1, make_step({{a, 0, &blocks_a, true}}));
    CHECK(std::memcmp(alone.data(), alone1.data(), alone.size() * 4) == 0);
  }
}

TEST_CASE(model_load_rejects_bad_weights) {
  const Json& cases = *reference().manifest.find("cases");
  const std::string src = reference().path + "/" + cases.find("llama-gqa")->find("model_dir")->as_string();
  std::string tmpl = (fs::temp_directory_path() / "bg-badmodel-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const std::string dir = ::mkdtemp(buf.data());
  fs::copy(src, dir, fs::copy_options::overwrite_existing | fs::copy_options::recursive);
  BackendOptions opt;
  opt.threads = 1;
  auto be = backend_create(opt);
  auto set_config = [&](const std::string& from, const std::string& to) {
    std::ifstream in(src + "/config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    size_t at = s.find(from);
    CHECK(at != std::string::npos);
    if (at != std::string::npos) s.replace(at, from.size(), to);
    std::ofstream(dir + "/config.json") << s;
  };
  // A config that disagrees with the stored shapes names the tensor and both shapes.
  set_config("\"intermediate_size\": 300", "\"intermediate_size\": 301");
  CHECK_THROWS_WITH(Model::load(dir, *be), EngineError, "model.layers.0.mlp.gate_proj.weight' has shape [300, 128]");
  set_config("\"vocab_size\": 1000", "\"vocab_size\": 1001");
  CHECK_THROWS_WITH(Model::load(dir, *be), EngineError, "model.embed_tokens.weight");
  // A config with more layers than the weights have.
  set_config("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4");
  CHECK_THROWS_WITH(Model::load(dir, *be), EngineError,
                    "num_hidden_layers = 4 but tensor 'model.layers.3.input_layernorm.weight' is missing");
  // An absurd layer count is refused before anything is sized by it.
  set_config("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2000000000");
  CHECK_THROWS_WITH(Model::load(dir, *be), EngineError, "num_hidden_layers = 2000000000");
  // Truncated weights file.
  set_config("\"vocab_size\": 1000", "\"vocab_size\": 1000");
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
  CHECK_THROWS_WITH(Model::load(dir, *be), EngineError, "model.safetensors");
  fs::remove(dir + "/model.safetensors");
  CHECK_THROWS_WITH(Model::load(dir, *be), EngineError, "no weights");
  // A tied model (no lm_head.weight stored) whose config is edited to untie it.
  {
    const std::string qwen = reference().path + "/" + cases.find("qwen2-bias")->find("model_dir")->as_string();
    const std::string qdir = dir + "/qwen";
    fs::create_directories(qdir);
    fs::copy(qwen, qdir, fs::copy_options::recursive);
    std::ifstream in(qwen + "/config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    size_t at = s.find("\"tie_word_embeddings\": true");
    CHECK(at != std::string::npos);
    if (at != std::string::npos) s.replace(at, 27, "\"tie_word_embeddings\": false");
    std::ofstream(qdir + "/config.json") << s;
    CHECK_THROWS_WITH(Model::load(qdir, *be), EngineError, "tensor 'lm_head.weight' is missing");
  }
  // After all that the backend still loads a good model.
  CHECK(Model::load(src, *be)->config().num_layers == 3);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

int main(int argc, char** argv) {
  int rc = bg_test::run_all(argc, argv);
  return rc;
}
