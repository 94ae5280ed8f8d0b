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
  Request* add(const std::string& id, std::vector<int32_t> prompt, const SamplingParams& sampling,
               int32_t priority);

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

  int64_t prompt_tokens_processed() const { return prompt_tokens_processed_; }
  int64_t generated_tokens() const { return generated_tokens_; }
  int64_t preemptions() const { return preemptions_; }

 private:
  struct Before {
    bool operator()(const Request* a, const Request* b) const {
      return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
    }
  };
  void preempt(Request* r, ScheduleOutput& out);
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
  int64_t prompt_tokens_processed_ = 0;
  int64_t generated_tokens_ = 0;
  int64_t preemptions_ = 0;
};

}  // namespace bg
