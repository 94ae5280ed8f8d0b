// Block manager: allocation, "no room" without side effects, slots, sharing.
#include <set>

#include "check.h"
#include "sched/block_manager.h"

using bg::BlockManager;

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

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
