#include "grammar/json_matcher.h"

#include <algorithm>
#include <cstring>

namespace bg {
namespace grammar {
namespace {

enum FrameType : uint8_t { F_LIT = 1, F_STRING, F_NUMBER, F_OBJECT, F_ARRAY, F_ANY, F_ANY_OBJ, F_ANY_ARR };
enum StringPhase : uint8_t { S_OPEN, S_IN, S_ESC, S_HEX };
enum NumberPhase : uint8_t { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };
enum ObjectPhase : uint8_t { P_OPEN, P_KEY, P_CLOSE };
enum ArrayPhase : uint8_t { A_OPEN, A_FIRST, A_AFTER };
enum AnyObjectPhase : uint8_t { AO_OPEN, AO_FIRST, AO_COLON, AO_AFTER, AO_KEY };
enum AnyArrayPhase : uint8_t { AA_OPEN, AA_FIRST, AA_AFTER };

constexpr int kMaxIntDigits = 15, kMaxFracDigits = 15, kMaxExpDigits = 2;

bool number_accepting(uint8_t phase) {
  return phase == N_ZERO || phase == N_INT || phase == N_FRAC || phase == N_EXP;
}
bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool is_hex(uint8_t b) { return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

Frame frame(int32_t node, uint8_t type, uint8_t phase, int32_t aux = 0) {
  return Frame{node, aux, 0, type, phase};
}

bool push(Thread& t, const Frame& f) {
  if (t.depth >= kMaxDepth) return false;
  t.f[t.depth++] = f;
  return true;
}

}  // namespace

bool Thread::operator==(const Thread& o) const {
  return depth == o.depth && std::memcmp(f, o.f, sizeof(Frame) * depth) == 0;
}
bool Thread::operator<(const Thread& o) const {
  if (depth != o.depth) return depth < o.depth;
  return std::memcmp(f, o.f, sizeof(Frame) * depth) < 0;
}

std::string MatchState::key() const {
  std::string k;
  for (const Thread& t : threads) {
    k += char(t.depth);
    k.append(reinterpret_cast<const char*>(t.f), sizeof(Frame) * t.depth);
  }
  return k;
}

MatchState JsonMatcher::initial() const {
  MatchState s;
  push_value(Thread{}, g_->root, s.threads);
  std::sort(s.threads.begin(), s.threads.end());
  s.threads.erase(std::unique(s.threads.begin(), s.threads.end()), s.threads.end());
  return s;
}

void JsonMatcher::push_value(Thread t, int32_t node, std::vector<Thread>& out) const {
  // any_of chains ($ref to $ref) are followed iteratively up to a bound.
  const Node* n = &g_->nodes[size_t(node)];
  for (int hops = 0; n->kind == NodeKind::any_of && n->alts.size() == 1; ++hops) {
    if (hops > 64) return;
    node = n->alts[0];
    n = &g_->nodes[size_t(node)];
  }
  switch (n->kind) {
    case NodeKind::any: if (push(t, frame(-1, F_ANY, 0))) out.push_back(t); return;
    case NodeKind::any_object: if (push(t, frame(node, F_ANY_OBJ, AO_OPEN))) out.push_back(t); return;
    case NodeKind::object: if (push(t, frame(node, F_OBJECT, P_OPEN))) out.push_back(t); return;
    case NodeKind::array: if (push(t, frame(node, F_ARRAY, A_OPEN))) out.push_back(t); return;
    case NodeKind::string: if (push(t, frame(node, F_STRING, S_OPEN))) out.push_back(t); return;
    case NodeKind::number:
    case NodeKind::integer: if (push(t, frame(node, F_NUMBER, N_START))) out.push_back(t); return;
    case NodeKind::literals:
      for (size_t j = 0; j < n->literals.size(); ++j) {
        Thread c = t;
        if (push(c, frame(node, F_LIT, 0, int32_t(j)))) out.push_back(c);
      }
      return;
    case NodeKind::any_of:
      for (int32_t a : n->alts) push_value(t, a, out);
      return;
  }
}

void JsonMatcher::feed(Thread t, uint8_t b, std::vector<Thread>& out) const {
  if (t.depth == 0) return;  // complete: nothing more fits
  Frame& f = t.f[t.depth - 1];
  auto pop = [&] { --t.depth; };
  switch (f.type) {
    case F_LIT: {
      const std::string& lit = g_->nodes[size_t(f.node)].literals[size_t(f.aux)];
      if (uint8_t(lit[f.count]) != b) return;
      if (++f.count == lit.size()) pop();
      out.push_back(t);
      return;
    }
    case F_STRING:
      switch (f.phase) {
        case S_OPEN: if (b != '"') return; f.phase = S_IN; break;
        case S_IN:
          if (b == '"') pop();
          else if (b == '\\') f.phase = S_ESC;
          else if (b < 0x20) return;
          break;
        case S_ESC:
          if (b == 'u') { f.phase = S_HEX; f.count = 0; }
          else if (std::strchr("\"\\/bfnrt", b) && b) f.phase = S_IN;
          else return;
          break;
        case S_HEX:
          if (!is_hex(b)) return;
          if (++f.count == 4) { f.phase = S_IN; f.count = 0; }
          break;
      }
      out.push_back(t);
      return;
    case F_NUMBER: {
      const Node* nn = f.node >= 0 ? &g_->nodes[size_t(f.node)] : nullptr;
      const bool integer = nn && nn->kind == NodeKind::integer;
      const bool exponent = !integer && !(nn && nn->no_exponent);
      bool took = true;
      switch (f.phase) {
        case N_START:
          if (b == '-' && !(nn && nn->non_negative)) f.phase = N_MINUS;
          else if (b == '0') f.phase = N_ZERO;
          else if (is_digit(b)) { f.phase = N_INT; f.count = 1; }
          else took = false;
          break;
        case N_MINUS:
          if (b == '0') f.phase = N_ZERO;
          else if (is_digit(b)) { f.phase = N_INT; f.count = 1; }
          else took = false;
          break;
        case N_ZERO:
        case N_INT:
          if (f.phase == N_INT && is_digit(b) && f.count < kMaxIntDigits) ++f.count;
          else if (!integer && b == '.') f.phase = N_DOT;
          else if (exponent && (b == 'e' || b == 'E')) f.phase = N_E;
          else took = false;
          break;
        case N_DOT:
          if (is_digit(b)) { f.phase = N_FRAC; f.count = 1; }
          else took = false;
          break;
        case N_FRAC:
          if (is_digit(b) && f.count < kMaxFracDigits) ++f.count;
          else if (exponent && (b == 'e' || b == 'E')) f.phase = N_E;
          else took = false;
          break;
        case N_E:
          if (b == '+' || b == '-') f.phase = N_ESIGN;
          else if (is_digit(b)) { f.phase = N_EXP; f.count = 1; }
          else took = false;
          break;
        case N_ESIGN:
          if (is_digit(b)) { f.phase = N_EXP; f.count = 1; }
          else took = false;
          break;
        case N_EXP:
          if (is_digit(b) && f.count < kMaxExpDigits) ++f.count;
          else took = false;
          break;
      }
      if (took) {
        out.push_back(t);
      } else if (number_accepting(f.phase)) {
        pop();  // the number ended before b: the enclosing value reads it
        feed(t, b, out);
      }
      return;
    }
    case F_OBJECT: {
      const Node& n = g_->nodes[size_t(f.node)];
      switch (f.phase) {
        case P_OPEN:
          if (b != '{') return;
          f.phase = n.keys.empty() ? P_CLOSE : P_KEY;
          f.aux = 0;
          f.count = 0;
          out.push_back(t);
          return;
        case P_KEY: {
          const std::string& key = n.keys[size_t(f.aux)];
          if (uint8_t(key[f.count]) != b) return;
          if (++f.count < key.size()) {
            out.push_back(t);
            return;
          }
          const int32_t i = f.aux;
          f.aux = i + 1;
          f.count = 0;
          f.phase = size_t(f.aux) < n.keys.size() ? P_KEY : P_CLOSE;
          push_value(t, n.values[size_t(i)], out);
          return;
        }
        case P_CLOSE:
          if (b != '}') return;
          pop();
          out.push_back(t);
          return;
      }
      return;
    }
    case F_ARRAY: {
      const Node& n = g_->nodes[size_t(f.node)];
      const int32_t cap = std::max(n.min_items, n.max_items >= 0 ? n.max_items : n.min_items);
      switch (f.phase) {
        case A_OPEN:
          if (b != '[') return;
          f.phase = A_FIRST;
          out.push_back(t);
          return;
        case A_FIRST: {
          if (b == ']' && n.min_items == 0) {
            Thread c = t;
            --c.depth;
            out.push_back(c);
          }
          if (n.max_items == 0) return;
          f.phase = A_AFTER;
          f.count = uint16_t(std::min(1, cap));
          std::vector<Thread> started;
          push_value(t, n.item, started);
          for (const Thread& s : started) feed(s, b, out);
          return;
        }
        case A_AFTER:
          if (b == ',' && (n.max_items < 0 || f.count < n.max_items)) {
            f.count = uint16_t(std::min<int32_t>(f.count + 1, cap));
            push_value(t, n.item, out);
          } else if (b == ']' && f.count >= n.min_items) {
            pop();
            out.push_back(t);
          }
          return;
      }
      return;
    }
    case F_ANY: {
      const bool room = t.depth + 2 <= kMaxDepth;
      if (b == '"') {
        f = frame(-1, F_STRING, S_IN);
      } else if (b == '-' || is_digit(b)) {
        f = frame(-1, F_NUMBER, N_START);
        feed(t, b, out);
        return;
      } else if (b == '{' && room) {
        f = frame(-1, F_ANY_OBJ, AO_FIRST);
      } else if (b == '[' && room) {
        f = frame(-1, F_ANY_ARR, AA_FIRST);
      } else if (b == 't' || b == 'f' || b == 'n') {
        f = frame(g_->any_literals, F_LIT, 0, b == 't' ? 0 : b == 'f' ? 1 : 2);
        feed(t, b, out);
        return;
      } else {
        return;
      }
      out.push_back(t);
      return;
    }
    case F_ANY_OBJ:
      switch (f.phase) {
        case AO_OPEN: if (b != '{') return; f.phase = AO_FIRST; break;
        case AO_FIRST:
        case AO_KEY:
          if (b == '}' && f.phase == AO_FIRST) { pop(); break; }
          if (b != '"') return;
          f.phase = AO_COLON;
          if (!push(t, frame(-1, F_STRING, S_IN))) return;
          break;
        case AO_COLON:
          if (b != ':') return;
          f.phase = AO_AFTER;
          if (!push(t, frame(-1, F_ANY, 0))) return;
          break;
        case AO_AFTER:
          if (b == ',') f.phase = AO_KEY;
          else if (b == '}') pop();
          else return;
          break;
      }
      out.push_back(t);
      return;
    case F_ANY_ARR:
      switch (f.phase) {
        case AA_OPEN: if (b != '[') return; f.phase = AA_FIRST; break;
        case AA_FIRST:
          if (b == ']') { pop(); break; }
          f.phase = AA_AFTER;
          if (!push(t, frame(-1, F_ANY, 0))) return;
          feed(t, b, out);
          return;
        case AA_AFTER:
          if (b == ',') {
            if (!push(t, frame(-1, F_ANY, 0))) return;
          } else if (b == ']') {
            pop();
          } else {
            return;
          }
          break;
      }
      out.push_back(t);
      return;
  }
}

void JsonMatcher::advance(const MatchState& in, uint8_t b, MatchState& out) const {
  out.threads.clear();
  for (const Thread& t : in.threads) feed(t, b, out.threads);
  if (out.threads.size() > 1) {
    std::sort(out.threads.begin(), out.threads.end());
    out.threads.erase(std::unique(out.threads.begin(), out.threads.end()), out.threads.end());
  }
}

bool JsonMatcher::advance_bytes(MatchState& s, const std::string& bytes, MatchState& scratch) const {
  for (unsigned char b : bytes) {
    advance(s, b, scratch);
    std::swap(s, scratch);
    if (s.dead()) return false;
  }
  return true;
}

bool JsonMatcher::can_end(const MatchState& s) const {
  for (const Thread& t : s.threads) {
    if (t.depth == 0) return true;
    if (t.depth == 1 && t.f[0].type == F_NUMBER && number_accepting(t.f[0].phase)) return true;
  }
  return false;
}

bool JsonMatcher::in_plain_string(const MatchState& s) const {
  if (s.threads.empty()) return false;
  for (const Thread& t : s.threads) {
    if (t.depth == 0) return false;
    const Frame& f = t.f[t.depth - 1];
    if (f.type != F_STRING || f.phase != S_IN) return false;
  }
  return true;
}

int32_t JsonMatcher::frame_rest(const Frame& f) const {
  switch (f.type) {
    case F_LIT: return int32_t(g_->nodes[size_t(f.node)].literals[size_t(f.aux)].size()) - f.count;
    case F_STRING:
      switch (f.phase) {
        case S_OPEN: return 2;
        case S_IN: return 1;
        case S_ESC: return 2;
        default: return 4 - f.count + 1;
      }
    case F_NUMBER: return number_accepting(f.phase) ? 0 : 1;
    case F_OBJECT: {
      const Node& n = g_->nodes[size_t(f.node)];
      if (f.phase == P_OPEN) return n.min_len;
      if (f.phase == P_KEY) return n.suffix[size_t(f.aux)] - f.count;
      return 1;
    }
    case F_ARRAY: {
      const Node& n = g_->nodes[size_t(f.node)];
      const int64_t item = g_->nodes[size_t(n.item)].min_len;
      if (f.phase == A_OPEN) return n.min_len;
      if (f.phase == A_FIRST) return n.min_items == 0 ? 1 : int32_t(std::min<int64_t>(n.min_items * item + n.min_items, kInfiniteLen));
      const int64_t need = std::max(0, n.min_items - int32_t(f.count));
      return int32_t(std::min<int64_t>(need * (1 + item) + 1, kInfiniteLen));
    }
    case F_ANY: return 1;
    case F_ANY_OBJ: {
      static const int32_t rest[] = {2, 1, 3, 1, 5};
      return rest[f.phase];
    }
    case F_ANY_ARR: return f.phase == AA_OPEN ? 2 : 1;
  }
  return 0;
}

int32_t JsonMatcher::remaining(const MatchState& s) const {
  int64_t best = kInfiniteLen;
  for (const Thread& t : s.threads) {
    int64_t sum = 0;
    for (int i = 0; i < t.depth; ++i) sum += frame_rest(t.f[i]);
    best = std::min(best, sum);
  }
  return int32_t(best);
}

}  // namespace grammar
}  // namespace bg
