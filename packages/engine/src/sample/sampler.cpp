#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "batchgen/tensor.h"

namespace bg {
namespace {

struct Candidate {
  double p;
  int32_t id;
};

// Probability descending, then id ascending: the one candidate order.
bool before(const Candidate& a, const Candidate& b) {
  return a.p != b.p ? a.p > b.p : a.id < b.id;
}

// Where a walk over candidates in order stops: the first candidate at which the
// running sum of weights crosses a target.
struct Crossing {
  bool crossed = false;
  Candidate at{0, 0};              // the crossing candidate (when crossed)
  double sum = 0;                  // running sum through `at` (the total when not crossed)
  std::vector<Candidate> prefix;   // candidates up to and including `at`, if asked (any order)
};

uint64_t order_key(double p) {  // for p > 0 the bit pattern grows with p
  uint64_t k;
  std::memcpy(&k, &p, sizeof k);
  return k;
}

// Walks `c` in candidate order adding each one's weight (p, or 1 when by_count)
// until the sum crosses `target` (> when strict, else >=). Equivalent to sorting
// and walking, without the sort: candidates are bucketed by the top bits of
// their probability, the bucket holding the crossing is found from bucket sums,
// and only that bucket is sorted. A few branch-free passes instead of a sort of
// the whole vocabulary (256k for Gemma).
Crossing walk_until(const std::vector<Candidate>& c, double target, bool strict, bool by_count,
                    bool want_prefix) {
  constexpr uint64_t kBuckets = 4096;
  auto crosses = [&](double s) { return strict ? s > target : s >= target; };
  Crossing out;
  if (c.empty()) return out;
  uint64_t kmin = UINT64_MAX, kmax = 0;
  for (const Candidate& x : c) {
    kmin = std::min(kmin, order_key(x.p));
    kmax = std::max(kmax, order_key(x.p));
  }
  int shift = 0;
  while (((kmax - kmin) >> shift) >= kBuckets) ++shift;
  auto bucket = [&](const Candidate& x) { return (order_key(x.p) - kmin) >> shift; };
  std::vector<double> sums(size_t((kmax - kmin) >> shift) + 1, 0.0);
  for (const Candidate& x : c) sums[bucket(x)] += by_count ? 1.0 : x.p;

  double base = 0;
  size_t b = sums.size();
  while (b > 0 && !crosses(base + sums[b - 1])) base += sums[--b];
  if (b == 0) {  // the whole set does not reach the target
    out.sum = base;
    if (want_prefix) out.prefix = c;
    return out;
  }
  const uint64_t hit = b - 1;
  std::vector<Candidate> in_hit;
  if (want_prefix) out.prefix.reserve(c.size());
  for (const Candidate& x : c) {
    const uint64_t xb = bucket(x);
    if (xb == hit) in_hit.push_back(x);
    else if (want_prefix && xb > hit) out.prefix.push_back(x);
  }
  std::sort(in_hit.begin(), in_hit.end(), before);
  for (size_t i = 0; i < in_hit.size(); ++i) {
    base += by_count ? 1.0 : in_hit[i].p;
    // The bucket sum crossed; if rounding keeps its parts short, its last one does.
    if (crosses(base) || i + 1 == in_hit.size()) {
      out.crossed = true;
      out.at = in_hit[i];
      out.sum = base;
      if (want_prefix) out.prefix.insert(out.prefix.end(), in_hit.begin(), in_hit.begin() + long(i) + 1);
      break;
    }
  }
  return out;
}

}  // namespace

int32_t sample_row_cpu(const float* logits, int64_t vocab, const SampleRow& params) {
  int64_t best = -1;
  float best_logit = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) {
    if (logits[i] > best_logit) {  // NaN never compares greater
      best_logit = logits[i];
      best = i;
    }
  }
  if (best < 0) return 0;  // every logit -inf or NaN: nothing to prefer
  if (params.temperature == 0.0f || params.top_k == 1) return int32_t(best);

  const double inv_t = 1.0 / double(params.temperature);
  const double max_logit = double(best_logit);
  const double min_p = double(params.min_p);
  std::vector<Candidate> cand;
  cand.reserve(size_t(vocab));
  double total = 0;  // mass of the candidates, summed in id order
  for (int64_t i = 0; i < vocab; ++i) {
    if (!(logits[i] > -std::numeric_limits<float>::infinity())) continue;
    double p = std::exp((double(logits[i]) - max_logit) * inv_t);
    if (p == 0.0 || p < min_p) continue;  // p_max is exp(0) = 1
    cand.push_back(Candidate{p, int32_t(i)});
    total += p;
  }

  if (params.top_k > 0 && size_t(params.top_k) < cand.size()) {
    cand = walk_until(cand, double(params.top_k), false, true, true).prefix;
    total = 0;
    for (const Candidate& c : cand) total += c.p;
  }
  if (params.top_p < 1.0f) {
    Crossing nucleus = walk_until(cand, double(params.top_p) * total, false, false, true);
    if (nucleus.crossed) {
      cand = std::move(nucleus.prefix);
      total = nucleus.sum;
    }
  }

  const double target = double(rng_uniform(params.seed, params.position)) * total;
  Crossing draw = walk_until(cand, target, true, false, false);
  if (draw.crossed) return draw.at.id;
  // Rounding left the target at the very top: the last candidate in order.
  return std::max_element(cand.begin(), cand.end(), before)->id;
}

void sample_rows_cpu(const float* logits, int64_t rows, int64_t vocab, int64_t stride,
                     const std::vector<SampleRow>& params, int32_t* out_ids) {
  for (int64_t r = 0; r < rows; ++r) {
    out_ids[r] = sample_row_cpu(logits + r * stride, vocab, params[size_t(r)]);
  }
}

void sampling_params_validate(const SamplingParams& p, int32_t vocab_size) {
  auto fail = [](const std::string& msg) { throw EngineError(ErrorCode::invalid_argument, msg); };
  if (!std::isfinite(p.temperature) || p.temperature < 0) {
    fail("temperature must be a finite number >= 0 (0 = greedy), got " +
         std::to_string(p.temperature));
  }
  if (p.top_k < 0) fail("top_k must be >= 0 (0 = off), got " + std::to_string(p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    fail("top_p must be in (0, 1] (1 = off), got " + std::to_string(p.top_p));
  }
  if (!(p.min_p >= 0 && p.min_p <= 1)) {
    fail("min_p must be in [0, 1] (0 = off), got " + std::to_string(p.min_p));
  }
  if (p.max_tokens < 1) fail("max_tokens must be >= 1, got " + std::to_string(p.max_tokens));
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i) {
    int32_t id = p.stop_token_ids[i];
    if (id < 0 || id >= vocab_size) {
      fail("stop_token_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
           " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
}

}  // namespace bg
