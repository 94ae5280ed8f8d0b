// What the engine keeps per request beyond the scheduler's Request for the
// sampler's extras: the grammar's state, generated-token counts for the
// penalties, and the logprobs gathered so far. One RequestExtras per live request
// that uses any of them; the engine builds each step's SampleExtras from them.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "batchgen/engine.h"
#include "backend/cpu/thread_pool.h"
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
  // Computes the grammar masks of the rows added with one (budget per row) on the
  // pool's threads (the caller's alone when null); eos_ids and each row's stop ids
  // are allowed once its value can end. Rows whose masks are equal share one:
  // same grammar state (the state's entry is cached in its CompiledGrammar), same
  // budget clamp (CompiledGrammar::budget_clamp) and same stop ids. A batch on one
  // schema has a few dozen distinct masks a step however many rows it runs, so
  // this is what the host computes and a device uploads.
  void fill_masks(const std::vector<int32_t>& eos_ids, ThreadPool* pool);
  void set_budget(int32_t row, int32_t budget) { budgets_[size_t(row)] = budget; }
  SampleExtras& extras() { return x_; }
  bool any() const { return any_; }
  int64_t masks() const { return int64_t(mask_states_.size()); }       // rows under a grammar
  int64_t distinct_masks() const { return int64_t(x_.masks.size()) / std::max(1, x_.mask_words); }

 private:
  SampleExtras x_;
  int32_t rows_ = 0, vocab_ = 0, next_ = 0;
  bool any_ = false;
  std::vector<int32_t> budgets_;
  std::vector<const grammar::GrammarState*> mask_states_;   // per row under a grammar
  std::vector<int32_t> mask_rows_;                         // its row
  std::vector<const std::vector<int32_t>*> mask_stops_;    // its stop ids
};

// Appends a result's logprobs (k alternatives per token) from its extras.
void request_extras_to_result(const RequestExtras& e, int32_t k, GenerateResult& g);

}  // namespace bg
