// Input preparation: StepBatch fields from a scheduled step, no model.
#include "check.h"
#include "runtime/step_input.h"

using namespace bg;

namespace {
SchedulerConfig cfg(int32_t budget) {
  SchedulerConfig c;
  c.max_batch_tokens = budget;
  c.max_seqs = 8;
  c.max_model_len = 1000;
  return c;
}
}  // namespace

TEST_CASE(a_decode_and_a_prefill_chunk) {
  Scheduler s(cfg(8), 16, 4);
  SamplingParams sp;
  sp.max_tokens = 10;
  s.add("a", {11, 12, 13, 14, 15}, sp, 0);
  ScheduleOutput o1 = s.schedule();  // a: 5 prompt tokens, samples
  CHECK_EQ(o1.num_sampling, 1);
  int32_t tok = 77;
  s.update(o1, &tok);
  s.add("b", {21, 22, 23, 24, 25, 26, 27, 28, 29, 30}, sp, 0);
  ScheduleOutput o = s.schedule();  // a decodes 1; b gets a 7-token chunk
  StepBatch b = step_batch_build(o, s.blocks());
  CHECK_EQ(b.num_tokens(), 8);
  CHECK_EQ(b.num_seqs(), 2);
  CHECK(b.token_ids == (std::vector<int32_t>{77, 21, 22, 23, 24, 25, 26, 27}));
  CHECK(b.positions == (std::vector<int32_t>{5, 0, 1, 2, 3, 4, 5, 6}));
  CHECK(b.cu_seq_q == (std::vector<int32_t>{0, 1, 8}));
  CHECK(b.context_lens == (std::vector<int32_t>{6, 7}));
  CHECK_EQ(b.max_q_len, 7);
  CHECK_EQ(b.max_context_len, 7);
  CHECK_EQ(b.max_blocks_per_seq, 2);
  // Only a samples (b's prompt is not complete): its row is token 0.
  CHECK(b.logit_rows == (std::vector<int32_t>{0}));
  const auto& ta = s.blocks().table(o.seqs[0].request->handle);
  const auto& tb = s.blocks().table(o.seqs[1].request->handle);
  CHECK_EQ(b.block_tables.size(), size_t(4));
  CHECK_EQ(b.block_tables[0], ta[0]);
  CHECK_EQ(b.block_tables[1], ta[1]);
  CHECK_EQ(b.block_tables[2], tb[0]);
  CHECK_EQ(b.block_tables[3], tb[1]);
  CHECK_EQ(b.slot_mapping[0], ta[1] * 4 + 1);  // position 5
  CHECK_EQ(b.slot_mapping[1], tb[0] * 4 + 0);
  CHECK_EQ(b.slot_mapping[7], tb[1] * 4 + 2);  // position 6
}

TEST_CASE(tables_are_padded_with_minus_one) {
  Scheduler s(cfg(64), 16, 4);
  SamplingParams sp;
  s.add("long", std::vector<int32_t>(13, 3), sp, 0);
  s.add("short", {1, 2}, sp, 0);
  ScheduleOutput o = s.schedule();
  StepBatch b = step_batch_build(o, s.blocks());
  CHECK_EQ(b.max_blocks_per_seq, 4);
  CHECK_EQ(b.block_tables.size(), size_t(8));
  CHECK(b.block_tables[4] >= 0);
  CHECK_EQ(b.block_tables[5], -1);
  CHECK_EQ(b.block_tables[7], -1);
  CHECK(b.logit_rows == (std::vector<int32_t>{12, 14}));
}

TEST_CASE(single_sequence_chunk_wants_every_row) {
  BlockManager bm(8, 4);
  CHECK(bm.ensure_capacity(99, 10));
  std::vector<int32_t> toks = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  StepBatch b = step_batch_single(99, toks, 4, 6, bm);
  CHECK(b.token_ids == (std::vector<int32_t>{9, 10, 11, 12, 13, 14}));
  CHECK(b.positions == (std::vector<int32_t>{4, 5, 6, 7, 8, 9}));
  CHECK(b.logit_rows == (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  CHECK(b.context_lens == (std::vector<int32_t>{10}));
  CHECK_EQ(b.max_blocks_per_seq, 3);
  CHECK_EQ(b.slot_mapping[0], bm.table(99)[1] * 4);
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
