// Reads LoRA adapters on background threads, so that a step only queues the copy
// of an adapter already in host memory into its slot (issue 15: a Gemma-7B
// adapter, ~100 MB, read and converted on the step thread kept the GPU waiting for
// the host 10-12 s of a 35 s run).
//
// The step thread says which adapters its queued requests wait for, most urgent
// first (want). The first `buffers` of them are read, each into a buffer of
// Backend::host_alloc memory (pinned on a device), by `threads` threads. The step
// thread finds a read adapter with ready(), queues its upload, and hands the buffer
// back with copied(); a reader reuses that buffer after Backend::upload_wait. A
// failed read keeps its error until ready() reports it. Buffers are allocated at
// their first read and kept until the loader goes: pinned allocations are slow and
// may synchronise the device.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "batchgen/backend.h"
#include "model/lora.h"

namespace bg {

class LoraLoader {
 public:
  // Fills `dst` (buffer_bytes) with the adapter's slot bytes and returns the
  // projections it changes; throws when the adapter cannot be read.
  using ReadFn = std::function<LoraTargets(int32_t adapter, void* dst)>;

  LoraLoader(Backend& backend, size_t buffer_bytes, int32_t buffers, int32_t threads, ReadFn read);
  // Waits for the reads in progress and the copies out of the buffers.
  ~LoraLoader();
  LoraLoader(const LoraLoader&) = delete;
  LoraLoader& operator=(const LoraLoader&) = delete;

  // The adapters waited for, most urgent first (repeats are skipped): the first
  // `buffers` distinct ones are read, those not read nor being read yet as buffers
  // come free. An adapter read (or failed) but no longer among them is dropped.
  void want(const std::vector<int32_t>& adapters);

  struct Read {
    const void* data = nullptr;  // buffer_bytes
    LoraTargets targets{};
  };
  // The adapter as read, or nullptr while it is not (yet). Rethrows the error of
  // a failed read, once: a later want() reads the adapter again.
  const Read* ready(int32_t adapter);
  // After the upload of ready(adapter)'s data was queued: the loader takes its
  // buffer back (no reader writes into it before Backend::upload_wait).
  void copied(int32_t adapter);

  // Returns once a read has ended since the last want(), or after `timeout`.
  void wait(std::chrono::milliseconds timeout);

  int32_t buffers() const { return int32_t(bufs_.size()); }

 private:
  // copying: the adapter's bytes, handed to an upload; kept (and given back to
  // ready if the adapter is wanted again) until a reader needs the buffer.
  enum class State : uint8_t { free, reading, ready, copying };
  struct Buffer {
    void* mem = nullptr;
    State state = State::free;
    bool in_copy = false;  // an upload from it may still run: Backend::upload_wait first
    int32_t adapter = -1;
    Read read;
  };
  bool wanted(int32_t adapter) const;
  // The most urgent adapter no buffer holds, and a buffer for it (a free one, else
  // one whose bytes were copied); false when there is none or no buffer is free.
  bool next_job(int32_t& adapter, size_t& buffer) const;
  void reader();

  Backend& backend_;
  const size_t buffer_bytes_;
  const ReadFn read_;
  std::mutex mu_;  // guards what follows
  std::condition_variable work_cv_, ended_cv_;
  std::vector<Buffer> bufs_;
  std::vector<int32_t> wanted_;
  std::unordered_map<int32_t, std::exception_ptr> failed_;
  uint64_t ended_ = 0, ended_seen_ = 0;  // reads ended; as of the last want()
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bg
