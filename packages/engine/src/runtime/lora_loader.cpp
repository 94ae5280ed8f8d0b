#include "runtime/lora_loader.h"

#include <algorithm>

namespace bg {

LoraLoader::LoraLoader(Backend& backend, size_t buffer_bytes, int32_t buffers, int32_t threads, ReadFn read)
    : backend_(backend), buffer_bytes_(buffer_bytes), read_(std::move(read)), bufs_(size_t(std::max(1, buffers))) {
  for (int32_t i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { reader(); });
}

LoraLoader::~LoraLoader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  bool in_copy = false;
  for (const Buffer& b : bufs_) in_copy = in_copy || b.in_copy;
  if (in_copy) backend_.upload_wait();
  for (Buffer& b : bufs_) backend_.host_free(b.mem);
}

bool LoraLoader::wanted(int32_t adapter) const {
  return std::find(wanted_.begin(), wanted_.end(), adapter) != wanted_.end();
}

void LoraLoader::want(const std::vector<int32_t>& adapters) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    wanted_.clear();
    for (int32_t a : adapters) {
      if (wanted_.size() == bufs_.size()) break;
      if (!wanted(a)) wanted_.push_back(a);
    }
    for (Buffer& b : bufs_) {
      // An adapter wanted again while its bytes are still here (evicted since) is
      // not read again; one no longer wanted gives its buffer up.
      if (b.state == State::copying && wanted(b.adapter)) b.state = State::ready;
      if (b.state == State::ready && !wanted(b.adapter)) b.state = b.in_copy ? State::copying : State::free;
    }
    for (auto it = failed_.begin(); it != failed_.end();) it = wanted(it->first) ? std::next(it) : failed_.erase(it);
    ended_seen_ = ended_;
  }
  work_cv_.notify_all();
}

const LoraLoader::Read* LoraLoader::ready(int32_t adapter) {
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto f = failed_.find(adapter);
    if (f == failed_.end()) {
      // Only the step thread moves a buffer out of `ready`, so the answer stays valid
      // after the lock is released.
      for (const Buffer& b : bufs_)
        if (b.state == State::ready && b.adapter == adapter) return &b.read;
      return nullptr;
    }
    error = f->second;
    failed_.erase(f);
  }
  std::rethrow_exception(error);
}

void LoraLoader::copied(int32_t adapter) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (Buffer& b : bufs_) {
      if (b.state == State::ready && b.adapter == adapter) {
        b.state = State::copying;
        b.in_copy = true;
      }
    }
  }
  work_cv_.notify_all();
}

void LoraLoader::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  ended_cv_.wait_for(lk, timeout, [&] { return ended_ != ended_seen_; });
}

bool LoraLoader::next_job(int32_t& adapter, size_t& buffer) const {
  // A free buffer before one with copied bytes (they may be wanted again).
  size_t pick = bufs_.size();
  for (size_t i = 0; i < bufs_.size(); ++i) {
    if (bufs_[i].state == State::free) {
      pick = i;
      break;
    }
    if (bufs_[i].state == State::copying && pick == bufs_.size()) pick = i;
  }
  if (pick == bufs_.size()) return false;
  for (int32_t a : wanted_) {
    if (failed_.count(a)) continue;
    bool held = false;
    for (const Buffer& b : bufs_) held = held || (b.state != State::free && b.adapter == a);
    if (held) continue;
    adapter = a;
    buffer = pick;
    return true;
  }
  return false;
}

void LoraLoader::reader() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    int32_t adapter = -1;
    size_t i = 0;
    work_cv_.wait(lk, [&] { return stop_ || next_job(adapter, i); });
    if (stop_) return;
    Buffer& b = bufs_[i];
    const bool in_copy = b.in_copy;
    b.state = State::reading;
    b.in_copy = false;
    b.adapter = adapter;
    void* mem = b.mem;
    lk.unlock();
    std::exception_ptr error;
    LoraTargets targets{};
    try {
      if (in_copy) backend_.upload_wait();
      if (!mem) mem = backend_.host_alloc(buffer_bytes_);
      targets = read_(adapter, mem);
    } catch (...) {
      error = std::current_exception();
    }
    lk.lock();
    b.mem = mem;
    // An adapter dropped from the list while it was read is not kept.
    if (error) {
      b.state = State::free;
      if (wanted(adapter)) failed_[adapter] = error;
    } else if (wanted(adapter)) {
      b.state = State::ready;
      b.read = Read{mem, targets};
    } else {
      b.state = State::free;
    }
    ++ended_;
    ended_cv_.notify_all();
    work_cv_.notify_all();  // the buffer may be free for another reader
  }
}

}  // namespace bg
