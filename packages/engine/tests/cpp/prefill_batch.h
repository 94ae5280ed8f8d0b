// A step of fresh prompts for op tests: sequence s prefills q_lens[s] tokens at
// positions 0.. with no KV slots (slot -1), context = its own tokens; lora_slots as
// given (empty: no adapters). Token ids are 0: the ops under test do not read them.
#pragma once
#include <algorithm>
#include <vector>

#include "batchgen/step_batch.h"

namespace bg {

inline StepBatch prefill_batch(const std::vector<int32_t>& q_lens, std::vector<int32_t> lora_slots = {}) {
  StepBatch b;
  b.cu_seq_q.push_back(0);
  for (int32_t q : q_lens) {
    for (int32_t i = 0; i < q; ++i) {
      b.token_ids.push_back(0);
      b.positions.push_back(i);
      b.slot_mapping.push_back(-1);
    }
    b.cu_seq_q.push_back(b.cu_seq_q.back() + q);
    b.context_lens.push_back(q);
    b.max_q_len = std::max(b.max_q_len, q);
    b.max_context_len = std::max(b.max_context_len, q);
  }
  b.lora_slots = std::move(lora_slots);
  return b;
}

}  // namespace bg
