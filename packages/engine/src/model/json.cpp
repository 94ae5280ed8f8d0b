#include "model/json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace bg {

const Json* Json::find(const std::string& key) const {
  if (kind_ != Kind::object) return nullptr;
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &obj_[it->second].second;
}

const Json* Json::find_value(const std::string& key) const {
  const Json* v = find(key);
  return (v && !v->is_null()) ? v : nullptr;
}

// Recursive descent over a byte range. Nesting is bounded so a hostile header
// cannot overflow the stack.
class JsonParser {
 public:
  JsonParser(const char* p, size_t n) : p_(p), n_(n) {}

  Json parse_document() {
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (i_ != n_) fail("unexpected content after the JSON value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 128;
  const char* p_;
  size_t n_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("invalid JSON at byte " + std::to_string(i_) + ": " + what);
  }

  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }

  bool consume_literal(const char* lit) {
    size_t j = 0;
    while (lit[j]) {
      if (i_ + j >= n_ || p_[i_ + j] != lit[j]) return false;
      ++j;
    }
    i_ += j;
    return true;
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    if (i_ >= n_) fail("unexpected end of input");
    Json v;
    char c = p_[i_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      v.kind_ = Json::Kind::string;
      v.str_ = parse_string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    if (consume_literal("true")) {
      v.kind_ = Json::Kind::boolean;
      v.bool_ = true;
      return v;
    }
    if (consume_literal("false")) {
      v.kind_ = Json::Kind::boolean;
      return v;
    }
    if (consume_literal("null")) return v;
    fail(std::string("unexpected character '") + c + "'");
  }

  Json parse_object(int depth) {
    Json v;
    v.kind_ = Json::Kind::object;
    ++i_;  // '{'
    skip_ws();
    if (i_ < n_ && p_[i_] == '}') {
      ++i_;
      return v;
    }
    for (;;) {
      skip_ws();
      if (i_ >= n_ || p_[i_] != '"') fail("expected a string key");
      std::string key = parse_string();
      skip_ws();
      if (i_ >= n_ || p_[i_] != ':') fail("expected ':' after key \"" + key + "\"");
      ++i_;
      skip_ws();
      Json member = parse_value(depth + 1);
      if (v.index_.count(key)) fail("duplicate key \"" + key + "\"");
      v.index_.emplace(key, v.obj_.size());
      v.obj_.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (i_ >= n_) fail("unterminated object");
      if (p_[i_] == ',') {
        ++i_;
        continue;
      }
      if (p_[i_] == '}') {
        ++i_;
        return v;
      }
      fail("expected ',' or '}' in object");
    }
  }

  Json parse_array(int depth) {
    Json v;
    v.kind_ = Json::Kind::array;
    ++i_;  // '['
    skip_ws();
    if (i_ < n_ && p_[i_] == ']') {
      ++i_;
      return v;
    }
    for (;;) {
      skip_ws();
      v.arr_.push_back(parse_value(depth + 1));
      skip_ws();
      if (i_ >= n_) fail("unterminated array");
      if (p_[i_] == ',') {
        ++i_;
        continue;
      }
      if (p_[i_] == ']') {
        ++i_;
        return v;
      }
      fail("expected ',' or ']' in array");
    }
  }

  uint32_t parse_hex4() {
    if (i_ + 4 > n_) fail("truncated \\u escape");
    uint32_t cp = 0;
    for (int k = 0; k < 4; ++k) {
      char h = p_[i_++];
      cp <<= 4;
      if (h >= '0' && h <= '9') cp |= uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f') cp |= uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') cp |= uint32_t(h - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return cp;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(p_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("control character in string");
      if (c != '\\') {
        out += char(c);
        continue;
      }
      if (i_ >= n_) fail("unterminated escape");
      char e = p_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i_ + 2 > n_ || p_[i_] != '\\' || p_[i_ + 1] != 'u') fail("unpaired surrogate");
            i_ += 2;
            uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  Json parse_number() {
    size_t start = i_;
    bool integral = true;
    if (p_[i_] == '-') ++i_;
    if (i_ >= n_) fail("truncated number");
    if (p_[i_] == '0') {
      ++i_;
    } else if (p_[i_] >= '1' && p_[i_] <= '9') {
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
    } else {
      fail("bad number");
    }
    if (i_ < n_ && p_[i_] == '.') {
      integral = false;
      ++i_;
      if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') fail("bad fraction");
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
    }
    if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
      integral = false;
      ++i_;
      if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) ++i_;
      if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') fail("bad exponent");
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
    }
    // strtod/strtoll need a terminated buffer; numbers are short.
    std::string text(p_ + start, i_ - start);
    Json v;
    v.kind_ = Json::Kind::number;
    v.num_ = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      long long iv = std::strtoll(text.c_str(), nullptr, 10);
      if (errno != ERANGE) {
        v.is_int_ = true;
        v.int_ = iv;
      }
    }
    return v;
  }
};

Json json_parse(const char* text, size_t size) {
  JsonParser parser(text, size);
  return parser.parse_document();
}

}  // namespace bg
