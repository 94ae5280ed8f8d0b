// Host sampler cost per row (sample_row_cpu) on a Gemma-sized vocabulary with
// standard-normal logits (a nearly flat distribution, the worst case for the
// inverse-CDF walk; trained models are far more peaked). Median of 9 runs of 50 rows.
//
//   sampler_bench [vocab]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "sample/sampler.h"

using namespace bg;

int main(int argc, char** argv) {
  const int64_t vocab = argc > 1 ? std::atoll(argv[1]) : 256000;
  std::mt19937 g(1);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& x : logits) x = normal(g);

  struct Mode {
    const char* name;
    SampleRow row;
  };
  const Mode modes[] = {
      {"greedy", SampleRow{0.0f, 0, 1.0f, 0.0f, 0, 0}},
      {"temperature 1", SampleRow{1.0f, 0, 1.0f, 0.0f, 0, 0}},
      {"temperature 0.7, top-k 50", SampleRow{0.7f, 50, 1.0f, 0.0f, 0, 0}},
      {"temperature 1, top-p 0.9", SampleRow{1.0f, 0, 0.9f, 0.0f, 0, 0}},
      {"temperature 1, min-p 0.05", SampleRow{1.0f, 0, 1.0f, 0.05f, 0, 0}},
  };
  std::printf("vocab %lld, ms per row (median of 9 x 50 rows)\n", static_cast<long long>(vocab));
  for (const Mode& m : modes) {
    std::vector<double> runs;
    int64_t sink = 0;
    for (int run = 0; run < 9; ++run) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 50; ++i) {
        SampleRow r = m.row;
        r.seed = uint64_t(run * 50 + i);
        r.position = i;
        sink += sample_row_cpu(logits.data(), vocab, r);
      }
      runs.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 50);
    }
    std::sort(runs.begin(), runs.end());
    std::printf("  %-28s %7.3f ms  (best %.3f)  [%lld]\n", m.name, runs[4], runs[0],
                static_cast<long long>(sink));
  }
  return 0;
}
