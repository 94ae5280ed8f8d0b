// How many sequences the paged KV cache runs at once: the default of
// EngineOptions::max_seqs. Pure arithmetic, beside the scheduler that applies it.
#pragma once
#include <cstdint>

namespace bg {

// Blocks one sequence of seq_len tokens holds at its longest. kv_window > 0 (every
// layer windowed, Scheduler kv_window): blocks wholly behind the window are released,
// so at most window / block_size + 2 stay.
int64_t seq_blocks(int32_t seq_len, int32_t block_size, int32_t kv_window);

// Sequences of seq_len tokens that fit in num_blocks blocks together, within
// [1, max_seqs]: admitting more would only get them preempted when they grow,
// admitting fewer would leave blocks idle.
int32_t seqs_fitting(int64_t num_blocks, int32_t block_size, int32_t seq_len, int32_t kv_window,
                     int32_t max_seqs);

}  // namespace bg
