// Scheduler unit tests with a fake model: no weights, no backend. The fake keeps
// a "KV cache" of which token sits in which slot, and the token it "samples" is a
// hash of everything the sequence's block table points at, so a wrong block
// table, a missed recompute or a slot clobbered by another request changes the
// output (checked against the sequence the same request gives when run alone).
#include <algorithm>
#include <map>
#include <set>

#include "check.h"
#include "sched/scheduler.h"

using namespace bg;

namespace {

constexpr int32_t kVocab = 1000;
constexpr int32_t kEos = 2;

struct Finished {
  std::vector<int32_t> tokens;
  FinishReason reason;
  int32_t preemptions;
};

struct Sim {
  Scheduler sched;
  std::vector<int64_t> cache;  // slot -> token (or -1)
  std::map<std::string, Finished> done;
  std::vector<ScheduleOutput> history;  // copies, pointers dropped after the step
  std::vector<std::vector<std::pair<std::string, int32_t>>> plan;  // per step: (id, tokens)
  int64_t steps = 0;
  std::set<int32_t> force_eos_at;  // positions at which the fake emits EOS

  Sim(SchedulerConfig cfg, int64_t blocks, int32_t block_size)
      : sched(cfg, blocks, block_size), cache(size_t(blocks * block_size), -1) {}

  void add(const std::string& id, int32_t prompt_len, int32_t max_tokens, int32_t priority = 0,
           std::vector<int32_t> stop = {}, bool ignore_eos = false) {
    std::vector<int32_t> prompt;
    for (int32_t i = 0; i < prompt_len; ++i) prompt.push_back(10 + (i * 37 + int32_t(id.size()) * 11) % 900);
    SamplingParams sp;
    sp.max_tokens = max_tokens;
    sp.stop_token_ids = std::move(stop);
    sp.ignore_eos = ignore_eos;
    sched.add(id, prompt, sp, priority);
  }

  // The fake forward pass: write this step's tokens into their slots, then for
  // each sampling row hash the whole context as read through the block table.
  int32_t fake_sample(const Request& r, int32_t ctx) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t pos = 0; pos < ctx; ++pos) {
      int64_t tok = cache[size_t(sched.blocks().slot(r.handle, pos))];
      h = (h ^ uint64_t(tok + 7)) * 1099511628211ull;
    }
    int32_t t = 10 + int32_t(h % uint64_t(kVocab - 10));
    if (force_eos_at.count(ctx)) t = kEos;
    return t;
  }

  void check_invariants(const ScheduleOutput& out) {
    const SchedulerConfig& cfg = sched.config();
    CHECK(out.total_tokens <= cfg.max_batch_tokens);
    CHECK(int32_t(out.seqs.size()) <= cfg.max_seqs);
    CHECK(sched.num_running() <= cfg.max_seqs);
    std::set<const Request*> reqs;
    std::set<int32_t> blocks;
    int32_t total = 0;
    for (const ScheduledSeq& s : out.seqs) {
      CHECK(reqs.insert(s.request).second);
      CHECK(s.num_tokens >= 1);
      CHECK_EQ(s.start, s.request->num_computed);
      CHECK(s.start + s.num_tokens <= s.request->num_tokens());
      CHECK(sched.blocks().capacity(s.request->handle) >= s.start + s.num_tokens);
      for (int32_t b : sched.blocks().table(s.request->handle)) CHECK(blocks.insert(b).second);
      total += s.num_tokens;
    }
    CHECK_EQ(total, out.total_tokens);
  }

  // Runs one step; returns false when the scheduler had nothing to run.
  bool step() {
    ScheduleOutput out = sched.schedule();
    check_invariants(out);
    if (out.empty()) return false;
    ++steps;
    std::vector<std::pair<std::string, int32_t>> p;
    std::vector<int32_t> sampled;
    for (const ScheduledSeq& s : out.seqs) {
      p.emplace_back(s.request->id, s.num_tokens);
      for (int32_t i = s.start; i < s.start + s.num_tokens; ++i) {
        cache[size_t(sched.blocks().slot(s.request->handle, i))] = s.request->token(i);
      }
    }
    for (const ScheduledSeq& s : out.seqs) {
      if (s.samples) sampled.push_back(fake_sample(*s.request, s.start + s.num_tokens));
    }
    plan.push_back(p);
    for (auto& f : sched.update(out, sampled.data())) {
      done[f->id] = Finished{f->output, f->finish_reason, f->preemptions};
    }
    return true;
  }

  void run(int64_t max_steps = 100000) {
    while (sched.has_work() && steps < max_steps) {
      if (!step()) break;
    }
  }
};

SchedulerConfig config(int32_t budget, int32_t max_seqs, int32_t max_len = 4096) {
  SchedulerConfig c;
  c.max_batch_tokens = budget;
  c.max_seqs = max_seqs;
  c.max_model_len = max_len;
  c.eos_token_ids = {kEos};
  return c;
}

