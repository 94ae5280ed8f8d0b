// The continuous-batching scheduler (vLLM v1 contract). Pure logic: no model, no
// device, no backend headers; unit-tested with fake model outputs.
//
// A request is a token sequence (prompt, then generated tokens) with a count of
// tokens whose K/V are already in the cache (num_computed). There are no prefill
// and decode phases: schedule() says, per request, how many of its next tokens
// run this step; a request whose computed count reaches its length in a step
// produces logits for its last token and samples one new token, which update()
// appends.
//
// Policy, in order, each step, under a token budget (max_batch_tokens) and a
// sequence cap (max_seqs):
//  1. every running request, in (priority, arrival) order, gets its next token
//     (so decodes never starve behind a long prefill); when the blocks for it are
//     not there, the newest running request is preempted (recompute: its blocks
//     are freed, its generated tokens kept, and it goes back to the front of the
//     waiting queue to recompute prompt + output), possibly itself;
//  2. the remaining budget extends those requests' prefill chunks, as far as the
//     free blocks allow (no preemption for this);
//  3. when nothing was preempted, waiting requests are admitted in (priority,
//     arrival) order while budget, sequence slots and blocks last; admission
//     stops at the first one that does not fit (FIFO, no overtaking).
// Lower priority values run first; FIFO within a priority.
//
// Prefix caching (enable_prefix_caching): every full block a request computes is
// registered in the block manager's prefix index under its chain hash (prompt
// and generated tokens alike, so a preempted request finds its own blocks again).
// At admission a request shares the longest chain of registered blocks that
// leaves at least its last token to compute (logits must come from somewhere),
// and its prefill starts at the first uncached token. Twins: a waiting request
// whose next uncached full block is being computed by a running request (admitted
// earlier, maybe in this very step) is held back and later requests may overtake
// it; once that block is registered it is admitted and shares it. So identical
// prompts submitted together (n > 1, a shared system prompt) prefill their common
// full blocks once. Held requests never wait on a request that is not running:
// preempting or removing the running twin releases them.
//
// Prefill-only requests (embeddings, `prefill_only`): scheduled like any other,
// but a step that completes their prompt finishes them (finish reason stop) instead
// of sampling; they never read the prefix cache (every position must be computed,
// for mean pooling) nor make twins wait, though the blocks they compute are
// registered for others. Their prompt may fill max_model_len.
//
// Sliding windows (kv_window > 0: no layer attends further back than kv_window
// tokens): after each step, blocks that lie wholly before num_computed -
// kv_window are released (table entries -1), so a long sequence holds a bounded
// number of blocks. With any global layer the engine passes 0: nothing is freed.
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "batchgen/engine.h"
#include "batchgen/sampling.h"
#include "sched/block_manager.h"

namespace bg {

struct SchedulerConfig {
  int32_t max_batch_tokens = 2048;
  int32_t max_seqs = 256;
  int32_t max_model_len = 0;           // a sequence stops ("length") when it reaches this
  std::vector<int32_t> eos_token_ids;  // stop unless SamplingParams::ignore_eos
  bool enable_prefix_caching = false;
  uint64_t cache_salt = 0;             // mixed into every block hash (the model)
  int32_t kv_window = 0;               // 0: keep every block (see above)
};

// Timestamps (steady-clock ms) the engine keeps with a request; the scheduler
// never reads them.
struct RequestTimes {
  double submitted = 0, first_scheduled = -1, first_token = -1;
};

struct Request {
  std::string id;
  SeqHandle handle = 0;
  int32_t priority = 0;
  uint64_t arrival = 0;                // submission order
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;         // generated tokens
  SamplingParams sampling;             // seed already resolved
  int32_t num_computed = 0;            // tokens whose K/V are in the cache
  int32_t num_prefill = 0;             // tokens counted as prompt work since (re)admission
  int32_t preemptions = 0;
  int32_t num_cached = 0;              // prompt tokens served from the prefix cache at first admission
  bool admitted = false;               // admitted at least once
  bool prefill_only = false;           // finishes when its prompt is computed (see above)
  uint64_t cache_salt = 0;             // the request's part of the block hash (an adapter)
  std::vector<uint64_t> block_hashes;  // chain hashes of its full blocks, as far as computed
  int32_t num_registered = 0;          // table blocks offered to the prefix index
  int32_t pending_end = 0;             // blocks [num_registered, pending_end) announced as coming
  int32_t num_released = 0;            // leading blocks dropped (outside the window)
  FinishReason finish_reason = FinishReason::stop;
  RequestTimes times;

