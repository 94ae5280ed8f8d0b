// The op profile's names, sums and JSON (batchgen/op_profile.h).
#include "batchgen/op_profile.h"

#include <cstdio>

namespace bg {

const char* op_category_name(OpCategory c) {
  switch (c) {
    case OpCategory::matmul_qkv: return "matmul_qkv";
    case OpCategory::matmul_o: return "matmul_o";
    case OpCategory::matmul_gate_up: return "matmul_gate_up";
    case OpCategory::matmul_down: return "matmul_down";
    case OpCategory::matmul_lm_head: return "matmul_lm_head";
    case OpCategory::matmul_other: return "matmul_other";
    case OpCategory::attention_prefill: return "attention_prefill";
    case OpCategory::attention_decode: return "attention_decode";
    case OpCategory::norm: return "norm";
    case OpCategory::rope_kv_write: return "rope_kv_write";
    case OpCategory::activation: return "activation";
    case OpCategory::embed: return "embed";
    case OpCategory::logits: return "logits";
    case OpCategory::sample: return "sample";
    case OpCategory::lora: return "lora";
    case OpCategory::step_upload: return "step_upload";
  }
  return "?";
}

double OpProfile::total_ms() const {
  double s = 0;
  for (double m : ms) s += m;
  return s;
}

int64_t OpProfile::total_calls() const {
  int64_t n = 0;
  for (int64_t c : calls) n += c;
  return n;
}

OpProfile op_profile_since(const OpProfile& after, const OpProfile& before) {
  OpProfile d;
  for (size_t i = 0; i < size_t(kOpCategories); ++i) {
    d.ms[i] = after.ms[i] - before.ms[i];
    d.calls[i] = after.calls[i] - before.calls[i];
    d.flops[i] = after.flops[i] - before.flops[i];
  }
  return d;
}

namespace {

// `"name":{"category":value,...}` over the categories `keep` selects.
template <class Keep, class Value>
std::string json_member(const char* name, Keep keep, Value value) {
  std::string s = std::string("\"") + name + "\":{";
  bool first = true;
  for (int i = 0; i < kOpCategories; ++i) {
    if (!keep(size_t(i))) continue;
    s += first ? "\"" : ",\"";
    s += op_category_name(OpCategory(i));
    s += "\":" + value(size_t(i));
    first = false;
  }
  return s + "}";
}

std::string number(const char* format, double v) {
  char b[64];
  std::snprintf(b, sizeof b, format, v);
  return b;
}

}  // namespace

std::string op_profile_json(const OpProfile& p, double wall_ms) {
  auto called = [&](size_t i) { return p.calls[i] > 0; };
  return json_member("op_ms", called, [&](size_t i) { return number("%.3f", p.ms[i]); }) + "," +
         json_member("op_calls", called, [&](size_t i) { return std::to_string(p.calls[i]); }) + "," +
         json_member("op_tflop", [&](size_t i) { return called(i) && p.flops[i] > 0; },
                     [&](size_t i) { return number("%.6g", p.flops[i] / 1e12); }) +
         ",\"op_ms_sum\":" + number("%.3f", p.total_ms()) + ",\"op_wall_ms\":" + number("%.3f", wall_ms);
}

}  // namespace bg
