// EngineRunner: the step thread, batching of results, abort, close, failure.
// The engine is a test double (each step appends one token to every request)
// so these tests check the threading, not the model.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "batchgen/engine.h"
#include "check.h"

using namespace bg;

namespace {

class FakeEngine : public Engine {
 public:
  std::atomic<int> fail_at_step{-1};
  std::atomic<int> step_sleep_ms{0};
  std::atomic<bool> gate_open{true};  // step() waits while false

  const ModelInfo& model_info() const override { return info_; }
  void validate(const GenerateRequest& r) const override {
    if (r.prompt.empty()) throw EngineError(ErrorCode::invalid_argument, "prompt is empty");
  }
  void submit(const GenerateRequest& r) override {
    validate(r);
    if (live_.count(r.id)) throw EngineError(ErrorCode::invalid_argument, "dup");
    live_[r.id] = GenerateResult{};
    live_[r.id].id = r.id;
    max_[r.id] = r.sampling.max_tokens;
  }
  bool abort(const std::string& id) override {
    auto it = live_.find(id);
    if (it == live_.end()) return false;
    it->second.finish_reason = FinishReason::abort;
    pending_.push_back(it->second);
    live_.erase(it);
    return true;
  }
  std::vector<GenerateResult> step() override {
    std::vector<GenerateResult> out = std::move(pending_);
    pending_.clear();
    if (live_.empty()) return out;
    while (!gate_open) std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (step_sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_sleep_ms));
    const int64_t n = steps_++;
    if (fail_at_step >= 0 && n >= fail_at_step) throw std::runtime_error("device on fire");
    for (auto it = live_.begin(); it != live_.end();) {
      it->second.tokens.push_back(int32_t(it->second.tokens.size()));
      if (int32_t(it->second.tokens.size()) >= max_[it->first]) {
        it->second.finish_reason = FinishReason::length;
        out.push_back(it->second);
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }
  bool has_work() const override { return !live_.empty() || !pending_.empty(); }
  EngineStats stats() const override {
    EngineStats s;
    s.running = int32_t(live_.size());
    s.steps = steps_;
    return s;
  }
  std::vector<float> prompt_logits(const std::vector<int32_t>& p, const std::string&) override {
    if (p.empty()) throw EngineError(ErrorCode::invalid_argument, "empty");
    return std::vector<float>(p.begin(), p.end());
  }

 private:
  ModelInfo info_;
  std::map<std::string, GenerateResult> live_;
  std::map<std::string, int32_t> max_;
  std::vector<GenerateResult> pending_;
  int64_t steps_ = 0;
};

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, GenerateResult> got;
  int batches = 0;
  bool empty_batch = false;
  std::thread::id thread;

  EngineRunner::ResultsFn fn() {
    return [this](std::vector<GenerateResult>&& rs) {
      std::lock_guard<std::mutex> lk(mu);
      empty_batch = empty_batch || rs.empty();
      ++batches;
      thread = std::this_thread::get_id();
      for (auto& r : rs) got[r.id] = r;
      cv.notify_all();
    };
  }
  bool wait_for(size_t n, int ms = 5000) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return got.size() >= n; });
  }
};

GenerateRequest req(const std::string& id, int32_t max_tokens, std::vector<int32_t> prompt = {1}) {
  GenerateRequest r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.sampling.max_tokens = max_tokens;
  return r;
}

}  // namespace

