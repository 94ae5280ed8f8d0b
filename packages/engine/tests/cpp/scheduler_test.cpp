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
#include "sched/seq_budget.h"

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
  std::map<std::string, int32_t> cached;  // finished id -> prompt tokens served from the cache

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

  void add_tokens(const std::string& id, std::vector<int32_t> prompt, int32_t max_tokens) {
    SamplingParams sp;
    sp.max_tokens = max_tokens;
    sched.add(id, std::move(prompt), sp, 0);
  }

  int32_t window = 0;        // the fake reads only the last `window` positions (0: all)
  int64_t max_used = 0;      // most blocks in use after any step

  // The fake forward pass: write this step's tokens into their slots, then for
  // each sampling row hash the whole context as read through the block table.
  int32_t fake_sample(const Request& r, int32_t ctx) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t pos = window > 0 ? std::max(0, ctx - window) : 0; pos < ctx; ++pos) {
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
    std::map<int32_t, int32_t> refs;  // block -> tables holding it
    int32_t total = 0;
    for (const ScheduledSeq& s : out.seqs) {
      CHECK(reqs.insert(s.request).second);
      CHECK(s.num_tokens >= 1);
      CHECK_EQ(s.start, s.request->num_computed);
      const bool completes = s.start + s.num_tokens == s.request->num_tokens();
      CHECK_EQ(s.samples, completes && !s.request->prefill_only);
      CHECK_EQ(s.finishes_prefill, completes && s.request->prefill_only);
      CHECK(s.start + s.num_tokens <= s.request->num_tokens());
      CHECK(sched.blocks().capacity(s.request->handle) >= s.start + s.num_tokens);
      // Only full blocks before the first token to compute may be shared.
      const auto& t = sched.blocks().table(s.request->handle);
      for (size_t i = 0; i < t.size(); ++i) {
        if (t[i] < 0) continue;
        ++refs[t[i]];
        if (int64_t(i + 1) * sched.blocks().block_size() > s.start) CHECK_EQ(sched.blocks().ref_count(t[i]), 1);
      }
      total += s.num_tokens;
    }
    CHECK_EQ(total, out.total_tokens);
    // Every reference a block has comes from a table (running requests not
    // scheduled this step hold theirs too, so only an upper bound here).
    for (auto& kv : refs) CHECK(kv.second <= sched.blocks().ref_count(kv.first));
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
      cached[f->id] = f->num_cached;
    }
    max_used = std::max(max_used, sched.blocks().num_used());
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

SchedulerConfig caching(SchedulerConfig c) {
  c.enable_prefix_caching = true;
  return c;
}

// A prompt: `shared` tokens of prefix p, then `own` tokens unique to (p, u).
std::vector<int32_t> prefixed(int32_t p, int32_t shared, int32_t u, int32_t own) {
  std::vector<int32_t> t;
  for (int32_t i = 0; i < shared; ++i) t.push_back(10 + (p * 131 + i * 17) % 900);
  for (int32_t i = 0; i < own; ++i) t.push_back(10 + (p * 7 + u * 313 + i * 29 + 500) % 900);
  return t;
}

