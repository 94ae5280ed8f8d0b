#include "runtime/step_input.h"

#include <algorithm>

namespace bg {
namespace {

// Appends one sequence's tokens [start, start + n); token(i) gives token i.
template <typename TokenAt>
void append_seq(StepBatch& b, std::vector<std::vector<int32_t>>& tables, SeqHandle seq,
                TokenAt token, int32_t start, int32_t n, const BlockManager& blocks) {
  for (int32_t i = start; i < start + n; ++i) {
    b.token_ids.push_back(token(i));
    b.positions.push_back(i);
    b.slot_mapping.push_back(blocks.slot(seq, i));
  }
  b.cu_seq_q.push_back(int32_t(b.token_ids.size()));
  const int32_t context = start + n;
  b.context_lens.push_back(context);
  b.max_q_len = std::max(b.max_q_len, n);
  b.max_context_len = std::max(b.max_context_len, context);
  const std::vector<int32_t>& t = blocks.table(seq);
  const size_t used = size_t(blocks.blocks_for(context));
  tables.emplace_back(t.begin(), t.begin() + long(std::min(used, t.size())));
}

void finish_tables(StepBatch& b, const std::vector<std::vector<int32_t>>& tables) {
  size_t width = 0;
  for (const auto& t : tables) width = std::max(width, t.size());
  b.max_blocks_per_seq = int32_t(width);
  b.block_tables.assign(tables.size() * width, -1);
  for (size_t s = 0; s < tables.size(); ++s) {
    std::copy(tables[s].begin(), tables[s].end(), b.block_tables.begin() + long(s * width));
  }
}

}  // namespace

StepBatch step_batch_build(const ScheduleOutput& out, const BlockManager& blocks) {
  StepBatch b;
  b.token_ids.reserve(size_t(out.total_tokens));
  b.positions.reserve(size_t(out.total_tokens));
  b.slot_mapping.reserve(size_t(out.total_tokens));
  b.cu_seq_q.reserve(out.seqs.size() + 1);
  b.cu_seq_q.push_back(0);
  std::vector<std::vector<int32_t>> tables;
  tables.reserve(out.seqs.size());
  for (const ScheduledSeq& s : out.seqs) {
    const Request* r = s.request;
    append_seq(b, tables, r->handle, [r](int32_t i) { return r->token(i); }, s.start,
               s.num_tokens, blocks);
    if (s.samples) b.logit_rows.push_back(b.cu_seq_q.back() - 1);
  }
  finish_tables(b, tables);
  return b;
}

StepBatch step_batch_single(SeqHandle seq, const std::vector<int32_t>& tokens, int32_t start,
                            int32_t n, const BlockManager& blocks) {
  StepBatch b;
  b.cu_seq_q.push_back(0);
  std::vector<std::vector<int32_t>> tables;
  append_seq(b, tables, seq, [&tokens](int32_t i) { return tokens[size_t(i)]; }, start, n,
             blocks);
  for (int32_t r = 0; r < n; ++r) b.logit_rows.push_back(r);
  finish_tables(b, tables);
  return b;
}

}  // namespace bg
