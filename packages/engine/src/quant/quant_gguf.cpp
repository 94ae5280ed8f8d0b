// GGUF Q4_0 and Q4_K tensors repacked into our int4 (group 32) at load, value for
// value what ggml dequantizes them to:
//   Q4_0 (32 values: f16 d, 16 bytes): w = d * (q - 8)  -> scale d, offset -8 d
//     (both exact in f32, so q * d - 8 d equals d * (q - 8); only its sign of
//     zero differs, +0 where ggml gives -0 for q = 8 and a negative d);
//   Q4_K (256 values: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128
//     bytes): sub-block j has d1 = d * sc_j, m1 = dmin * m_j and w = d1 * q - m1
//     -> scale d1, offset -m1 (the same two f32 operations).
#include <cstring>

#include "backend/dtype_convert.h"
#include "model/gguf.h"

namespace bg {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

}  // namespace

bool gguf_type_repacks_int4(uint32_t type) {
  return type == uint32_t(GgmlType::q4_0) || type == uint32_t(GgmlType::q4_k);
}

QuantWeight gguf_repack_int4(const GgufTensor& t, const std::string& file) {
  const std::vector<int64_t> shape = t.shape();
  const GgmlBlock blk = ggml_block(t.type);
  if (!gguf_type_repacks_int4(t.type) || shape.size() != 2 || shape[1] % blk.elems != 0)
    throw EngineError(ErrorCode::internal, file + ": tensor '" + t.name + "' cannot be repacked into int4");
  QuantWeight q = quant_weight_make(QuantFormat::int4, shape[0], shape[1], 32, "GGUF " + ggml_type_name(t.type));
  const int64_t groups = q.cols / 32;
  // Values a (low nibble) and b (high) of stored column pair 2i, 2i + 1.
  auto put = [&](int64_t r, int64_t j, uint8_t v) { q.data[size_t((r * q.cols + j) / 2)] |= uint8_t(v << ((j & 1) * 4)); };
  for (int64_t r = 0; r < q.rows; ++r) {
    const uint8_t* row = t.data + r * (q.cols / blk.elems) * blk.bytes;
    for (int64_t b = 0; b < q.cols / blk.elems; ++b) {
      const uint8_t* p = row + b * blk.bytes;
      const int64_t j0 = b * blk.elems;
      if (t.type == uint32_t(GgmlType::q4_0)) {
        const float d = f16_at(p);
        q.scales[size_t(r * groups + j0 / 32)] = d;
        q.offsets[size_t(r * groups + j0 / 32)] = -8.0f * d;
        for (int j = 0; j < 16; ++j) {
          put(r, j0 + j, p[2 + j] & 0x0F);
          put(r, j0 + j + 16, p[2 + j] >> 4);
        }
        continue;
      }
      const float d = f16_at(p), dmin = f16_at(p + 2);
      const uint8_t* qs = p + 16;
      for (int s = 0; s < 8; ++s) {
        uint8_t sc, m;
        ggml_scale_min_k4(s, p + 4, sc, m);
        const int64_t g = r * groups + (j0 + 32 * s) / 32;
        q.scales[size_t(g)] = d * float(sc);
        q.offsets[size_t(g)] = -(dmin * float(m));
        // Sub-blocks 2i and 2i + 1 share bytes 32i..32i+31: low nibbles, then high.
        const uint8_t* bytes = qs + 32 * (s / 2);
        for (int l = 0; l < 32; ++l) put(r, j0 + 32 * s + l, (s % 2) ? bytes[l] >> 4 : bytes[l] & 0x0F);
      }
    }
  }
  quant_validate(q, file + ": " + t.name);
  return q;
}

}  // namespace bg
