// LoRA adapters read in the background (issue 15), on the CPU engine with a tiny
// random model and random adapters (bench/random_weights.h):
//  - a request whose adapter cannot be read yet (its adapter_model.safetensors is a
//    FIFO nobody writes to, so the read blocks in open()) waits in the queue while
//    the base model's and a resident adapter's requests run to their end, each step
//    returning at once; a second request of that adapter is aborted while it waits;
//  - released, the blocked read fails: only its request ends, with a message naming
//    the adapter and the file; the request queued behind it (another adapter, read
//    late, two slots for three adapters) gets the tokens it gets alone on a fresh
//    engine; with the file back, the adapter's next request reads it again.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "../../bench/random_weights.h"
#include "batchgen/engine.h"
#include "check.h"

using namespace bg;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

struct Fixture {
  std::string dir;
  Fixture() {
    char tmpl[] = "/tmp/bg-lora-loading-XXXXXX";
    dir = ::mkdtemp(tmpl);
    const RandomShape tiny{"gemma", 128, 512, 2, 4, 1, 64, 1000, true, "\"max_position_embeddings\": 8192"};
    random_model_write(dir + "/model", "tiny-gemma", tiny);
    const ModelConfig base = model_config_load(dir + "/model");
    for (int i = 0; i < 4; ++i) random_lora_write(dir + "/" + name(i), base, 8, uint64_t(i) + 1);
  }
  ~Fixture() { fs::remove_all(dir); }
  static std::string name(int i) { return i == 3 ? "slow" : "a" + std::to_string(i); }

  std::unique_ptr<Engine> engine(int32_t max_loras) const {
    EngineOptions o;
    o.model_dir = dir + "/model";
    o.device = "cpu";
    o.threads = 2;
    o.kv_cache_blocks = 256;
    o.max_seqs = 16;
    o.deterministic = true;
    for (int i = 0; i < 4; ++i) o.loras.push_back({name(i), dir + "/" + name(i)});
    o.max_loras = max_loras;
    return Engine::load(o);
  }
};

GenerateRequest request(const std::string& id, const std::string& lora, int32_t first_token) {
  GenerateRequest r;
  r.id = id;
  r.lora = lora;
  for (int32_t i = 0; i < 12; ++i) r.prompt.push_back(3 + (first_token + 37 * i) % 990);
  r.sampling.max_tokens = 8;
  r.sampling.ignore_eos = true;
  return r;
}

// Steps until every id in `ids` has a result, or `deadline`; returns the results
// and the longest step.
std::map<std::string, GenerateResult> run_until(Engine& e, const std::vector<std::string>& ids,
                                                Clock::time_point deadline, double& longest_step_s) {
  std::map<std::string, GenerateResult> got;
  auto done = [&] {
    for (const std::string& id : ids)
      if (!got.count(id)) return false;
    return true;
  };
  while (!done() && Clock::now() < deadline) {
    const auto t = Clock::now();
    for (GenerateResult& r : e.step()) got[r.id] = std::move(r);
    longest_step_s = std::max(longest_step_s, std::chrono::duration<double>(Clock::now() - t).count());
  }
  return got;
}

std::vector<int32_t> alone(Engine& e, const GenerateRequest& r) {
  e.submit(r);
  double unused = 0;
  return run_until(e, {r.id}, Clock::now() + std::chrono::seconds(60), unused)[r.id].tokens;
}

// Opens the FIFO for writing once, which lets the reader blocked in open() go on
// (it then finds no regular file); a watchdog does it if the test has not after
// `after`, so a step that waited for the read fails the test instead of hanging it.
class FifoRelease {
 public:
  FifoRelease(std::string path, std::chrono::seconds after) : path_(std::move(path)) {
    watchdog_ = std::thread([this, after] {
      std::unique_lock<std::mutex> lk(mu_);
      if (!cv_.wait_for(lk, after, [&] { return cancelled_; })) {
        lk.unlock();
        fired_ = release();
      }
    });
  }
  ~FifoRelease() {
    cancel();
    watchdog_.join();
  }
  // Releases the reader unless the watchdog already did; false when it had.
  bool release_now() {
    cancel();
    return release();
  }
  bool watchdog_fired() const { return fired_; }

