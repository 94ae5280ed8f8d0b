// The paged KV cache's bookkeeping: fixed-size blocks of `block_size` token slots,
// a free list, per-sequence block tables, per-block reference counts and the
// prefix cache's index of full blocks. Pure logic: it hands out block ids; the
// model owns the memory they index.
//
// A sequence's table maps its token positions onto slots:
//   slot(pos) = table[pos / block_size] * block_size + pos % block_size.
// Reference counts let several sequences share a block (prefix sharing). Running
// out of blocks is not an error here: growing a table reports "no room" and
// changes nothing, and the scheduler decides whom to preempt.
//
// Prefix cache: a full block whose K/V are written can be registered under a
// BlockKey (a hash chained over the previous block's hash, its token ids and a
// salt, plus the tokens and parent hash themselves, compared on lookup so a hash
// collision can never share the wrong K/V). A registered block whose last
// reference goes is not forgotten: it waits in an LRU pool, still findable, and is
// evicted (its key dropped) only when an allocation finds no never-cached block
// left. num_free() counts both kinds: everything an allocation may take.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace bg {

using SeqHandle = uint64_t;

// What a full block holds: its chain hash, the chain hash of the block before it
// (the salt's seed for block 0), and its block_size token ids.
struct BlockKey {
  uint64_t hash = 0;
  uint64_t parent = 0;
  const int32_t* tokens = nullptr;
};

// The chain hash of a block: `parent` is the previous block's hash (or
// block_hash_seed(salt) for the first block), `tokens` its n token ids.
uint64_t block_hash(uint64_t parent, const int32_t* tokens, int32_t n);
// The parent of a sequence's first block; the salt separates caches whose K/V
// differ for the same tokens (model, adapter).
uint64_t block_hash_seed(uint64_t salt);

class BlockManager {
 public:
  // num_blocks >= 0 blocks of block_size >= 1 slots.
  BlockManager(int64_t num_blocks, int32_t block_size);

  int32_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return int64_t(ref_counts_.size()); }
  // Blocks an allocation may take: never-cached free ones plus the LRU pool.
  int64_t num_free() const { return int64_t(free_.size() + lru_.size()); }
  int64_t num_used() const { return num_blocks() - num_free(); }
  // Free blocks that still hold a registered prefix (the LRU pool).
  int64_t num_cached_free() const { return int64_t(lru_.size()); }
  // Blocks registered in the prefix index (in use or in the pool).
  int64_t num_cached() const { return int64_t(index_.size()); }
  int64_t evictions() const { return evictions_; }

  // Blocks needed to hold num_tokens slots.
  int64_t blocks_for(int64_t num_tokens) const {
    return (num_tokens + block_size_ - 1) / block_size_;
  }

  // Grows seq's table so that it holds at least num_tokens slots, taking blocks
  // from the free list, then from the LRU pool's oldest (a new seq starts with an
  // empty table). Returns false and changes nothing when there are not enough.
  bool ensure_capacity(SeqHandle seq, int64_t num_tokens);

  // Whether ensure_capacity(seq, num_tokens) would succeed now.
  bool can_hold(SeqHandle seq, int64_t num_tokens) const;

  // Slots seq's table holds now (blocks * block_size; 0 for an unknown seq).
  int64_t capacity(SeqHandle seq) const;

  // Appends an existing block to seq's table and takes a reference on it: the
  // block is then shared. The block must be in use or registered in the prefix
  // index (then it leaves the LRU pool). Sharing is for full blocks of identical
  // prefixes; writers must not write into a block whose ref_count() > 1.
  void append_shared(SeqHandle seq, int32_t block);

  // The registered block holding exactly `key` (hash, parent and tokens equal),
  // or -1.
  int32_t lookup(const BlockKey& key) const;

  // Registers block `index` of seq's table (full, its K/V written) under key.
  // A no-op when the key is already registered (another block computed the same
  // prefix: the first one stays the one found) or the block already has a key.
  void register_block(SeqHandle seq, int64_t index, const BlockKey& key);

  // Drops seq's references on its first `count` table entries, which become -1
  // (positions no attention will read again: outside every layer's window). The
  // table keeps its length, so slots of later positions do not move.
  void release_front(SeqHandle seq, int64_t count);

  // Drops seq's table and one reference on each of its blocks. Unknown seq: no-op.
  void free_seq(SeqHandle seq);

  // seq's block ids in position order (empty for an unknown seq); -1 for entries
  // dropped by release_front.
  const std::vector<int32_t>& table(SeqHandle seq) const;

  // KV slot of token `pos` of seq; pos must be < capacity(seq).
  int32_t slot(SeqHandle seq, int64_t pos) const;

  int32_t ref_count(int32_t block) const { return ref_counts_.at(size_t(block)); }
  bool has_seq(SeqHandle seq) const { return tables_.count(seq) != 0; }
  size_t num_seqs() const { return tables_.size(); }

 private:
  int32_t take_block();
  void unref(int32_t block);
  bool registered(int32_t block) const { return keys_[size_t(block)].tokens != nullptr; }

  int32_t block_size_;
  std::vector<int32_t> free_;         // never-cached free blocks; stack, lowest ids first
  std::vector<int32_t> ref_counts_;   // [num_blocks]
  std::unordered_map<SeqHandle, std::vector<int32_t>> tables_;
  // Prefix index: hash -> block; per block its key (tokens point into tokens_).
  std::unordered_map<uint64_t, int32_t> index_;
  std::vector<BlockKey> keys_;        // [num_blocks]; tokens == nullptr: not registered
  std::vector<int32_t> tokens_;       // [num_blocks * block_size] token ids of registered blocks
  std::list<int32_t> lru_;            // registered blocks with no reference, oldest first
  std::vector<std::list<int32_t>::iterator> lru_pos_;  // [num_blocks], valid while in lru_
  int64_t evictions_ = 0;
};

}  // namespace bg
