// Quantized weights without a checkpoint: our int4 packing round trip, e4m3
// conversions, GGUF Q4_0 / Q4_K repacked value for value against ggml's
// dequantizer, row concatenation and reordering, the CPU quantized product, and
// every refused variant named in its error. The formats' layouts against PyTorch
// references are test/quantized.test.ts (tests/cpp/quant_check.cpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/dtype_convert.h"
#include "batchgen/backend.h"
#include "check.h"
#include "model/gguf.h"
#include "model/json.h"
#include "quant/quant_hf.h"

using namespace bg;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> dequant(const QuantWeight& w) {
  std::vector<float> out(size_t(w.rows * w.cols));
  quant_dequantize_rows(w, 0, w.rows, out.data());
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

QuantScheme parse(const std::string& qc) {
  const Json j = json_parse(qc);
  return quant_scheme_parse(&j, "config.json");
}

}  // namespace

TEST_CASE(int4_packing_round_trips) {
  const int64_t N = 6, K = 64, G = 16;
  std::vector<float> w = randn(size_t(N * K), 1);
  for (int64_t k = 0; k < G; ++k) w[size_t(k)] = 0.25f;                // a constant group
  for (int64_t k = G; k < 2 * G; ++k) w[size_t(k)] = float(k - G) / 4;  // all >= 0: zero point 0
  const QuantWeight q = quant_int4_rtn(w.data(), N, K, G);
  quant_validate(q, "rtn");
  CHECK_EQ(int64_t(q.data.size()), N * K / 2);
  const std::vector<float> back = dequant(q);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      const float s = q.scales[size_t(r * (K / G) + k / G)];
      CHECK(std::fabs(back[size_t(r * K + k)] - w[size_t(r * K + k)]) <= 0.5f * s * (1 + 1e-5f));
    }
  }
  // Nibble order: column 2i in the low nibble of byte i, 2i + 1 in the high one.
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      const size_t g = size_t(r * (K / G) + k / G);
      CHECK_EQ(back[size_t(r * K + k)], float(quant_nibble(q, r, k)) * q.scales[g] + q.offsets[g]);
    }
  }
  // The second group's values are multiples of 1/4 from 0 to 15/4: exact.
  for (int64_t k = G; k < 2 * G; ++k) CHECK_EQ(back[size_t(k)], w[size_t(k)]);
  // Re-quantizing the dequantized weight gives the same packed bytes.
  const QuantWeight again = quant_int4_rtn(back.data(), N, K, G);
  CHECK(again.data == q.data);
}

TEST_CASE(e4m3_conversions) {
  int finite = 0;
  for (int b = 0; b < 256; ++b) {
    const float v = e4m3_to_f32(uint8_t(b));
    if (std::isnan(v)) {
      CHECK((b & 0x7F) == 0x7F);
      continue;
    }
    ++finite;
    const uint8_t back = f32_to_e4m3(v);
    CHECK(back == uint8_t(b) || (v == 0 && (back & 0x7F) == 0));
  }
  CHECK_EQ(finite, 254);
  CHECK_EQ(e4m3_to_f32(0x7E), 448.0f);
  CHECK_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  CHECK_EQ(f32_to_e4m3(1000.0f), uint8_t(0x7E));        // saturates
  CHECK_EQ(f32_to_e4m3(-1000.0f), uint8_t(0xFE));
  CHECK_EQ(f32_to_e4m3(1.0625f), uint8_t(0x38));         // halfway 1 and 1.125: ties to even (1)
  CHECK_EQ(f32_to_e4m3(1.1875f), uint8_t(0x3A));         // halfway 1.125 and 1.25: to 1.25
  CHECK_EQ(f32_to_e4m3(std::ldexp(1.5f, -10)), uint8_t(0x01));  // subnormal 0.75 of a step: 1
  // Per-channel: each row's largest magnitude becomes +-448 exactly.
  const std::vector<float> w = randn(4 * 32, 2);
  const QuantWeight q = quant_fp8_per_channel(w.data(), 4, 32);
  quant_validate(q, "fp8");
  for (int64_t r = 0; r < 4; ++r) {
    float amax = 0;
    for (int64_t k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(w[size_t(r * 32 + k)]));
    CHECK_EQ(q.scales[size_t(r)], amax / 448.0f);
  }
}

