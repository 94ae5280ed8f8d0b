// OpTimer (op_timer.h): timing-event pairs on the backend's stream, read lazily.
#include "backend/cuda/op_timer.h"

#include "backend/cuda/cuda_common.cuh"

namespace bg {
namespace cuda {

OpTimer::~OpTimer() {
  for (const Pair& p : pending_) {
    cudaEventDestroy(p.start);
    cudaEventDestroy(p.stop);
  }
  if (current_.start) cudaEventDestroy(current_.start);
  if (current_.stop) cudaEventDestroy(current_.stop);
  for (cudaEvent_t e : free_) cudaEventDestroy(e);
}

cudaEvent_t OpTimer::take() {
  if (free_.empty()) {
    cudaEvent_t e = nullptr;
    BG_CUDA_CHECK(cudaEventCreate(&e));  // with timing: the default flags
    return e;
  }
  cudaEvent_t e = free_.back();
  free_.pop_back();
  return e;
}

bool OpTimer::read_oldest() {
  const Pair p = pending_.front();
  const cudaError_t done = cudaEventQuery(p.stop);
  if (done == cudaErrorNotReady) return false;
  BG_CUDA_CHECK(done);
  float ms = 0;
  BG_CUDA_CHECK(cudaEventElapsedTime(&ms, p.start, p.stop));
  totals_.add(p.category, double(ms), p.flops);
  pending_.pop_front();
  free_.push_back(p.start);
  free_.push_back(p.stop);
  return true;
}

void OpTimer::begin(OpCategory c, double flops, cudaStream_t stream) {
  if (pending_.size() >= kMaxPending) BG_CUDA_CHECK(cudaEventSynchronize(pending_.front().stop));
  for (int i = 0; i < 2 && !pending_.empty() && read_oldest(); ++i) {
  }
  if (!current_.start) current_.start = take();
  if (!current_.stop) current_.stop = take();
  current_.category = c;
  current_.flops = flops;
  BG_CUDA_CHECK(cudaEventRecord(current_.start, stream));
  open_ = true;
}

void OpTimer::end(cudaStream_t stream) noexcept {
  if (!open_) return;
  open_ = false;
  if (cudaEventRecord(current_.stop, stream) != cudaSuccess) {
    (void)cudaGetLastError();  // the pair is dropped; its events serve the next op
    return;
  }
  pending_.push_back(current_);
  current_.start = current_.stop = nullptr;
}

void OpTimer::collect() {
  while (!pending_.empty() && read_oldest()) {
  }
}

}  // namespace cuda
}  // namespace bg
