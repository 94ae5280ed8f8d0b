// AWQ and GPTQ checkpoints repacked into our int4 (layouts in quant_hf.h). Both
// compute w = (q - z) * s with f16 scales; ours is q * s + offset with offset =
// -z * s, which is exact in f32 (an f16 scale times an integer below 17 fits in
// 24 bits), so the repacked weight equals theirs value for value.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "quant/quant_hf.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }

uint32_t word(const SafetensorsTensor& t, int64_t i) {
  uint32_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(t.data) + 4 * i, 4);
  return v;
}

uint8_t nibble(uint32_t v, int64_t i) { return uint8_t((v >> (4 * i)) & 0x0F); }

void put_nibble(QuantWeight& q, int64_t r, int64_t j, uint8_t v) {
  q.data[size_t((r * q.cols + j) / 2)] |= uint8_t(v << ((j & 1) * 4));
}

void check_divisible(const std::string& prefix, int64_t rows, int64_t cols, int64_t group) {
  if (rows % 8 || cols % 8 || cols % group || group % 2)
    load_error("'" + prefix + "': a 4-bit weight of shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
               "] cannot be packed in groups of " + std::to_string(group) +
               " (both sizes must be multiples of 8 and of the group size)");
}

}  // namespace

QuantWeight quant_load_awq(const SafetensorsSet& st, const QuantScheme& s, const std::string& prefix,
                           int64_t rows, int64_t cols) {
  const int64_t N = rows, K = cols, G = s.group_size;
  check_divisible(prefix, N, K, G);
  const SafetensorsTensor& qw = quant_tensor(st, prefix + ".qweight", "I32", {K, N / 8});
  const SafetensorsTensor& qz = quant_tensor(st, prefix + ".qzeros", "I32", {K / G, N / 8});
  const std::vector<float> scales = quant_floats(quant_tensor(st, prefix + ".scales", "F16", {K / G, N}));
  // Nibble i of a word holds output column kOrder[i] of its eight.
  static constexpr int kNibbleOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // the inverse of [0, 2, 4, 6, 1, 3, 5, 7]
  QuantWeight q = quant_weight_make(QuantFormat::int4, N, K, G, s.describe());
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t n = 0; n < N; ++n) put_nibble(q, n, k, nibble(word(qw, k * (N / 8) + n / 8), kNibbleOf[n % 8]));
  }
  const int64_t groups = K / G;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      const float z = float(nibble(word(qz, g * (N / 8) + n / 8), kNibbleOf[n % 8]));
      const float sc = scales[size_t(g * N + n)];
      q.scales[size_t(n * groups + g)] = sc;
      q.offsets[size_t(n * groups + g)] = -z * sc;
    }
  }
  return q;
}

QuantWeight quant_load_gptq(const SafetensorsSet& st, const QuantScheme& s, const std::string& prefix,
                            int64_t rows, int64_t cols) {
  const int64_t N = rows, K = cols, G = s.group_size < 0 ? cols : s.group_size;
  check_divisible(prefix, N, K, G);
  const int64_t groups = K / G;
  const SafetensorsTensor& qw = quant_tensor(st, prefix + ".qweight", "I32", {K / 8, N});
  const SafetensorsTensor& qz = quant_tensor(st, prefix + ".qzeros", "I32", {groups, N / 8});
  const std::vector<float> scales = quant_floats(quant_tensor(st, prefix + ".scales", "F16", {groups, N}));

  // g_idx says which group each input column belongs to. Ours groups adjacent
  // stored columns, so with act-order the columns are stored sorted by group
  // (k_perm) and each group must then hold exactly G of them.
  std::vector<int32_t> g_idx(static_cast<size_t>(K));
  if (st.find(prefix + ".g_idx")) {
    const SafetensorsTensor& gi = quant_tensor(st, prefix + ".g_idx", "I32", {K});
    std::memcpy(g_idx.data(), gi.data, size_t(K) * 4);
  } else {
    for (int64_t k = 0; k < K; ++k) g_idx[size_t(k)] = int32_t(k / G);
  }
  std::vector<int32_t> perm(static_cast<size_t>(K));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return g_idx[size_t(a)] < g_idx[size_t(b)]; });
  bool identity = true;
  for (int64_t j = 0; j < K; ++j) {
    if (g_idx[size_t(perm[size_t(j)])] != j / G)
      load_error("'" + prefix + ".g_idx' does not assign " + std::to_string(G) + " input columns to each of " +
                 std::to_string(groups) + " groups");
    identity = identity && perm[size_t(j)] == j;
  }

  const std::string act_order = identity ? "" : " act-order";
  QuantWeight q = quant_weight_make(QuantFormat::int4, N, K, G, s.describe() + act_order);
  if (!identity) q.k_perm = perm;
  for (int64_t j = 0; j < K; ++j) {
    const int64_t k = perm[size_t(j)];
    for (int64_t n = 0; n < N; ++n) put_nibble(q, n, j, nibble(word(qw, (k / 8) * N + n), k % 8));
  }
  const float zero_add = s.gptq_zeros_minus_one ? 1.0f : 0.0f;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      // The "gptq" format stores z - 1; a stored 15 is then 16 (AutoGPTQ adds one
      // after unpacking, so its asymmetric zero point 0 comes back as 16).
      const float z = float(nibble(word(qz, g * (N / 8) + n / 8), n % 8)) + zero_add;
      const float sc = scales[size_t(g * N + n)];
      q.scales[size_t(n * groups + g)] = sc;
      q.offsets[size_t(n * groups + g)] = -z * sc;
    }
  }
  return q;
}

}  // namespace bg
