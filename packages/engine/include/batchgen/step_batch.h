// The description of one engine step: which tokens run, where they sit in the KV
// cache, and which rows need logits. Built by the scheduler's output on the host,
// uploaded once per step by the backend, and passed explicitly to every op (no
// per-step globals).
#pragma once
#include <cstdint>
#include <vector>

#include "batchgen/tensor.h"

namespace bg {

// Host-side step description. T = tokens this step, S = sequences this step.
// Tokens of one sequence are consecutive; sequences appear in `seq_*` order.
struct StepBatch {
  std::vector<int32_t> token_ids;      // [T]
  std::vector<int32_t> positions;      // [T] absolute position of each token in its sequence
  std::vector<int32_t> slot_mapping;   // [T] KV slot = block_id * block_size + offset
  std::vector<int32_t> cu_seq_q;       // [S+1] token offsets: seq s owns tokens [cu_seq_q[s], cu_seq_q[s+1])
  std::vector<int32_t> context_lens;   // [S] KV length of seq s after this step's writes
  std::vector<int32_t> block_tables;   // [S * max_blocks_per_seq], -1 padded
  int32_t max_blocks_per_seq = 0;
  int32_t max_q_len = 0;               // max over s of this step's tokens for seq s
  int32_t max_context_len = 0;         // max over s of context_lens[s]
  std::vector<int32_t> logit_rows;     // [R] token rows whose logits are wanted, in output order
  // [S] LoRA adapter slot of each sequence (-1: the base model alone); empty when
  // no sequence of the step has an adapter.
  std::vector<int32_t> lora_slots;

  int32_t num_tokens() const { return int32_t(token_ids.size()); }
  int32_t num_seqs() const { return int32_t(context_lens.size()); }
};

// The consistency checks every backend's upload_step makes before it trusts the
// batch's indexes: nullptr when consistent, else what is wrong. Header-only so the
// CUDA library (linked before bg_core) can use it too.
inline const char* step_batch_problem(const StepBatch& b) {
  const int32_t T = b.num_tokens(), S = b.num_seqs();
  if (b.positions.size() != size_t(T) || b.slot_mapping.size() != size_t(T))
    return "step batch: positions/slot_mapping size differs from token_ids";
  if (b.cu_seq_q.size() != size_t(S) + 1) return "step batch: cu_seq_q must have num_seqs + 1 entries";
  if (b.block_tables.size() != size_t(S) * size_t(b.max_blocks_per_seq))
    return "step batch: block_tables size != num_seqs * max_blocks_per_seq";
  if (S > 0 && (b.cu_seq_q[0] != 0 || b.cu_seq_q[size_t(S)] != T))
    return "step batch: cu_seq_q must run from 0 to num_tokens";
  for (int32_t s = 0; s < S; ++s) {
    const int32_t q = b.cu_seq_q[size_t(s) + 1] - b.cu_seq_q[size_t(s)];
    if (q < 0 || q > b.context_lens[size_t(s)]) return "step batch: a sequence has more new tokens than context";
  }
  for (int32_t r : b.logit_rows)
    if (r < 0 || r >= T) return "step batch: logit row outside the batch";
  if (!b.lora_slots.empty() && b.lora_slots.size() != size_t(S))
    return "step batch: lora_slots must be empty or have num_seqs entries";
  return nullptr;
}

// The step's LoRA segments, flat [G * 3]: (first token row, rows, adapter slot) for
// each run of consecutive sequences that share an adapter; sequences without one
// (slot -1) are left out. Backends upload this at upload_step (StepTensors).
inline std::vector<int32_t> lora_segments_build(const StepBatch& b) {
  std::vector<int32_t> seg;
  for (size_t s = 0; s < b.lora_slots.size(); ++s) {
    const int32_t slot = b.lora_slots[s], row0 = b.cu_seq_q[s], rows = b.cu_seq_q[s + 1] - row0;
    if (slot < 0 || rows == 0) continue;
    const size_t n = seg.size();
    if (n && seg[n - 1] == slot && seg[n - 3] + seg[n - 2] == row0) {
      seg[n - 2] += rows;
    } else {
      seg.insert(seg.end(), {row0, rows, slot});
    }
  }
  return seg;
}

// The same description in backend memory (i32 tensors), made by Backend::upload_step.
// Scalars stay on the host so kernels can be sized without a read-back.
struct StepTensors {
  Tensor token_ids, positions, slot_mapping, cu_seq_q, context_lens, block_tables, logit_rows;
  int32_t num_tokens = 0, num_seqs = 0, max_blocks_per_seq = 0, max_q_len = 0,
          max_context_len = 0, num_logit_rows = 0;
  // Backend-private data the backend derives from the step at upload (the CUDA
  // backend's attention work list); backends that need none leave it empty.
  Tensor work;
  int32_t num_work = 0;
  // LoRA segments (lora_segments_build), [G, 3] i32 in backend memory; G = 0 when
  // no sequence of the step has an adapter. max_lora_rows: the largest segment.
  Tensor lora_segments;
  int32_t num_lora_segments = 0, max_lora_rows = 0;
  int32_t num_decode_work = 0, num_combine_work = 0;  // the CUDA backend's further sections of `work`
};

// Fills the scalars of StepTensors' LoRA part from host segments (upload_step).
inline void lora_segments_count(const std::vector<int32_t>& seg, StepTensors& st) {
  st.num_lora_segments = int32_t(seg.size() / 3);
  st.max_lora_rows = 0;
  for (size_t g = 0; g + 2 < seg.size(); g += 3) st.max_lora_rows = seg[g + 1] > st.max_lora_rows ? seg[g + 1] : st.max_lora_rows;
}

}  // namespace bg
