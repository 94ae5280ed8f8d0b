// Sampler: greedy, temperature, top-k, top-p, min-p, the seeded inverse CDF, slot
// independence and parameter validation.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "batchgen/tensor.h"
#include "check.h"
#include "sample/sampler.h"

using namespace bg;

namespace {

SampleRow row(float t, int32_t k = 0, float p = 1, float min_p = 0, uint64_t seed = 1,
              int32_t pos = 0) {
  return SampleRow{t, k, p, min_p, seed, pos};
}

// Weight of probability level L, computed independently of sample_levels.h's
// table: round(2^(40 - L / 256)).
uint64_t level_weight(int32_t level) {
  return uint64_t(std::llround(std::ldexp(std::exp2(-double(level % 256) / 256.0), 40))) >> (level / 256);
}

// The definition in sampler.h, written the slow obvious way: full sort.
int32_t reference_sample(const std::vector<float>& logits, const SampleRow& r) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(best)]) best = int32_t(i);
  if (r.temperature == 0 || r.top_k == 1) return best;
  const float m = logits[size_t(best)], c = 369.32993f / r.temperature;
  const uint64_t wmin = uint64_t(std::ceil(double(r.min_p) * 1099511627776.0));
  struct Cand { float x; int32_t id; uint64_t w; };
  std::vector<Cand> cand;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float y = (m - logits[i]) * c;
    if (logits[i] != m && !(y < 10240.0f)) continue;
    const int32_t level = logits[i] == m ? 0 : int32_t(std::lrint(y));
    if (level >= 10240 || level_weight(level) < wmin) continue;
    cand.push_back(Cand{logits[i], int32_t(i), level_weight(level)});
  }
  std::sort(cand.begin(), cand.end(),
            [](const Cand& a, const Cand& b) { return a.x != b.x ? a.x > b.x : a.id < b.id; });
  if (r.top_k > 0 && size_t(r.top_k) < cand.size()) cand.resize(size_t(r.top_k));
  uint64_t total = 0;
  for (const Cand& x : cand) total += x.w;
  if (r.top_p < 1) {
    const uint64_t need = uint64_t(std::ceil(double(r.top_p) * double(total)));
    uint64_t cum = 0;
    for (size_t i = 0; i < cand.size(); ++i) {
      cum += cand[i].w;
      if (cum >= need) {
        cand.resize(i + 1);
        total = cum;
        break;
      }
    }
  }
  const uint64_t target = uint64_t(std::floor(double(rng_uniform(r.seed, r.position)) * double(total)));
  uint64_t cum = 0;
  for (const Cand& x : cand) {
    cum += x.w;
    if (cum > target) return x.id;
  }
  return cand.back().id;
}

std::vector<float> random_logits(std::mt19937& g, int32_t vocab, float scale) {
  std::normal_distribution<float> n(0, scale);
  std::vector<float> v(static_cast<size_t>(vocab));
  for (float& x : v) x = n(g);
  return v;
}

// Empirical frequencies over many (seed, position) draws.
std::map<int32_t, int> histogram(const std::vector<float>& logits, SampleRow r, int n) {
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) {
    r.seed = uint64_t(i) * 7919 + 3;
    r.position = i % 97;
    ++h[sample_row_cpu(logits.data(), int64_t(logits.size()), r)];
  }
  return h;
}

}  // namespace

TEST_CASE(greedy_is_argmax_with_ties_to_the_lowest_id) {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  CHECK_EQ(sample_row_cpu(l.data(), 5, row(0)), 1);
  std::vector<float> nan = {NAN, 1.0f, NAN, 3.0f};
  CHECK_EQ(sample_row_cpu(nan.data(), 4, row(0)), 3);
  for (auto& kv : histogram(nan, row(1.0f), 500)) CHECK(kv.first == 1 || kv.first == 3);
  std::vector<float> dead = {-INFINITY, -INFINITY};
  CHECK_EQ(sample_row_cpu(dead.data(), 2, row(0)), 0);
  CHECK_EQ(sample_row_cpu(dead.data(), 2, row(0.7f)), 0);
  // top_k = 1 at any temperature is greedy too.
  CHECK_EQ(sample_row_cpu(l.data(), 5, row(5.0f, 1)), 1);
}

