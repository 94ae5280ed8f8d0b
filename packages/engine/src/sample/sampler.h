// Token sampling on the host: the reference every backend's sample() matches, and
// what the CPU backend's Backend::sample calls.
//
// Per row, in this order (vLLM v1's):
//  1. temperature == 0 (or top_k == 1): greedy, argmax with ties to the lowest id.
//     Otherwise each token gets the integer weight of its probability level
//     (sample_levels.h): ~2^40 * exp((logit - max) / temperature), quantised to
//     steps of 2^(1/256); tokens below 2^-40 of the max are dropped;
//  2. min-p: keep tokens whose weight is >= min_p * 2^40 (the max's weight);
//  3. candidates in (logit desc, id asc) order; top-k keeps the first k;
//  4. top-p: keeps the shortest prefix whose weight reaches ceil(top_p * kept);
//  5. u = rng_uniform(seed, position); the token is the first candidate whose
//     cumulative weight exceeds floor(u * kept): the inverse CDF.
// All of it integer arithmetic and correctly rounded f32/f64 operations, so the
// CUDA sampler computes the same token bit for bit. Every step is a function of
// the row's logits and SampleRow alone, so a request's output never depends on
// its batch slot or on its batch-mates.
// NaN logits count as -inf.
#pragma once
#include <cstdint>
#include <vector>

#include "batchgen/sampling.h"

namespace bg {

// Samples rows [0, rows) of f32 logits laid out `stride` floats apart (stride >=
// vocab), one SampleRow each (params.size() == rows); writes rows ids to out_ids.
// With extras: per row, logprobs_row_cpu on the raw logits, then
// logits_process_row_cpu on a copy, then sample_row_cpu on that copy.
void sample_rows_cpu(const float* logits, int64_t rows, int64_t vocab, int64_t stride,
                     const std::vector<SampleRow>& params, int32_t* out_ids,
                     const SampleExtras* extras = nullptr, const SampleLogprobs* logprobs = nullptr);

// Row r of `x` applied in place to one row of raw logits, in vLLM's order: logit
// bias (added), repetition penalty (over prompt + generated tokens), frequency
// and presence penalties (over generated tokens), then the grammar mask (-inf
// outside it).
void logits_process_row_cpu(float* logits, int64_t vocab, const SampleExtras& x, int64_t r);

// log_softmax of one row of raw logits (NaN as -inf): the sampled token's value
// and the top k (<= kMaxTopLogprobs) in (logit desc, id asc) order, written to
// row r of `out`.
void logprobs_row_cpu(const float* logits, int64_t vocab, int32_t k, int32_t sampled,
                      const SampleLogprobs& out, int64_t r);

// Samples one row (what sample_rows_cpu does per row).
int32_t sample_row_cpu(const float* logits, int64_t vocab, const SampleRow& params);

// Throws EngineError(invalid_argument) naming the field when a value is out of
// range: temperature finite and >= 0; top_k >= 0; top_p in (0, 1]; min_p in
// [0, 1]; max_tokens >= 1; stop_token_ids inside [0, vocab_size); penalties
// presence/frequency in [-2, 2], repetition in (0, 10]; logit_bias ids inside the
// vocabulary with values in [-100, 100]; logprobs in [-1, 20]; a JSON format
// without ignore_eos (the grammar ends a line on an end-of-sequence token).
void sampling_params_validate(const SamplingParams& params, int32_t vocab_size);

}  // namespace bg
