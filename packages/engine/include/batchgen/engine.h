// The engine as its users see it (the Node-API binding and the C++ tests):
// load a Hugging Face model directory, submit requests, step, collect results.
//
// Two ways to drive it:
//  - Engine::step() on the caller's thread (tests, benchmarks);
//  - EngineRunner, which owns a step thread and delivers finished results in
//    batches through a callback (the binding forwards them to JavaScript through
//    a thread-safe function so the event loop never blocks on the device).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "batchgen/op_profile.h"
#include "batchgen/sampling.h"
#include "batchgen/tensor.h"

namespace bg {

// A LoRA adapter the engine serves: a peft adapter directory (adapter_config.json,
// adapter_model.safetensors) and the name requests call it by.
// The sequence length the default running-sequence cap is sized for: a batch line
// of a few hundred prompt and a few hundred generated tokens. Longer lines make the
// scheduler preempt (recompute), shorter ones leave KV blocks unused; set
// EngineOptions::max_seqs (or max_model_len) when the workload's lengths are known.
constexpr int32_t kTypicalSeqLen = 1024;

struct LoraSpec {
  std::string name;
  std::string path;
};

struct EngineOptions {
  std::string model_dir;
  std::string device = "cpu";        // "cpu" | "cuda" | "cuda:N"
  int32_t threads = 0;               // cpu backend threads; 0 = all cores
  int32_t block_size = 16;           // KV tokens per block
  int64_t kv_cache_blocks = 0;       // 0 = size from kv_cache_memory_fraction
  double kv_cache_memory_fraction = 0.9;  // of free memory after weights and activations
  int64_t kv_cache_max_bytes = int64_t(1) << 30;  // cpu: cap on that when kv_cache_blocks == 0
  int32_t max_batch_tokens = 2048;   // token budget per step (decode tokens + prefill chunks)
  int32_t max_seqs = 0;              // running sequences; 0 = as many sequences of
                                     // kTypicalSeqLen tokens (or max_model_len, when
                                     // shorter) as the KV cache holds (ModelInfo::max_seqs)
  int32_t max_model_len = 0;         // 0 = the model config's max_position_embeddings, lowered
                                     // to what the KV cache holds (an explicit value that
                                     // does not fit is an error)
  bool deterministic = false;        // batch-invariant results on every backend
  bool enable_prefix_caching = true; // share the K/V of identical prompt prefixes (full blocks)
  std::string quantize;              // "fp8": quantize float linear weights at load (ModelLoadOptions)
  // Bytes of every token id, for structured output (grammar masks). Empty: read
  // from <model_dir>/tokenizer.json at the first request with a JSON format.
  std::vector<std::string> token_bytes;
  // LoRA adapters requests may name (GenerateRequest::lora), checked at load and
  // read into a device slot on first use; max_loras slots (0: one per adapter as far
  // as a tenth of the memory left after weights and activations goes, at least 8)
  // hold adapters at once, least recently used first out.
  std::vector<LoraSpec> loras;
  int32_t max_loras = 0;
};

// How an embedding request pools the final-norm hidden states of its prompt.
enum class Pooling : uint8_t { none, last, mean };

struct GenerateRequest {
  std::string id;                    // unique among live requests
  std::vector<int32_t> prompt;       // token ids, non-empty
  // Not none: an embedding request. It runs its prompt only (prefill, in the same
  // continuous batch as generations; no token is sampled, no prefix cache is read:
  // every position's hidden state is computed) and its result carries the final-norm
  // hidden states pooled so: the last position's, or the mean over all positions.
  // The prompt may fill the whole context (max_model_len); sampling is ignored.
  Pooling pooling = Pooling::none;
  SamplingParams sampling;
  bool has_seed = false;             // false: seed derived from id
  int32_t priority = 0;              // lower runs first; FIFO within a priority
  std::string lora;                  // adapter name (EngineOptions::loras); empty: the base model
  // When the request arrived (timings count from here); default: at submit().
  std::chrono::steady_clock::time_point arrival{};
};

enum class FinishReason : uint8_t { stop, length, abort, error };
const char* finish_reason_name(FinishReason r);

struct GenerateResult {
  std::string id;
  std::vector<int32_t> tokens;       // generated ids (a stop token included when it stopped on one)
  FinishReason finish_reason = FinishReason::stop;
  std::string error;                 // set when finish_reason == error
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;         // prompt tokens served from the prefix cache (first admission)
  int32_t completion_tokens = 0;
  int32_t preemptions = 0;
  double queue_ms = 0;               // submit -> first scheduled
  double first_token_ms = 0;         // submit -> first token
  double total_ms = 0;               // submit -> finished
  // When sampling.logprobs >= 0: per generated token, its logprob and the top
  // `top_logprobs_k` alternatives (ids and logprobs, row-major [tokens x k]).
  std::vector<float> logprobs;
  int32_t top_logprobs_k = 0;
  std::vector<int32_t> top_logprob_ids;
  std::vector<float> top_logprobs;
  // Embedding requests: the pooled hidden state [hidden_size] (not normalized).
  std::vector<float> embedding;
};

struct EngineStats {
  int32_t running = 0;
  int32_t waiting = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_peak = 0;        // most blocks in use at once since load (after a step's allocations)
  int64_t kv_blocks_free = 0;
  int64_t kv_blocks_cached = 0;      // free blocks still holding a cached prefix (part of free)
  int64_t kv_blocks_evicted = 0;     // cached blocks dropped from the prefix cache to make room
  int64_t prompt_tokens_processed = 0;  // prompt work computed (recompute after preemption included)
  int64_t prompt_tokens_cached = 0;  // prompt work served from the prefix cache instead
  int64_t generated_tokens = 0;
  int64_t steps = 0;
  int64_t preemptions = 0;
  double last_step_ms = 0;
  int32_t max_seqs = 0;              // the running-sequence cap (ModelInfo::max_seqs)
  // Host time per step (sum over steps; divide by steps / host_gaps):
  //  - host_ms: inside step() but outside the backend's forward and sample calls:
  //    scheduling, batch and input preparation (upload_step), sampling extras
  //    (grammar masks included), the scheduler's update and the results;
  //  - host_gap_ms: from the moment one step's sampled tokens are on the host (the
  //    end of its device work) to the next step's forward call, counted over
  //    host_gaps consecutive step pairs (the engine had work in between): the time
  //    a device waits between steps, the caller's own time between step() calls
  //    included (EngineRunner: delivering the results).
  double host_ms = 0;
  double host_gap_ms = 0;
  int64_t host_gaps = 0;
  int64_t grammar_masks = 0;         // grammar token masks applied (one per row and step)
  int64_t grammar_distinct_masks = 0;  // masks built and handed to the sampler (rows in one state share one)
  double grammar_host_ms = 0;        // host time building masks (overlaps a device's forward pass)
  std::vector<std::string> loras_resident;  // adapters in a device slot now
  int64_t lora_loads = 0;            // adapters read into a slot (first use or after eviction)
  int64_t lora_evictions = 0;
  // Time per op category since load when BG_PROFILE_OPS=1 was set at load (all zero
  // otherwise): device time on a GPU, as far as the device has got.
  OpProfile op_profile;
};

struct ModelInfo {
  std::string architecture;          // e.g. "GemmaForCausalLM"
  std::string model_type;            // e.g. "gemma"
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t num_layers = 0;
  int32_t max_model_len = 0;
  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;
  std::string device;
  std::string device_name;
  int64_t weight_bytes = 0;          // as held by the backend
  int64_t weight_params = 0;
  std::string weight_format;         // Model::weight_format(): storage shares and how quantized weights run
  int64_t kv_bytes_per_token = 0;    // K and V over all layers
  int32_t block_size = 0;
  int64_t kv_blocks = 0;
  int32_t max_seqs = 0;              // sequences running at once (EngineOptions::max_seqs or derived)
  // The length the cap was derived for (min(kTypicalSeqLen, max_model_len)); 0 when
  // EngineOptions::max_seqs set it.
  int32_t max_seqs_seq_len = 0;
  std::vector<std::string> loras;    // adapter names, as EngineOptions gave them
  int32_t max_loras = 0;             // adapter slots
  int32_t lora_rank = 0;             // the slots' rank (the largest adapter's)
  int64_t lora_slot_bytes = 0;       // device bytes per slot
};

class Engine {
 public:
  // Throws EngineError with a message naming the file / field / architecture at fault.
  static std::unique_ptr<Engine> load(const EngineOptions& options);
  virtual ~Engine() = default;

