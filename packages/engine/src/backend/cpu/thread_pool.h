// A fixed set of worker threads for the CPU backend's ops. One parallel region
// at a time: run() splits [0, n) into contiguous chunks, the calling thread takes
// chunk 0 and the workers the rest, and run() returns when all are done.
// Which elements a chunk holds never changes an element's arithmetic, so results
// do not depend on the thread count.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace bg {

class ThreadPool {
 public:
  // `threads` >= 1 counts the caller; threads - 1 workers are started.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }
  // How many chunks parallel_for(n, grain, ...) makes.
  int chunks_for(int64_t n, int64_t grain) const;

  // Calls fn(chunk, begin, end) for chunks of [0, n), at least `grain` items each
  // (fewer chunks than threads when n is small; chunk < size()). fn must not throw.
  template <typename Fn>
  void parallel_for(int64_t n, int64_t grain, const Fn& fn) {
    run(n, grain, [](const void* ctx, int chunk, int64_t b, int64_t e) {
      (*static_cast<const Fn*>(ctx))(chunk, b, e);
    }, &fn);
  }

 private:
  using Body = void (*)(const void* ctx, int chunk, int64_t begin, int64_t end);
  void run(int64_t n, int64_t grain, Body body, const void* ctx);
  void worker_loop(int index);
  void run_chunk(int chunk);

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex region_mu_;  // one region at a time, even if two threads call run()
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  // The current region (valid while pending_ > 0).
  Body body_ = nullptr;
  const void* ctx_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
};

}  // namespace bg