  int32_t num_tokens() const { return int32_t(prompt.size() + output.size()); }
  int32_t token(int32_t i) const {
    return size_t(i) < prompt.size() ? prompt[size_t(i)] : output[size_t(i) - prompt.size()];
  }
};

// One request's share of a step: tokens [start, start + num_tokens) of its sequence.
struct ScheduledSeq {
  Request* request = nullptr;
  int32_t start = 0;
  int32_t num_tokens = 0;
  bool samples = false;                // start + num_tokens == request->num_tokens()
  bool finishes_prefill = false;       // the same for a prefill-only request (it never samples)
};

struct ScheduleOutput {
  std::vector<ScheduledSeq> seqs;      // sampling rows follow this order
  int32_t total_tokens = 0;
  int32_t num_sampling = 0;
  std::vector<const Request*> preempted;
  bool empty() const { return seqs.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, int64_t num_blocks, int32_t block_size);

  // Queues a request (ids unique among live requests: std::invalid_argument
  // otherwise). sampling.seed must already be resolved. Returns the request, owned
  // by the scheduler until it finishes or is aborted.
  // cache_salt separates requests whose K/V differ for the same tokens (an adapter).
  Request* add(const std::string& id, std::vector<int32_t> prompt, const SamplingParams& sampling,
               int32_t priority, uint64_t cache_salt = 0, bool prefill_only = false);

  // Plans one step; the returned pointers stay valid until update().
  ScheduleOutput schedule();

  // Applies a step: `sampled` holds one token per sampling seq of `out`, in order.
  // Returns the requests that finished (finish_reason set), now owned by the caller.
  std::vector<std::unique_ptr<Request>> update(const ScheduleOutput& out, const int32_t* sampled);

  // Removes a live request and frees its blocks; null for an unknown id. The
  // caller decides the finish reason (abort, error).
  std::unique_ptr<Request> remove(const std::string& id);

  bool has(const std::string& id) const { return requests_.count(id) != 0; }
  bool has_work() const { return !requests_.empty(); }
  int32_t num_running() const { return int32_t(running_.size()); }
  int32_t num_waiting() const { return int32_t(waiting_.size()); }
  std::vector<std::string> live_ids() const;

  const BlockManager& blocks() const { return blocks_; }
  BlockManager& blocks() { return blocks_; }
  const SchedulerConfig& config() const { return config_; }

  // Prompt work (prompt, plus generated tokens recomputed after a preemption):
  // tokens computed, and tokens served from the prefix cache instead.
  int64_t prompt_tokens_processed() const { return prompt_tokens_processed_; }
  int64_t prompt_tokens_cached() const { return prompt_tokens_cached_; }
  // Admissions held back because a running request was computing their prefix.
  int64_t twin_waits() const { return twin_waits_; }
  int64_t generated_tokens() const { return generated_tokens_; }
  int64_t preemptions() const { return preemptions_; }

 private:
  struct Before {
    bool operator()(const Request* a, const Request* b) const {
      return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
    }
  };
  void preempt(Request* r, ScheduleOutput& out);
  // Prefix cache: hashes of r's first n full blocks; the registered blocks of its
  // longest cached chain (at most max_blocks); whether a running request is
  // computing its block `index`; registering the blocks r has computed; and
  // dropping r's announcements when it stops running.
  void hashes_extend(Request& r, int32_t n);
  std::vector<int32_t> cache_match(Request& r, int32_t max_blocks);
  bool twin_computing(const Request& r, int32_t index) const;
  void blocks_register(Request& r);
  void pending_drop(Request& r);
  void window_release(Request& r);
  void insert_running(Request* r);
  void erase_running(Request* r);
  // Finish reason after appending `token`, or false when the request goes on.
  bool stops(const Request& r, int32_t token, FinishReason* reason) const;

  SchedulerConfig config_;
  BlockManager blocks_;
  std::unordered_map<std::string, std::unique_ptr<Request>> requests_;
  std::set<Request*, Before> waiting_;
  std::vector<Request*> running_;      // sorted by Before
  uint64_t next_arrival_ = 0;
  SeqHandle next_handle_ = 1;
  std::unordered_map<uint64_t, int32_t> pending_;  // block hash -> running requests computing it
  int64_t prompt_tokens_processed_ = 0;
  int64_t prompt_tokens_cached_ = 0;
  int64_t twin_waits_ = 0;
  int64_t generated_tokens_ = 0;
  int64_t preemptions_ = 0;
};

}  // namespace bg
