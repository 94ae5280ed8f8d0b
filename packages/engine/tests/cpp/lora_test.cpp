// LoRA pieces without a model: the step's segments, the slot cache (LRU, pins),
// the background loader (with a read the test holds) and the CPU backend's
// lora_add against a plain double-precision loop.
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "batchgen/backend.h"
#include "check.h"
#include "prefill_batch.h"
#include "runtime/lora_loader.h"
#include "sched/lora_slots.h"

using namespace bg;

TEST_CASE(segments_merge_neighbours_of_one_adapter_and_skip_the_base) {
  // seqs: 3 tokens slot 1, 1 token slot 1, 2 tokens base, 1 token slot 0, 0 tokens slot 0, 4 tokens slot 0
  StepBatch b = prefill_batch({3, 1, 2, 1, 0, 4}, {1, 1, -1, 0, 0, 0});
  CHECK(step_batch_problem(b) == nullptr);
  const std::vector<int32_t> seg = lora_segments_build(b);
  CHECK(seg == (std::vector<int32_t>{0, 4, 1, 6, 5, 0}));
  StepTensors st;
  lora_segments_count(seg, st);
  CHECK_EQ(st.num_lora_segments, 2);
  CHECK_EQ(st.max_lora_rows, 5);
  // Not merged across a base sequence, even for the same adapter.
  CHECK(lora_segments_build(prefill_batch({2, 1, 2}, {3, -1, 3})) == (std::vector<int32_t>{0, 2, 3, 3, 2, 3}));
  CHECK(lora_segments_build(prefill_batch({2, 2}, {})).empty());
  StepBatch bad = prefill_batch({1, 1}, {0});
  CHECK(step_batch_problem(bad) != nullptr);
}

TEST_CASE(slots_evict_the_least_recently_used_unpinned_adapter) {
  LoraSlots s(2);
  LoraSlots::Grant a = s.acquire(10);
  CHECK(a.slot >= 0 && a.load);
  LoraSlots::Grant b = s.acquire(11);
  CHECK(b.slot >= 0 && b.load && b.slot != a.slot);
  CHECK_EQ(s.acquire(12).slot, -1);  // both pinned: wait
  CHECK(!s.any_unpinned());
  LoraSlots::Grant a2 = s.acquire(10);  // resident: no load, a second pin
  CHECK(a2.slot == a.slot && !a2.load);
  CHECK_EQ(s.pins(a.slot), 2);
  CHECK_EQ(s.find(10), a.slot);
  CHECK_EQ(s.find(12), -1);
  s.release(b.slot);
  CHECK(s.any_unpinned());
  LoraSlots::Grant c = s.acquire(12);  // 11 is unpinned: evicted
  CHECK(c.slot == b.slot && c.load);
  CHECK_EQ(s.evictions(), 1);
  CHECK_EQ(s.find(11), -1);
  CHECK_EQ(s.find(12), c.slot);
  s.release(a.slot);
  s.release(a.slot);
  s.release(c.slot);
  // Both unpinned; 10 was used before 12, so 10 goes first.
  LoraSlots::Grant d = s.acquire(13);
  CHECK(d.slot == a.slot && d.load);
  CHECK(s.resident() == (a.slot == 0 ? std::vector<int32_t>{13, 12} : std::vector<int32_t>{12, 13}));
  // A failed load leaves the slot empty and unpinned; a free slot is taken before an LRU one.
  s.forget(d.slot);
  CHECK_EQ(s.adapter_in(d.slot), -1);
  CHECK_EQ(s.find(13), -1);
  CHECK_EQ(s.pins(d.slot), 0);
  LoraSlots::Grant e = s.acquire(14);
  CHECK(e.slot == d.slot && e.load);
  CHECK_EQ(s.loads(), 5);
  CHECK_THROWS(s.release(c.slot));
}