TEST_CASE(gguf_q4_repacks_value_for_value) {
  std::mt19937 rng(7);
  for (uint32_t type : {uint32_t(GgmlType::q4_0), uint32_t(GgmlType::q4_k)}) {
    const GgmlBlock blk = ggml_block(type);
    const int64_t rows = 3, cols = 512;
    std::vector<uint8_t> bytes(size_t(rows * cols / blk.elems * blk.bytes));
    for (uint8_t& b : bytes) b = uint8_t(rng());
    // Finite f16 scales (d, and dmin for Q4_K) at the start of every block: any
    // sign and mantissa, exponents 2^-10 .. 2^-1.
    for (size_t off = 0; off < bytes.size(); off += size_t(blk.bytes)) {
      for (int s = 0; s < (type == uint32_t(GgmlType::q4_k) ? 2 : 1); ++s) {
        const uint16_t h = uint16_t((rng() & 0x83FF) | ((5 + rng() % 10) << 10));
        std::memcpy(&bytes[off + size_t(2 * s)], &h, 2);
      }
    }
    GgufTensor t;
    t.name = "blk.0.ffn_up.weight";
    t.type = type;
    t.ne = {uint64_t(cols), uint64_t(rows)};
    t.data = bytes.data();
    t.nbytes = bytes.size();
    std::vector<float> want(size_t(rows * cols));
    ggml_dequantize(type, bytes.data(), rows * cols, want.data());
    const QuantWeight q = gguf_repack_int4(t, "test.gguf");
    CHECK_EQ(q.group_size, int64_t(32));
    // Equal values; bit for bit except Q4_0's d * (8 - 8), which ggml makes -0
    // for a negative d and q * d - 8 d makes +0.
    CHECK(dequant(q) == want);
    // Rows reorder as whole rows (GGUF's Llama q/k permutation undone).
    QuantWeight r = q;
    quant_reorder_rows(r, {2, 0, 1});
    const std::vector<float> got = dequant(r);
    CHECK(std::equal(got.begin(), got.begin() + cols, want.begin() + 2 * cols));
    CHECK(std::equal(got.begin() + cols, got.begin() + 2 * cols, want.begin()));
  }
}

TEST_CASE(fused_rows_concatenate_or_refuse) {
  const std::vector<float> a = randn(4 * 64, 3), b = randn(2 * 64, 4);
  QuantWeight qa = quant_int4_rtn(a.data(), 4, 64, 32);
  const QuantWeight qb = quant_int4_rtn(b.data(), 2, 64, 32);
  QuantWeight fused = qa;
  quant_append_rows(fused, qb, "q and k");
  std::vector<float> want = dequant(qa), tail = dequant(qb);
  want.insert(want.end(), tail.begin(), tail.end());
  CHECK(same_bits(dequant(fused), want));
  const QuantWeight g16 = quant_int4_rtn(b.data(), 2, 64, 16);
  CHECK_THROWS_WITH(quant_append_rows(qa, g16, "q and k"), EngineError, "group size (32 and 16)");
  QuantWeight permuted = qb;
  permuted.k_perm.resize(64);
  for (int32_t k = 0; k < 64; ++k) permuted.k_perm[size_t(k)] = 63 - k;
  CHECK_THROWS_WITH(quant_append_rows(qa, permuted, "q and k"), EngineError, "act-order column order (g_idx)");
  const QuantWeight fp8 = quant_fp8_per_channel(b.data(), 2, 64);
  CHECK_THROWS_WITH(quant_append_rows(qa, fp8, "q and k"), EngineError, "format (int4 and fp8_e4m3)");
}

TEST_CASE(cpu_quantized_product_is_the_dense_product_bit_for_bit) {
  auto be = cpu_backend_create(BackendOptions{});
  const int64_t N = 37, K = 96, T = 5;  // N: two full 16-row blocks and a partial one
  const std::vector<float> w = randn(size_t(N * K), 5), x = randn(size_t(T * K), 6), bias = randn(size_t(N), 7);
  for (const QuantWeight& q : {quant_int4_rtn(w.data(), N, K, 32), quant_fp8_per_channel(w.data(), N, K)}) {
    const std::vector<float> deq = dequant(q);
    Tensor xt = be->alloc(DType::f32, T, K), wt = be->alloc(DType::f32, N, K), bt = be->alloc(DType::f32, 1, N);
    Tensor o1 = be->alloc(DType::f32, T, N), o2 = be->alloc(DType::f32, T, N);
    be->upload(xt, 0, x.data(), DType::f32, T);
    be->upload(wt, 0, deq.data(), DType::f32, N);
    be->upload(bt, 0, bias.data(), DType::f32, 1);
    const std::vector<float> nan(size_t(T * N), std::numeric_limits<float>::quiet_NaN());
    be->upload(o1, 0, nan.data(), DType::f32, T);
    std::unique_ptr<QuantLinear> ql = be->quant_upload(q);
    CHECK_EQ(ql->bytes(), q.bytes());
    be->linear_quant(xt, *ql, &bt, o1);
    be->linear(xt, wt, &bt, o2);
    std::vector<float> g1(size_t(T * N)), g2(size_t(T * N));
    be->copy_to_host_f32(o1, g1.data());
    be->copy_to_host_f32(o2, g2.data());
    CHECK(same_bits(g1, g2));
    for (Tensor* t : {&xt, &wt, &bt, &o1, &o2}) be->free(*t);
  }
}

