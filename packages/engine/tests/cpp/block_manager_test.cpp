// Block manager: allocation, "no room" without side effects, slots, sharing.
#include <set>
#include <vector>

#include "check.h"
#include "sched/block_manager.h"

using bg::BlockKey;
using bg::BlockManager;

namespace {
// The key of a block of `tokens` after `parent` (block size = tokens.size()).
struct Key {
  std::vector<int32_t> tokens;
  uint64_t parent;
  BlockKey key() const {
    return BlockKey{bg::block_hash(parent, tokens.data(), int32_t(tokens.size())), parent, tokens.data()};
  }
};
}  // namespace

TEST_CASE(grows_tables_block_by_block) {
  BlockManager bm(8, 4);
  CHECK_EQ(bm.num_free(), 8);
  CHECK(bm.ensure_capacity(1, 1));
  CHECK_EQ(bm.table(1).size(), size_t(1));
  CHECK(bm.ensure_capacity(1, 4));  // still one block
  CHECK_EQ(bm.table(1).size(), size_t(1));
  CHECK(bm.ensure_capacity(1, 5));
  CHECK_EQ(bm.table(1).size(), size_t(2));
  CHECK_EQ(bm.capacity(1), 8);
  CHECK_EQ(bm.num_used(), 2);
  CHECK(bm.ensure_capacity(1, 3));  // shrinking requests change nothing
  CHECK_EQ(bm.table(1).size(), size_t(2));
}

TEST_CASE(no_room_changes_nothing) {
  BlockManager bm(3, 4);
  CHECK(bm.ensure_capacity(1, 8));
  CHECK(!bm.ensure_capacity(2, 5));  // needs 2, 1 free
  CHECK(!bm.has_seq(2));
  CHECK_EQ(bm.num_free(), 1);
  CHECK(!bm.can_hold(1, 13));
  CHECK(!bm.ensure_capacity(1, 13));
  CHECK_EQ(bm.table(1).size(), size_t(2));
  CHECK(bm.ensure_capacity(2, 4));
  CHECK_EQ(bm.num_free(), 0);
}

TEST_CASE(free_returns_blocks_and_tables_never_overlap) {
  BlockManager bm(10, 2);
  CHECK(bm.ensure_capacity(1, 6));
  CHECK(bm.ensure_capacity(2, 4));
  CHECK(bm.ensure_capacity(3, 8));
  std::set<int32_t> seen;
  for (bg::SeqHandle s : {1, 2, 3})
    for (int32_t b : bm.table(s)) CHECK(seen.insert(b).second);
  CHECK_EQ(seen.size(), size_t(9));
  bm.free_seq(2);
  CHECK_EQ(bm.num_free(), 3);
  CHECK(!bm.has_seq(2));
  bm.free_seq(2);  // unknown: no-op
  CHECK_EQ(bm.num_free(), 3);
  CHECK(bm.ensure_capacity(4, 6));
  CHECK_EQ(bm.num_free(), 0);
}

TEST_CASE(slots_follow_the_table) {
  BlockManager bm(4, 4);
  CHECK(bm.ensure_capacity(7, 1));
  CHECK(bm.ensure_capacity(9, 4));
  CHECK(bm.ensure_capacity(7, 6));
  const auto& t = bm.table(7);
  CHECK_EQ(t.size(), size_t(2));
  CHECK_EQ(bm.slot(7, 0), t[0] * 4);
  CHECK_EQ(bm.slot(7, 3), t[0] * 4 + 3);
  CHECK_EQ(bm.slot(7, 5), t[1] * 4 + 1);
  CHECK_THROWS(bm.slot(7, 8));  // beyond the table
}

TEST_CASE(shared_blocks_are_reference_counted) {
  BlockManager bm(4, 4);
  CHECK(bm.ensure_capacity(1, 8));
  int32_t b0 = bm.table(1)[0];
  bm.append_shared(2, b0);
  CHECK_EQ(bm.ref_count(b0), 2);
  CHECK(bm.ensure_capacity(2, 5));  // its own second block
  CHECK_EQ(bm.num_free(), 1);
  bm.free_seq(1);
  CHECK_EQ(bm.ref_count(b0), 1);  // still held by seq 2
  CHECK_EQ(bm.num_free(), 2);
  bm.free_seq(2);
  CHECK_EQ(bm.ref_count(b0), 0);
  CHECK_EQ(bm.num_free(), 4);
  CHECK_THROWS(bm.append_shared(3, b0));  // not allocated any more
}

TEST_CASE(zero_blocks_and_bad_sizes) {
  BlockManager empty(0, 16);
  CHECK(!empty.ensure_capacity(1, 1));
  CHECK(empty.ensure_capacity(1, 0));
  CHECK_THROWS(BlockManager(4, 0));
  CHECK_THROWS(BlockManager(-1, 4));
}

TEST_CASE(hash_chain_depends_on_parent_tokens_and_salt) {
  const std::vector<int32_t> a{1, 2, 3, 4}, b{1, 2, 3, 5};
  const uint64_t s0 = bg::block_hash_seed(0), s1 = bg::block_hash_seed(1);
  CHECK(s0 != s1);
  CHECK_EQ(bg::block_hash(s0, a.data(), 4), bg::block_hash(s0, a.data(), 4));
  CHECK(bg::block_hash(s0, a.data(), 4) != bg::block_hash(s0, b.data(), 4));
  CHECK(bg::block_hash(s0, a.data(), 4) != bg::block_hash(s1, a.data(), 4));
  const uint64_t h = bg::block_hash(s0, a.data(), 4);
  CHECK(bg::block_hash(h, a.data(), 4) != h);
}