 private:
  void cancel() {
    std::lock_guard<std::mutex> lk(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  bool release() {
    if (released_.exchange(true)) return false;
    const int fd = ::open(path_.c_str(), O_WRONLY);  // waits for the reader's open
    if (fd >= 0) ::close(fd);
    return true;
  }
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::atomic<bool> released_{false}, fired_{false};
  std::thread watchdog_;
};

}  // namespace

TEST_CASE(a_request_waiting_for_its_adapter_stalls_no_other_request) {
  Fixture f;
  // The reference: each request alone on an engine with a slot per adapter.
  const GenerateRequest base = request("base", "", 5), resident = request("resident", "a0", 11),
                        late = request("late", "a2", 23), slow = request("slow", "slow", 31),
                        late_base = request("late-base", "", 23);
  std::map<std::string, std::vector<int32_t>> want;
  {
    std::unique_ptr<Engine> ref = f.engine(4);
    for (const GenerateRequest* r : {&base, &resident, &late, &slow, &late_base}) want[r->id] = alone(*ref, *r);
  }
  CHECK(want["late"] != want["late-base"]);  // the adapter changes the tokens
  CHECK_EQ(want["late"].size(), size_t(8));

  std::unique_ptr<Engine> e = f.engine(2);
  CHECK(alone(*e, request("warm", "a0", 3)).size() == 8);  // a0 resident
  const std::string weights = f.dir + "/slow/adapter_model.safetensors";
  CHECK(std::rename(weights.c_str(), (weights + ".real").c_str()) == 0);
  CHECK(::mkfifo(weights.c_str(), 0600) == 0);
  FifoRelease fifo(weights, std::chrono::seconds(30));

  // The blocked adapter's requests first: the loader reads it before a2.
  e->submit(slow);
  e->submit(request("slow-aborted", "slow", 41));
  e->submit(late);
  e->submit(base);
  e->submit(resident);
  double longest = 0;
  std::map<std::string, GenerateResult> got =
      run_until(*e, {"base", "resident"}, Clock::now() + std::chrono::seconds(60), longest);
  CHECK(!fifo.watchdog_fired());
  CHECK(got["base"].tokens == want["base"]);
  CHECK(got["resident"].tokens == want["resident"]);
  CHECK(!got.count("slow"));
  CHECK(longest < 5.0);  // no step waited for the blocked read
  CHECK(e->stats().waiting >= 2);

  CHECK(e->abort("slow-aborted"));
  std::map<std::string, GenerateResult> aborted = run_until(*e, {"slow-aborted"}, Clock::now() + std::chrono::seconds(10), longest);
  CHECK(aborted["slow-aborted"].finish_reason == FinishReason::abort);
  CHECK(!aborted.count("slow"));

  CHECK(fifo.release_now());
  got = run_until(*e, {"slow", "late"}, Clock::now() + std::chrono::seconds(60), longest);
  CHECK(got["slow"].finish_reason == FinishReason::error);
  CHECK(got["slow"].error.find("LoRA adapter 'slow': ") == 0);
  CHECK(got["slow"].error.find("adapter_model.safetensors is not a regular file") != std::string::npos);
  CHECK(got["late"].finish_reason == FinishReason::length);
  CHECK(got["late"].tokens == want["late"]);

  // The file back: the adapter is read again for its next request.
  CHECK(std::rename((weights + ".real").c_str(), weights.c_str()) == 0);
  CHECK(alone(*e, request("slow", "slow", 31)) == want["slow"]);
  const EngineStats s = e->stats();
  CHECK_EQ(s.waiting, 0);
  CHECK_EQ(int32_t(s.loras_resident.size()), 2);
  CHECK(s.lora_evictions > 0);
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
