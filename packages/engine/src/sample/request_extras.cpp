#include "sample/request_extras.h"

#include <algorithm>
#include <future>

namespace bg {

SampleExtrasBuilder::SampleExtrasBuilder(int32_t rows, int32_t vocab, int32_t mask_words)
    : rows_(rows), vocab_(vocab), budgets_(size_t(rows), 0) {
  x_.mask_words = mask_words;
}

void SampleExtrasBuilder::add_row(const SamplingParams& p, RequestExtras* e, const std::vector<int32_t>& prompt,
                                  const std::vector<int32_t>& output) {
  const size_t r = size_t(next_++);
  auto lazy = [&](auto& v, auto fill) {  // a list exists once a row needs it
    if (v.empty()) v.assign(size_t(rows_), fill);
  };
  if (!e) return;
  any_ = true;
  const bool penalties = p.presence_penalty != 0 || p.frequency_penalty != 0 || p.repetition_penalty != 1;
  if (penalties) {
    if (x_.pen_offsets.empty()) x_.pen_offsets.assign(size_t(rows_) + 1, 0);
    lazy(x_.presence, 0.0f);
    lazy(x_.frequency, 0.0f);
    lazy(x_.repetition, 1.0f);
    x_.presence[r] = p.presence_penalty;
    x_.frequency[r] = p.frequency_penalty;
    x_.repetition[r] = p.repetition_penalty;
    for (; e->counted < output.size(); ++e->counted) ++e->counts[output[e->counted]];
    for (const auto& tc : e->counts) {
      x_.pen_tokens.push_back(tc.first);
      x_.pen_counts.push_back(tc.second);
    }
    if (p.repetition_penalty != 1) {
      if (e->prompt_distinct.empty()) {
        e->prompt_distinct = prompt;
        std::sort(e->prompt_distinct.begin(), e->prompt_distinct.end());
        e->prompt_distinct.erase(std::unique(e->prompt_distinct.begin(), e->prompt_distinct.end()),
                                 e->prompt_distinct.end());
      }
      for (int32_t t : e->prompt_distinct) {
        if (e->counts.count(t)) continue;
        x_.pen_tokens.push_back(t);
        x_.pen_counts.push_back(0);
      }
    }
  }
  if (!p.logit_bias.empty()) {
    if (x_.bias_offsets.empty()) x_.bias_offsets.assign(size_t(rows_) + 1, 0);
    for (const auto& b : p.logit_bias) {
      x_.bias_tokens.push_back(b.first);
      x_.bias_values.push_back(b.second);
    }
  }
  // Offsets of rows without a list stay equal to their predecessor's end.
  if (!x_.pen_offsets.empty()) x_.pen_offsets[r + 1] = int32_t(x_.pen_tokens.size());
  if (!x_.bias_offsets.empty()) x_.bias_offsets[r + 1] = int32_t(x_.bias_tokens.size());
  if (p.logprobs >= 0) {
    lazy(x_.top_logprobs, -1);
    x_.top_logprobs[r] = p.logprobs;
  }
  if (e->grammar && !e->grammar_failed) {
    lazy(x_.mask_row, -1);
    x_.mask_row[r] = int32_t(mask_states_.size());
    mask_states_.push_back(e->grammar.get());
    mask_rows_.push_back(int32_t(r));
    mask_stops_.push_back(&p.stop_token_ids);
  }
}

void SampleExtrasBuilder::fill_masks(const std::vector<int32_t>& eos_ids, int threads) {
  // Rows added after the last list began have offsets still 0: carry the ends forward.
  for (size_t r = 1; r < x_.pen_offsets.size(); ++r) x_.pen_offsets[r] = std::max(x_.pen_offsets[r], x_.pen_offsets[r - 1]);
  for (size_t r = 1; r < x_.bias_offsets.size(); ++r) x_.bias_offsets[r] = std::max(x_.bias_offsets[r], x_.bias_offsets[r - 1]);
  const size_t n = mask_states_.size();
  if (n == 0) return;
  const size_t words = size_t(x_.mask_words);
  x_.masks.assign(n * words, 0);
  auto work = [&](size_t lo, size_t hi) {
    std::vector<int32_t> end_ids;
    for (size_t i = lo; i < hi; ++i) {
      end_ids = eos_ids;
      end_ids.insert(end_ids.end(), mask_stops_[i]->begin(), mask_stops_[i]->end());
      const grammar::GrammarState* g = mask_states_[i];
      g->grammar().fill_mask(g->state(), budgets_[size_t(mask_rows_[i])], end_ids, x_.masks.data() + i * words);
    }
  };
  const size_t t = std::max<size_t>(1, std::min<size_t>(size_t(threads), n));
  if (t == 1) {
    work(0, n);
    return;
  }
  std::vector<std::future<void>> parts;
  for (size_t k = 1; k < t; ++k) parts.push_back(std::async(std::launch::async, work, n * k / t, n * (k + 1) / t));
  work(0, n / t);
  for (auto& f : parts) f.get();
}

void request_extras_to_result(const RequestExtras& e, int32_t k, GenerateResult& g) {
  if (k < 0) return;
  g.logprobs = e.logprobs;
  g.top_logprobs_k = k;
  g.top_logprob_ids = e.top_ids;
  g.top_logprobs = e.top_lps;
}

}  // namespace bg