TEST_CASE(temperature_follows_the_softmax) {
  std::vector<float> l = {0.0f, 1.0f, 2.0f, 0.5f};
  const int n = 40000;
  for (float t : {1.0f, 0.5f, 2.0f}) {
    auto h = histogram(l, row(t), n);
    double z = 0;
    for (float x : l) z += std::exp(x / t);
    for (int32_t i = 0; i < 4; ++i) {
      double expect = std::exp(l[size_t(i)] / t) / z;
      double got = double(h[i]) / n;
      CHECK(std::fabs(got - expect) < 0.012);
    }
  }
}

TEST_CASE(top_k_top_p_min_p_cut_the_tail) {
  // Probabilities ~ 0.5, 0.3, 0.15, 0.05 (logits are their logs).
  std::vector<float> l = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  auto only = [](const std::map<int32_t, int>& h, std::vector<int32_t> allowed) {
    for (auto& kv : h)
      if (std::find(allowed.begin(), allowed.end(), kv.first) == allowed.end()) return false;
    return h.size() == allowed.size();
  };
  CHECK(only(histogram(l, row(1, 2), 4000), {1, 3}));
  CHECK(only(histogram(l, row(1, 3), 4000), {0, 1, 3}));
  CHECK(only(histogram(l, row(1, 0, 0.7f), 4000), {1, 3}));     // 0.5 + 0.3 >= 0.7
  CHECK(only(histogram(l, row(1, 0, 0.5f), 4000), {1}));        // 0.5 reaches 0.5
  CHECK(only(histogram(l, row(1, 0, 0.81f), 4000), {0, 1, 3}));
  CHECK(only(histogram(l, row(1, 0, 1, 0.5f), 4000), {1, 3}));  // >= 0.25
  CHECK(only(histogram(l, row(1, 0, 1, 0.2f), 4000), {0, 1, 3}));
  CHECK(only(histogram(l, row(1, 0, 1, 1.0f), 4000), {1}));
  // Within the kept set, the mass is renormalised: 0.5/0.8 vs 0.3/0.8.
  auto h = histogram(l, row(1, 2), 20000);
  CHECK(std::fabs(h[1] / 20000.0 - 0.625) < 0.015);
}

TEST_CASE(the_draw_is_the_inverse_cdf_of_the_seeded_uniform) {
  std::vector<float> l = {1.0f, 1.0f, 0.0f};  // ties: id 0 before id 1
  // Token 2 sits at level round(256 * log2(e)) = 369: weight ~ 2^40 / e.
  const uint64_t w = level_weight(0), w2 = level_weight(369);
  CHECK(std::fabs(double(w2) / double(w) - std::exp(-1.0)) < 1e-3);
  int counts[3] = {0, 0, 0};
  for (int32_t pos = 0; pos < 200; ++pos) {
    SampleRow r = row(1, 0, 1, 0, 42, pos);
    const uint64_t target = uint64_t(std::floor(double(rng_uniform(42, pos)) * double(2 * w + w2)));
    int32_t expect = target < w ? 0 : (target < 2 * w ? 1 : 2);
    CHECK_EQ(sample_row_cpu(l.data(), 3, r), expect);
    ++counts[expect];
  }
  CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
}

TEST_CASE(levels_quantise_probabilities_within_a_seventh_of_a_percent) {
  // Rounding the level to a 1/256 octave moves a weight by at most 2^(1/512);
  // weights >= 2^20 (p >= 2^-20) lose under 1e-6 more to the integer.
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-13.0f * 0.3f, 0.0f);
  for (int i = 0; i < 2000; ++i) {
    const float x = u(g), t = 0.3f + float(i % 5) * 0.4f;
    const int32_t level = int32_t(std::lrint((0.0f - x) * (369.32993f / t)));
    if (level >= 20 * 256) continue;
    const double exact = std::exp(double(x) / double(t)) * 1099511627776.0;
    CHECK(std::fabs(double(level_weight(level)) / exact - 1.0) < 1.4e-3);
  }
}

