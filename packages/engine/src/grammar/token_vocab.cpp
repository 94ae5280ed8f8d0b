#include "grammar/token_vocab.h"

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "batchgen/tensor.h"
#include "model/gguf.h"
#include "model/json.h"

namespace bg {
namespace grammar {
namespace {

[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

bool plain_byte(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; }

// GPT-2's bytes_to_unicode, inverted: code point -> byte.
std::map<uint32_t, uint8_t> byte_level_table() {
  std::map<uint32_t, uint8_t> inv;
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    inv[printable ? b : 256 + extra++] = uint8_t(b);
  }
  return inv;
}

// UTF-8 -> code points (the vocabulary's strings are valid UTF-8 JSON strings).
std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n && i + size_t(k) < s.size(); ++k) cp = (cp << 6) | (uint8_t(s[i + size_t(k)]) & 0x3F);
    out.push_back(cp);
    i += size_t(n);
  }
  return out;
}

bool has_type(const Json* node, const char* type) {
  if (!node) return false;
  if (const Json* t = node->find_value("type"); t && t->is_string() && t->as_string() == type) return true;
  if (const Json* list = node->find_value("decoders"); list && list->is_array()) {
    for (const Json& d : list->items()) if (has_type(&d, type)) return true;
  }
  return false;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// One vocabulary piece as bytes: byte-level (GPT-2 table) or SentencePiece style.
std::string piece_bytes(const std::string& piece, bool byte_level, const std::map<uint32_t, uint8_t>& table) {
  if (byte_level) {
    std::string b;
    for (uint32_t cp : code_points(piece)) {
      auto it = table.find(cp);
      if (it == table.end()) return piece;  // not a byte-level string: take it as written
      b += char(it->second);
    }
    return b;
  }
  if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>') {
    const int hi = hex_value(piece[3]), lo = hex_value(piece[4]);
    if (hi >= 0 && lo >= 0) return std::string(1, char(hi * 16 + lo));
  }
  std::string b;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      b += ' ';
      i += 3;
    } else {
      b += piece[i++];
    }
  }
  return b;
}

}  // namespace

TokenVocab token_vocab_make(std::vector<std::string> bytes) {
  TokenVocab v;
  v.bytes = std::move(bytes);
  v.plain_tail.assign(v.bytes.size(), 0);
  for (size_t id = 0; id < v.bytes.size(); ++id) {
    const std::string& b = v.bytes[id];
    if (b.empty()) continue;
    v.by_first[uint8_t(b[0])].push_back(int32_t(id));
    bool plain = true;
    for (size_t k = 1; k < b.size() && plain; ++k) plain = plain_byte(uint8_t(b[k]));
    v.plain_tail[id] = plain;
  }
  return v;
}

std::vector<std::string> token_bytes_from_tokenizer_json(const std::string& path, int32_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) unsupported(path + ": cannot read it; structured output needs the model's tokenizer.json");
  std::stringstream ss;
  ss << in.rdbuf();
  Json doc;
  try {
    doc = json_parse(ss.str());
  } catch (const std::invalid_argument& e) {
    unsupported(path + ": " + e.what());
  }
  const Json* model = doc.find_value("model");
  const Json* vocab = model ? model->find_value("vocab") : nullptr;
  if (!vocab) unsupported(path + ": no model.vocab");
  const bool byte_level = has_type(doc.find_value("decoder"), "ByteLevel");
  const auto table = byte_level ? byte_level_table() : std::map<uint32_t, uint8_t>{};

  std::vector<std::string> out(static_cast<size_t>(vocab_size));
  auto decode = [&](const std::string& piece) { return piece_bytes(piece, byte_level, table); };
  auto put = [&](int64_t id, const std::string& piece) {
    if (id >= 0 && id < vocab_size) out[size_t(id)] = decode(piece);
  };
  if (vocab->is_object()) {
    for (const auto& m : vocab->members()) if (m.second.is_integer()) put(m.second.as_int(), m.first);
  } else if (vocab->is_array()) {  // Unigram: [[piece, score], ...]
    for (size_t i = 0; i < vocab->items().size(); ++i) {
      const Json& e = vocab->items()[i];
      if (e.is_array() && !e.items().empty() && e.items()[0].is_string()) put(int64_t(i), e.items()[0].as_string());
    }
  } else {
    unsupported(path + ": model.vocab is neither a map nor a list");
  }
  if (const Json* added = doc.find_value("added_tokens"); added && added->is_array()) {
    for (const Json& t : added->items()) {
      const Json* id = t.find_value("id");
      const Json* content = t.find_value("content");
      const Json* special = t.find_value("special");
      if (!id || !id->is_integer() || id->as_int() < 0 || id->as_int() >= vocab_size) continue;
      if (special && special->is_bool() && special->as_bool()) out[size_t(id->as_int())].clear();
      else if (content && content->is_string()) out[size_t(id->as_int())] = content->as_string();
    }
  }
  return out;
}

}  // namespace grammar
}  // namespace bg

namespace bg {
namespace grammar {

std::vector<std::string> token_bytes_from_gguf(const std::string& path, int32_t vocab_size) {
  std::unique_ptr<GgufFile> file = GgufFile::open(path);
  const GgufValue* tokens = file->find("tokenizer.ggml.tokens");
  if (!tokens || tokens->strings.empty()) unsupported(path + ": no tokenizer.ggml.tokens; structured output needs the vocabulary");
  const GgufValue* model = file->find("tokenizer.ggml.model");
  const bool byte_level = model && model->s == "gpt2";
  const auto table = byte_level ? byte_level_table() : std::map<uint32_t, uint8_t>{};
  const GgufValue* types = file->find("tokenizer.ggml.token_type");
  std::vector<std::string> out(static_cast<size_t>(vocab_size));
  for (size_t id = 0; id < tokens->strings.size() && id < size_t(vocab_size); ++id) {
    // llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    const int type = types && id < types->numbers.size() ? int(types->numbers[id]) : 1;
    if (type == 2 || type == 3 || type == 5) continue;
    out[id] = type == 4 ? tokens->strings[id] : piece_bytes(tokens->strings[id], byte_level, table);
  }
  return out;
}

}  // namespace grammar
}  // namespace bg
