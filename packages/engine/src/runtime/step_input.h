// Input preparation: turns the scheduler's plan into the StepBatch the backend
// uploads (token ids, positions, KV slots, block tables, logit rows). Pure host
// logic, no backend: the same function feeds every backend.
#pragma once
#include <cstdint>
#include <vector>

#include "batchgen/step_batch.h"
#include "sched/block_manager.h"
#include "sched/scheduler.h"

namespace bg {

// One StepBatch for a scheduled step. Sequences keep `out.seqs` order; the logit
// rows are the last token of each sequence that samples, in the same order (so
// row r of the logits belongs to the r-th sampling sequence). Block tables hold
// the blocks covering each sequence's context, -1 padded to the step's widest.
StepBatch step_batch_build(const ScheduleOutput& out, const BlockManager& blocks);

// A single sequence's tokens [start, start + n) with logits for every one of
// them (prompt_logits). `tokens` is the whole sequence.
StepBatch step_batch_single(SeqHandle seq, const std::vector<int32_t>& tokens, int32_t start,
                            int32_t n, const BlockManager& blocks);

}  // namespace bg
