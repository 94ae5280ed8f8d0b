#include "sched/scheduler.h"

#include <algorithm>
#include <stdexcept>

#include "batchgen/sampling.h"

namespace bg {

Scheduler::Scheduler(const SchedulerConfig& config, int64_t num_blocks, int32_t block_size)
    : config_(config), blocks_(num_blocks, block_size) {
  if (config_.max_batch_tokens < 1) throw std::invalid_argument("max_batch_tokens must be >= 1");
  if (config_.max_seqs < 1) throw std::invalid_argument("max_seqs must be >= 1");
  if (config_.max_model_len < 1) throw std::invalid_argument("max_model_len must be >= 1");
}

Request* Scheduler::add(const std::string& id, std::vector<int32_t> prompt,
                        const SamplingParams& sampling, int32_t priority, uint64_t cache_salt,
                        bool prefill_only) {
  if (requests_.count(id)) throw std::invalid_argument("duplicate request id '" + id + "'");
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  auto r = std::make_unique<Request>();
  r->id = id;
  r->handle = next_handle_++;
  r->priority = priority;
  r->arrival = next_arrival_++;
  r->prompt = std::move(prompt);
  r->sampling = sampling;
  r->cache_salt = cache_salt;
  r->prefill_only = prefill_only;
  Request* raw = r.get();
  requests_.emplace(id, std::move(r));
  waiting_.insert(raw);
  return raw;
}

void Scheduler::insert_running(Request* r) {
  running_.insert(std::upper_bound(running_.begin(), running_.end(), r, Before{}), r);
}

void Scheduler::erase_running(Request* r) {
  auto it = std::find(running_.begin(), running_.end(), r);
  if (it != running_.end()) running_.erase(it);
}

void Scheduler::hashes_extend(Request& r, int32_t n) {
  const int32_t bs = blocks_.block_size();
  std::vector<int32_t> tokens(static_cast<size_t>(bs));
  while (int32_t(r.block_hashes.size()) < n) {
    const int32_t i = int32_t(r.block_hashes.size());
    for (int32_t j = 0; j < bs; ++j) tokens[size_t(j)] = r.token(i * bs + j);
    const uint64_t parent = i == 0 ? block_hash_seed(rng_mix(config_.cache_salt) ^ r.cache_salt)
                                   : r.block_hashes[size_t(i) - 1];
    r.block_hashes.push_back(block_hash(parent, tokens.data(), bs));
  }
}

std::vector<int32_t> Scheduler::cache_match(Request& r, int32_t max_blocks) {
  hashes_extend(r, max_blocks);
  const int32_t bs = blocks_.block_size();
  std::vector<int32_t> tokens(static_cast<size_t>(bs));
  std::vector<int32_t> hits;
  uint64_t parent = block_hash_seed(rng_mix(config_.cache_salt) ^ r.cache_salt);
  for (int32_t i = 0; i < max_blocks; ++i) {
    for (int32_t j = 0; j < bs; ++j) tokens[size_t(j)] = r.token(i * bs + j);
    const uint64_t h = r.block_hashes[size_t(i)];
    const int32_t b = blocks_.lookup(BlockKey{h, parent, tokens.data()});
    if (b < 0) break;
    hits.push_back(b);
    parent = h;
  }
  return hits;
}

bool Scheduler::twin_computing(const Request& r, int32_t index) const {
  return size_t(index) < r.block_hashes.size() && pending_.count(r.block_hashes[size_t(index)]);
}

void Scheduler::blocks_register(Request& r) {
  const int32_t bs = blocks_.block_size();
  const int32_t full = r.num_computed / bs;
  if (full <= r.num_registered) return;
  hashes_extend(r, full);
  std::vector<int32_t> tokens(static_cast<size_t>(bs));
  for (int32_t i = r.num_registered; i < full; ++i) {
    for (int32_t j = 0; j < bs; ++j) tokens[size_t(j)] = r.token(i * bs + j);
    const uint64_t parent = i == 0 ? block_hash_seed(rng_mix(config_.cache_salt) ^ r.cache_salt)
                                   : r.block_hashes[size_t(i) - 1];
    if (blocks_.table(r.handle)[size_t(i)] >= 0) {
      blocks_.register_block(r.handle, i, BlockKey{r.block_hashes[size_t(i)], parent, tokens.data()});
    }
    if (i < r.pending_end) {
      auto it = pending_.find(r.block_hashes[size_t(i)]);
      if (it != pending_.end() && --it->second == 0) pending_.erase(it);
    }
  }
  r.num_registered = full;
}

void Scheduler::pending_drop(Request& r) {
  for (int32_t i = r.num_registered; i < r.pending_end; ++i) {
    auto it = pending_.find(r.block_hashes[size_t(i)]);
    if (it != pending_.end() && --it->second == 0) pending_.erase(it);
  }
  r.pending_end = 0;
}

void Scheduler::window_release(Request& r) {
  if (config_.kv_window <= 0) return;
  // Positions < num_computed - kv_window are behind every future query's window.
  const int32_t n = std::max(0, r.num_computed - config_.kv_window) / blocks_.block_size();
  if (n <= r.num_released) return;
  blocks_.release_front(r.handle, n);
  r.num_released = n;
}

void Scheduler::preempt(Request* r, ScheduleOutput& out) {
  erase_running(r);
  pending_drop(*r);
  blocks_.free_seq(r->handle);
  r->num_computed = 0;
  r->num_prefill = 0;
  r->num_registered = 0;
  r->num_released = 0;
  ++r->preemptions;
  ++preemptions_;
  // Its arrival is older than anything admitted after it, so (priority, arrival)
  // order puts it back at the front of its priority's queue.
  waiting_.insert(r);
  out.preempted.push_back(r);
}

ScheduleOutput Scheduler::schedule() {
  ScheduleOutput out;
  int32_t budget = config_.max_batch_tokens;
  const size_t max_seqs = size_t(config_.max_seqs);

  // 1. One token for every running request, oldest first; preempt the newest
  //    when blocks run out. Victims come from the back, which has not been
  //    scheduled yet, so nothing already in `out` is ever preempted.
  for (size_t i = 0; i < running_.size() && budget > 0 && out.seqs.size() < max_seqs;) {
    Request* r = running_[i];
    bool self_preempted = false;
    while (!blocks_.ensure_capacity(r->handle, int64_t(r->num_computed) + 1)) {
      Request* victim = running_.back();
      preempt(victim, out);
      if (victim == r) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;  // r was the newest: nothing left behind it
    out.seqs.push_back(ScheduledSeq{r, r->num_computed, 1, false});
    budget -= 1;
    ++i;
  }

  // 2. Extend prefill chunks with what is left, within the free blocks.
  for (ScheduledSeq& s : out.seqs) {
    if (budget == 0) break;
    Request* r = s.request;
    int64_t end = int64_t(s.start) + s.num_tokens;
    int64_t want = std::min<int64_t>(r->num_tokens() - end, budget);
    if (want <= 0) continue;
    int64_t fit = blocks_.capacity(r->handle) + blocks_.num_free() * blocks_.block_size() - end;
    int64_t extra = std::min(want, fit);
    if (extra <= 0) continue;
    blocks_.ensure_capacity(r->handle, end + extra);
    s.num_tokens += int32_t(extra);
    budget -= int32_t(extra);
  }

  // 3. Admit waiting requests, FIFO within priority, unless this step had to
  //    preempt (admitting then would only thrash). With prefix caching a request
  //    starts after its longest cached chain; one whose next block a running
  //    twin is computing waits for it (later requests may go first).
  if (out.preempted.empty()) {
    const int32_t bs = blocks_.block_size();
    for (auto it = waiting_.begin(); it != waiting_.end() && budget > 0 &&
                                     running_.size() < max_seqs && out.seqs.size() < max_seqs;) {
      Request* r = *it;
      std::vector<int32_t> hits;
      const bool caching = config_.enable_prefix_caching && !r->prefill_only;
      if (caching) {
        const int32_t matchable = (r->num_tokens() - 1) / bs;  // the last token is always computed
        hits = cache_match(*r, matchable);
        if (int32_t(hits.size()) < matchable && twin_computing(*r, int32_t(hits.size()))) {
          ++twin_waits_;
          ++it;
          continue;
        }
      }
      const int32_t cached = int32_t(hits.size()) * bs;
      const int32_t n = std::min(r->num_tokens() - cached, budget);
      int64_t revived = 0;  // hits that leave the LRU pool, so stop counting as free
      for (int32_t b : hits) revived += blocks_.ref_count(b) == 0 ? 1 : 0;
      if (blocks_.blocks_for(cached + n) - int64_t(hits.size()) > blocks_.num_free() - revived) break;
      for (int32_t b : hits) blocks_.append_shared(r->handle, b);
      blocks_.ensure_capacity(r->handle, int64_t(cached) + n);  // fits: checked above
      it = waiting_.erase(it);
      insert_running(r);
      r->num_computed = cached;
      r->num_registered = int32_t(hits.size());
      r->num_prefill = r->num_tokens();
      if (!r->admitted) r->num_cached = std::min(cached, int32_t(r->prompt.size()));
      r->admitted = true;
      prompt_tokens_cached_ += cached;
      if (caching) {
        // Announce the full blocks it will compute, so twins wait for them.
        const int32_t full = r->num_tokens() / bs;
        hashes_extend(*r, full);
        for (int32_t i = int32_t(hits.size()); i < full; ++i) ++pending_[r->block_hashes[size_t(i)]];
        r->pending_end = full;
      }
      out.seqs.push_back(ScheduledSeq{r, cached, n, false});
      budget -= n;
    }
  }

  for (ScheduledSeq& s : out.seqs) {
    const bool completes = s.start + s.num_tokens == s.request->num_tokens();
    s.samples = completes && !s.request->prefill_only;
    s.finishes_prefill = completes && s.request->prefill_only;
    out.total_tokens += s.num_tokens;
    out.num_sampling += s.samples ? 1 : 0;
  }
  return out;
}

bool Scheduler::stops(const Request& r, int32_t token, FinishReason* reason) const {
  const SamplingParams& p = r.sampling;
  if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end() ||
      (!p.ignore_eos && std::find(config_.eos_token_ids.begin(), config_.eos_token_ids.end(),
                                  token) != config_.eos_token_ids.end())) {
    *reason = FinishReason::stop;
    return true;
  }
  if (int32_t(r.output.size()) >= p.max_tokens || r.num_tokens() >= config_.max_model_len) {
    *reason = FinishReason::length;
    return true;
  }
  return false;
}

std::vector<std::unique_ptr<Request>> Scheduler::update(const ScheduleOutput& out,
                                                        const int32_t* sampled) {
  std::vector<std::unique_ptr<Request>> finished;
  size_t row = 0;
  for (const ScheduledSeq& s : out.seqs) {
    Request* r = s.request;
    prompt_tokens_processed_ +=
        std::max(0, std::min(s.start + s.num_tokens, r->num_prefill) - s.start);
    r->num_computed = s.start + s.num_tokens;
    if (config_.enable_prefix_caching) blocks_register(*r);
    window_release(*r);
    if (s.finishes_prefill) {
      std::unique_ptr<Request> done = remove(r->id);
      done->finish_reason = FinishReason::stop;
      finished.push_back(std::move(done));
      continue;
    }
    if (!s.samples) continue;
    int32_t token = sampled[row++];
    r->output.push_back(token);
    ++generated_tokens_;
    FinishReason reason;
    if (stops(*r, token, &reason)) {
      std::unique_ptr<Request> done = remove(r->id);
      done->finish_reason = reason;
      finished.push_back(std::move(done));
    }
  }
  return finished;
}

std::unique_ptr<Request> Scheduler::remove(const std::string& id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return nullptr;
  std::unique_ptr<Request> r = std::move(it->second);
  requests_.erase(it);
  waiting_.erase(r.get());
  erase_running(r.get());
  pending_drop(*r);
  blocks_.free_seq(r->handle);
  return r;
}

std::vector<std::string> Scheduler::live_ids() const {
  std::vector<std::string> ids;
  ids.reserve(requests_.size());
  for (const auto& kv : requests_) ids.push_back(kv.first);
  return ids;
}

}  // namespace bg
