// Host cost of structured output per engine step: the grammar masks of R rows
// (SampleExtrasBuilder, the engine's own path), the bytes a device backend would
// upload for them, and advancing each row's grammar state by its sampled token.
// No model: each row "samples" a uniformly random allowed token, roughly what a
// random-weight model at temperature 1 does. Every row uses one schema (an object
// of F fields: string, integer, boolean in turn, as bench_engine --json-schema F),
// a line ends when its JSON can end and EOS is drawn, or at its token budget.
//
//   grammar_bench TOKENIZER_JSON [--rows 1024] [--steps 256] [--fields 10] [--threads 8] [--ramp 0]
//
// --ramp K starts K rows a step (as bench_engine's prefill admits 16 prompts of 512
// tokens a step with --max-batch-tokens 8192), so rows reach the end of their
// budgets at different steps; 0 starts them all at once.
//
// Prints per-step milliseconds (median and mean over the steps from 16 after the
// last row started, the mask cache warm), the mask bytes a device would upload per
// step, the distinct masks per step and the states cached.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "grammar/token_mask.h"
#include "grammar/token_vocab.h"
#include "sample/request_extras.h"
#include "schema_fields.h"

using namespace bg;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The k-th (0-based) set bit of a mask.
int32_t kth_bit(const uint32_t* m, int32_t words, int64_t k) {
  for (int32_t w = 0; w < words; ++w) {
    const int c = __builtin_popcount(m[w]);
    if (k < c) {
      uint32_t x = m[w];
      for (; k > 0; --k) x &= x - 1;
      return w * 32 + __builtin_ctz(x);
    }
    k -= c;
  }
  return -1;
}

struct Stat {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  double median() const {
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
  double mean() const {
    double t = 0;
    for (double x : v) t += x;
    return v.empty() ? 0 : t / double(v.size());
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: grammar_bench TOKENIZER_JSON [--rows N] [--steps N] [--fields F] [--threads T]\n");
    return 2;
  }
  const std::string tokenizer = argv[1];
  int rows = 1024, steps = 256, fields = 10, threads = 8, ramp = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--rows") rows = v;
    else if (a == "--steps") steps = v;
    else if (a == "--fields") fields = v;
    else if (a == "--threads") threads = v;
    else if (a == "--ramp") ramp = v;
    else {
      std::fprintf(stderr, "grammar_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const int32_t vocab_size = 262144;
  const auto t_vocab = Clock::now();
  auto vocab = std::make_shared<const grammar::TokenVocab>(
      grammar::token_vocab_make(grammar::token_bytes_from_tokenizer_json(tokenizer, vocab_size)));
  const double vocab_ms = ms_since(t_vocab);
  auto compiled = std::make_shared<const grammar::CompiledGrammar>(
      grammar::grammar_from_json_schema(schema_of_fields(fields)), vocab);
  const std::vector<int32_t> eos = {1};

  SamplingParams p;
  p.format = SamplingParams::Format::json_schema;
  p.max_tokens = steps;
  struct Row {
    RequestExtras e;
    std::vector<int32_t> output;
    bool done = false;
  };
  std::vector<Row> live(static_cast<size_t>(rows));
  for (Row& r : live) r.e.grammar = std::make_unique<grammar::GrammarState>(compiled);
  const std::vector<int32_t> prompt = {2};
  std::mt19937_64 rng(1);

  Stat masks_ms, accept_ms, pack_ms, upload_mb, distinct;
  int64_t tokens = 0;
  std::vector<uint32_t> pinned;  // what a device backend copies the masks into
  ThreadPool pool(threads);
  const int last_start = ramp > 0 ? (rows - 1) / ramp : 0;
  for (int step = 0; step < steps + last_start; ++step) {
    std::vector<Row*> active;
    const size_t started = ramp > 0 ? std::min(size_t(rows), size_t(step + 1) * size_t(ramp)) : size_t(rows);
    for (size_t i = 0; i < started; ++i) if (!live[i].done) active.push_back(&live[i]);
    if (active.empty()) break;
    const auto t0 = Clock::now();
    SampleExtrasBuilder xb(int32_t(active.size()), vocab_size, compiled->mask_words());
    for (size_t i = 0; i < active.size(); ++i) {
      xb.set_budget(int32_t(i), p.max_tokens - int32_t(active[i]->output.size()));
      xb.add_row(p, &active[i]->e, prompt, active[i]->output);
    }
    xb.fill_masks(eos, &pool);
    const double t_masks = ms_since(t0);
    const SampleExtras& x = xb.extras();
    const auto t1 = Clock::now();
    pinned.resize(x.masks.size());
    std::copy(x.masks.begin(), x.masks.end(), pinned.begin());
    const double t_pack = ms_since(t1);

    std::vector<int32_t> sampled(active.size());
    for (size_t i = 0; i < active.size(); ++i) {
      const uint32_t* m = x.masks.data() + size_t(x.mask_row[i]) * size_t(x.mask_words);
      int64_t n = 0;
      for (int32_t w = 0; w < x.mask_words; ++w) n += __builtin_popcount(m[w]);
      sampled[i] = n ? kth_bit(m, x.mask_words, int64_t(rng() % uint64_t(n))) : eos[0];
    }
    const auto t2 = Clock::now();
    for (size_t i = 0; i < active.size(); ++i) {
      Row& r = *active[i];
      r.output.push_back(sampled[i]);
      ++tokens;
      if (sampled[i] == eos[0] || int32_t(r.output.size()) >= p.max_tokens) r.done = true;
      else if (!r.e.grammar->accept(sampled[i])) {
        std::fprintf(stderr, "grammar_bench: a masked token left the grammar\n");
        return 1;
      }
    }
    const double t_accept = ms_since(t2);
    if (step >= 16 + last_start) {  // every row started, the cache warm
      masks_ms.add(t_masks);
      pack_ms.add(t_pack);
      accept_ms.add(t_accept);
      upload_mb.add(double(x.masks.size() + x.mask_row.size()) * 4 / 1e6);
      distinct.add(double(xb.distinct_masks()));
    }
  }
  std::printf(
      "{\"rows\":%d,\"ramp\":%d,\"fields\":%d,\"threads\":%d,\"vocab_load_ms\":%.0f,\"tokens\":%lld,\"steps_timed\":%zu,"
      "\"masks_ms_median\":%.3f,\"masks_ms_mean\":%.3f,\"pack_ms_median\":%.3f,\"accept_ms_median\":%.3f,"
      "\"upload_mb_median\":%.3f,\"distinct_masks_median\":%.0f,\"cached_states\":%zu}\n",
      rows, ramp, fields, threads, vocab_ms, (long long)tokens, masks_ms.v.size(), masks_ms.median(), masks_ms.mean(),
      pack_ms.median(), accept_ms.median(), upload_mb.median(), distinct.median(), compiled->cached_states());
  return 0;
}