// Runs prompts (submitted together, or `stagger` steps apart) through a Sim and
// returns the outputs by id.
struct Job {
  std::string id;
  std::vector<int32_t> prompt;
  int32_t max_tokens;
};
std::map<std::string, Finished> run_jobs(Sim& s, const std::vector<Job>& jobs, int stagger = 0) {
  for (const Job& j : jobs) {
    s.add_tokens(j.id, j.prompt, j.max_tokens);
    for (int i = 0; i < stagger; ++i) s.step();
  }
  s.run(50000);
  CHECK(!s.sched.has_work());
  return s.done;
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

TEST_CASE(seq_budget_counts_whole_sequences_within_the_bounds) {
  CHECK_EQ(seq_blocks(64, 16, 0), 4);
  CHECK_EQ(seq_blocks(65, 16, 0), 5);
  CHECK_EQ(seq_blocks(4096, 16, 256), 256 / 16 + 2);  // windowed: the tail only
  CHECK_EQ(seq_blocks(64, 16, 4096), 4);              // a window longer than the sequence
  CHECK_EQ(seqs_fitting(1000, 16, 64, 0, 1 << 20), 250);
  CHECK_EQ(seqs_fitting(500, 16, 64, 0, 1 << 20), 125);  // half the cache, half the sequences
  CHECK_EQ(seqs_fitting(1000, 16, 64, 0, 100), 100);     // the step buffers' bound
  CHECK_EQ(seqs_fitting(3, 16, 64, 0, 100), 1);          // one sequence always runs
}

TEST_CASE(a_workload_at_the_derived_cap_never_preempts) {
  // 36 requests of 24 + 40 = 64 tokens, 40 blocks of 4 = 160 slots: the derived cap
  // runs 2 at once without a preemption; a cap of 4 admits what the prompts' blocks
  // allow and then preempts as they grow (same outputs either way).
  const int32_t blocks = 40, bs = 4, len = 64;
  const int32_t cap = seqs_fitting(blocks, bs, len, 0, 256);
  CHECK_EQ(cap, 2);
  auto run = [&](int32_t max_seqs) {
    Sim s(config(64, max_seqs, len), blocks, bs);
    for (int i = 0; i < 36; ++i) s.add("r" + std::to_string(i), 24, 40, 0, {}, true);
    s.run(20000);
    CHECK(!s.sched.has_work());
    CHECK_EQ(s.done.size(), size_t(36));
    for (auto& d : s.done) CHECK_EQ(d.second.tokens.size(), size_t(40));
    return s;
  };
  const Sim at_cap = run(cap);
  CHECK_EQ(at_cap.sched.preemptions(), 0);
  const Sim above = run(2 * cap);
  CHECK(above.sched.preemptions() > 0);
  for (auto& d : at_cap.done) CHECK(d.second.tokens == above.done.at(d.first).tokens);
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

TEST_CASE(prefix_ending_mid_block_is_shared_and_counted) {
  // 4-token blocks; a 10-token shared prefix (2 full blocks + 2), 5 own tokens.
  std::vector<Job> jobs;
  for (int u = 0; u < 4; ++u) jobs.push_back(Job{"u" + std::to_string(u), prefixed(1, 10, u, 5), 6});
  Sim off(config(64, 8), 128, 4);
  auto want = run_jobs(off, jobs, 3);
  Sim on(caching(config(64, 8)), 128, 4);
  auto got = run_jobs(on, jobs, 3);
  for (const Job& j : jobs) CHECK(got.at(j.id).tokens == want.at(j.id).tokens);
  // The first computes all 15 tokens; each later one finds the 2 full prefix blocks.
  CHECK_EQ(on.cached.at("u0"), 0);
  for (int u = 1; u < 4; ++u) CHECK_EQ(on.cached.at("u" + std::to_string(u)), 8);
  CHECK_EQ(on.sched.prompt_tokens_cached(), 24);
  CHECK_EQ(on.sched.prompt_tokens_processed(), 60 - 24);
  CHECK_EQ(off.sched.prompt_tokens_processed(), 60);
  CHECK_EQ(on.sched.blocks().num_free(), 128);
}

TEST_CASE(prompts_diverging_mid_block_share_only_whole_blocks) {
  // Same 9 tokens, then different: blocks 0 and 1 shared, block 2 differs in its
  // second token.
  std::vector<int32_t> a = prefixed(2, 9, 0, 7), b = prefixed(2, 9, 1, 7);
  CHECK(a[9] != b[9]);
  Sim on(caching(config(64, 8)), 64, 4);
  auto got = run_jobs(on, {{"a", a, 8}, {"b", b, 8}}, 2);
  CHECK_EQ(on.cached.at("b"), 8);
  Sim alone_b(config(64, 8), 64, 4);
  CHECK(run_jobs(alone_b, {{"b", b, 8}}).at("b").tokens == got.at("b").tokens);
  Sim alone_a(config(64, 8), 64, 4);
  CHECK(run_jobs(alone_a, {{"a", a, 8}}).at("a").tokens == got.at("a").tokens);
}

TEST_CASE(a_whole_prompt_in_cache_still_computes_its_last_token) {
  // 12 tokens = 3 full blocks: a twin may share 2 and recomputes block 2 (its
  // last token's logits are needed).
  std::vector<int32_t> p = prefixed(3, 12, 0, 0);
  Sim on(caching(config(64, 8)), 64, 4);
  auto got = run_jobs(on, {{"x", p, 5}, {"y", p, 5}}, 4);
  CHECK_EQ(on.cached.at("y"), 8);
  CHECK(got.at("x").tokens == got.at("y").tokens);
}

TEST_CASE(twins_in_one_step_prefill_their_prefix_once) {
  // Four identical 22-token prompts submitted together, a budget too small for
  // one prefill in a step: the first computes; the others wait for its blocks and
  // then compute only the tail of their last block.
  std::vector<int32_t> p = prefixed(4, 22, 0, 0);
  std::vector<Job> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(Job{"n" + std::to_string(i), p, 6});
  Sim on(caching(config(8, 8)), 128, 4);
  auto got = run_jobs(on, jobs);
  Sim off(config(8, 8), 128, 4);
  auto want = run_jobs(off, jobs);
  for (const Job& j : jobs) CHECK(got.at(j.id).tokens == want.at(j.id).tokens);
  CHECK(on.sched.twin_waits() > 0);
  // 22 tokens once, then 22 - 20 = 2 per twin (5 full blocks shared).
  CHECK_EQ(on.sched.prompt_tokens_processed(), 22 + 3 * 2);
  for (int i = 1; i < 4; ++i) CHECK_EQ(on.cached.at("n" + std::to_string(i)), 20);
}

TEST_CASE(a_prefix_still_prefilling_when_its_twin_arrives) {
  // The twin arrives after the first chunk: it waits, then shares every full
  // block of the prefix; its own suffix differs.
  std::vector<int32_t> a = prefixed(5, 60, 0, 3), b = prefixed(5, 60, 1, 6);
  Sim on(caching(config(40, 8)), 128, 4);
  on.add_tokens("a", a, 4);
  CHECK(on.step());  // a's first 40 tokens
  on.add_tokens("b", b, 4);
  CHECK(on.step());  // a's last 23; b held (a is computing its block 10)
  CHECK_EQ(on.plan.back().size(), size_t(1));
  on.run();
  CHECK(on.sched.twin_waits() > 0);
  CHECK_EQ(on.cached.at("b"), 60);
  Sim off(config(40, 8), 128, 4);
  auto want = run_jobs(off, {{"a", a, 4}, {"b", b, 4}}, 1);
  CHECK(on.done.at("a").tokens == want.at("a").tokens);
  CHECK(on.done.at("b").tokens == want.at("b").tokens);
}

TEST_CASE(eviction_under_memory_pressure_keeps_outputs) {
  // 8 prefixes, 40 requests, a cache of 30 blocks: cached prefixes are evicted
  // and recomputed; outputs stay those of running alone.
  std::vector<Job> jobs;
  for (int i = 0; i < 40; ++i) {
    const int p = (i / 2) % 8;
    jobs.push_back(Job{"e" + std::to_string(i), prefixed(p, 12 + 2 * p, i, 1 + i % 5), 3 + i % 7});
  }
  Sim on(caching(config(32, 4)), 30, 4);
  auto got = run_jobs(on, jobs, 1);
  CHECK(on.sched.blocks().evictions() > 0);
  CHECK(on.sched.prompt_tokens_cached() > 0);
  for (const Job& j : jobs) {
    Sim alone(config(64, 8), 256, 4);
    CHECK(run_jobs(alone, {j}).at(j.id).tokens == got.at(j.id).tokens);
  }
  CHECK_EQ(on.sched.blocks().num_free(), 30);
}

TEST_CASE(preempting_a_sequence_with_shared_blocks_recomputes_correctly) {
  // Six requests sharing a 16-token prefix, each decoding 24 tokens, in 22
  // blocks: decodes run out of room and the newest (whose prefix blocks are
  // shared with the others) are preempted and come back through the cache.
  std::vector<Job> jobs;
  for (int i = 0; i < 6; ++i) jobs.push_back(Job{"s" + std::to_string(i), prefixed(6, 16, i, 4 + i), 24});
  Sim on(caching(config(64, 8)), 22, 4);
  auto got = run_jobs(on, jobs);
  CHECK(on.sched.preemptions() > 0);
  int32_t preempted = 0;
  for (const Job& j : jobs) {
    Sim alone(config(64, 8), 256, 4);
    CHECK(run_jobs(alone, {j}).at(j.id).tokens == got.at(j.id).tokens);
    preempted += got.at(j.id).preemptions > 0 ? 1 : 0;
  }
  CHECK(preempted > 0);
  CHECK_EQ(on.sched.blocks().num_free(), 22);
  CHECK_EQ(on.sched.blocks().num_seqs(), size_t(0));
}

TEST_CASE(random_workload_with_caching_matches_running_alone) {
  Sim s(caching(config(48, 6)), 40, 4);
  uint64_t x = 777;
  auto rnd = [&](int32_t n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return int32_t((x >> 33) % uint64_t(n));
  };
  std::vector<Job> jobs;
  for (int i = 0; i < 40; ++i) {
    Job j{"r" + std::to_string(i), prefixed(rnd(3), rnd(30), rnd(4), 1 + rnd(20)), 1 + rnd(30)};
    jobs.push_back(j);
    s.add_tokens(j.id, j.prompt, j.max_tokens);
    if (i % 5 == 4) s.step();
  }
  s.run(20000);
  CHECK_EQ(s.done.size(), jobs.size());
  CHECK(s.sched.prompt_tokens_cached() > 0);
  for (const Job& j : jobs) {
    Sim alone(config(64, 8), 256, 4);
    CHECK(run_jobs(alone, {j}).at(j.id).tokens == s.done.at(j.id).tokens);
  }
  CHECK_EQ(s.sched.blocks().num_free(), 40);
}

TEST_CASE(salts_keep_caches_apart) {
  std::vector<int32_t> p = prefixed(7, 16, 0, 2);
  Scheduler s(caching(config(64, 8)), 64, 4);
  SamplingParams sp;
  sp.max_tokens = 1;
  s.add("a", p, sp, 0, /*cache_salt=*/1);
  ScheduleOutput o = s.schedule();
  int32_t tok = 11;
  s.update(o, &tok);
  s.add("b", p, sp, 0, /*cache_salt=*/2);
  s.add("c", p, sp, 0, /*cache_salt=*/1);
  o = s.schedule();
  CHECK_EQ(o.seqs.size(), size_t(2));
  CHECK_EQ(o.seqs.at(0).start, 0);   // b: other salt, nothing cached
  CHECK_EQ(o.seqs.at(1).start, 16);  // c: a's 4 blocks
}

TEST_CASE(windowed_sequences_hold_a_bounded_number_of_blocks) {
  // Every layer sees 16 tokens back; one request generates 400 tokens past a
  // 20-token prompt: it never holds more than window / block + 2 blocks, and its
  // output equals a run without freeing (the fake reads only the window).
  SchedulerConfig c = config(64, 4);
  c.kv_window = 16;
  Sim win(c, 64, 4);
  win.window = 16;
  win.add("long", 20, 400, 0, {}, true);
  win.run();
  Sim full(config(64, 4), 256, 4);
  full.window = 16;
  full.add("long", 20, 400, 0, {}, true);
  full.run();
  CHECK_EQ(win.done.at("long").tokens.size(), size_t(400));
  CHECK(win.done.at("long").tokens == full.done.at("long").tokens);
  CHECK(win.max_used <= 16 / 4 + 2);
  CHECK(full.max_used >= 100);
  CHECK_EQ(win.sched.blocks().num_free(), 64);
}


// Embedding requests: prefill only, chunked like any prompt beside generations, finish
// (stop, no token) in the step that completes their prompt, and compute every position
// even when the prefix cache holds their blocks (mean pooling needs every row).
TEST_CASE(prefill_only_requests_finish_at_their_prompt_and_skip_the_cache) {
  const std::vector<int32_t> prompt = prefixed(1, 20, 0, 0);
  const std::vector<int32_t> full(40, 17);  // a prompt may fill the context
  SamplingParams sp;
  int32_t embed_tokens = 0, full_tokens = 0;
  // gen fills the prefix cache; embed shares its prompt but computes it all; gen2 reads the cache.
  Sim t(caching(config(8, 8, 40)), 64, 4);
  t.add_tokens("gen", prompt, 5);
  t.run();
  t.sched.add("embed", prompt, sp, 0, 0, true);
  t.add_tokens("gen2", prompt, 3);
  t.sched.add("embed-full", full, sp, 0, 0, true);
  t.run();
  for (const auto& step : t.plan) {
    for (const auto& [id, n] : step) {
      if (id == "embed") embed_tokens += n;
      if (id == "embed-full") full_tokens += n;
    }
  }
  CHECK_EQ(embed_tokens, 20);
  CHECK_EQ(full_tokens, 40);
  CHECK(t.done.at("embed").tokens.empty());
  CHECK(t.done.at("embed").reason == FinishReason::stop);
  CHECK_EQ(t.cached.at("embed"), 0);
  CHECK(t.cached.at("gen2") > 0);
  CHECK_EQ(int32_t(t.done.at("gen2").tokens.size()), 3);
  CHECK(t.done.at("embed-full").tokens.empty());
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
