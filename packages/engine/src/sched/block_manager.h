// The paged KV cache's bookkeeping: fixed-size blocks of `block_size` token slots,
// a free list, per-sequence block tables and per-block reference counts. Pure
// logic: it hands out block ids; the model owns the memory they index.
//
// A sequence's table maps its token positions onto slots:
//   slot(pos) = table[pos / block_size] * block_size + pos % block_size.
// Reference counts let several sequences share a block (prefix sharing); a block
// returns to the free list when its last reference goes. Running out of blocks is
// not an error here: growing a table reports "no room" and changes nothing, and
// the scheduler decides whom to preempt.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace bg {

using SeqHandle = uint64_t;

class BlockManager {
 public:
  // num_blocks >= 0 blocks of block_size >= 1 slots.
  BlockManager(int64_t num_blocks, int32_t block_size);

  int32_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return int64_t(ref_counts_.size()); }
  int64_t num_free() const { return int64_t(free_.size()); }
  int64_t num_used() const { return num_blocks() - num_free(); }

  // Blocks needed to hold num_tokens slots.
  int64_t blocks_for(int64_t num_tokens) const {
    return (num_tokens + block_size_ - 1) / block_size_;
  }

  // Grows seq's table so that it holds at least num_tokens slots, taking blocks
  // from the free list (a new seq starts with an empty table). Returns false and
  // changes nothing when there are not enough free blocks.
  bool ensure_capacity(SeqHandle seq, int64_t num_tokens);

  // Whether ensure_capacity(seq, num_tokens) would succeed now.
  bool can_hold(SeqHandle seq, int64_t num_tokens) const;

  // Slots seq's table holds now (blocks * block_size; 0 for an unknown seq).
  int64_t capacity(SeqHandle seq) const;

  // Appends an existing (allocated) block to seq's table and takes a reference on
  // it: the block is then shared. Sharing is for full blocks of identical
  // prefixes; writers must not write into a block whose ref_count() > 1.
  void append_shared(SeqHandle seq, int32_t block);

  // Drops seq's table and one reference on each of its blocks. Unknown seq: no-op.
  void free_seq(SeqHandle seq);

  // seq's block ids in position order (empty for an unknown seq).
  const std::vector<int32_t>& table(SeqHandle seq) const;

  // KV slot of token `pos` of seq; pos must be < capacity(seq).
  int32_t slot(SeqHandle seq, int64_t pos) const;

  int32_t ref_count(int32_t block) const { return ref_counts_.at(size_t(block)); }
  bool has_seq(SeqHandle seq) const { return tables_.count(seq) != 0; }
  size_t num_seqs() const { return tables_.size(); }

 private:
  int32_t block_size_;
  std::vector<int32_t> free_;         // stack; the lowest ids are handed out first
  std::vector<int32_t> ref_counts_;   // [num_blocks]
  std::unordered_map<SeqHandle, std::vector<int32_t>> tables_;
};

}  // namespace bg