// What each request produces when it runs alone with plenty of room.
Finished run_alone(const std::string& id, int32_t prompt_len, int32_t max_tokens) {
  Sim s(config(64, 8), 256, 4);
  s.add(id, prompt_len, max_tokens);
  s.run();
  return s.done.at(id);
}

}  // namespace

TEST_CASE(chunked_prefill_respects_the_token_budget) {
  Sim s(config(8, 4), 64, 4);
  s.add("a", 20, 3);
  s.run();
  // 20 prompt tokens in chunks of 8, 8, 4 (the last samples), then two decodes.
  CHECK_EQ(s.plan.size(), size_t(5));
  std::vector<int32_t> sizes;
  for (auto& p : s.plan) sizes.push_back(p.at(0).second);
  CHECK(sizes == (std::vector<int32_t>{8, 8, 4, 1, 1}));
  CHECK_EQ(s.done.at("a").tokens.size(), size_t(3));
  CHECK(s.done.at("a").reason == FinishReason::length);
  CHECK_EQ(s.sched.prompt_tokens_processed(), 20);
  CHECK_EQ(s.sched.generated_tokens(), 3);
  CHECK_EQ(s.sched.blocks().num_free(), 64);
}

TEST_CASE(decodes_run_every_step_beside_a_long_prefill) {
  Sim s(config(16, 4), 128, 4);
  s.add("short", 3, 20);
  CHECK(s.step());  // short's prefill, samples its first token
  s.add("long", 100, 2);
  for (int i = 0; i < 6; ++i) {
    CHECK(s.step());
    const auto& p = s.plan.back();
    // The decode first, one token; the prefill chunk takes the rest of the budget.
    CHECK_EQ(p.at(0).first, std::string("short"));
    CHECK_EQ(p.at(0).second, 1);
    CHECK_EQ(p.at(1).first, std::string("long"));
    CHECK_EQ(p.at(1).second, 15);
  }
  s.run();
  CHECK(s.done.count("short") && s.done.count("long"));
}

TEST_CASE(mixed_batch_is_one_flat_step) {
  Sim s(config(32, 8), 128, 4);
  s.add("a", 5, 4);
  s.add("b", 6, 4);
  CHECK(s.step());
  CHECK_EQ(s.plan.back().size(), size_t(2));
  s.add("c", 30, 4);
  CHECK(s.step());
  // Two decodes and a 30-token prefill in the same step.
  const auto& p = s.plan.back();
  CHECK_EQ(p.size(), size_t(3));
  CHECK_EQ(p.at(0).second + p.at(1).second + p.at(2).second, 32);
}

TEST_CASE(fifo_within_priority_lower_value_first) {
  // One sequence at a time, so the admission order is the finishing order.
  Sim s(config(64, 1), 64, 4);
  s.add("p1-first", 4, 1, 1);
  s.add("p0-first", 4, 1, 0);
  s.add("p1-second", 4, 1, 1);
  s.add("p0-second", 4, 1, 0);
  s.add("pneg", 4, 1, -3);
  s.run();
  std::vector<std::string> order;
  for (auto& p : s.plan) order.push_back(p.at(0).first);
  CHECK(order == (std::vector<std::string>{"pneg", "p0-first", "p0-second", "p1-first",
                                           "p1-second"}));
}

TEST_CASE(max_seqs_caps_running_requests) {
  Sim s(config(1000, 3), 256, 4);
  for (int i = 0; i < 7; ++i) s.add("r" + std::to_string(i), 5, 6);
  CHECK(s.step());
  CHECK_EQ(s.plan.back().size(), size_t(3));
  CHECK_EQ(s.sched.num_running(), 3);
  CHECK_EQ(s.sched.num_waiting(), 4);
  s.run();
  CHECK_EQ(s.done.size(), size_t(7));
}

TEST_CASE(preemption_under_block_pressure_recomputes_and_finishes) {
  // Each request needs up to 40 + 24 = 64 tokens = 16 blocks of 4; the cache has
  // 24 blocks, so six of them cannot run together: decodes run out of blocks,
  // the newest are preempted and later recompute prompt + generated tokens.
  Sim s(config(64, 8), 24, 4);
  std::vector<std::pair<std::string, int32_t>> reqs;
  for (int i = 0; i < 6; ++i) reqs.emplace_back("q" + std::to_string(i), 20 + 4 * i);
  for (auto& r : reqs) s.add(r.first, r.second, 24);
  s.run(5000);
  CHECK(!s.sched.has_work());
  CHECK(s.sched.preemptions() > 0);
  int32_t preempted_requests = 0;
  for (auto& r : reqs) {
    Finished alone = run_alone(r.first, r.second, 24);
    const Finished& got = s.done.at(r.first);
    CHECK(got.tokens == alone.tokens);
    CHECK(got.reason == alone.reason);
    preempted_requests += got.preemptions > 0 ? 1 : 0;
  }
  CHECK(preempted_requests > 0);
  CHECK_EQ(s.sched.blocks().num_free(), 24);
  CHECK_EQ(s.sched.blocks().num_seqs(), size_t(0));
}

