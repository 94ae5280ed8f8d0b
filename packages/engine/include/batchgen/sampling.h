// Sampling parameters and the counter-based random stream that makes a request's
// output independent of what else runs in its batch: the uniform draw for a token
// depends only on (seed, position), never on the batch slot or the step.
#pragma once
#include <cstdint>
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
