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
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "batchgen/engine.h"
#include "model/model.h"
#include "runtime/lora_runtime.h"
#include "runtime/step_input.h"
#include "grammar/token_mask.h"
#include "model/gguf.h"
#include "sample/request_extras.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"
#include "sched/seq_budget.h"

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
  if (o.max_seqs < 0) invalid("max_seqs must be >= 0 (0 = from the KV cache), got " + std::to_string(o.max_seqs));
  if (o.max_model_len < 0) invalid("max_model_len must be >= 0 (0 = the model's)");
}

// BG_PROFILE_OPS=1 at load: the backend times its ops by category (EngineStats::op_profile).
bool profile_ops_from_env() {
  const char* v = std::getenv("BG_PROFILE_OPS");
  if (!v || !*v || std::strcmp(v, "0") == 0) return false;
  if (std::strcmp(v, "1") != 0) invalid(std::string("BG_PROFILE_OPS must be 1 or 0, got \"") + v + "\"");
  return true;
}

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineOptions& options) : options_(options), epoch_(Clock::now()) {
    options_validate(options_);
    BackendOptions bo;
    bo.device = options_.device;
    bo.threads = options_.threads;
    bo.deterministic = options_.deterministic;
    bo.profile_ops = profile_ops_from_env();
    backend_ = backend_create(bo);
    ModelLoadOptions mo;
    mo.quantize = options_.quantize;
    model_ = Model::load(options_.model_dir, *backend_, mo);
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
    // The running-sequence cap. Given: as is. Derived: the step buffers (logit
    // rows, sampling) are reserved for the sequences the KV budget would hold before
    // the activations take their share (an over-estimate on a device), and the cap
    // is what the cache, sized after them, holds.
    const int32_t bs = options_.block_size;
    const int32_t window = kv_window_of(cfg);
    const bool derive = options_.max_seqs == 0;
    const int32_t rows = std::min(options_.max_batch_tokens,
                                  derive ? seqs_fitting(kv_blocks_choose(bs), bs, std::min(max_len, kTypicalSeqLen),
                                                        window, options_.max_batch_tokens)
                                         : options_.max_seqs);
    // Activations first: on a device the KV cache takes what they leave.
    model_->reserve(options_.max_batch_tokens, rows, max_len);
    // Adapter slots before the KV cache too, which takes what is left.
    lora_ = std::make_unique<LoraRuntime>(options_, *backend_, *model_, options_.max_batch_tokens);

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
    const int32_t seq_len = std::min(max_len, kTypicalSeqLen);
    const int32_t max_seqs = derive ? seqs_fitting(num_blocks, bs, seq_len, window, rows) : rows;

    SchedulerConfig sc;
    sc.max_batch_tokens = options_.max_batch_tokens;
    sc.max_seqs = max_seqs;
    sc.max_model_len = max_len;
    sc.eos_token_ids = cfg.eos_token_ids;
    sc.enable_prefix_caching = options_.enable_prefix_caching;
    sc.kv_window = window;
    scheduler_ = std::make_unique<Scheduler>(sc, num_blocks, bs);
    logits_chunk_ = rows;  // forward() has logits rows for `rows` sequences

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
    info_.weight_params = model_->weight_params();
    info_.weight_format = model_->weight_format();
    info_.kv_bytes_per_token = model_->kv_block_bytes(1);
    info_.block_size = bs;
    info_.kv_blocks = num_blocks;
    info_.max_seqs = max_seqs;
    info_.max_seqs_seq_len = derive ? seq_len : 0;
    for (const LoraAdapterInfo& a : lora_->adapters()) info_.loras.push_back(a.name);
    info_.max_loras = lora_->slots();
    info_.lora_rank = lora_->rank();
    info_.lora_slot_bytes = lora_->slot_bytes();
  }

  ~EngineImpl() override {
    lora_.reset();  // detaches from the model first
  }

  const ModelInfo& model_info() const override { return info_; }

  void validate(const GenerateRequest& req) const override {
    if (req.id.empty()) invalid("request id is empty");
    if (req.pooling != Pooling::none) {
      prompt_validate(req.prompt, info_.max_model_len, "embed");  // nothing is generated
      return;
    }
    prompt_validate(req.prompt, info_.max_model_len - 1, "generate");
    if (!req.lora.empty()) lora_->find(req.lora);
    sampling_params_validate(req.sampling, info_.vocab_size);
    if (req.sampling.format != SamplingParams::Format::text) {
      if (info_.eos_token_ids.empty() && req.sampling.stop_token_ids.empty()) {
        invalid("a JSON response format needs an end-of-sequence or stop token to end the line; this model has none");
      }
      grammar_syntax_check(req.sampling);
    }
  }

  void submit(const GenerateRequest& req) override {
    validate(req);
    if (scheduler_->has(req.id) || pending_ids_.count(req.id) || lora_queued_.count(req.id)) {
      invalid("a request with id '" + req.id + "' is already live");
    }
    const double submitted = req.arrival == Clock::time_point{} ? now_ms() : ms_since_epoch(req.arrival);
    if (!req.lora.empty()) {
      // Admitted once its adapter holds a slot (lora_admit, at the next step).
      lora_queue_.push_back(LoraQueued{req, lora_->find(req.lora), submitted});
      lora_queued_.insert(req.id);
      return;
    }
    admit(req, submitted, -1, 0);
  }

  // Hands a validated request to the scheduler; `slot` is its adapter's pinned slot
  // (-1: none), released when its result is made.
  void admit(const GenerateRequest& req, double submitted, int32_t slot, uint64_t salt) {
    SamplingParams sp = req.sampling;
    if (!req.has_seed) sp.seed = seed_from_id(req.id);
    const bool embed = req.pooling != Pooling::none;
    std::unique_ptr<RequestExtras> extras;
    if (!embed && RequestExtras::wanted(sp)) {
      extras = std::make_unique<RequestExtras>();
      if (sp.format != SamplingParams::Format::text) {
        extras->grammar = std::make_unique<grammar::GrammarState>(grammar_for(sp));
      }
    }
    Request* r = scheduler_->add(req.id, req.prompt, sp, req.priority, salt, embed);
    if (extras) extras_[req.id] = std::move(extras);
    if (embed) pooled_[req.id] = Pooled{req.pooling, std::vector<double>(size_t(info_.hidden_size)), 0};
    if (slot >= 0) lora_pins_[req.id] = slot;
    r->times.submitted = submitted;
  }

  // Admits queued adapter requests, in submission order, whose adapter is resident,
  // or read and given a slot; the others wait, for a slot to be released or for
  // their adapter, which the loader reads meanwhile (a step never waits for a
  // disk). The requests of an adapter that cannot be read fail with the reason.
  void lora_admit() {
    std::vector<int32_t> waiting;  // their adapters, in queue order
    std::unordered_map<int32_t, std::string> unreadable;
    for (auto it = lora_queue_.begin(); it != lora_queue_.end();) {
      int32_t slot = -1;
      auto bad = unreadable.find(it->adapter);
      if (bad == unreadable.end()) {
        try {
          slot = lora_->acquire(it->adapter);
        } catch (const std::exception& e) {
          bad = unreadable.emplace(it->adapter, std::string("LoRA adapter '") + it->request.lora + "': " + e.what())
                    .first;
        }
      }
      if (bad != unreadable.end()) {
        it = lora_unqueue(it, FinishReason::error, bad->second);
        continue;
      }
      if (slot < 0) {
        waiting.push_back(it->adapter);
        ++it;
        continue;
      }
      lora_queued_.erase(it->request.id);
      admit(it->request, it->submitted, slot, lora_->cache_salt(it->adapter));
      it = lora_queue_.erase(it);
    }
    lora_->prefetch(waiting);
  }

  // Each sequence's adapter slot (-1: the base), with the sequences of one adapter
  // put side by side (lora_group_order); the step's rows, sampling rows and update
  // all follow out.seqs, so one reorder here is all it takes, and a row's tokens do
  // not depend on where it sits. Returns the slots in the new order (StepBatch's
  // lora_slots).
  std::vector<int32_t> lora_group(ScheduleOutput& out) const {
    std::vector<int32_t> slots;
    slots.reserve(out.seqs.size());
    for (const ScheduledSeq& s : out.seqs) {
      auto it = lora_pins_.find(s.request->id);
      slots.push_back(it == lora_pins_.end() ? -1 : it->second);
    }
    if (std::is_sorted(slots.begin(), slots.end())) return slots;
    std::vector<ScheduledSeq> seqs;
    std::vector<int32_t> sorted;
    seqs.reserve(out.seqs.size());
    sorted.reserve(slots.size());
    for (size_t i : lora_group_order(slots)) {
      seqs.push_back(out.seqs[i]);
      sorted.push_back(slots[i]);
    }
    out.seqs = std::move(seqs);
    return sorted;
  }

  bool abort(const std::string& id) override {
    if (lora_queued_.count(id)) {
      for (auto it = lora_queue_.begin(); it != lora_queue_.end(); ++it) {
        if (it->request.id != id) continue;
        lora_unqueue(it, FinishReason::abort, "");
        break;
      }
      lora_queued_.erase(id);
      return true;
    }
    std::unique_ptr<Request> r = scheduler_->remove(id);
    if (!r) return false;
    r->finish_reason = FinishReason::abort;
    pending_.push_back(result_finish(*r, now_ms(), ""));
    pending_ids_.insert(id);
    return true;
  }

  std::vector<GenerateResult> step() override {
    const double t0 = now_ms();
    if (lora_->enabled()) lora_admit();  // with an empty queue too: the loader drops what it read
    std::vector<GenerateResult> results = std::move(pending_);
    pending_.clear();
    pending_ids_.clear();
    ScheduleOutput out = scheduler_->schedule();
    if (out.empty()) {
      device_end_ms_ = -1;  // idle: no gap to count before the next step
      // Nothing runs until an adapter is read: wait for it here rather than have the
      // caller spin on step(), briefly, so that its submits and aborts go on.
      if (results.empty() && !lora_queue_.empty()) lora_->wait_for_read(std::chrono::milliseconds(5));
      return results;
    }
    for (const ScheduledSeq& s : out.seqs) {
      if (s.request->times.first_scheduled < 0) s.request->times.first_scheduled = t0;
    }
    std::vector<int32_t> lora_slots;
    if (!lora_pins_.empty()) lora_slots = lora_group(out);
    kv_blocks_peak_ = std::max(kv_blocks_peak_, scheduler_->blocks().num_used());

    const size_t R = size_t(out.num_sampling);
    double backend_ms = 0;  // inside the backend's forward and sample calls
    std::vector<int32_t> sampled(R);
    std::vector<float> lp_sampled;
    std::vector<int32_t> lp_ids;
    std::vector<float> lp_values;
    std::vector<RequestExtras*> row_extras(R, nullptr);
    try {
      StepBatch batch = step_batch_build(out, scheduler_->blocks());
      batch.lora_slots = std::move(lora_slots);
      StepTensors tensors = backend_->upload_step(batch);
      // A device queues the forward pass; the grammar masks below are computed on
      // host threads while it runs.
      const double tf = now_ms();
      if (device_end_ms_ >= 0) {
        host_gap_ms_ += tf - device_end_ms_;
        ++host_gaps_;
      }
      Tensor logits = model_->forward(tensors);
      device_end_ms_ = now_ms();
      backend_ms += device_end_ms_ - tf;
      if (out.num_sampling > 0) {
        std::vector<SampleRow> rows;
        rows.reserve(R);
        SampleExtrasBuilder xb(out.num_sampling, info_.vocab_size, (info_.vocab_size + 31) / 32);
        for (const ScheduledSeq& s : out.seqs) {
          if (!s.samples) continue;
          const Request& q = *s.request;
          const SamplingParams& p = q.sampling;
          rows.push_back(SampleRow{p.temperature, p.top_k, p.top_p, p.min_p, p.seed, q.num_tokens()});
          RequestExtras* e = nullptr;
          if (!extras_.empty()) {
            auto it = extras_.find(q.id);
            if (it != extras_.end()) e = it->second.get();
          }
          row_extras[rows.size() - 1] = e;
          const int32_t budget = std::min(p.max_tokens - int32_t(q.output.size()),
                                          info_.max_model_len - q.num_tokens());
          xb.set_budget(int32_t(rows.size() - 1), budget);
          xb.add_row(p, e, q.prompt, q.output);
        }
        if (xb.any()) {
          const auto tm = Clock::now();
          xb.fill_masks(info_.eos_token_ids, mask_pool());
          if (xb.masks() > 0) {
            grammar_masks_ += xb.masks();
            grammar_distinct_masks_ += xb.distinct_masks();
            grammar_host_ms_ += std::chrono::duration<double, std::milli>(Clock::now() - tm).count();
          }
          SampleLogprobs lp;
          if (xb.extras().has_logprobs()) {
            lp_sampled.assign(R, 0.0f);
            lp_ids.assign(R * kMaxTopLogprobs, 0);
            lp_values.assign(R * kMaxTopLogprobs, 0.0f);
            lp = SampleLogprobs{lp_sampled.data(), lp_ids.data(), lp_values.data()};
          }
          const double ts = now_ms();
          backend_->sample(logits, rows, &xb.extras(), sampled.data(), &lp);
          device_end_ms_ = now_ms();
          backend_ms += device_end_ms_ - ts;
        } else {
          const double ts = now_ms();
          backend_->sample(logits, rows, sampled.data());
          device_end_ms_ = now_ms();
          backend_ms += device_end_ms_ - ts;
        }
      }
      if (!pooled_.empty()) pool_hidden(out, tensors.num_tokens);
    } catch (const std::exception& e) {
      // The step's K/V may be half written: fail its requests, keep the rest.
      const double t = now_ms();
      std::vector<std::string> ids;
      for (const ScheduledSeq& s : out.seqs) ids.push_back(s.request->id);
      for (const std::string& id : ids) {
        std::unique_ptr<Request> r = scheduler_->remove(id);
        r->finish_reason = FinishReason::error;
        results.push_back(result_finish(*r, t, std::string("engine step failed: ") + e.what()));
      }
      device_end_ms_ = -1;
      finish_step(t0, t);
      return results;
    }

    const double t1 = now_ms();
    for (const ScheduledSeq& s : out.seqs) {
      if (s.samples && s.request->times.first_token < 0) s.request->times.first_token = t1;
    }
    record_extras(out, sampled, row_extras, lp_sampled, lp_ids, lp_values);
    std::vector<std::string> failed;
    for (size_t i = 0; i < R; ++i) {
      if (row_extras[i] && row_extras[i]->grammar_failed) failed.push_back(sampling_ids_[i]);
    }
    for (std::unique_ptr<Request>& r : scheduler_->update(out, sampled.data())) {
      results.push_back(result_finish(*r, t1, ""));
    }
    for (const std::string& id : failed) {  // the model's token fell outside the grammar
      std::unique_ptr<Request> r = scheduler_->remove(id);
      if (!r) continue;
      r->finish_reason = FinishReason::error;
      results.push_back(result_finish(*r, t1, "structured output: a sampled token left the grammar"));
    }
    if (!has_work()) device_end_ms_ = -1;
    host_ms_ += now_ms() - t0 - backend_ms;
    finish_step(t0, t1);
    return results;
  }

  bool has_work() const override {
    return scheduler_->has_work() || !pending_.empty() || !lora_queue_.empty();
  }

  EngineStats stats() const override {
    EngineStats s;
    s.running = scheduler_->num_running();
    s.waiting = scheduler_->num_waiting() + int32_t(lora_queue_.size());
    const BlockManager& bm = scheduler_->blocks();
    s.kv_blocks_total = bm.num_blocks();
    s.kv_blocks_used = bm.num_used();
    s.kv_blocks_peak = kv_blocks_peak_;
    s.kv_blocks_free = bm.num_free();
    s.kv_blocks_cached = bm.num_cached_free();
    s.kv_blocks_evicted = bm.evictions();
    s.prompt_tokens_processed = scheduler_->prompt_tokens_processed();
    s.prompt_tokens_cached = scheduler_->prompt_tokens_cached();
    s.generated_tokens = scheduler_->generated_tokens();
    s.steps = steps_;
    s.preemptions = scheduler_->preemptions();
    s.last_step_ms = last_step_ms_;
    s.max_seqs = info_.max_seqs;
    s.host_ms = host_ms_;
    s.host_gap_ms = host_gap_ms_;
    s.host_gaps = host_gaps_;
    s.grammar_masks = grammar_masks_;
    s.grammar_distinct_masks = grammar_distinct_masks_;
    s.grammar_host_ms = grammar_host_ms_;
    s.loras_resident = lora_->resident();
    s.lora_loads = lora_->loads();
    s.lora_evictions = lora_->evictions();
    s.op_profile = backend_->op_profile();
    return s;
  }

  std::vector<float> prompt_logits(const std::vector<int32_t>& prompt, const std::string& lora) override {
    prompt_validate(prompt, info_.max_model_len, "prompt_logits");
    const int32_t slot = lora.empty() ? -1 : lora_->acquire_now(lora_->find(lora));
    if (!lora.empty() && slot < 0) {
      throw EngineError(ErrorCode::out_of_memory,
                        "prompt_logits: every LoRA slot is held by running requests; retry when the engine is idle");
    }
    struct Unpin {
      LoraRuntime& lora;
      int32_t slot;
      ~Unpin() {
        if (slot >= 0) lora.release(slot);
      }
    } unpin{*lora_, slot};
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
      if (slot >= 0) batch.lora_slots = {slot};
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

  // Embedding requests: their rows of this step's final-norm hidden states, summed
  // (mean pooling: every computed row; last: the prompt's last row, in the step that
  // completes it). A preempted request recomputes its prompt, so its sum restarts.
  void pool_hidden(const ScheduleOutput& out, int32_t num_tokens) {
    for (const Request* r : out.preempted) {
      auto it = pooled_.find(r->id);
      if (it == pooled_.end()) continue;
      std::fill(it->second.sum.begin(), it->second.sum.end(), 0.0);
      it->second.count = 0;
    }
    const size_t H = size_t(info_.hidden_size);
    const Tensor hidden = model_->hidden_states(num_tokens);
    int32_t offset = 0;
    for (const ScheduledSeq& s : out.seqs) {
      const int32_t at = offset;
      offset += s.num_tokens;
      if (!s.request->prefill_only) continue;
      auto it = pooled_.find(s.request->id);
      if (it == pooled_.end()) continue;
      Pooled& p = it->second;
      const bool last = p.pooling == Pooling::last;
      if (last && !s.finishes_prefill) continue;
      const int32_t n = last ? 1 : s.num_tokens;
      pool_rows_.resize(size_t(n) * H);
      backend_->copy_to_host_f32(hidden.row_slice(last ? at + s.num_tokens - 1 : at, n), pool_rows_.data());
      for (int32_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < H; ++j) p.sum[j] += double(pool_rows_[size_t(i) * H + j]);
      }
      p.count += n;
    }
  }

  // The result of a request leaving the engine, with its extras (then dropped).
  GenerateResult result_finish(const Request& r, double now, const std::string& error) {
    GenerateResult g = result_make(r, now, error);
    auto pooled = pooled_.find(r.id);
    if (pooled != pooled_.end()) {
      const Pooled& p = pooled->second;
      if (r.finish_reason == FinishReason::stop && p.count > 0) {
        g.embedding.resize(p.sum.size());
        for (size_t j = 0; j < p.sum.size(); ++j) g.embedding[j] = float(p.sum[j] / double(p.count));
      }
      pooled_.erase(pooled);
    }
    auto pin = lora_pins_.find(r.id);
    if (pin != lora_pins_.end()) {
      lora_->release(pin->second);
      lora_pins_.erase(pin);
    }
    auto it = extras_.find(r.id);
    if (it != extras_.end()) {
      request_extras_to_result(*it->second, r.sampling.logprobs, g);
      extras_.erase(it);
    }
    return g;
  }

  // After sampling: logprobs gathered, grammar states advanced by the sampled tokens.
  void record_extras(const ScheduleOutput& out, const std::vector<int32_t>& sampled,
                     const std::vector<RequestExtras*>& row_extras, const std::vector<float>& lp_sampled,
                     const std::vector<int32_t>& lp_ids, const std::vector<float>& lp_values) {
    sampling_ids_.clear();
    std::vector<std::pair<RequestExtras*, int32_t>> accepts;  // grammar rows and their tokens
    size_t i = 0;
    for (const ScheduledSeq& s : out.seqs) {
      if (!s.samples) continue;
      sampling_ids_.push_back(s.request->id);
      RequestExtras* e = row_extras[i];
      const int32_t token = sampled[i];
      const size_t row = i++;
      if (!e) continue;
      const SamplingParams& p = s.request->sampling;
      if (p.logprobs >= 0 && !lp_sampled.empty()) {
        e->logprobs.push_back(lp_sampled[row]);
        for (int32_t j = 0; j < p.logprobs; ++j) {
          e->top_ids.push_back(lp_ids[row * kMaxTopLogprobs + size_t(j)]);
          e->top_lps.push_back(lp_values[row * kMaxTopLogprobs + size_t(j)]);
        }
      }
      if (e->grammar && !e->grammar_failed) {
        const bool ends = std::find(info_.eos_token_ids.begin(), info_.eos_token_ids.end(), token) !=
                              info_.eos_token_ids.end() ||
                          std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) !=
                              p.stop_token_ids.end();
        if (!ends) accepts.emplace_back(e, token);
      }
    }
    // Between the step's sampling and the next forward pass the device idles:
    // a thousand rows' grammar walks go over the mask threads.
    auto accept = [&](size_t i) {
      if (!accepts[i].first->grammar->accept(accepts[i].second)) accepts[i].first->grammar_failed = true;
    };
    if (accepts.size() >= 256) {
      mask_pool()->parallel_for(int64_t(accepts.size()), 64, [&](int, int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) accept(size_t(i));
      });
    } else {
      for (size_t i = 0; i < accepts.size(); ++i) accept(i);
    }
  }

  // Checks a JSON format without the vocabulary (validate() runs on any thread).
  void grammar_syntax_check(const SamplingParams& p) const {
    if (p.format != SamplingParams::Format::json_schema) return;
    std::lock_guard<std::mutex> lock(grammar_mu_);
    if (grammars_.count(p.json_schema) || checked_schemas_.count(p.json_schema)) return;
    grammar::grammar_from_json_schema(p.json_schema);  // throws naming the keyword
    if (checked_schemas_.size() > 1024) checked_schemas_.clear();
    checked_schemas_.insert(p.json_schema);
  }

  // The compiled grammar of a format, cached by schema text (a batch uses one schema
  // on every line); the vocabulary's bytes are read once, at the first one.
  std::shared_ptr<const grammar::CompiledGrammar> grammar_for(const SamplingParams& p) {
    const std::string key = p.format == SamplingParams::Format::json_object ? std::string() : p.json_schema;
    std::lock_guard<std::mutex> lock(grammar_mu_);
    auto it = grammars_.find(key);
    if (it != grammars_.end()) return it->second;
    if (!vocab_) {
      std::vector<std::string> bytes = options_.token_bytes;
      if (bytes.empty()) {
        const std::string gguf = gguf_find(options_.model_dir);
        bytes = gguf.empty() ? grammar::token_bytes_from_tokenizer_json(options_.model_dir + "/tokenizer.json", info_.vocab_size)
                             : grammar::token_bytes_from_gguf(gguf, info_.vocab_size);
      }
      bytes.resize(size_t(info_.vocab_size));
      vocab_ = std::make_shared<const grammar::TokenVocab>(grammar::token_vocab_make(std::move(bytes)));
    }
    grammar::Grammar g = key.empty() ? grammar::grammar_json_object() : grammar::grammar_from_json_schema(key);
    auto compiled = std::make_shared<const grammar::CompiledGrammar>(std::move(g), vocab_);
    if (grammars_.size() >= 256) grammars_.clear();  // a bound for jobs with per-line schemas
    grammars_.emplace(key, compiled);
    return compiled;
  }

  // Threads for the grammar masks (the caller counts as one), which run while a
  // device computes the step's forward pass.
  ThreadPool* mask_pool() {
    if (!mask_pool_) mask_pool_ = std::make_unique<ThreadPool>(int(std::max(1u, std::min(8u, std::thread::hardware_concurrency()))));
    return mask_pool_.get();
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
  // Host time per step (EngineStats::host_ms, host_gap_ms); device_end_ms_: when the
  // last step's device work ended (its tokens reached the host), -1 after an idle step.
  double host_ms_ = 0, host_gap_ms_ = 0, device_end_ms_ = -1;
  int64_t host_gaps_ = 0;
  std::unordered_map<std::string, std::unique_ptr<RequestExtras>> extras_;
  // Embedding requests' pooled hidden states so far (double sums), by id.
  struct Pooled {
    Pooling pooling;
    std::vector<double> sum;
    int64_t count;
  };
  std::unordered_map<std::string, Pooled> pooled_;
  std::vector<float> pool_rows_;
  std::vector<std::string> sampling_ids_;     // ids of the last step's sampling rows
  int64_t grammar_masks_ = 0, grammar_distinct_masks_ = 0;
  double grammar_host_ms_ = 0;
  int64_t kv_blocks_peak_ = 0;
  std::unique_ptr<ThreadPool> mask_pool_;  // made at the first grammar row
  mutable std::mutex grammar_mu_;
  mutable std::set<std::string> checked_schemas_;
  std::map<std::string, std::shared_ptr<const grammar::CompiledGrammar>> grammars_;
  std::shared_ptr<const grammar::TokenVocab> vocab_;
  // LoRA: requests waiting for their adapter's slot, and each admitted adapter
  // request's pinned slot.
  struct LoraQueued {
    GenerateRequest request;
    int32_t adapter = -1;
    double submitted = 0;
  };
  std::unique_ptr<LoraRuntime> lora_;
  std::deque<LoraQueued> lora_queue_;
  std::set<std::string> lora_queued_;
  std::unordered_map<std::string, int32_t> lora_pins_;

  // Ends a queued adapter request that never ran (aborted, or its adapter could not
  // be read): its result goes out with the next step. Returns the queue's next entry.
  std::deque<LoraQueued>::iterator lora_unqueue(std::deque<LoraQueued>::iterator it, FinishReason why,
                                                std::string error) {
    GenerateResult g;
    g.id = it->request.id;
    g.finish_reason = why;
    g.error = std::move(error);
    g.prompt_tokens = int32_t(it->request.prompt.size());
    g.total_ms = g.queue_ms = now_ms() - it->submitted;
    pending_ids_.insert(g.id);
    lora_queued_.erase(g.id);
    pending_.push_back(std::move(g));
    return lora_queue_.erase(it);
  }
};

}  // namespace

std::unique_ptr<Engine> Engine::load(const EngineOptions& options) {
  return std::make_unique<EngineImpl>(options);
}

}  // namespace bg
