// Per-step token masks: which token ids may come next under a grammar, over the
// model's own vocabulary (token_vocab.h).
//
// The mask of a matcher state depends on the state alone, so it is computed once
// and cached by the state's canonical bytes inside the compiled grammar; a batch
// that uses one schema on every line hits the cache for nearly every step. A
// state's mask is found by feeding each possible first byte once and walking
// only the tokens whose first byte survives; inside a string, tokens with no
// quote, backslash or control byte leave the state as it is and need no walk.
//
// Budget: a line must be able to close its JSON before max_tokens or the context
// run out. With `budget` tokens left (this one included), a token is allowed only
// when the bytes still needed after it (JsonMatcher::remaining) are at most
// budget - 1, one token per byte at worst. So a line that hits max_tokens still
// ends on valid JSON whenever max_tokens covers the schema's shortest value.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grammar/json_grammar.h"
#include "grammar/json_matcher.h"
#include "grammar/token_vocab.h"

namespace bg {
namespace grammar {

struct MaskEntry {
  std::vector<uint32_t> allowed;                     // bit per token id
  int32_t rest = 0;                                  // remaining() of the state
  int32_t max_after = 0;                             // max remaining() after an allowed token
  std::vector<std::pair<int32_t, int32_t>> grow;     // (id, remaining after) > rest
  std::vector<std::pair<int32_t, int32_t>> shrink;   // (id, remaining after) < rest
  bool can_end = false;
};

class CompiledGrammar {
 public:
  CompiledGrammar(Grammar g, std::shared_ptr<const TokenVocab> vocab);
  const JsonMatcher& matcher() const { return matcher_; }
  const TokenVocab& vocab() const { return *vocab_; }
  int32_t mask_words() const { return (vocab_->size() + 31) / 32; }
  int32_t min_len() const { return grammar_.nodes[size_t(grammar_.root)].min_len; }

  // Writes mask_words() words for state `s` with `budget` tokens left; `end_ids`
  // (end-of-sequence and stop ids) are allowed once the value can end. Thread-safe.
  void fill_mask(const MatchState& s, int32_t budget, const std::vector<int32_t>& end_ids,
                 uint32_t* words) const;
  // The same from the state's cached entry (entry(s)).
  void fill_mask(const MaskEntry& e, int32_t budget, const std::vector<int32_t>& end_ids, uint32_t* words) const;
  // The state's mask entry, computed on the first ask and cached by the state's
  // key (MatchState::key()). Thread-safe; two threads asking for one new state
  // may both compute it.
  std::shared_ptr<const MaskEntry> entry(const MatchState& s) const;
  std::shared_ptr<const MaskEntry> entry(const MatchState& s, const std::string& key) const;
  // The cached entry of a state's key, or null (computes nothing).
  std::shared_ptr<const MaskEntry> cached(const std::string& key) const;
  size_t cached_states() const;

  // fill_mask's words depend on the budget only up to max_after + 1: budgets
  // with one clamp give one mask (rows in one state share it).
  static int32_t budget_clamp(const MaskEntry& e, int32_t budget) { return std::min(budget, e.max_after + 1); }

 private:
  std::shared_ptr<MaskEntry> compute(const MatchState& s) const;

  Grammar grammar_;
  std::shared_ptr<const TokenVocab> vocab_;
  JsonMatcher matcher_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<const MaskEntry>> cache_;
};

// One request's place in its grammar.
class GrammarState {
 public:
  explicit GrammarState(std::shared_ptr<const CompiledGrammar> g)
      : g_(std::move(g)), state_(g_->matcher().initial()) {}
  const CompiledGrammar& grammar() const { return *g_; }
  const MatchState& state() const { return state_; }
  // Feeds a sampled token; false when it does not fit (the grammar's bytes say no).
  bool accept(int32_t token);
  bool can_end() const { return g_->matcher().can_end(state_); }

 private:
  std::shared_ptr<const CompiledGrammar> g_;
  MatchState state_, scratch_;
};

}  // namespace grammar
}  // namespace bg
