#include "sched/block_manager.h"

#include <stdexcept>
#include <string>

namespace bg {

BlockManager::BlockManager(int64_t num_blocks, int32_t block_size) : block_size_(block_size) {
  if (block_size < 1) throw std::invalid_argument("block_size must be >= 1");
  if (num_blocks < 0 || num_blocks > INT32_MAX) throw std::invalid_argument("bad num_blocks");
  ref_counts_.assign(size_t(num_blocks), 0);
  free_.reserve(size_t(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

bool BlockManager::can_hold(SeqHandle seq, int64_t num_tokens) const {
  int64_t have = int64_t(table(seq).size());
  int64_t need = blocks_for(num_tokens) - have;
  return need <= num_free();
}

bool BlockManager::ensure_capacity(SeqHandle seq, int64_t num_tokens) {
  if (!can_hold(seq, num_tokens)) return false;
  std::vector<int32_t>& t = tables_[seq];
  int64_t need = blocks_for(num_tokens) - int64_t(t.size());
  for (int64_t i = 0; i < need; ++i) {
    int32_t b = free_.back();
    free_.pop_back();
    ref_counts_[size_t(b)] = 1;
    t.push_back(b);
  }
  return true;
}

int64_t BlockManager::capacity(SeqHandle seq) const {
  return int64_t(table(seq).size()) * block_size_;
}

void BlockManager::append_shared(SeqHandle seq, int32_t block) {
  if (block < 0 || size_t(block) >= ref_counts_.size() || ref_counts_[size_t(block)] == 0) {
    throw std::invalid_argument("append_shared: block " + std::to_string(block) +
                                " is not allocated");
  }
  ++ref_counts_[size_t(block)];
  tables_[seq].push_back(block);
}

void BlockManager::free_seq(SeqHandle seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  // Release in reverse so a re-admitted sequence gets the same blocks back in
  // the same order (not needed for correctness; it keeps runs reproducible).
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) {
    if (--ref_counts_[size_t(*b)] == 0) free_.push_back(*b);
  }
  tables_.erase(it);
}

const std::vector<int32_t>& BlockManager::table(SeqHandle seq) const {
  static const std::vector<int32_t> empty;
  auto it = tables_.find(seq);
  return it == tables_.end() ? empty : it->second;
}

int32_t BlockManager::slot(SeqHandle seq, int64_t pos) const {
  const std::vector<int32_t>& t = table(seq);
  return t.at(size_t(pos / block_size_)) * block_size_ + int32_t(pos % block_size_);
}

}  // namespace bg
