// The CUDA backend's op profile (batchgen/op_profile.h): a pair of timing events
// queued on the stream around each op, read back once the device has passed them.
// Reading never waits on its own: each begin() reads up to two finished pairs while
// the device runs what is queued, collect() every finished one; only with
// kMaxPending pairs outstanding (a long run with no synchronising call) does begin()
// wait for the oldest. Events are recycled, so a run creates about two steps' worth.
#pragma once
#include <cuda_runtime.h>

#include <deque>
#include <vector>

#include "batchgen/op_profile.h"

namespace bg {
namespace cuda {

class OpTimer {
 public:
  explicit OpTimer(bool on) : on_(on) {}
  ~OpTimer();
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

  bool on() const { return on_; }
  // Queues the start of an op of category c on `stream`; end() queues its end.
  void begin(OpCategory c, double flops, cudaStream_t stream);
  // Never throws (it runs in OpScope's destructor): a failed record drops the pair.
  void end(cudaStream_t stream) noexcept;
  // Adds every pair the device has passed to the totals.
  void collect();
  const OpProfile& totals() const { return totals_; }

 private:
  static constexpr size_t kMaxPending = 4096;
  struct Pair {
    cudaEvent_t start = nullptr, stop = nullptr;
    OpCategory category = OpCategory::matmul_other;
    double flops = 0;
  };
  bool read_oldest();  // false when the device has not passed it yet
  cudaEvent_t take();

  bool on_;
  bool open_ = false;  // begin() without its end() yet
  Pair current_;       // the open op's; its events stay for the next op when a record fails
  std::deque<Pair> pending_;
  std::vector<cudaEvent_t> free_;
  OpProfile totals_;
};

// Times the enclosing op when the timer is on; a branch when it is off.
class OpScope {
 public:
  OpScope(OpTimer& timer, OpCategory c, cudaStream_t stream, double flops = 0)
      : timer_(timer.on() ? &timer : nullptr), stream_(stream) {
    if (timer_) timer_->begin(c, flops, stream_);
  }
  ~OpScope() { close(); }
  // Ends the op's window early (before a wait on the host, say).
  void close() noexcept {
    if (timer_) timer_->end(stream_);
    timer_ = nullptr;
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpTimer* timer_;
  cudaStream_t stream_;
};

}  // namespace cuda
}  // namespace bg
