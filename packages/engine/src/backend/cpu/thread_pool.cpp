#include "backend/cpu/thread_pool.h"

#include <algorithm>

namespace bg {

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run_chunk(int chunk) {
  // Chunk boundaries depend only on n_ and chunks_.
  int64_t begin = n_ * chunk / chunks_;
  int64_t end = n_ * (chunk + 1) / chunks_;
  if (begin < end) body_(ctx_, chunk, begin, end);
}

int ThreadPool::chunks_for(int64_t n, int64_t grain) const {
  int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  return int(std::min<int64_t>(threads_, max_chunks));
}

void ThreadPool::run(int64_t n, int64_t grain, Body body, const void* ctx) {
  if (n <= 0) return;
  int chunks = chunks_for(n, grain);
  std::lock_guard<std::mutex> region(region_mu_);
  if (chunks == 1) {
    body(ctx, 0, 0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = body;
    ctx_ = ctx;
    n_ = n;
    chunks_ = chunks;
    pending_ = chunks - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  run_chunk(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= chunks_) continue;  // not needed this region
    }
    run_chunk(index);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace bg
