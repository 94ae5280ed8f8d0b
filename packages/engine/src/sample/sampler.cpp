#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
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

// The candidates sorted lazily: only as long a prefix as the walk needs, so a
// peaked distribution over a 256k vocabulary does not pay for a full sort.
class SortedPrefix {
 public:
  explicit SortedPrefix(std::vector<Candidate>& c) : c_(c) {}
  const Candidate& at(size_t i) {
    if (i >= sorted_) {
      size_t upto = std::min(c_.size(), std::max({i + 1, 2 * sorted_, size_t(64)}));
      std::partial_sort(c_.begin() + long(sorted_), c_.begin() + long(upto), c_.end(), before);
      sorted_ = upto;
    }
    return c_[i];
  }

 private:
  std::vector<Candidate>& c_;
  size_t sorted_ = 0;
};

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
  double total = 0;  // kept mass, summed in id order
  for (int64_t i = 0; i < vocab; ++i) {
    if (!(logits[i] > -std::numeric_limits<float>::infinity())) continue;
    double p = std::exp((double(logits[i]) - max_logit) * inv_t);
    if (p == 0.0 || p < min_p) continue;  // p_max is exp(0) = 1
    cand.push_back(Candidate{p, int32_t(i)});
    total += p;
  }

  if (params.top_k > 0 && size_t(params.top_k) < cand.size()) {
    std::nth_element(cand.begin(), cand.begin() + params.top_k, cand.end(), before);
    cand.resize(size_t(params.top_k));
    std::sort(cand.begin(), cand.end(),
              [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
    total = 0;
    for (const Candidate& c : cand) total += c.p;
  }

  SortedPrefix sorted(cand);
  const size_t n = cand.size();
  size_t kept = n;
  double kept_mass = total;
  if (params.top_p < 1.0f) {
    const double need = double(params.top_p) * total;
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += sorted.at(i).p;
      if (cum >= need) {
        kept = i + 1;
        kept_mass = cum;
        break;
      }
    }
  }

  const double target = double(rng_uniform(params.seed, params.position)) * kept_mass;
  double cum = 0;
  for (size_t i = 0; i < kept; ++i) {
    cum += sorted.at(i).p;
    if (cum > target) return sorted.at(i).id;
  }
  return sorted.at(kept - 1).id;  // rounding left the target at the very top
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