TEST_CASE(registered_blocks_are_found_shared_and_kept_after_free) {
  BlockManager bm(4, 4);
  Key k0{{1, 2, 3, 4}, bg::block_hash_seed(0)};
  CHECK_EQ(bm.lookup(k0.key()), -1);
  CHECK(bm.ensure_capacity(1, 6));
  const int32_t b0 = bm.table(1)[0];
  bm.register_block(1, 0, k0.key());
  CHECK_EQ(bm.lookup(k0.key()), b0);
  CHECK_EQ(bm.num_cached(), 1);
  // Same hash, other tokens or parent: never a match.
  BlockKey forged = k0.key();
  const std::vector<int32_t> other{1, 2, 3, 9};
  forged.tokens = other.data();
  CHECK_EQ(bm.lookup(forged), -1);
  forged = k0.key();
  forged.parent ^= 1;
  CHECK_EQ(bm.lookup(forged), -1);
  // A second block with the same key leaves the first one registered.
  CHECK(bm.ensure_capacity(2, 4));
  bm.register_block(2, 0, k0.key());
  CHECK_EQ(bm.lookup(k0.key()), b0);
  CHECK_THROWS(bm.register_block(2, 3, k0.key()));  // no such table entry
  bm.free_seq(2);
  bm.free_seq(1);
  // b0 is free (allocatable) but still cached; the other blocks are plain free.
  CHECK_EQ(bm.num_free(), 4);
  CHECK_EQ(bm.num_cached_free(), 1);
  CHECK_EQ(bm.ref_count(b0), 0);
  CHECK_EQ(bm.lookup(k0.key()), b0);
  bm.append_shared(3, b0);  // revived from the pool
  CHECK_EQ(bm.ref_count(b0), 1);
  CHECK_EQ(bm.num_cached_free(), 0);
  CHECK_EQ(bm.num_free(), 3);
  bm.free_seq(3);
  CHECK_EQ(bm.num_cached_free(), 1);
}

TEST_CASE(allocation_evicts_cached_blocks_only_when_needed_oldest_first) {
  BlockManager bm(3, 2);
  Key k[3] = {{{1, 1}, 7}, {{2, 2}, 7}, {{3, 3}, 7}};
  for (bg::SeqHandle s = 1; s <= 3; ++s) {
    CHECK(bm.ensure_capacity(s, 2));
    bm.register_block(s, 0, k[s - 1].key());
  }
  // Freed in the order 2, 1, 3: the pool's oldest is 2's block.
  const int32_t b1 = bm.table(1)[0], b2 = bm.table(2)[0], b3 = bm.table(3)[0];
  bm.free_seq(2);
  bm.free_seq(1);
  bm.free_seq(3);
  CHECK_EQ(bm.num_cached_free(), 3);
  CHECK(bm.ensure_capacity(9, 2));
  CHECK_EQ(bm.table(9)[0], b2);
  CHECK_EQ(bm.lookup(k[1].key()), -1);  // evicted
  CHECK_EQ(bm.lookup(k[0].key()), b1);
  CHECK_EQ(bm.lookup(k[2].key()), b3);
  CHECK_EQ(bm.evictions(), 1);
  CHECK(bm.ensure_capacity(9, 6));
  CHECK_EQ(bm.num_cached(), 0);
  CHECK_EQ(bm.evictions(), 3);
  CHECK(!bm.ensure_capacity(9, 8));
  // An evicted block is an ordinary one again: freeing it does not cache it.
  bm.free_seq(9);
  CHECK_EQ(bm.num_cached_free(), 0);
  CHECK_EQ(bm.num_free(), 3);
  CHECK_THROWS(bm.append_shared(4, b1));
}

TEST_CASE(never_cached_blocks_are_taken_before_the_pool) {
  BlockManager bm(4, 2);
  Key k{{5, 6}, 1};
  CHECK(bm.ensure_capacity(1, 2));
  bm.register_block(1, 0, k.key());
  bm.free_seq(1);
  CHECK(bm.ensure_capacity(2, 6));  // the three never-cached blocks
  CHECK(bm.lookup(k.key()) >= 0);
  CHECK_EQ(bm.evictions(), 0);
  CHECK(bm.ensure_capacity(2, 8));  // now the pool
  CHECK_EQ(bm.lookup(k.key()), -1);
}

TEST_CASE(release_front_drops_leading_blocks_and_keeps_slots) {
  BlockManager bm(6, 2);
  CHECK(bm.ensure_capacity(1, 9));  // 5 blocks
  const std::vector<int32_t> before = bm.table(1);
  bm.release_front(1, 3);
  CHECK_EQ(bm.num_free(), 4);
  CHECK_EQ(bm.table(1).size(), size_t(5));
  CHECK_EQ(bm.table(1)[2], -1);
  CHECK_EQ(bm.slot(1, 7), before[3] * 2 + 1);
  CHECK_THROWS(bm.slot(1, 1));
  bm.release_front(1, 3);  // again: nothing more
  CHECK_EQ(bm.num_free(), 4);
  CHECK(bm.ensure_capacity(1, 12));  // grows at the end
  CHECK_EQ(bm.num_free(), 3);
  bm.free_seq(1);
  CHECK_EQ(bm.num_free(), 6);
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
