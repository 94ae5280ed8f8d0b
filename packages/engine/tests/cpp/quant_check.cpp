// Quantized linear layers against PyTorch (packages/engine/test/quantized.test.ts
// writes the checkpoints with tools/quant_reference.py and runs this):
//   quant_check CASE_DIR [--quantize-fp8]
// CASE_DIR/model is a checkpoint; CASE_DIR/check.safetensors holds, for linear P,
// w.P (the weight dequantized by the format's documented formula), x.P [T, K] and
// y.P = x @ w^T (float64, stored f32). For each P this loads the weight with our
// reader (or, with --quantize-fp8, quantizes the float weight as the engine does)
// and checks:
//   1. our dequantized weight equals w.P bit for bit (both sides compute the
//      format's formula in f32 with the same operations);
//   2. the CPU backend's quantized product (a NaN-poisoned output buffer) is bit
//      for bit the dense product with w.P, and within 1e-5 * sum_k |x_k w_k| of
//      y.P: f32 accumulation over K <= 256 terms (eps 6e-8 each) cannot lose more.
// Prints one line a linear; exits 1 on any failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "batchgen/backend.h"
#include "model/model.h"
#include "quant/quant_hf.h"

using namespace bg;

namespace {

std::vector<float> f32_of(const SafetensorsTensor& t) { return quant_floats(t); }

Tensor upload(Backend& b, const std::vector<float>& v, int64_t rows, int64_t cols) {
  Tensor t = b.alloc(DType::f32, rows, cols);
  b.upload(t, 0, v.data(), DType::f32, rows);
  return t;
}

std::vector<float> run(Backend& b, const Tensor& x, int64_t n, const QuantLinear* q, const Tensor* dense) {
  Tensor out = b.alloc(DType::f32, x.rows, n);
  const std::vector<float> nan(size_t(x.rows * n), std::numeric_limits<float>::quiet_NaN());
  b.upload(out, 0, nan.data(), DType::f32, x.rows);
  if (q) {
    b.linear_quant(x, *q, nullptr, out);
  } else {
    b.linear(x, *dense, nullptr, out);
  }
  std::vector<float> got(size_t(x.rows * n));
  b.copy_to_host_f32(out, got.data());
  b.free(out);
  return got;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: quant_check CASE_DIR [--quantize-fp8]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const bool quantize_fp8 = argc > 2 && std::string(argv[2]) == "--quantize-fp8";
  try {
    const ModelConfig cfg = model_config_load(dir + "/model");
    const SafetensorsSet st = SafetensorsSet::open_dir(dir + "/model");
    auto check = SafetensorsFile::open(dir + "/check.safetensors");
    auto backend = cpu_backend_create(BackendOptions{});
    bool ok = true;
    int checked = 0;
    for (const SafetensorsTensor& wt : check->tensors()) {
      if (wt.name.rfind("w.", 0) != 0) continue;
      const std::string prefix = wt.name.substr(2);
      const SafetensorsTensor *xt = nullptr, *yt = nullptr;
      for (const SafetensorsTensor& t : check->tensors()) {
        if (t.name == "x." + prefix) xt = &t;
        if (t.name == "y." + prefix) yt = &t;
      }
      if (!xt || !yt) {
        std::printf("FAIL %s: no x/y tensors\n", prefix.c_str());
        ok = false;
        continue;
      }
      const int64_t N = wt.shape[0], K = wt.shape[1], T = xt->shape[0];
      std::optional<QuantWeight> q;
      if (quantize_fp8) {
        const std::vector<float> src = quant_floats(st.get(prefix + ".weight"));
        q = quant_fp8_per_channel(src.data(), N, K);
      } else {
        q = quant_linear_load(st, cfg.quant, prefix, N, K);
      }
      if (!q) {
        std::printf("FAIL %s: not quantized in the checkpoint\n", prefix.c_str());
        ok = false;
        continue;
      }
      const std::vector<float> want_w = f32_of(wt), x = f32_of(*xt), y = f32_of(*yt);
      std::vector<float> got_w(size_t(N * K));
      quant_dequantize_rows(*q, 0, N, got_w.data());
      int64_t w_diff = 0;
      for (size_t i = 0; i < got_w.size(); ++i) w_diff += std::memcmp(&got_w[i], &want_w[i], 4) != 0;

      Tensor xd = upload(*backend, x, T, K), wd = upload(*backend, want_w, N, K);
      std::unique_ptr<QuantLinear> ql = backend->quant_upload(*q);
      const std::vector<float> got = run(*backend, xd, N, ql.get(), nullptr);
      const std::vector<float> dense = run(*backend, xd, N, nullptr, &wd);
      backend->free(xd);
      backend->free(wd);
      int64_t dense_diff = 0, bad = 0;
      double worst = 0;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t n = 0; n < N; ++n) {
          const size_t i = size_t(t * N + n);
          dense_diff += std::memcmp(&got[i], &dense[i], 4) != 0;
          double mag = 0;
          for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(x[size_t(t * K + k)]) * want_w[size_t(n * K + k)]);
          const double err = std::fabs(double(got[i]) - double(y[i])) / std::max(mag, 1e-30);
          worst = std::max(worst, std::isnan(err) ? INFINITY : err);
          bad += !(err <= 1e-5);
        }
      }
      const bool pass = w_diff == 0 && dense_diff == 0 && bad == 0;
      ok = ok && pass;
      ++checked;
      std::printf("%s %s [%lld x %lld] %s g%lld (%s): weight values differing %lld, quantized vs dense product "
                  "differing %lld, max err vs PyTorch %.2e of sum|x w|\n",
                  pass ? "ok" : "FAIL", prefix.c_str(), static_cast<long long>(N), static_cast<long long>(K),
                  quant_format_name(q->format), static_cast<long long>(q->group_size), q->source.c_str(),
                  static_cast<long long>(w_diff), static_cast<long long>(dense_diff), worst);
    }
    std::printf("%d linears checked\n", checked);
    return ok && checked > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_check: %s\n", e.what());
    return 1;
  }
}
