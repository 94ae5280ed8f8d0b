// A small JSON reader, enough for the files a Hugging Face model directory holds:
// config.json, generation_config.json, safetensors headers and
// model.safetensors.index.json. Parsing is strict (RFC 8259, no comments, no
// trailing commas); integers keep their exact int64 value next to the double.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bg {

class Json {
 public:
  enum class Kind : uint8_t { null, boolean, number, string, array, object };

  Json() = default;

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_number() const { return kind_ == Kind::number; }
  // A number written without fraction or exponent that fits int64.
  bool is_integer() const { return kind_ == Kind::number && is_int_; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }

  bool as_bool() const { return bool_; }
  double as_double() const { return num_; }
  int64_t as_int() const { return int_; }
  const std::string& as_string() const { return str_; }
  const std::vector<Json>& items() const { return arr_; }
  // Members in the order the document gives them (duplicate keys are refused at parse).
  const std::vector<std::pair<std::string, Json>>& members() const { return obj_; }

  // Object member by key, or nullptr when absent (or when this is not an object).
  const Json* find(const std::string& key) const;
  // Object member by key that is present and not null, else nullptr.
  const Json* find_value(const std::string& key) const;

  static Json make_null() { return Json(); }

 private:
  friend class JsonParser;
  Kind kind_ = Kind::null;
  bool bool_ = false;
  bool is_int_ = false;
  double num_ = 0;
  int64_t int_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
  std::map<std::string, size_t> index_;  // key -> position in obj_
};

// Parses `text` as one JSON document. On failure throws std::invalid_argument whose
// message says what is wrong and at which byte offset; callers wrap it in an
// EngineError that names the file.
Json json_parse(const char* text, size_t size);
inline Json json_parse(const std::string& text) { return json_parse(text.data(), text.size()); }

}  // namespace bg
