// What the engine keeps per request beyond the scheduler's Request for the
// sampler's extras: the grammar's state, generated-token counts for the
// penalties, and the logprobs gathered so far. One RequestExtras per live request
// that uses any of them; the engine builds each step's SampleExtras from them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "batchgen/engine.h"
#include "batchgen/sampling.h"
#include "grammar/token_mask.h"

namespace bg {

struct RequestExtras {
  std::unique_ptr<grammar::GrammarState> grammar;
  bool grammar_failed = false;
  std::unordered_map<int32_t, int32_t> counts;   // generated token -> times
  size_t counted = 0;                             // output tokens already in counts
  std::vector<int32_t> prompt_distinct;           // sorted; filled when repetition_penalty != 1
  std::vector<float> logprobs;
  std::vector<int32_t> top_ids;
  std::vector<float> top_lps;

  static bool wanted(const SamplingParams& p) {
    return p.format != SamplingParams::Format::text || p.logprobs >= 0 || p.presence_penalty != 0 ||
           p.frequency_penalty != 0 || p.repetition_penalty != 1 || !p.logit_bias.empty();
  }
};

// One step's rows: collects SampleExtras row by row (add_row in sampling-row order).
class SampleExtrasBuilder {
 public:
  SampleExtrasBuilder(int32_t rows, int32_t vocab, int32_t mask_words);
  // Row r of the step; extras null for a request with none. The row's stop ids
  // (p.stop_token_ids) end it under a grammar, beside the model's EOS ids.
  void add_row(const SamplingParams& p, RequestExtras* extras, const std::vector<int32_t>& prompt,
               const std::vector<int32_t>& output);
  // Computes the grammar masks of the rows added with one (budget per row), on up
  // to `threads` threads; eos_ids and each row's stop ids are allowed once its
  // value can end.
  void fill_masks(const std::vector<int32_t>& eos_ids, int threads);
  void set_budget(int32_t row, int32_t budget) { budgets_[size_t(row)] = budget; }
  SampleExtras& extras() { return x_; }
  bool any() const { return any_; }
  int64_t masks() const { return int64_t(mask_states_.size()); }

 private:
  SampleExtras x_;
  int32_t rows_ = 0, vocab_ = 0, next_ = 0;
  bool any_ = false;
  std::vector<int32_t> budgets_;
  std::vector<const grammar::GrammarState*> mask_states_;   // per mask slot
  std::vector<int32_t> mask_rows_;                         // row of each mask slot
  std::vector<const std::vector<int32_t>*> mask_stops_;    // stop ids of each mask slot
};

// Appends a result's logprobs (k alternatives per token) from its extras.
void request_extras_to_result(const RequestExtras& e, int32_t k, GenerateResult& g);

}  // namespace bg
