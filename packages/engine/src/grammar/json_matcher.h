// A byte-level pushdown matcher over a Grammar (json_grammar.h): the state after
// a prefix of output bytes is a set of stacks ("threads"; anyOf and enum
// alternatives run side by side until the bytes tell them apart). advance()
// feeds one byte; a state with no threads is dead (the prefix left the grammar).
//
// remaining() is the fewest bytes that complete the value from a state: the
// token mask uses it to keep every line closable within its token budget (each
// of those bytes is at most one token, as byte-level BPE and SentencePiece with
// byte fallback vocabularies have a token for every byte).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "grammar/json_grammar.h"

namespace bg {
namespace grammar {

constexpr int kMaxDepth = 32;

struct Frame {
  int32_t node;     // grammar node (literals: its node; any kinds: -1)
  int32_t aux;      // object: property index; literals: which literal
  uint16_t count;   // literal/key byte position, digits, array items, hex digits
  uint8_t type;
  uint8_t phase;
};

struct Thread {
  uint8_t depth = 0;
  Frame f[kMaxDepth];
  bool operator==(const Thread& o) const;
  bool operator<(const Thread& o) const;
};

struct MatchState {
  std::vector<Thread> threads;
  bool dead() const { return threads.empty(); }
  // Canonical bytes of the state (the mask cache's key).
  std::string key() const;
};

class JsonMatcher {
 public:
  explicit JsonMatcher(const Grammar* g) : g_(g) {}

  MatchState initial() const;
  // out = in after byte b (out may not alias in).
  void advance(const MatchState& in, uint8_t b, MatchState& out) const;
  // In place over a byte string; false (state left dead) when a byte does not fit.
  bool advance_bytes(MatchState& s, const std::string& bytes, MatchState& scratch) const;
  // The value is complete: the output may end here.
  bool can_end(const MatchState& s) const;
  // Fewest bytes that complete the value (0 when can_end).
  int32_t remaining(const MatchState& s) const;
  // Every thread sits inside a string, between characters: bytes other than
  // '"', '\\' and controls leave the state as it is.
  bool in_plain_string(const MatchState& s) const;

 private:
  void feed(Thread t, uint8_t b, std::vector<Thread>& out) const;
  void push_value(Thread t, int32_t node, std::vector<Thread>& out) const;
  int32_t frame_rest(const Frame& f) const;
  const Grammar* g_;
};

}  // namespace grammar
}  // namespace bg
