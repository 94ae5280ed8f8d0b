// EngineRunner: the engine on its own step thread.
//
// Callers never wait for a step: submit/abort/prompt_logits put a command in an
// inbox (submit validates first, on the caller's thread, so bad input throws
// there), and stats() reads a snapshot taken after every step. The step thread
// drains the inbox, steps while there is work, sleeps on a condition variable
// otherwise, and hands each step's finished results to on_results in one batch.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "batchgen/engine.h"

namespace bg {

struct EngineRunner::Impl {
  struct Command {
    enum class Kind { submit, abort, logits };
    Kind kind = Kind::submit;
    GenerateRequest request;                  // submit
    std::string id;                           // abort
    std::vector<int32_t> prompt;              // logits
    std::string lora;                         // logits
    std::promise<std::vector<float>> logits;  // logits
  };

  std::unique_ptr<Engine> engine;
  ResultsFn on_results;

  mutable std::mutex mu;                   // guards everything below
  std::condition_variable wake;
  std::deque<Command> inbox;
  int32_t queued_submits = 0;              // in the inbox or taken but not yet in the snapshot
  std::unordered_set<std::string> live;    // submitted, result not yet delivered
  EngineStats snapshot;
  bool closing = false;
  std::string failure;                     // set (by the step thread) when the engine broke

  std::mutex close_mu;                     // serialises close()
  std::thread thread;

  void push(Command c) {
    inbox.push_back(std::move(c));
    wake.notify_one();
  }

  GenerateResult result_for(const std::string& id, FinishReason reason,
                            const std::string& error) {
    GenerateResult r;
    r.id = id;
    r.finish_reason = reason;
    r.error = error;
    return r;
  }

  // Aborts every live request in the engine and collects the results; after an
  // engine failure they are reported as errors carrying its message.
  void abort_all(std::vector<GenerateResult>& results) {
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> lk(mu);
      ids.assign(live.begin(), live.end());
    }
    std::unordered_set<std::string> reported;
    for (const GenerateResult& r : results) reported.insert(r.id);
    std::unordered_set<std::string> aborted;
    for (const std::string& id : ids) {
      if (!reported.count(id) && engine->abort(id)) aborted.insert(id);
    }
    try {
      for (GenerateResult& r : engine->step()) {  // only aborts: nothing is scheduled
        aborted.erase(r.id);
        results.push_back(std::move(r));
      }
    } catch (const std::exception&) {
      // Fall through: the ids still in `aborted` get a result made here.
    }
    for (const std::string& id : aborted) {
      results.push_back(result_for(id, FinishReason::abort, ""));
    }
    if (!failure.empty()) {
      for (GenerateResult& r : results) {
        if (r.finish_reason == FinishReason::abort) {
          r.finish_reason = FinishReason::error;
          r.error = failure;
        }
      }
    }
  }

  void loop() {
    bool has_work = false;
    for (;;) {
      std::deque<Command> commands;
      bool stop = false;
      {
        std::unique_lock<std::mutex> lk(mu);
        wake.wait(lk, [&] { return closing || !inbox.empty() || has_work; });
        commands.swap(inbox);
        stop = closing;
      }
      std::vector<GenerateResult> results;
      for (Command& c : commands) run_command(c, results);

      if (stop || !failure.empty()) {
        abort_all(results);
      } else if (engine->has_work()) {
        try {
          std::vector<GenerateResult> done = engine->step();
          for (GenerateResult& r : done) results.push_back(std::move(r));
        } catch (const std::exception& e) {
          // A bug or an unrecoverable device state: fail what is live, refuse more.
          {
            std::lock_guard<std::mutex> lk(mu);
            failure = std::string("engine failed: ") + e.what();
          }
          abort_all(results);
        }
      }
      has_work = engine->has_work();
      int32_t taken = 0;
      for (const Command& c : commands) taken += c.kind == Command::Kind::submit ? 1 : 0;
      deliver(std::move(results), taken);
      if (stop) return;
    }
  }

  void run_command(Command& c, std::vector<GenerateResult>& results) {
    switch (c.kind) {
      case Command::Kind::submit:
        try {
          if (!failure.empty()) throw EngineError(ErrorCode::internal, failure);
          engine->submit(c.request);
        } catch (const std::exception& e) {
          results.push_back(result_for(c.request.id, FinishReason::error, e.what()));
        }
        break;
      case Command::Kind::abort:
        engine->abort(c.id);  // false: it finished meanwhile, its result is out
        break;
      case Command::Kind::logits:
        try {
          c.logits.set_value(engine->prompt_logits(c.prompt, c.lora));
        } catch (...) {
          c.logits.set_exception(std::current_exception());
        }
        break;
    }
  }

  // Stats and the live set are updated before the results go out, so whoever
  // gets a result and then asks for stats() sees the step that produced it.
  // `submits` is how many queued submits this round moved into the engine.
  void deliver(std::vector<GenerateResult>&& results, int32_t submits) {
    {
      std::lock_guard<std::mutex> lk(mu);
      snapshot = engine->stats();
      queued_submits -= submits;
      for (const GenerateResult& r : results) live.erase(r.id);
    }
    if (!results.empty()) on_results(std::move(results));
  }
};

EngineRunner::EngineRunner(std::unique_ptr<Engine> engine, ResultsFn on_results)
    : impl_(std::make_unique<Impl>()) {
  impl_->engine = std::move(engine);
  impl_->on_results = std::move(on_results);
  impl_->snapshot = impl_->engine->stats();
  impl_->thread = std::thread([impl = impl_.get()] { impl->loop(); });
}

EngineRunner::~EngineRunner() { close(); }

void EngineRunner::submit(GenerateRequest request) {
  impl_->engine->validate(request);
  if (request.arrival == std::chrono::steady_clock::time_point{}) {
    request.arrival = std::chrono::steady_clock::now();  // queue time includes the inbox
  }
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (impl_->closing) throw EngineError(ErrorCode::invalid_argument, "the engine is closed");
  if (!impl_->failure.empty()) throw EngineError(ErrorCode::internal, impl_->failure);
  if (!impl_->live.insert(request.id).second) {
    throw EngineError(ErrorCode::invalid_argument,
                      "a request with id '" + request.id + "' is already live");
  }
  Impl::Command c;
  c.kind = Impl::Command::Kind::submit;
  c.request = std::move(request);
  ++impl_->queued_submits;
  impl_->push(std::move(c));
}

bool EngineRunner::abort(const std::string& id) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (!impl_->live.count(id) || impl_->closing) return false;
  Impl::Command c;
  c.kind = Impl::Command::Kind::abort;
  c.id = id;
  impl_->push(std::move(c));
  return true;
}

EngineStats EngineRunner::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  EngineStats s = impl_->snapshot;
  s.waiting += impl_->queued_submits;
  return s;
}

const ModelInfo& EngineRunner::model_info() const { return impl_->engine->model_info(); }

std::future<std::vector<float>> EngineRunner::prompt_logits(std::vector<int32_t> prompt, std::string lora) {
  Impl::Command c;
  c.kind = Impl::Command::Kind::logits;
  c.prompt = std::move(prompt);
  c.lora = std::move(lora);
  std::future<std::vector<float>> f = c.logits.get_future();
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (impl_->closing) {
    c.logits.set_exception(std::make_exception_ptr(
        EngineError(ErrorCode::invalid_argument, "the engine is closed")));
  } else {
    impl_->push(std::move(c));
  }
  return f;
}

void EngineRunner::close() {
  std::lock_guard<std::mutex> serial(impl_->close_mu);
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->closing = true;
    impl_->wake.notify_one();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace bg
