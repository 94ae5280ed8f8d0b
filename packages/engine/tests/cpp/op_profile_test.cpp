// The op profile (batchgen/op_profile.h): the totals, bench_engine's JSON members,
// and the CPU backend's timing of each op into its category.
#include <cmath>
#include <set>
#include <string>

#include "batchgen/backend.h"
#include "check.h"
#include "prefill_batch.h"

using namespace bg;

namespace {

BackendOptions cpu_options(bool profile_ops) {
  BackendOptions o;
  o.threads = 2;
  o.profile_ops = profile_ops;
  return o;
}

int64_t calls(const OpProfile& p, OpCategory c) { return p.calls[size_t(c)]; }

}  // namespace

TEST_CASE(every_category_has_its_own_name) {
  std::set<std::string> names;
  for (int i = 0; i < kOpCategories; ++i) names.insert(op_category_name(OpCategory(i)));
  CHECK_EQ(names.size(), size_t(kOpCategories));
  CHECK(names.count("?") == 0);
  CHECK_EQ(std::string(op_category_name(OpCategory::matmul_gate_up)), std::string("matmul_gate_up"));
  CHECK_EQ(std::string(op_category_name(OpCategory::step_upload)), std::string("step_upload"));
  CHECK(matmul_category(LinearRole::qkv) == OpCategory::matmul_qkv);
  CHECK(matmul_category(LinearRole::lm_head) == OpCategory::matmul_lm_head);
  CHECK(matmul_category(LinearRole::other) == OpCategory::matmul_other);
}

TEST_CASE(totals_add_up_and_subtract) {
  OpProfile before;
  before.add(OpCategory::norm, 1.5, 0);
  OpProfile after = before;
  after.add(OpCategory::norm, 2.0, 0);
  after.add(OpCategory::matmul_down, 10.0, 4e12);
  after.add(OpCategory::matmul_down, 6.0, 2e12);
  CHECK_EQ(after.total_calls(), int64_t(4));
  CHECK(std::fabs(after.total_ms() - 19.5) < 1e-12);
  const OpProfile d = op_profile_since(after, before);
  CHECK_EQ(d.total_calls(), int64_t(3));
  CHECK_EQ(calls(d, OpCategory::norm), int64_t(1));
  CHECK(std::fabs(d.ms[size_t(OpCategory::norm)] - 2.0) < 1e-12);
  CHECK(std::fabs(d.flops[size_t(OpCategory::matmul_down)] - 6e12) < 1);
  CHECK_EQ(OpProfile{}.total_calls(), int64_t(0));
}

TEST_CASE(json_lists_the_called_categories_in_order) {
  OpProfile p;
  p.add(OpCategory::sample, 0.25, 0);
  p.add(OpCategory::matmul_qkv, 100.0, 5e13);
  p.add(OpCategory::matmul_qkv, 23.4567, 1e13);
  p.add(OpCategory::attention_decode, 7.0, 0);
  CHECK_EQ(op_profile_json(p, 200.0),
           std::string("\"op_ms\":{\"matmul_qkv\":123.457,\"attention_decode\":7.000,\"sample\":0.250},"
                       "\"op_calls\":{\"matmul_qkv\":2,\"attention_decode\":1,\"sample\":1},"
                       "\"op_tflop\":{\"matmul_qkv\":60},"
                       "\"op_ms_sum\":130.707,\"op_wall_ms\":200.000"));
  // Nothing called (profiling off): empty objects, still valid JSON members.
  CHECK_EQ(op_profile_json(OpProfile{}, 1.0),
           std::string("\"op_ms\":{},\"op_calls\":{},\"op_tflop\":{},\"op_ms_sum\":0.000,\"op_wall_ms\":1.000"));
}

TEST_CASE(cpu_backend_times_each_op_in_its_category) {
  for (bool on : {false, true}) {
    std::unique_ptr<Backend> cpu = cpu_backend_create(cpu_options(on));
    const HeadLayout heads{2, 1, 8};
    cpu->reserve_scratch(8, 2, 8, heads);
    Tensor x = cpu->alloc(DType::f32, 5, 16), w = cpu->alloc(DType::f32, 32, 16);
    Tensor out = cpu->alloc(DType::f32, 5, 32), norm_w = cpu->alloc(DType::f32, 1, 16);
    Tensor qkv = cpu->alloc(DType::f32, 5, heads.qkv_width()), attn = cpu->alloc(DType::f32, 5, heads.q_width());
    KvLayer kv{cpu->alloc(DType::f32, 16, heads.kv_width()), cpu->alloc(DType::f32, 16, heads.kv_width()), 8};
    for (Tensor* t : {&x, &w, &norm_w, &qkv, &kv.k, &kv.v})
      for (int64_t i = 0; i < t->rows * t->cols; ++i) t->ptr<float>()[i] = 0.01f * float(i % 17);
    cpu->linear(x, w, nullptr, out, LinearRole::gate_up);
    cpu->linear(x, w, nullptr, out);
    cpu->rms_norm(x, norm_w, 1e-6f, 0.0f, x);
    // Prompts of 3 and 2 tokens, sequence s in block s; then a decode token for each.
    StepBatch b = prefill_batch({3, 2});
    b.block_tables = {0, 1};
    b.max_blocks_per_seq = 1;
    cpu->attention(qkv, cpu->upload_step(b), heads, kv, AttentionParams{}, attn);
    StepBatch d = prefill_batch({1, 1});
    d.positions = {3, 2};
    d.context_lens = {4, 3};
    d.max_context_len = 4;
    d.block_tables = {0, 1};
    d.max_blocks_per_seq = 1;
    Tensor qkv_d = qkv.row_slice(0, 2), attn_d = attn.row_slice(0, 2);
    cpu->attention(qkv_d, cpu->upload_step(d), heads, kv, AttentionParams{}, attn_d);

    const OpProfile p = cpu->op_profile();
    if (!on) {
      CHECK_EQ(p.total_calls(), int64_t(0));
      CHECK(p.total_ms() == 0.0);
    } else {
      CHECK_EQ(calls(p, OpCategory::matmul_gate_up), int64_t(1));
      CHECK_EQ(calls(p, OpCategory::matmul_other), int64_t(1));
      CHECK(std::fabs(p.flops[size_t(OpCategory::matmul_gate_up)] - 2.0 * 5 * 32 * 16) < 1e-9);
      CHECK_EQ(calls(p, OpCategory::norm), int64_t(1));
      CHECK_EQ(calls(p, OpCategory::attention_prefill), int64_t(1));
      CHECK_EQ(calls(p, OpCategory::attention_decode), int64_t(1));
      CHECK_EQ(calls(p, OpCategory::step_upload), int64_t(2));
      CHECK_EQ(p.total_calls(), int64_t(7));
      for (int i = 0; i < kOpCategories; ++i) CHECK(p.ms[size_t(i)] >= 0.0);
    }
    for (Tensor* t : {&x, &w, &out, &norm_w, &qkv, &attn, &kv.k, &kv.v}) cpu->free(*t);
  }
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