  virtual const ModelInfo& model_info() const = 0;

  // Validates and queues. Throws EngineError(invalid_argument) for an empty or
  // too-long prompt, out-of-vocabulary ids, bad sampling values or a duplicate id.
  // Context rule: a prompt must be shorter than model_info().max_model_len (room
  // for one token); max_tokens may ask for more, and generation then stops at
  // max_model_len with finish reason length.
  virtual void submit(const GenerateRequest& request) = 0;
  // The checks of submit() that need no engine state (everything but the
  // duplicate id): reads only what load() fixed, so any thread may call it.
  virtual void validate(const GenerateRequest& request) const = 0;
  // True when the id was live (its result, finish_reason abort, comes out of the next step()).
  virtual bool abort(const std::string& id) = 0;
  // Runs one scheduler step; returns the requests that finished in it.
  virtual std::vector<GenerateResult> step() = 0;
  virtual bool has_work() const = 0;
  virtual EngineStats stats() const = 0;

  // Logits [prompt.size(), vocab] (f32, row-major) of one prompt, all positions,
  // run alone through the same model code. For checks against the reference.
  // With `lora`, through that adapter.
  virtual std::vector<float> prompt_logits(const std::vector<int32_t>& prompt, const std::string& lora) = 0;
  std::vector<float> prompt_logits(const std::vector<int32_t>& prompt) { return prompt_logits(prompt, ""); }
};

// Owns an Engine and a step thread. Thread-safe: submit/abort/stats may be called
// from any thread; on_results runs on the step thread with every result that
// finished in one step (never an empty batch).
class EngineRunner {
 public:
  using ResultsFn = std::function<void(std::vector<GenerateResult>&&)>;
  EngineRunner(std::unique_ptr<Engine> engine, ResultsFn on_results);
  ~EngineRunner();  // stops the thread; live requests are aborted
  void submit(GenerateRequest request);  // throws like Engine::submit
  bool abort(const std::string& id);
  EngineStats stats() const;
  const ModelInfo& model_info() const;
  // prompt_logits() run on the step thread between steps; errors (EngineError)
  // come out of the future's get().
  std::future<std::vector<float>> prompt_logits(std::vector<int32_t> prompt, std::string lora = "");
  // Aborts every live request (their results go through on_results), stops and
  // joins the step thread. Idempotent; submit() afterwards throws.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bg