TEST_CASE(cpu_lora_add_matches_a_double_loop) {
  std::unique_ptr<Backend> cpu = cpu_backend_create(BackendOptions{"cpu", 2, false});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (const auto& [K, N, R, slots] : std::vector<std::array<int, 4>>{{16, 24, 4, 2}, {40, 9, 1, 3}, {7, 64, 16, 1}}) {
    StepBatch b = prefill_batch({3, 1, 2, 5, 1}, {1 % slots, -1, 0, (slots - 1), 0});
    cpu->reserve_scratch(12, 5, 12, HeadLayout{1, 1, 8});
    StepTensors st = cpu->upload_step(b);
    const int T = b.num_tokens(), W = N + 5;
    auto fill = [&](int64_t rows, int64_t cols) {
      Tensor t = cpu->alloc(DType::f32, rows, cols);
      for (int64_t i = 0; i < rows * cols; ++i) t.ptr<float>()[i] = nd(rng);
      return t;
    };
    Tensor x = fill(T, K), a = fill(int64_t(slots) * R, K), bw = fill(int64_t(slots) * N, R), wide = fill(T, W);
    Tensor tmp = cpu->alloc(DType::f32, T, R);
    std::vector<float> before(wide.ptr<float>(), wide.ptr<float>() + T * W);
    Tensor out = wide.col_slice(2, N);
    cpu->lora_add(x, a, bw, R, st, tmp, out);
    double worst = 0;
    for (int s = 0, row = 0; s < b.num_seqs(); ++s) {
      for (int t = b.cu_seq_q[size_t(s)]; t < b.cu_seq_q[size_t(s) + 1]; ++t, ++row) {
        const int slot = b.lora_slots[size_t(s)];
        for (int c = 0; c < W; ++c) {
          double want = before[size_t(t * W + c)];
          if (slot >= 0 && c >= 2 && c < 2 + N) {
            for (int r = 0; r < R; ++r) {
              double u = 0;
              for (int k = 0; k < K; ++k) u += double(x.ptr<float>()[t * K + k]) * a.ptr<float>()[(slot * R + r) * K + k];
              want += u * bw.ptr<float>()[(slot * N + (c - 2)) * R + r];
            }
          }
          worst = std::max(worst, std::fabs(want - wide.ptr<float>()[t * W + c]) / (1.0 + std::fabs(want)));
        }
      }
    }
    CHECK(worst < 1e-5);
    CHECK_THROWS(cpu->lora_add(x, a, bw, R + 1, st, tmp, out));  // a's rows are not slots * rank
    for (Tensor* t : {&x, &a, &bw, &wide, &tmp}) cpu->free(*t);
  }
}

namespace {

// A read the test lets through one adapter at a time; it fills the buffer with
// the adapter's number and fails for adapter 99.
struct HeldRead {
  std::mutex mu;
  std::condition_variable cv;
  int32_t allowed = -1;  // the adapter whose read may end
  bool all = false;      // every read may end
  std::vector<int32_t> started;

  LoraTargets operator()(int32_t adapter, void* dst) {
    std::unique_lock<std::mutex> lk(mu);
    started.push_back(adapter);
    cv.notify_all();
    cv.wait(lk, [&] { return all || allowed == adapter; });
    if (adapter == 99) throw EngineError(ErrorCode::model_load, "adapter 99: bad file");
    std::memset(dst, adapter, 64);
    LoraTargets t{};
    t[size_t(adapter % kLoraTargets)] = true;
    return t;
  }
  void allow(int32_t adapter) {
    std::lock_guard<std::mutex> lk(mu);
    allowed = adapter;
    cv.notify_all();
  }
  void allow_all() {
    std::lock_guard<std::mutex> lk(mu);
    all = true;
    cv.notify_all();
  }
  // Waits until `n` reads have started; their adapters in order.
  std::vector<int32_t> started_reads(size_t n) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, std::chrono::seconds(10), [&] { return started.size() >= n; });
    return started;
  }
};

// The adapter once read (a failed read rethrows), polling for 10 s at most.
const LoraLoader::Read* read_within(LoraLoader& loader, int32_t adapter) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (; std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(std::chrono::milliseconds(1)))
    if (const LoraLoader::Read* r = loader.ready(adapter)) return r;
  return nullptr;
}

}  // namespace

