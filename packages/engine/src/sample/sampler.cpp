#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "batchgen/tensor.h"
#include "sample/sample_levels.h"

namespace bg {
namespace {

constexpr uint64_t kOctave[256] = {BG_SAMPLE_OCTAVE_TABLE};

// The kept tokens as level counts: levels [0, last) whole, `last_n` tokens of
// level `last` (the first ones in candidate order).
struct Levels {
  std::vector<uint32_t> count;
  int32_t last = 0;
  uint64_t last_n = 0;
  uint64_t n(int32_t level) const { return level == last ? last_n : count[size_t(level)]; }
  uint64_t weight(int32_t level, bool by_count) const {
    return by_count ? 1 : sample_level_weight(kOctave, level);
  }
};

// The first level whose running total of weights (1 per token when by_count,
// else its level weight) crosses target (> when strict, >= otherwise), and the
// total before it. backend/cuda/sample.cu's level_cross computes the same.
std::pair<int32_t, uint64_t> level_cross(const Levels& lv, bool by_count, uint64_t target, bool strict) {
  uint64_t cum = 0, before_last = 0;
  for (int32_t l = 0; l <= lv.last; ++l) {
    const uint64_t through = cum + lv.n(l) * lv.weight(l, by_count);
    if (strict ? through > target : through >= target) return {l, cum};
    if (l == lv.last) before_last = cum;
    cum = through;
  }
  return {lv.last, before_last};  // unreachable: every target is below the total
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

  const float m = best_logit, c = sample_level_coef(params.temperature);
  Levels lv;
  lv.last = sample_level_cap(kOctave, params.min_p);
  lv.count.assign(size_t(lv.last) + 1, 0);
  uint64_t kept = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    const int32_t l = sample_level(logits[i], m, c);
    if (l <= lv.last) {
      ++lv.count[size_t(l)];
      ++kept;
    }
  }
  lv.last_n = lv.count[size_t(lv.last)];

  if (params.top_k > 0 && uint64_t(params.top_k) < kept) {
    const auto k = level_cross(lv, true, uint64_t(params.top_k), false);
    lv.last = k.first;
    lv.last_n = uint64_t(params.top_k) - k.second;
  }
  uint64_t mass = 0;
  for (int32_t l = 0; l <= lv.last; ++l) mass += lv.n(l) * lv.weight(l, false);
  if (params.top_p < 1.0f) {
    const uint64_t need = uint64_t(std::ceil(double(params.top_p) * double(mass)));
    const auto p = level_cross(lv, false, need, false);
    const uint64_t w = lv.weight(p.first, false);
    const uint64_t n = need > p.second ? (need - p.second + w - 1) / w : 1;
    lv.last_n = std::min(n, lv.n(p.first));
    lv.last = p.first;
    mass = p.second + lv.last_n * w;
  }
  const uint64_t target = uint64_t(std::floor(double(rng_uniform(params.seed, params.position)) * double(mass)));
  const auto d = level_cross(lv, false, target, true);
  const uint64_t j = std::min((target - std::min(target, d.second)) / lv.weight(d.first, false), lv.n(d.first) - 1);

  // The j-th token of the drawn level in (logit desc, id asc) order.
  std::vector<std::pair<float, int32_t>> in_level;
  for (int64_t i = 0; i < vocab; ++i) {
    if (sample_level(logits[i], m, c) == d.first) in_level.emplace_back(logits[i], int32_t(i));
  }
  auto before = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  std::nth_element(in_level.begin(), in_level.begin() + long(j), in_level.end(), before);
  return in_level[size_t(j)].second;
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