TEST_CASE(preemption_takes_the_newest_lowest_priority_first) {
  // Two requests that each fill 2 of 3 blocks once decoding: one must give way.
  Sim s(config(64, 4), 3, 4);
  s.add("low", 4, 8, 5);  // runs first, but priority 5
  CHECK(s.step());
  s.add("high", 4, 8, 0);
  s.run();
  CHECK(s.done.at("low").preemptions > 0);
  CHECK_EQ(s.done.at("high").preemptions, 0);
  CHECK(s.done.at("low").tokens == run_alone("low", 4, 8).tokens);
  CHECK(s.done.at("high").tokens == run_alone("high", 4, 8).tokens);
}

TEST_CASE(a_lone_request_filling_the_cache_finishes) {
  Sim s(config(16, 4), 4, 4);  // 16 slots
  s.add("full", 10, 6);
  s.run();
  CHECK_EQ(s.done.at("full").tokens.size(), size_t(6));
  CHECK_EQ(s.done.at("full").preemptions, 0);
}

TEST_CASE(remove_frees_blocks_of_running_and_waiting) {
  Sim s(config(8, 2), 16, 4);
  s.add("run", 12, 50);
  s.add("wait1", 4, 5);
  s.add("wait2", 4, 5);
  CHECK(s.step());
  CHECK(s.sched.blocks().num_used() > 0);
  auto r = s.sched.remove("run");
  CHECK(r != nullptr);
  CHECK_EQ(r->id, std::string("run"));
  CHECK_EQ(s.sched.blocks().num_used(), 0);
  CHECK(s.sched.remove("wait2") != nullptr);
  CHECK(s.sched.remove("nope") == nullptr);
  CHECK(s.sched.remove("run") == nullptr);
  s.run();
  CHECK_EQ(s.done.size(), size_t(1));
  CHECK(s.done.count("wait1"));
  CHECK_EQ(s.sched.blocks().num_free(), 16);
}

TEST_CASE(stop_ids_eos_and_length) {
  {
    Sim s(config(64, 4), 64, 4);
    s.force_eos_at = {8};  // 5-token prompt: the 4th generated token is EOS
    s.add("eos", 5, 10);
    s.add("ignore", 5, 10, 0, {}, true);
    s.run();
    CHECK(s.done.at("eos").reason == FinishReason::stop);
    CHECK_EQ(s.done.at("eos").tokens.size(), size_t(4));
    CHECK_EQ(s.done.at("eos").tokens.back(), kEos);
    CHECK(s.done.at("ignore").reason == FinishReason::length);
    CHECK_EQ(s.done.at("ignore").tokens.size(), size_t(10));
  }
  {
    Finished alone = run_alone("stopper", 5, 10);
    int32_t third = alone.tokens.at(2);
    Sim s(config(64, 4), 64, 4);
    s.add("stopper", 5, 10, 0, {third});
    s.run();
    const Finished& f = s.done.at("stopper");
    CHECK(f.reason == FinishReason::stop);
    // Stops at the first occurrence of the stop id, which it includes.
    auto first = std::find(alone.tokens.begin(), alone.tokens.end(), third);
    CHECK(f.tokens == std::vector<int32_t>(alone.tokens.begin(), first + 1));
  }
  {
    Sim s(config(64, 4, 12), 64, 4);  // max_model_len 12
    s.add("ctx", 9, 100);
    s.run();
    CHECK(s.done.at("ctx").reason == FinishReason::length);
    CHECK_EQ(s.done.at("ctx").tokens.size(), size_t(3));
  }
}

TEST_CASE(duplicate_ids_and_bad_config_throw) {
  Scheduler s(config(8, 2), 4, 4);
  SamplingParams sp;
  s.add("x", {1, 2}, sp, 0);
  CHECK_THROWS(s.add("x", {1, 2}, sp, 0));
  CHECK_THROWS(s.add("y", {}, sp, 0));
  CHECK_THROWS(Scheduler(config(0, 2), 4, 4));
  CHECK_THROWS(Scheduler(config(8, 0), 4, 4));
}

TEST_CASE(many_requests_random_lengths_match_running_alone) {
  // 40 requests, tight cache and budget, mixed priorities: all finish, outputs
  // equal the alone runs, and the cache ends empty.
  Sim s(config(48, 6), 40, 4);
  uint64_t x = 12345;
  auto rnd = [&](int32_t n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return int32_t((x >> 33) % uint64_t(n));
  };
  struct R { std::string id; int32_t len, max; };
  std::vector<R> reqs;
  for (int i = 0; i < 40; ++i) {
    R r{"m" + std::to_string(i), 1 + rnd(60), 1 + rnd(40)};
    reqs.push_back(r);
    s.add(r.id, r.len, r.max, rnd(3));
    if (i % 5 == 4) s.step();  // arrivals while running
  }
  s.run(20000);
  CHECK_EQ(s.done.size(), reqs.size());
  for (const R& r : reqs) {
    CHECK(s.done.at(r.id).tokens == run_alone(r.id, r.len, r.max).tokens);
  }
  CHECK_EQ(s.sched.blocks().num_free(), 40);
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
