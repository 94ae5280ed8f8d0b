// The op profile: a backend's time per kind of op, summed over steps, for finding
// where a step's device time goes (issue 11). Off unless BackendOptions::profile_ops
// (the engine sets it from BG_PROFILE_OPS=1 at load); off, each op pays one branch.
//  - cuda: device time between a pair of timing events queued around the op's work
//    on the stream (idle time inside that window counts too, which happens only when
//    the host falls behind the device);
//  - cpu: wall time of the op (the CPU backend's ops return when done).
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace bg {

// What a matrix product computes in the model; the profile times each role apart.
enum class LinearRole : uint8_t { other, qkv, o, gate_up, down, lm_head };

enum class OpCategory : uint8_t {
  matmul_qkv,
  matmul_o,
  matmul_gate_up,
  matmul_down,
  matmul_lm_head,
  matmul_other,       // a product the caller gave no role (tests, checks)
  attention_prefill,  // the chunk kernel: prefill chunks, and every token where no split
                      // decode kernel runs (deterministic mode, other head sizes); on the
                      // cpu, any step with a sequence of more than one token
  attention_decode,   // the split-K decode kernel and its combine pass; on the cpu, steps
                      // of one-token sequences only
  norm,               // rms_norm, add_rms_norm, head_rms_norm
  rope_kv_write,      // rope, kv_write
  activation,         // gated_activation
  embed,
  logits,             // gather_rows (the sampled rows' hidden states), softcap
  sample,             // sample(): its uploads, logits processing, the draw, the ids back
  lora,               // lora_add
  step_upload,        // upload_step's copy of the step's description
};
constexpr int kOpCategories = int(OpCategory::step_upload) + 1;

const char* op_category_name(OpCategory c);  // "matmul_qkv", ..., "step_upload"

inline OpCategory matmul_category(LinearRole r) {
  switch (r) {
    case LinearRole::qkv: return OpCategory::matmul_qkv;
    case LinearRole::o: return OpCategory::matmul_o;
    case LinearRole::gate_up: return OpCategory::matmul_gate_up;
    case LinearRole::down: return OpCategory::matmul_down;
    case LinearRole::lm_head: return OpCategory::matmul_lm_head;
    case LinearRole::other: break;
  }
  return OpCategory::matmul_other;
}

struct OpProfile {
  std::array<double, kOpCategories> ms{};
  std::array<int64_t, kOpCategories> calls{};
  std::array<double, kOpCategories> flops{};  // matrix products: 2 M N K a call; 0 for the rest

  void add(OpCategory c, double op_ms, double op_flops) {
    ms[size_t(c)] += op_ms;
    calls[size_t(c)] += 1;
    flops[size_t(c)] += op_flops;
  }
  double total_ms() const;
  int64_t total_calls() const;  // 0: profiling was off
};

// after - before: the ops of the steps in between (bench_engine leaves out its warm-up).
OpProfile op_profile_since(const OpProfile& after, const OpProfile& before);

// bench_engine's JSON members for a profile over a run of `wall_ms`, categories that
// were called in enum order, no braces around the whole:
//   "op_ms":{"matmul_qkv":12.345,...},"op_calls":{"matmul_qkv":5832,...},
//   "op_tflop":{"matmul_qkv":98.765,...},"op_ms_sum":S,"op_wall_ms":W
// op_tflop has the matrix products only; wall_ms - op_ms_sum is the time in no op.
std::string op_profile_json(const OpProfile& p, double wall_ms);

}  // namespace bg
