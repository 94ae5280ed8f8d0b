// Engine: loads a model onto a backend, sizes the paged KV cache, and runs
// scheduler steps: schedule -> StepBatch -> upload_step -> forward -> sample ->
// update. Single-threaded; EngineRunner (engine_runner.cpp) adds the step thread.
//
// Context rule (documented for users): a prompt must leave room for at least one
// generated token (prompt length < max_model_len). max_tokens may ask for more
// than fits; generation then stops at max_model_len with finish reason "length",
// as vLLM does, so a batch line is never rejected for a generous max_tokens.
#include <algorithm>
#include <climits>
#include <chrono>
#include <set>
#include <string>

#include "batchgen/engine.h"
#include "model/model.h"
#include "runtime/step_input.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"

namespace bg {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::abort: return "abort";
    case FinishReason::error: return "error";
  }
  return "error";
}

namespace {

using Clock = std::chrono::steady_clock;

// The seed of a request without one: FNV-1a of its id, stable across processes
// and platforms (std::hash is neither).
uint64_t seed_from_id(const std::string& id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return rng_mix(h);
}

[[noreturn]] void invalid(const std::string& msg) {
  throw EngineError(ErrorCode::invalid_argument, msg);
}

// How far back any layer attends (ModelConfig::attention_reach): 0 when some layer
// sees the whole context, and then no block is ever released; otherwise the widest
// window, and blocks wholly behind it are freed as a sequence grows (Scheduler
// kv_window). Mistral windows every layer: a long sequence holds window / block + 2
// blocks. Models that mix local and global layers (Gemma 2, Gemma 3's 5 local : 1
// global) keep every block: their global layers read them all.
int32_t kv_window_of(const ModelConfig& cfg) { return cfg.attention_reach(); }

void options_validate(const EngineOptions& o) {
  if (o.model_dir.empty()) invalid("model_dir is empty");
  if (o.threads < 0) invalid("threads must be >= 0 (0 = all cores), got " + std::to_string(o.threads));
  if (o.block_size < 1 || o.block_size > 1024) {
    invalid("block_size must be in [1, 1024], got " + std::to_string(o.block_size));
  }
  if (o.kv_cache_blocks < 0) invalid("kv_cache_blocks must be >= 0 (0 = size from memory)");
  if (!(o.kv_cache_memory_fraction > 0 && o.kv_cache_memory_fraction <= 1)) {
    invalid("kv_cache_memory_fraction must be in (0, 1], got " +
            std::to_string(o.kv_cache_memory_fraction));
  }
  if (o.kv_cache_max_bytes < 1) invalid("kv_cache_max_bytes must be >= 1");
  if (o.max_batch_tokens < 1) {
    invalid("max_batch_tokens must be >= 1, got " + std::to_string(o.max_batch_tokens));
  }
  if (o.max_seqs < 1) invalid("max_seqs must be >= 1, got " + std::to_string(o.max_seqs));
  if (o.max_model_len < 0) invalid("max_model_len must be >= 0 (0 = the model's)");
}

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineOptions& options) : options_(options), epoch_(Clock::now()) {
    options_validate(options_);
    BackendOptions bo;
    bo.device = options_.device;
    bo.threads = options_.threads;
    bo.deterministic = options_.deterministic;
    backend_ = backend_create(bo);
    model_ = Model::load(options_.model_dir, *backend_);
    const ModelConfig& cfg = model_->config();

    int32_t max_len = cfg.max_position_embeddings;
    if (options_.max_model_len > 0) {
      if (max_len > 0 && options_.max_model_len > max_len) {
        invalid("max_model_len " + std::to_string(options_.max_model_len) +
                " exceeds the model's max_position_embeddings " + std::to_string(max_len));
      }
      max_len = options_.max_model_len;
    }
    if (max_len < 2) {
      throw EngineError(ErrorCode::model_load,
                        "config.json gives no usable max_position_embeddings; set max_model_len");
    }
    const int32_t max_seqs = std::min(options_.max_seqs, options_.max_batch_tokens);
    // Activations first: on a device the KV cache takes what they leave.
    model_->reserve(options_.max_batch_tokens, max_seqs, max_len);

    const int32_t bs = options_.block_size;
    const int64_t num_blocks = kv_blocks_choose(bs);
    const int64_t capacity = num_blocks * bs;
    if (capacity < max_len) {
      if (options_.max_model_len > 0) {
        invalid("the KV cache holds " + std::to_string(capacity) + " tokens (" +
                std::to_string(num_blocks) + " blocks of " + std::to_string(bs) +
                ") but max_model_len is " + std::to_string(max_len) +
                ": give the cache more blocks or memory, or lower max_model_len");
      }
      max_len = int32_t(capacity);  // one full-length sequence must always fit
    }
    if (max_len < 2) {
      throw EngineError(ErrorCode::out_of_memory,
                        "the KV cache has room for " + std::to_string(capacity) +
                            " tokens: too small to generate anything");
    }
    model_->kv_cache_alloc(num_blocks, bs);

    SchedulerConfig sc;
    sc.max_batch_tokens = options_.max_batch_tokens;
    sc.max_seqs = max_seqs;
    sc.max_model_len = max_len;
    sc.eos_token_ids = cfg.eos_token_ids;
    sc.enable_prefix_caching = options_.enable_prefix_caching;
    sc.kv_window = kv_window_of(cfg);
    scheduler_ = std::make_unique<Scheduler>(sc, num_blocks, bs);
    logits_chunk_ = max_seqs;  // forward() has logits rows for max_seqs sequences

    BackendInfo bi = backend_->info();
    info_.architecture = cfg.architecture;
    info_.model_type = cfg.model_type;
    info_.vocab_size = cfg.vocab_size;
    info_.hidden_size = cfg.hidden_size;
    info_.num_layers = cfg.num_layers;
    info_.max_model_len = max_len;
    info_.eos_token_ids = cfg.eos_token_ids;
    info_.bos_token_id = cfg.bos_token_id;
    info_.device = bi.name;
    info_.device_name = bi.device_name;
    info_.weight_bytes = model_->weight_bytes();
    info_.block_size = bs;
    info_.kv_blocks = num_blocks;
  }

  const ModelInfo& model_info() const override { return info_; }

  void validate(const GenerateRequest& req) const override {
    if (req.id.empty()) invalid("request id is empty");
    prompt_validate(req.prompt, info_.max_model_len - 1, "generate");
    sampling_params_validate(req.sampling, info_.vocab_size);
  }

  void submit(const GenerateRequest& req) override {
    validate(req);
    if (scheduler_->has(req.id) || pending_ids_.count(req.id)) {
      invalid("a request with id '" + req.id + "' is already live");
    }
    SamplingParams sp = req.sampling;
    if (!req.has_seed) sp.seed = seed_from_id(req.id);
    Request* r = scheduler_->add(req.id, req.prompt, sp, req.priority);
    r->times.submitted =
        req.arrival == Clock::time_point{} ? now_ms() : ms_since_epoch(req.arrival);
  }

  bool abort(const std::string& id) override {
    std::unique_ptr<Request> r = scheduler_->remove(id);
    if (!r) return false;
    r->finish_reason = FinishReason::abort;
    pending_.push_back(result_make(*r, now_ms(), ""));
    pending_ids_.insert(id);
    return true;
  }

  std::vector<GenerateResult> step() override {
    std::vector<GenerateResult> results = std::move(pending_);
    pending_.clear();
    pending_ids_.clear();
    const double t0 = now_ms();
    ScheduleOutput out = scheduler_->schedule();
    if (out.empty()) return results;
    for (const ScheduledSeq& s : out.seqs) {
      if (s.request->times.first_scheduled < 0) s.request->times.first_scheduled = t0;
    }

    std::vector<int32_t> sampled(size_t(out.num_sampling));
    try {
      StepBatch batch = step_batch_build(out, scheduler_->blocks());
      StepTensors tensors = backend_->upload_step(batch);
      Tensor logits = model_->forward(tensors);
      if (out.num_sampling > 0) {
        std::vector<SampleRow> rows;
        rows.reserve(size_t(out.num_sampling));
        for (const ScheduledSeq& s : out.seqs) {
          if (!s.samples) continue;
          const SamplingParams& p = s.request->sampling;
          rows.push_back(SampleRow{p.temperature, p.top_k, p.top_p, p.min_p, p.seed,
                                   s.request->num_tokens()});
        }
        backend_->sample(logits, rows, sampled.data());
      }
    } catch (const std::exception& e) {
      // The step's K/V may be half written: fail its requests, keep the rest.
      const double t = now_ms();
      std::vector<std::string> ids;
      for (const ScheduledSeq& s : out.seqs) ids.push_back(s.request->id);
      for (const std::string& id : ids) {
        std::unique_ptr<Request> r = scheduler_->remove(id);
        r->finish_reason = FinishReason::error;
        results.push_back(result_make(*r, t, std::string("engine step failed: ") + e.what()));
      }
      finish_step(t0, t);
      return results;
    }

    const double t1 = now_ms();
    for (const ScheduledSeq& s : out.seqs) {
      if (s.samples && s.request->times.first_token < 0) s.request->times.first_token = t1;
    }
    for (std::unique_ptr<Request>& r : scheduler_->update(out, sampled.data())) {
      results.push_back(result_make(*r, t1, ""));
    }
    finish_step(t0, t1);
    return results;
  }

  bool has_work() const override { return scheduler_->has_work() || !pending_.empty(); }

  EngineStats stats() const override {
    EngineStats s;
    s.running = scheduler_->num_running();
    s.waiting = scheduler_->num_waiting();
    const BlockManager& bm = scheduler_->blocks();
    s.kv_blocks_total = bm.num_blocks();
    s.kv_blocks_used = bm.num_used();
    s.kv_blocks_free = bm.num_free();
    s.kv_blocks_cached = bm.num_cached_free();
    s.prompt_tokens_processed = scheduler_->prompt_tokens_processed();
    s.prompt_tokens_cached = scheduler_->prompt_tokens_cached();
    s.generated_tokens = scheduler_->generated_tokens();
    s.steps = steps_;
    s.preemptions = scheduler_->preemptions();
    s.last_step_ms = last_step_ms_;
    return s;
  }

  std::vector<float> prompt_logits(const std::vector<int32_t>& prompt) override {
    prompt_validate(prompt, info_.max_model_len, "prompt_logits");
    BlockManager& bm = scheduler_->blocks();
    const int32_t len = int32_t(prompt.size());
    if (!bm.ensure_capacity(kLogitsSeq, len)) {
      throw EngineError(ErrorCode::out_of_memory,
                        "prompt_logits needs " + std::to_string(bm.blocks_for(len)) +
                            " free KV blocks, " + std::to_string(bm.num_free()) +
                            " are free now (requests hold the rest); retry when the engine is idle");
    }
    struct Release {
      BlockManager& bm;
      ~Release() { bm.free_seq(kLogitsSeq); }
    } release{bm};
    const int64_t vocab = info_.vocab_size;
    std::vector<float> out(size_t(len) * size_t(vocab));
    std::vector<float> chunk_logits;
    for (int32_t start = 0; start < len; start += logits_chunk_) {
      const int32_t n = std::min(logits_chunk_, len - start);
      StepBatch batch = step_batch_single(kLogitsSeq, prompt, start, n, bm);
      StepTensors tensors = backend_->upload_step(batch);
      Tensor logits = model_->forward(tensors);
      if (logits.rows != n || logits.cols != vocab) {
        throw EngineError(ErrorCode::internal, "forward returned logits of an unexpected shape");
      }
      backend_->copy_to_host_f32(logits, out.data() + size_t(start) * size_t(vocab));
    }
    return out;
  }

 private:
  // A handle the scheduler never hands out (its handles count up from 1).
  static constexpr SeqHandle kLogitsSeq = ~SeqHandle(0);

  double ms_since_epoch(Clock::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - epoch_).count();
  }
  double now_ms() const { return ms_since_epoch(Clock::now()); }

  void prompt_validate(const std::vector<int32_t>& prompt, int32_t max_len,
                       const char* what) const {
    if (prompt.empty()) invalid(std::string(what) + ": prompt is empty (at least one token is needed)");
    if (int64_t(prompt.size()) > max_len) {
      invalid(std::string(what) + ": prompt has " + std::to_string(prompt.size()) +
              " tokens but the context is " + std::to_string(info_.max_model_len) +
              " tokens (max_model_len)" +
              (max_len < info_.max_model_len ? "; a prompt must leave room for one generated token"
                                             : ""));
    }
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] < 0 || prompt[i] >= info_.vocab_size) {
        invalid(std::string(what) + ": prompt[" + std::to_string(i) + "] = " +
                std::to_string(prompt[i]) + " is outside the vocabulary [0, " +
                std::to_string(info_.vocab_size) + ")");
      }
    }
  }

  // KV slots are int32 (StepBatch::slot_mapping), which bounds the cache.
  int64_t kv_blocks_choose(int32_t block_size) const {
    const int64_t max_blocks = int64_t(INT32_MAX) / block_size;
    if (options_.kv_cache_blocks > 0) {
      if (options_.kv_cache_blocks > max_blocks) {
        invalid("kv_cache_blocks " + std::to_string(options_.kv_cache_blocks) +
                " exceeds the addressable " + std::to_string(max_blocks) + " blocks of " +
                std::to_string(block_size));
      }
      return options_.kv_cache_blocks;
    }
    const int64_t block_bytes = model_->kv_block_bytes(block_size);
    const BackendInfo bi = backend_->info();
    double budget = double(bi.free_memory) * options_.kv_cache_memory_fraction;
    if (options_.device == "cpu") budget = std::min(budget, double(options_.kv_cache_max_bytes));
    const int64_t blocks =
        block_bytes > 0 ? std::min(max_blocks, int64_t(budget / double(block_bytes))) : 0;
    if (blocks < 1) {
      throw EngineError(ErrorCode::out_of_memory,
                        "no memory left for the KV cache on " + bi.name + " (" +
                            std::to_string(bi.free_memory) + " bytes free after the weights, " +
                            std::to_string(block_bytes) + " per block)");
    }
    return blocks;
  }

  GenerateResult result_make(const Request& r, double now, const std::string& error) const {
    GenerateResult g;
    g.id = r.id;
    g.tokens = r.output;
    g.finish_reason = r.finish_reason;
    g.error = error;
    g.prompt_tokens = int32_t(r.prompt.size());
    g.cached_tokens = r.num_cached;
    g.completion_tokens = int32_t(r.output.size());
    g.preemptions = r.preemptions;
    const double sub = r.times.submitted;
    g.queue_ms = (r.times.first_scheduled >= 0 ? r.times.first_scheduled : now) - sub;
    g.first_token_ms = r.times.first_token >= 0 ? r.times.first_token - sub : 0;
    g.total_ms = now - sub;
    return g;
  }

  void finish_step(double t0, double t1) {
    ++steps_;
    last_step_ms_ = t1 - t0;
  }

  EngineOptions options_;
  Clock::time_point epoch_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Scheduler> scheduler_;
  ModelInfo info_;
  int32_t logits_chunk_ = 1;
  std::vector<GenerateResult> pending_;  // aborted, reported by the next step()
  std::set<std::string> pending_ids_;
  int64_t steps_ = 0;
  double last_step_ms_ = 0;
};

}  // namespace

std::unique_ptr<Engine> Engine::load(const EngineOptions& options) {
  return std::make_unique<EngineImpl>(options);
}

}  // namespace bg