TEST_CASE(matches_the_full_sort_definition_on_a_large_vocab) {
  std::mt19937 g(7);
  for (int trial = 0; trial < 300; ++trial) {
    float scale = trial % 3 == 0 ? 0.3f : (trial % 3 == 1 ? 3.0f : 10.0f);
    auto l = random_logits(g, 5000, scale);
    SampleRow r = row(0.2f + float(trial % 7) * 0.3f, trial % 4 == 0 ? 40 : 0,
                      trial % 5 == 0 ? 0.9f : 1.0f, trial % 6 == 0 ? 0.05f : 0.0f,
                      uint64_t(trial) * 1000003, trial);
    CHECK_EQ(sample_row_cpu(l.data(), 5000, r), reference_sample(l, r));
  }
}

TEST_CASE(rows_do_not_depend_on_their_slot_or_batch_mates) {
  std::mt19937 g(11);
  const int64_t vocab = 300, stride = 320, rows = 16;
  std::vector<float> logits(size_t(rows * stride), 0.0f);
  std::vector<SampleRow> params;
  for (int64_t r = 0; r < rows; ++r) {
    auto l = random_logits(g, int32_t(vocab), 2.0f);
    std::copy(l.begin(), l.end(), logits.begin() + r * stride);
    params.push_back(row(r % 4 == 0 ? 0.0f : 0.8f, int32_t(r % 3) * 10, 0.95f, 0.01f,
                         uint64_t(r) + 100, int32_t(r) * 5));
  }
  std::vector<int32_t> batched(static_cast<size_t>(rows));
  sample_rows_cpu(logits.data(), rows, vocab, stride, params, batched.data());
  // Reversed order, one at a time.
  for (int64_t r = rows - 1; r >= 0; --r) {
    int32_t alone = -1;
    sample_rows_cpu(logits.data() + r * stride, 1, vocab, vocab, {params[size_t(r)]}, &alone);
    CHECK_EQ(alone, batched[size_t(r)]);
  }
  // Different seeds or positions give different streams.
  std::vector<float> flat(64, 0.0f);
  std::map<int32_t, int> seen;
  for (int32_t pos = 0; pos < 50; ++pos) ++seen[sample_row_cpu(flat.data(), 64, row(1, 0, 1, 0, 9, pos))];
  CHECK(seen.size() > 20);
}

TEST_CASE(validation_names_the_field) {
  auto ok = SamplingParams{};
  sampling_params_validate(ok, 100);
  auto bad = [&](auto mutate, const char* text) {
    SamplingParams p;
    mutate(p);
    CHECK_THROWS_WITH(sampling_params_validate(p, 100), EngineError, text);
    try {
      sampling_params_validate(p, 100);
    } catch (const EngineError& e) {
      CHECK(e.code == ErrorCode::invalid_argument);
    }
  };
  bad([](SamplingParams& p) { p.temperature = -0.1f; }, "temperature");
  bad([](SamplingParams& p) { p.temperature = NAN; }, "temperature");
  bad([](SamplingParams& p) { p.temperature = INFINITY; }, "temperature");
  bad([](SamplingParams& p) { p.top_k = -1; }, "top_k");
  bad([](SamplingParams& p) { p.top_p = 0; }, "top_p");
  bad([](SamplingParams& p) { p.top_p = 1.5f; }, "top_p");
  bad([](SamplingParams& p) { p.top_p = NAN; }, "top_p");
  bad([](SamplingParams& p) { p.min_p = -0.5f; }, "min_p");
  bad([](SamplingParams& p) { p.min_p = 2; }, "min_p");
  bad([](SamplingParams& p) { p.max_tokens = 0; }, "max_tokens");
  bad([](SamplingParams& p) { p.stop_token_ids = {5, 100}; }, "stop_token_ids[1]");
  bad([](SamplingParams& p) { p.stop_token_ids = {-1}; }, "stop_token_ids[0]");
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
