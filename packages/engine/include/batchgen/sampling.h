// Sampling parameters and the counter-based random stream that makes a request's
// output independent of what else runs in its batch: the uniform draw for a token
// depends only on (seed, position), never on the batch slot or the step.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bg {

struct SamplingParams {
  float temperature = 1.0f;   // 0 = greedy (argmax, ties to the lowest id)
  int32_t top_k = 0;          // 0 = off
  float top_p = 1.0f;         // 1 = off; in (0, 1]
  float min_p = 0.0f;         // 0 = off; in [0, 1]
  uint64_t seed = 0;          // the engine derives one from the request id when unset
  int32_t max_tokens = 16;    // >= 1
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;    // when false, the model's EOS ids stop too

  // Penalties (OpenAI / vLLM semantics), applied to the raw logits before
  // temperature: for a token generated c > 0 times so far,
  //   logit -= frequency_penalty * c + presence_penalty;
  // for a token in the prompt or generated so far (vLLM's repetition_penalty),
  //   logit = logit > 0 ? logit / repetition_penalty : logit * repetition_penalty.
  float presence_penalty = 0.0f;    // [-2, 2]; 0 = off
  float frequency_penalty = 0.0f;   // [-2, 2]; 0 = off
  float repetition_penalty = 1.0f;  // (0, 2]; 1 = off
  // Added to the raw logit of each listed id, before the penalties (OpenAI: [-100, 100]).
  std::vector<std::pair<int32_t, float>> logit_bias;
  // -1 = off; else report the sampled token's logprob and the top `logprobs`
  // alternatives (0..20) per generated token. Logprobs are log_softmax of the
  // model's raw logits: before bias, penalties, grammar mask and temperature
  // (vLLM's default "raw_logprobs").
  int32_t logprobs = -1;
  // Structured output: decode under a JSON grammar (grammar/json_grammar.h).
  enum class Format : uint8_t { text, json_object, json_schema };
  Format format = Format::text;
  std::string json_schema;    // the schema's JSON text when format == json_schema
};

constexpr int32_t kMaxTopLogprobs = 20;

// Per-row extras of one sample() call beyond SampleRow, flattened over the rows
// (CSR lists) so a device backend uploads them in a few copies. Every list may be
// empty: then that processing is off for every row.
struct SampleExtras {
  // Penalties: row r's distinct tokens are pen_tokens[pen_offsets[r] .. pen_offsets[r+1]),
  // each with its count among the generated tokens (0: only in the prompt, which
  // counts for repetition_penalty alone).
  std::vector<float> presence, frequency, repetition;   // [R] each, or empty
  std::vector<int32_t> pen_offsets;                     // [R+1] or empty
  std::vector<int32_t> pen_tokens, pen_counts;
  // Logit bias: bias_tokens/bias_values[bias_offsets[r] .. bias_offsets[r+1]).
  std::vector<int32_t> bias_offsets;                    // [R+1] or empty
  std::vector<int32_t> bias_tokens;
  std::vector<float> bias_values;
  // Grammar masks: row r keeps only ids whose bit is set in
  // masks[mask_row[r] * mask_words ..]; mask_row[r] == -1 is unmasked.
  int32_t mask_words = 0;
  std::vector<int32_t> mask_row;                        // [R] or empty
  std::vector<uint32_t> masks;
  // Logprobs: top_logprobs[r] == -1 is off for the row, else 0..kMaxTopLogprobs.
  std::vector<int32_t> top_logprobs;                    // [R] or empty

  bool has_penalties() const { return !pen_offsets.empty(); }
  bool has_bias() const { return !bias_offsets.empty(); }
  bool has_masks() const { return !mask_row.empty(); }
  bool has_logprobs() const { return !top_logprobs.empty(); }
};

// Logprob outputs of sample(), per row (rows with top_logprobs[r] == -1 untouched):
// sampled[r] is the sampled token's logprob; top_ids/top_logprobs[r *
// kMaxTopLogprobs + j], j < top_logprobs[r], the best alternatives in (logprob
// desc, id asc) order.
struct SampleLogprobs {
  float* sampled = nullptr;
  int32_t* top_ids = nullptr;
  float* top_logprobs = nullptr;
};

// Per-row sampling input for Backend::sample (one row of logits each).
struct SampleRow {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  uint64_t seed;
  int32_t position;   // position of the token being produced
};

// splitmix64 finaliser over (seed, position): the one definition of the random
// stream; the CUDA backend calls the same function in device code.
#if defined(__CUDACC__)
#define BG_HOST_DEVICE __host__ __device__
#else
#define BG_HOST_DEVICE
#endif
BG_HOST_DEVICE inline uint64_t rng_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// Uniform in [0, 1) with 24 bits, exactly representable in f32 on every device.
BG_HOST_DEVICE inline float rng_uniform(uint64_t seed, int32_t position) {
  uint64_t h = rng_mix(seed ^ rng_mix(uint64_t(uint32_t(position)) + 0x632BE59BD9B4E019ull));
  return float(h >> 40) * (1.0f / 16777216.0f);
}

}  // namespace bg
