// A JSON grammar compiled from a JSON Schema of OpenAI's strict-mode subset, or
// the grammar of "any JSON object" (response_format json_object). Pure C++.
//
// The subset (anything else is an EngineError(invalid_argument) naming the
// keyword and where it sits, e.g. "#/properties/tags/items: keyword 'pattern'"):
//   type (a name or a list of names: object, array, string, number, integer,
//   boolean, null), properties, required, additionalProperties, items, minItems,
//   maxItems, enum, const, anyOf, $ref ("#", "#/$defs/..", "#/definitions/.."),
//   minimum / maximum on numbers where they do not cut into what the grammar
//   writes (minimum 0: no minus sign; minimum <= -1e15 and maximum >= 1e15: no
//   bound for numbers of at most 15 integer digits, and no exponent),
//   $defs / definitions, and the annotations title, description, default,
//   examples, $schema, $id, $comment, strict.
//
// What the grammar generates (always a subset of what the schema accepts):
//  - compact JSON: no whitespace outside strings;
//  - an object with properties writes every declared property, in declaration
//    order (required or not: writing an optional property is valid); an object
//    without properties is any JSON object;
//  - integers have at most 15 digits, numbers at most 15 integer and 15 fraction
//    digits and a 2-digit exponent, so every one parses to a finite double;
//  - strings are any JSON string (escapes included); enum and const values are
//    written exactly as JSON.stringify writes them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bg {

class Json;

namespace grammar {

enum class NodeKind : uint8_t {
  any,          // any JSON value
  any_object,   // any JSON object
  object,       // fixed properties, in order
  array,        // items of one node, [min_items, max_items]
  string,
  number,
  integer,
  literals,     // one of a set of exact texts (enum, const, true/false, null)
  any_of,
};

// Byte lengths are "infinite" at this value (a recursion without a base case).
constexpr int32_t kInfiniteLen = 1 << 28;

struct Node {
  NodeKind kind = NodeKind::any;
  // object: keys[i] is the exact text before value i: "\"name\":" (and a leading ','
  // for i > 0); values[i] its node.
  std::vector<std::string> keys;
  std::vector<int32_t> values;
  // object: suffix[i] = min bytes of keys/values i.. plus the closing brace.
  std::vector<int32_t> suffix;
  // array
  int32_t item = -1;
  int32_t min_items = 0;
  int32_t max_items = -1;            // -1 = unbounded
  // literals
  std::vector<std::string> literals;
  // any_of
  std::vector<int32_t> alts;
  int32_t min_len = 0;               // bytes of the shortest value
  // number / integer
  bool non_negative = false;         // minimum 0: no minus sign
  bool no_exponent = false;          // bounded: no exponent
};

struct Grammar {
  std::vector<Node> nodes;
  int32_t root = 0;
  int32_t any_literals = 0;          // the literals node {true, false, null} used inside `any`
};

// Compiles a schema (the JSON text of a schema object). Throws EngineError(invalid_argument).
Grammar grammar_from_json_schema(const std::string& schema_text);
// The grammar of response_format {"type": "json_object"}.
Grammar grammar_json_object();

// JSON text of a value as JSON.stringify writes it (compact; non-ASCII kept as UTF-8).
std::string json_write(const Json& v);

}  // namespace grammar
}  // namespace bg
