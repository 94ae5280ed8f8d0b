// Our ggml dequantizers against values the gguf Python package computed
// (packages/engine/test/gguf.test.ts writes the fixture and runs this):
//   gguf_check FIXTURE.gguf [MODEL.gguf]
// FIXTURE holds, for each type X, a tensor "q.X" of that type and "expect.X" (F32)
// with gguf.quants.dequantize's values; and for real tensors of MODEL, "real.NAME"
// (F32) holding the dequantized first values of MODEL's tensor NAME. Every value
// must match bit for bit. Prints one line a tensor; exits 1 on any mismatch.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "model/gguf.h"

using namespace bg;

namespace {

bool compare(const std::string& label, uint32_t type, const void* src, int64_t n, const GgufTensor& expect) {
  std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
  ggml_dequantize(type, src, n, got.data());
  std::memcpy(want.data(), expect.data, size_t(n) * 4);
  int64_t bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(&got[size_t(i)], &want[size_t(i)], 4) != 0) {
      ++bad;
      worst = std::max(worst, double(std::fabs(got[size_t(i)] - want[size_t(i)])));
    }
  }
  std::printf("%s %s %s: %lld values, %lld differ (max |diff| %g)\n", bad ? "FAIL" : "ok", label.c_str(),
              ggml_type_name(type).c_str(), static_cast<long long>(n), static_cast<long long>(bad), worst);
  return bad == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gguf_check FIXTURE.gguf [MODEL.gguf]\n");
    return 2;
  }
  try {
    auto fixture = GgufFile::open(argv[1]);
    std::unique_ptr<GgufFile> model = argc > 2 ? GgufFile::open(argv[2]) : nullptr;
    bool ok = true;
    int checked = 0;
    for (const GgufTensor& t : fixture->tensors()) {
      if (t.name.rfind("q.", 0) == 0) {
        const GgufTensor* expect = fixture->tensor("expect." + t.name.substr(2));
        if (!expect || expect->numel() != t.numel()) {
          std::printf("FAIL %s: no expect tensor of its size\n", t.name.c_str());
          ok = false;
          continue;
        }
        ok = compare(t.name, t.type, t.data, t.numel(), *expect) && ok;
        ++checked;
      } else if (t.name.rfind("real.", 0) == 0) {
        const std::string name = t.name.substr(5);
        const GgufTensor* src = model ? model->tensor(name) : nullptr;
        if (!src || src->numel() < t.numel()) {
          std::printf("FAIL %s: not in the model file\n", name.c_str());
          ok = false;
          continue;
        }
        ok = compare(name, src->type, src->data, t.numel(), t) && ok;
        ++checked;
      }
    }
    std::printf("%d tensors checked\n", checked);
    return ok && checked > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gguf_check: %s\n", e.what());
    return 1;
  }
}