TEST_CASE(loader_reads_the_most_wanted_adapters_ahead_without_blocking_the_caller) {
  std::unique_ptr<Backend> cpu = cpu_backend_create(BackendOptions{"cpu", 1, false});
  HeldRead held;
  LoraLoader loader(*cpu, 64, 2, 1, [&](int32_t a, void* dst) { return held(a, dst); });
  struct Unhold {  // before the loader goes, even when a check failed
    HeldRead& held;
    ~Unhold() { held.allow_all(); }
  } unhold{held};
  CHECK_EQ(loader.buffers(), 2);
  // Two buffers: the two most urgent of three adapters are read, in that order.
  loader.want({7, 7, 5, 9});
  CHECK(held.started_reads(1) == std::vector<int32_t>{7});
  CHECK(loader.ready(7) == nullptr);  // still being read: answered at once
  held.allow(7);
  CHECK(held.started_reads(2) == (std::vector<int32_t>{7, 5}));
  const LoraLoader::Read* r7 = read_within(loader, 7);
  CHECK(r7 != nullptr && static_cast<const uint8_t*>(r7->data)[63] == 7 && r7->targets[0]);
  held.allow(5);
  CHECK(read_within(loader, 5) != nullptr);
  CHECK(loader.ready(9) == nullptr);  // no buffer was free for it
  // 7's copy queued (and 7 not read again meanwhile): its buffer goes to 9.
  loader.copied(7);
  loader.want({5, 9});
  CHECK(held.started_reads(3) == (std::vector<int32_t>{7, 5, 9}));
  held.allow(9);
  loader.wait(std::chrono::seconds(10));  // returns when 9's read has ended
  CHECK(loader.ready(9) != nullptr && static_cast<const uint8_t*>(loader.ready(9)->data)[0] == 9);
  // No longer wanted: dropped.
  loader.want({9});
  CHECK(loader.ready(5) == nullptr);
  // Copied, then wanted again (evicted since) before its buffer was reused: no read.
  loader.copied(9);
  CHECK(loader.ready(9) == nullptr);
  loader.want({9});
  CHECK(loader.ready(9) != nullptr);
  // A failed read reports its error once; wanted again, the adapter is read again.
  loader.want({99});
  held.allow(99);
  loader.wait(std::chrono::seconds(10));
  CHECK_THROWS(loader.ready(99));
  CHECK(loader.ready(99) == nullptr);
  loader.want({99});
  CHECK(held.started_reads(5) == (std::vector<int32_t>{7, 5, 9, 99, 99}));
  loader.want({});  // the read in progress ends, and is not kept
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }

TEST_CASE(default_slots_hold_every_adapter_a_tenth_of_the_memory_fits) {
  const size_t mb = size_t(1) << 20, gb = size_t(1) << 30;
  // 64 Gemma-7B rank-16 adapters (~100 MB a slot) with 70 GB free: all 64 resident.
  CHECK_EQ(lora_default_slots(64, 100 * mb, 70 * gb), 64);
  // A tenth of 8 GB holds 8 of them: 8 slots, not 64.
  CHECK_EQ(lora_default_slots(64, 100 * mb, 8 * gb), 8);
  // Never fewer than 8 (or than the adapters there are), however little is free.
  CHECK_EQ(lora_default_slots(64, 100 * mb, 1 * gb), 8);
  CHECK_EQ(lora_default_slots(3, 100 * mb, 0), 3);
  CHECK_EQ(lora_default_slots(0, 100 * mb, 70 * gb), 0);
  // In between: what a tenth holds (20 GB / 10 / 100 MB = 20.48 -> 20).
  CHECK_EQ(lora_default_slots(64, 100 * mb, 20 * gb), 20);
  CHECK_EQ(lora_default_slots(5000, 1, 70 * gb), 4096);  // the binding's ceiling
}

TEST_CASE(group_order_puts_each_adapters_sequences_side_by_side) {
  // Lines round-robin over adapters (slots 1, 0, 1, base, 0, 1): base first, then by
  // slot, each slot's sequences in their step order.
  const std::vector<int32_t> slots = {1, 0, 1, -1, 0, 1};
  const std::vector<size_t> order = lora_group_order(slots);
  CHECK(order == (std::vector<size_t>{3, 1, 4, 0, 2, 5}));
  // Reordered, the step has one segment per adapter instead of one per sequence.
  std::vector<int32_t> lens = {1, 1, 1, 1, 1, 1}, before = slots, after;
  for (size_t i : order) after.push_back(slots[i]);
  CHECK_EQ(lora_segments_build(prefill_batch(lens, before)).size() / 3, size_t(5));
  CHECK_EQ(lora_segments_build(prefill_batch(lens, after)).size() / 3, size_t(2));
  CHECK(lora_group_order({}).empty());
}
