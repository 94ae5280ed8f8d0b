#include "sched/seq_budget.h"

#include <algorithm>

namespace bg {

int64_t seq_blocks(int32_t seq_len, int32_t block_size, int32_t kv_window) {
  const int64_t full = (int64_t(seq_len) + block_size - 1) / block_size;
  if (kv_window <= 0) return std::max<int64_t>(1, full);
  return std::max<int64_t>(1, std::min(full, int64_t(kv_window) / block_size + 2));
}

int32_t seqs_fitting(int64_t num_blocks, int32_t block_size, int32_t seq_len, int32_t kv_window,
                     int32_t max_seqs) {
  const int64_t n = num_blocks / seq_blocks(seq_len, block_size, kv_window);
  return int32_t(std::clamp<int64_t>(n, 1, std::max(1, max_seqs)));
}

}  // namespace bg
