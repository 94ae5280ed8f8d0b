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

void logits_process_row_cpu(float* l, int64_t vocab, const SampleExtras& x, int64_t r) {
  const size_t ri = size_t(r);
  if (x.has_bias()) {
    for (int32_t i = x.bias_offsets[ri]; i < x.bias_offsets[ri + 1]; ++i) {
      const int32_t t = x.bias_tokens[size_t(i)];
      if (t >= 0 && t < vocab) l[t] += x.bias_values[size_t(i)];
    }
  }
  if (x.has_penalties()) {
    const float rep = x.repetition.empty() ? 1.0f : x.repetition[ri];
    const float freq = x.frequency.empty() ? 0.0f : x.frequency[ri];
    const float pres = x.presence.empty() ? 0.0f : x.presence[ri];
    for (int32_t i = x.pen_offsets[ri]; i < x.pen_offsets[ri + 1]; ++i) {
      const int32_t t = x.pen_tokens[size_t(i)];
      const int32_t c = x.pen_counts[size_t(i)];
      if (t < 0 || t >= vocab) continue;
      float v = l[t];
      if (rep != 1.0f) v = v > 0 ? v / rep : v * rep;
      if (c > 0) v -= freq * float(c) + pres;
      l[t] = v;
    }
  }
  if (x.has_masks() && x.mask_row[ri] >= 0) {
    const uint32_t* m = x.masks.data() + size_t(x.mask_row[ri]) * size_t(x.mask_words);
    for (int64_t i = 0; i < vocab; ++i) {
      if (!((m[i >> 5] >> (i & 31)) & 1u)) l[i] = -std::numeric_limits<float>::infinity();
    }
  }
}

void logprobs_row_cpu(const float* l, int64_t vocab, int32_t k, int32_t sampled,
                      const SampleLogprobs& out, int64_t r) {
  auto value = [&](int64_t i) {
    const float v = l[i];
    return v == v ? v : -std::numeric_limits<float>::infinity();
  };
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, value(i));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(value(i)) - double(mx));
  const double lse = double(mx) + std::log(sum);
  out.sampled[r] = float(double(value(sampled)) - lse);
  k = std::min(k, int32_t(std::min<int64_t>(vocab, kMaxTopLogprobs)));
  if (k <= 0) return;
  // The k best by (logit desc, id asc): a small insertion list.
  std::vector<std::pair<float, int32_t>> best;
  best.reserve(size_t(k) + 1);
  for (int64_t i = 0; i < vocab; ++i) {
    const float v = value(i);
    if (int32_t(best.size()) == k && !(v > best.back().first)) continue;
    auto pos = std::upper_bound(best.begin(), best.end(), v,
                                [](float a, const std::pair<float, int32_t>& b) { return a > b.first; });
    best.insert(pos, {v, int32_t(i)});
    if (int32_t(best.size()) > k) best.pop_back();
  }
  for (int32_t j = 0; j < k; ++j) {
    out.top_ids[r * kMaxTopLogprobs + j] = best[size_t(j)].second;
    out.top_logprobs[r * kMaxTopLogprobs + j] = float(double(best[size_t(j)].first) - lse);
  }
}

void sample_rows_cpu(const float* logits, int64_t rows, int64_t vocab, int64_t stride,
                     const std::vector<SampleRow>& params, int32_t* out_ids,
                     const SampleExtras* x, const SampleLogprobs* lp) {
  const bool process = x && (x->has_bias() || x->has_penalties() || x->has_masks());
  std::vector<float> row;
  for (int64_t r = 0; r < rows; ++r) {
    const float* raw = logits + r * stride;
    if (process) {
      row.assign(raw, raw + vocab);
      logits_process_row_cpu(row.data(), vocab, *x, r);
      out_ids[r] = sample_row_cpu(row.data(), vocab, params[size_t(r)]);
    } else {
      out_ids[r] = sample_row_cpu(raw, vocab, params[size_t(r)]);
    }
    if (x && x->has_logprobs() && x->top_logprobs[size_t(r)] >= 0 && lp) {
      logprobs_row_cpu(raw, vocab, x->top_logprobs[size_t(r)], out_ids[r], *lp, r);
    }
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
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) {
    fail("presence_penalty must be in [-2, 2], got " + std::to_string(p.presence_penalty));
  }
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2)) {
    fail("frequency_penalty must be in [-2, 2], got " + std::to_string(p.frequency_penalty));
  }
  if (!(p.repetition_penalty > 0 && p.repetition_penalty <= 10)) {
    fail("repetition_penalty must be in (0, 10] (1 = off), got " + std::to_string(p.repetition_penalty));
  }
  for (const auto& b : p.logit_bias) {
    if (b.first < 0 || b.first >= vocab_size) {
      fail("logit_bias names token " + std::to_string(b.first) + ", outside the vocabulary [0, " +
           std::to_string(vocab_size) + ")");
    }
    if (!(b.second >= -100 && b.second <= 100)) {
      fail("logit_bias values must be in [-100, 100], got " + std::to_string(b.second));
    }
  }
  if (p.logprobs < -1 || p.logprobs > kMaxTopLogprobs) {
    fail("logprobs must be -1 (off) or a count of alternatives in [0, 20], got " + std::to_string(p.logprobs));
  }
  if (p.format != SamplingParams::Format::text && p.ignore_eos) {
    fail("a JSON response format cannot be combined with ignore_eos: the line ends on an end-of-sequence token");
  }
  if (p.format == SamplingParams::Format::json_schema && p.json_schema.empty()) {
    fail("response format json_schema needs a schema");
  }
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i) {
    int32_t id = p.stop_token_ids[i];
    if (id < 0 || id >= vocab_size) {
      fail("stop_token_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
           " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
}

}  // namespace bg