TEST_CASE(unsupported_variants_are_named) {
  CHECK(!quant_scheme_parse(nullptr, "config.json").quantized());
  CHECK_EQ(parse(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"})").describe(),
           std::string("AWQ int4 g128"));
  CHECK(!parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "checkpoint_format": "gptq_v2"})")
             .gptq_zeros_minus_one);
  CHECK_THROWS_WITH(parse(R"({"quant_method": "hqq"})"), EngineError, "quant_method \"hqq\" is not supported");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "awq", "bits": 4, "version": "gemv"})"), EngineError,
                    "AWQ version \"gemv\" is not supported");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "awq", "bits": 4, "zero_point": false})"), EngineError,
                    "AWQ without zero points");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "gptq", "bits": 3})"), EngineError, "gptq with 3-bit weights");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "gptq", "bits": 4, "checkpoint_format": "marlin"})"), EngineError,
                    "GPTQ checkpoint_format \"marlin\"");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "bitsandbytes", "load_in_8bit": true})"), EngineError,
                    "bitsandbytes 8-bit");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "fp4"})"),
                    EngineError, "bitsandbytes 4-bit \"fp4\"");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "fp8", "scale_fmt": "ue8m0"})"), EngineError, "UE8M0");
  CHECK_THROWS_WITH(parse(R"({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights":
                          {"num_bits": 4, "type": "int", "strategy": "group"}}}})"),
                    EngineError, "4-bit int per group");
  try {
    parse(R"({"quant_method": "awq", "bits": 8})");
    CHECK(false);
  } catch (const EngineError& e) {
    CHECK(e.code == ErrorCode::unsupported);
  }
}

TEST_CASE(tensor_layout_errors_name_the_tensor) {
  // An AWQ qweight of GPTQ's shape ([K / 8, N] instead of [K, N / 8]).
  std::vector<int32_t> words(size_t(64 / 8 * 32), 0);
  std::vector<uint16_t> scales(size_t(64 / 32 * 32), uint16_t(0x2000));  // f16 2^-7
  std::vector<SafetensorsTensor> ts(3);
  ts[0] = {"m.qweight", "w.safetensors", "I32", false, DType::f32, {8, 32}, words.data(), words.size() * 4};
  ts[1] = {"m.qzeros", "w.safetensors", "I32", false, DType::f32, {2, 4}, words.data(), 32};
  ts[2] = {"m.scales", "w.safetensors", "F16", true, DType::f16, {2, 32}, scales.data(), scales.size() * 2};
  const SafetensorsSet st = SafetensorsSet::from_tensors("w.safetensors", ts, nullptr);
  const QuantScheme awq = parse(R"({"quant_method": "awq", "bits": 4, "group_size": 32})");
  CHECK_THROWS_WITH(quant_linear_load(st, awq, "m", 32, 64), EngineError,
                    "tensor 'm.qweight' has shape [8, 32], expected [64, 4]");
  // The same tensors read as GPTQ: qweight fits, qzeros and scales do too.
  const QuantScheme gptq = parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 32})");
  const std::optional<QuantWeight> q = quant_linear_load(st, gptq, "m", 32, 64);
  CHECK(q.has_value());
  // All-zero words: q = 0, stored zero 0 means z = 1, so every weight is -scale.
  const std::vector<float> values = dequant(*q);
  CHECK_EQ(values[0], -f16_to_f32(0x2000));
  CHECK_THROWS_WITH(quant_linear_load(st, gptq, "missing", 32, 64), EngineError, "missing.qweight");
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
