#include "sample/request_extras.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>

namespace bg {

SampleExtrasBuilder::SampleExtrasBuilder(int32_t rows, int32_t vocab, int32_t mask_words)
    : rows_(rows), vocab_(vocab), budgets_(size_t(rows), 0) {
  x_.mask_words = mask_words;
}

void SampleExtrasBuilder::add_row(const SamplingParams& p, RequestExtras* e, const std::vector<int32_t>& prompt,
                                  const std::vector<int32_t>& output) {
  const size_t r = size_t(next_++);
  auto lazy = [&](auto& v, auto fill) {  // a list exists once a row needs it
    if (v.empty()) v.assign(size_t(rows_), fill);
  };
  if (!e) return;
  any_ = true;
  const bool penalties = p.presence_penalty != 0 || p.frequency_penalty != 0 || p.repetition_penalty != 1;
  if (penalties) {
    if (x_.pen_offsets.empty()) x_.pen_offsets.assign(size_t(rows_) + 1, 0);
    lazy(x_.presence, 0.0f);
    lazy(x_.frequency, 0.0f);
    lazy(x_.repetition, 1.0f);
    x_.presence[r] = p.presence_penalty;
    x_.frequency[r] = p.frequency_penalty;
    x_.repetition[r] = p.repetition_penalty;
    for (; e->counted < output.size(); ++e->counted) ++e->counts[output[e->counted]];
    for (const auto& tc : e->counts) {
      x_.pen_tokens.push_back(tc.first);
      x_.pen_counts.push_back(tc.second);
    }
    if (p.repetition_penalty != 1) {
      if (e->prompt_distinct.empty()) {
        e->prompt_distinct = prompt;
        std::sort(e->prompt_distinct.begin(), e->prompt_distinct.end());
        e->prompt_distinct.erase(std::unique(e->prompt_distinct.begin(), e->prompt_distinct.end()),
                                 e->prompt_distinct.end());
      }
      for (int32_t t : e->prompt_distinct) {
        if (e->counts.count(t)) continue;
        x_.pen_tokens.push_back(t);
        x_.pen_counts.push_back(0);
      }
    }
  }
  if (!p.logit_bias.empty()) {
    if (x_.bias_offsets.empty()) x_.bias_offsets.assign(size_t(rows_) + 1, 0);
    for (const auto& b : p.logit_bias) {
      x_.bias_tokens.push_back(b.first);
      x_.bias_values.push_back(b.second);
    }
  }
  // Offsets of rows without a list stay equal to their predecessor's end.
  if (!x_.pen_offsets.empty()) x_.pen_offsets[r + 1] = int32_t(x_.pen_tokens.size());
  if (!x_.bias_offsets.empty()) x_.bias_offsets[r + 1] = int32_t(x_.bias_tokens.size());
  if (p.logprobs >= 0) {
    lazy(x_.top_logprobs, -1);
    x_.top_logprobs[r] = p.logprobs;
  }
  if (e->grammar && !e->grammar_failed) {
    lazy(x_.mask_row, -1);
    x_.mask_row[r] = int32_t(mask_states_.size());
    mask_states_.push_back(e->grammar.get());
    mask_rows_.push_back(int32_t(r));
    mask_stops_.push_back(&p.stop_token_ids);
  }
}

void SampleExtrasBuilder::fill_masks(const std::vector<int32_t>& eos_ids, ThreadPool* pool) {
  // Rows added after the last list began have offsets still 0: carry the ends forward.
  for (size_t r = 1; r < x_.pen_offsets.size(); ++r) x_.pen_offsets[r] = std::max(x_.pen_offsets[r], x_.pen_offsets[r - 1]);
  for (size_t r = 1; r < x_.bias_offsets.size(); ++r) x_.bias_offsets[r] = std::max(x_.bias_offsets[r], x_.bias_offsets[r - 1]);
  const size_t n = mask_states_.size();
  if (n == 0) return;
  auto parallel_if = [pool](bool wide, size_t count, const auto& fn) {
    if (pool && wide && count > 1) {
      pool->parallel_for(int64_t(count), 1, [&](int, int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) fn(size_t(i));
      });
    } else {
      for (size_t i = 0; i < count; ++i) fn(i);
    }
  };

  // 1. Distinct states (per grammar), then their cached entries; a state new to
  //    the cache is walked over the vocabulary here, so this runs on the pool too.
  struct State {
    const grammar::GrammarState* g;
    std::string key;
    std::shared_ptr<const grammar::MaskEntry> entry;
  };
  std::vector<State> states;
  std::vector<size_t> state_of(n);
  {
    std::unordered_map<std::string, size_t> index;
    std::string k;
    for (size_t i = 0; i < n; ++i) {
      const grammar::GrammarState* g = mask_states_[i];
      const grammar::CompiledGrammar* cg = &g->grammar();
      k.assign(reinterpret_cast<const char*>(&cg), sizeof cg);
      k += g->state().key();
      auto it = index.emplace(k, states.size());
      if (it.second) states.push_back(State{g, k.substr(sizeof cg), nullptr});
      state_of[i] = it.first->second;
    }
  }
  std::vector<size_t> misses;
  for (size_t u = 0; u < states.size(); ++u) {
    states[u].entry = states[u].g->grammar().cached(states[u].key);
    if (!states[u].entry) misses.push_back(u);
  }
  parallel_if(true, misses.size(), [&](size_t m) {
    State& st = states[misses[m]];
    st.entry = st.g->grammar().entry(st.g->state(), st.key);
  });

  // 2. Distinct masks: (state, budget clamp, stop ids).
  struct Slot {
    size_t state;
    int32_t budget;
    const std::vector<int32_t>* stops;
  };
  std::vector<Slot> slots;
  {
    std::map<std::tuple<size_t, int32_t, std::vector<int32_t>>, int32_t> index;
    for (size_t i = 0; i < n; ++i) {
      const size_t u = state_of[i];
      const int32_t budget = grammar::CompiledGrammar::budget_clamp(*states[u].entry, budgets_[size_t(mask_rows_[i])]);
      auto it = index.emplace(std::make_tuple(u, budget, *mask_stops_[i]), int32_t(slots.size()));
      if (it.second) slots.push_back(Slot{u, budget, mask_stops_[i]});
      x_.mask_row[size_t(mask_rows_[i])] = it.first->second;
    }
  }

  // 3. Each distinct mask once (a copy of the entry's bits, mostly: threads pay
  //    off only for many).
  const size_t words = size_t(x_.mask_words);
  x_.masks.resize(slots.size() * words);
  parallel_if(slots.size() * words * 4 >= (size_t(4) << 20), slots.size(), [&](size_t j) {
    const Slot& sl = slots[j];
    std::vector<int32_t> end_ids = eos_ids;
    end_ids.insert(end_ids.end(), sl.stops->begin(), sl.stops->end());
    const State& st = states[sl.state];
    st.g->grammar().fill_mask(*st.entry, sl.budget, end_ids, x_.masks.data() + j * words);
  });
}

void request_extras_to_result(const RequestExtras& e, int32_t k, GenerateResult& g) {
  if (k < 0) return;
  g.logprobs = e.logprobs;
  g.top_logprobs_k = k;
  g.top_logprob_ids = e.top_ids;
  g.top_logprobs = e.top_lps;
}

}  // namespace bg