TEST_CASE(results_come_in_batches_on_the_step_thread) {
  Collector c;
  auto fake = std::make_unique<FakeEngine>();
  FakeEngine* raw = fake.get();
  raw->gate_open = false;  // hold the first step until all are queued
  EngineRunner runner(std::move(fake), c.fn());
  for (int i = 0; i < 20; ++i) runner.submit(req("r" + std::to_string(i), 1 + i % 4));
  raw->gate_open = true;
  CHECK(c.wait_for(20));
  std::lock_guard<std::mutex> lk(c.mu);
  CHECK(!c.empty_batch);
  // At most the first request steps alone; the other 19 finish in 4 steps
  // (max_tokens 1..4), each step's results in one batch.
  CHECK(c.batches <= 5);
  CHECK(c.thread != std::this_thread::get_id());
  for (int i = 0; i < 20; ++i) {
    const GenerateResult& r = c.got["r" + std::to_string(i)];
    CHECK_EQ(int(r.tokens.size()), 1 + i % 4);
    CHECK(r.finish_reason == FinishReason::length);
  }
}

TEST_CASE(bad_and_duplicate_submits_throw_on_the_caller) {
  Collector c;
  auto fake = std::make_unique<FakeEngine>();
  fake->step_sleep_ms = 2;
  EngineRunner runner(std::move(fake), c.fn());
  CHECK_THROWS_WITH(runner.submit(req("x", 3, {})), EngineError, "prompt is empty");
  runner.submit(req("x", 3));
  CHECK_THROWS_WITH(runner.submit(req("x", 3)), EngineError, "already live");
  CHECK(c.wait_for(1));
  runner.submit(req("x", 2));  // the id is free again once its result is out
  CHECK(!runner.abort("nope"));
  runner.close();
}

TEST_CASE(abort_resolves_a_live_request) {
  Collector c;
  auto fake = std::make_unique<FakeEngine>();
  fake->step_sleep_ms = 1;
  EngineRunner runner(std::move(fake), c.fn());
  runner.submit(req("long", 1000000));
  for (int i = 0; i < 5000 && runner.stats().steps < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(runner.stats().steps >= 3);
  CHECK(runner.abort("long"));
  CHECK(c.wait_for(1));
  std::lock_guard<std::mutex> lk(c.mu);
  CHECK(c.got["long"].finish_reason == FinishReason::abort);
  CHECK(!c.got["long"].tokens.empty());
}

TEST_CASE(close_aborts_everything_and_refuses_more) {
  Collector c;
  auto fake = std::make_unique<FakeEngine>();
  fake->step_sleep_ms = 1;
  EngineRunner runner(std::move(fake), c.fn());
  for (int i = 0; i < 5; ++i) runner.submit(req("k" + std::to_string(i), 1000000));
  runner.close();
  CHECK_EQ(c.got.size(), size_t(5));
  for (auto& kv : c.got) CHECK(kv.second.finish_reason == FinishReason::abort);
  CHECK_THROWS_WITH(runner.submit(req("late", 1)), EngineError, "closed");
  CHECK_THROWS(runner.prompt_logits({1}).get());
  runner.close();  // idempotent
}

TEST_CASE(prompt_logits_runs_on_the_step_thread) {
  Collector c;
  EngineRunner runner(std::make_unique<FakeEngine>(), c.fn());
  auto f = runner.prompt_logits({4, 5, 6});
  CHECK(f.get() == (std::vector<float>{4, 5, 6}));
  CHECK_THROWS_WITH(runner.prompt_logits({}).get(), EngineError, "empty");
}

TEST_CASE(a_failing_step_fails_live_requests_and_later_submits) {
  Collector c;
  auto fake = std::make_unique<FakeEngine>();
  FakeEngine* raw = fake.get();
  fake->step_sleep_ms = 1;
  EngineRunner runner(std::move(fake), c.fn());
  runner.submit(req("a", 1000000));
  runner.submit(req("b", 1000000));
  raw->fail_at_step = int(runner.stats().steps) + 2;
  CHECK(c.wait_for(2));
  {
    std::lock_guard<std::mutex> lk(c.mu);
    for (auto& kv : c.got) {
      CHECK(kv.second.finish_reason == FinishReason::error);
      CHECK(kv.second.error.find("device on fire") != std::string::npos);
    }
  }
  CHECK_THROWS_WITH(runner.submit(req("c", 1)), EngineError, "device on fire");
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
