#include "grammar/json_grammar.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>

#include "batchgen/tensor.h"
#include "model/json.h"

namespace bg {
namespace grammar {
namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw EngineError(ErrorCode::invalid_argument, "json_schema " + where + ": " + what);
}

void write_string(const std::string& s, std::string& out) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

void write_value(const Json& v, std::string& out) {
  switch (v.kind()) {
    case Json::Kind::null: out += "null"; return;
    case Json::Kind::boolean: out += v.as_bool() ? "true" : "false"; return;
    case Json::Kind::number: {
      if (v.is_integer()) {
        out += std::to_string(v.as_int());
        return;
      }
      const double d = v.as_double();
      if (d == std::floor(d) && std::fabs(d) < 9.007199254740992e15) {
        out += std::to_string(int64_t(d));
        return;
      }
      char buf[40];
      for (int prec = 1; prec <= 17; ++prec) {  // the shortest text that reads back
        std::snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (std::strtod(buf, nullptr) == d) break;
      }
      out += buf;
      return;
    }
    case Json::Kind::string: write_string(v.as_string(), out); return;
    case Json::Kind::array: {
      out += '[';
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i) out += ',';
        write_value(v.items()[i], out);
      }
      out += ']';
      return;
    }
    case Json::Kind::object: {
      out += '{';
      for (size_t i = 0; i < v.members().size(); ++i) {
        if (i) out += ',';
        write_string(v.members()[i].first, out);
        out += ':';
        write_value(v.members()[i].second, out);
      }
      out += '}';
      return;
    }
  }
}

const std::set<std::string>& annotations() {
  static const std::set<std::string> s = {"title", "description", "default", "examples", "$schema",
                                          "$id", "$comment", "strict", "$defs", "definitions"};
  return s;
}

const std::set<std::string>& supported() {
  static const std::set<std::string> s = {"type", "properties", "required", "additionalProperties",
                                          "items", "minItems", "maxItems", "enum", "const", "anyOf",
                                          "$ref", "minimum", "maximum"};
  return s;
}

class Compiler {
 public:
  explicit Compiler(const Json& root) : root_(root) {}

  Grammar run() {
    g_.any_literals = add_literals({"true", "false", "null"});
    g_.root = compile(root_, "#", 0);
    min_lengths();
    if (g_.nodes[size_t(g_.root)].min_len >= kInfiniteLen) {
      fail("#", "the schema has no finite instance (every branch of a $ref recursion is required)");
    }
    return std::move(g_);
  }

 private:
  int32_t add(Node n) {
    g_.nodes.push_back(std::move(n));
    return int32_t(g_.nodes.size() - 1);
  }
  int32_t add_literals(std::vector<std::string> lits) {
    Node n;
    n.kind = NodeKind::literals;
    n.literals = std::move(lits);
    return add(std::move(n));
  }

  const Json& resolve(const std::string& ref, const std::string& where) {
    if (ref == "#") return root_;
    const Json* cur = &root_;
    if (ref.rfind("#/", 0) != 0) fail(where, "$ref '" + ref + "' is not supported: only local references (#/$defs/...)");
    size_t i = 2;
    while (i <= ref.size()) {
      size_t j = ref.find('/', i);
      if (j == std::string::npos) j = ref.size();
      std::string part = ref.substr(i, j - i);
      for (size_t k; (k = part.find("~1")) != std::string::npos;) part.replace(k, 2, "/");
      for (size_t k; (k = part.find("~0")) != std::string::npos;) part.replace(k, 2, "~");
      cur = cur->find(part);
      if (!cur) fail(where, "$ref '" + ref + "' points at nothing");
      i = j + 1;
    }
    return *cur;
  }

  int32_t compile(const Json& s, const std::string& where, int depth) {
    if (depth > 64) fail(where, "nesting deeper than 64 levels");
    if (s.is_bool()) {
      if (!s.as_bool()) fail(where, "the schema 'false' accepts nothing");
      Node n;
      n.kind = NodeKind::any;
      return add(std::move(n));
    }
    if (!s.is_object()) fail(where, "a schema must be an object");
    for (const auto& m : s.members()) {
      if (!supported().count(m.first) && !annotations().count(m.first)) {
        fail(where, "keyword '" + m.first + "' is not supported (the strict-mode subset: type, properties, "
                    "required, additionalProperties, items, minItems, maxItems, enum, const, anyOf, $ref, $defs)");
      }
    }
    if (const Json* ref = s.find_value("$ref")) {
      if (!ref->is_string()) fail(where, "$ref must be a string");
      for (const auto& m : s.members()) {
        if (supported().count(m.first) && m.first != "$ref") {
          fail(where, "keyword '" + m.first + "' beside $ref is not supported");
        }
      }
      auto it = refs_.find(ref->as_string());
      if (it != refs_.end()) return it->second;
      // A placeholder first, so a recursive reference finds its own node.
      const int32_t id = add(Node{});
      refs_[ref->as_string()] = id;
      const Json& target = resolve(ref->as_string(), where);
      const int32_t body = compile(target, ref->as_string(), depth + 1);
      Node n;
      n.kind = NodeKind::any_of;
      n.alts = {body};
      g_.nodes[size_t(id)] = std::move(n);
      return id;
    }
    if (const Json* any = s.find_value("anyOf")) {
      if (!any->is_array() || any->items().empty()) fail(where, "anyOf must be a non-empty array");
      for (const auto& m : s.members()) {
        if (supported().count(m.first) && m.first != "anyOf") {
          fail(where, "keyword '" + m.first + "' beside anyOf is not supported");
        }
      }
      Node n;
      n.kind = NodeKind::any_of;
      for (size_t i = 0; i < any->items().size(); ++i) {
        n.alts.push_back(compile(any->items()[i], where + "/anyOf/" + std::to_string(i), depth + 1));
      }
      return add(std::move(n));
    }
    if (const Json* e = s.find_value("enum")) {
      if (!e->is_array() || e->items().empty()) fail(where, "enum must be a non-empty array");
      std::vector<std::string> lits;
      for (const Json& v : e->items()) lits.push_back(json_write(v));
      return add_literals(std::move(lits));
    }
    if (const Json* c = s.find("const")) return add_literals({json_write(*c)});

    const Json* type = s.find_value("type");
    if (!type) {
      if (s.find_value("properties")) return compile_type(s, "object", where, depth);
      if (s.find_value("items")) return compile_type(s, "array", where, depth);
      Node n;
      n.kind = NodeKind::any;
      return add(std::move(n));
    }
    if (type->is_string()) return compile_type(s, type->as_string(), where, depth);
    if (!type->is_array() || type->items().empty()) fail(where, "type must be a string or a non-empty array of strings");
    Node n;
    n.kind = NodeKind::any_of;
    for (const Json& t : type->items()) {
      if (!t.is_string()) fail(where, "type must be a string or a non-empty array of strings");
      n.alts.push_back(compile_type(s, t.as_string(), where, depth));
    }
    return add(std::move(n));
  }

  int32_t int_field(const Json& s, const char* key, const std::string& where) {
    const Json* v = s.find_value(key);
    if (!v) return -1;
    if (!v->is_integer() || v->as_int() < 0 || v->as_int() > 100000) {
      fail(where, std::string(key) + " must be an integer in [0, 100000]");
    }
    return int32_t(v->as_int());
  }

  void only(const Json& s, const std::set<std::string>& allowed, const std::string& type,
            const std::string& where) {
    for (const auto& m : s.members()) {
      if (supported().count(m.first) && m.first != "type" && !allowed.count(m.first)) {
        fail(where, "keyword '" + m.first + "' does not apply to type '" + type + "'");
      }
    }
  }

  int32_t compile_type(const Json& s, const std::string& type, const std::string& where, int depth) {
    Node n;
    if (type == "object") {
      only(s, {"properties", "required", "additionalProperties"}, type, where);
      const Json* props = s.find_value("properties");
      if (const Json* ap = s.find_value("additionalProperties")) {
        if (!ap->is_bool() && !ap->is_object()) fail(where, "additionalProperties must be a boolean or a schema");
      }
      std::set<std::string> names;
      if (props) {
        if (!props->is_object()) fail(where, "properties must be an object");
        for (const auto& m : props->members()) names.insert(m.first);
      }
      if (const Json* req = s.find_value("required")) {
        if (!req->is_array()) fail(where, "required must be an array of property names");
        for (const Json& r : req->items()) {
          if (!r.is_string()) fail(where, "required must be an array of property names");
          if (!names.count(r.as_string())) {
            fail(where, "required names '" + r.as_string() + "', which is not in properties");
          }
        }
      }
      if (!props) {
        n.kind = NodeKind::any_object;
        return add(std::move(n));
      }
      n.kind = NodeKind::object;
      for (size_t i = 0; i < props->members().size(); ++i) {
        const auto& m = props->members()[i];
        std::string key = i ? "," : "";
        write_string(m.first, key);
        key += ':';
        n.keys.push_back(std::move(key));
        n.values.push_back(0);
      }
      const int32_t id = add(std::move(n));
      for (size_t i = 0; i < props->members().size(); ++i) {
        const auto& m = props->members()[i];
        const int32_t v = compile(m.second, where + "/properties/" + m.first, depth + 1);
        g_.nodes[size_t(id)].values[i] = v;
      }
      return id;
    }
    if (type == "array") {
      only(s, {"items", "minItems", "maxItems"}, type, where);
      n.kind = NodeKind::array;
      n.min_items = std::max(0, int_field(s, "minItems", where));
      n.max_items = int_field(s, "maxItems", where);
      if (n.max_items >= 0 && n.max_items < n.min_items) fail(where, "maxItems is below minItems");
      const Json* items = s.find_value("items");
      if (items && items->is_array()) fail(where, "items as an array (tuple validation) is not supported; use one schema");
      const int32_t id = add(std::move(n));
      int32_t item;
      if (items) {
        item = compile(*items, where + "/items", depth + 1);
      } else {
        Node any;
        any.kind = NodeKind::any;
        item = add(std::move(any));
      }
      g_.nodes[size_t(id)].item = item;
      return id;
    }
    if (type == "number" || type == "integer") {
      only(s, {"minimum", "maximum"}, type, where);
      n.kind = type == "number" ? NodeKind::number : NodeKind::integer;
      if (const Json* lo = s.find_value("minimum")) {
        if (!lo->is_number()) fail(where, "minimum must be a number");
        if (lo->as_double() == 0) n.non_negative = true;
        else if (!(lo->as_double() <= -1e15)) fail(where, "minimum is supported only as 0 or <= -1e15 (got " + json_write(*lo) + ")");
        n.no_exponent = true;
      }
      if (const Json* hi = s.find_value("maximum")) {
        if (!hi->is_number() || !(hi->as_double() >= 1e15)) {
          fail(where, "maximum is supported only as >= 1e15 (the grammar's numbers have at most 15 integer digits)");
        }
        n.no_exponent = true;
      }
      return add(std::move(n));
    }
    only(s, {}, type, where);
    if (type == "string") n.kind = NodeKind::string;
    else if (type == "boolean") return add_literals({"true", "false"});
    else if (type == "null") return add_literals({"null"});
    else fail(where, "type '" + type + "' is not a JSON Schema type");
    return add(std::move(n));
  }

  // Shortest value of every node: a fixpoint from "infinite", so recursion through
  // $ref settles on the base cases.
  void min_lengths() {
    for (Node& n : g_.nodes) n.min_len = kInfiniteLen;
    auto cap = [](int64_t x) { return int32_t(std::min<int64_t>(x, kInfiniteLen)); };
    for (bool changed = true; changed;) {
      changed = false;
      for (Node& n : g_.nodes) {
        int64_t len = kInfiniteLen;
        switch (n.kind) {
          case NodeKind::any: len = 1; break;                 // 0
          case NodeKind::any_object: len = 2; break;          // {}
          case NodeKind::string: len = 2; break;              // ""
          case NodeKind::number:
          case NodeKind::integer: len = 1; break;
          case NodeKind::literals:
            for (const std::string& l : n.literals) len = std::min<int64_t>(len, int64_t(l.size()));
            break;
          case NodeKind::any_of:
            for (int32_t a : n.alts) len = std::min<int64_t>(len, g_.nodes[size_t(a)].min_len);
            break;
          case NodeKind::object: {
            int64_t sum = 2;
            for (size_t i = 0; i < n.keys.size(); ++i) sum += int64_t(n.keys[i].size()) + g_.nodes[size_t(n.values[i])].min_len;
            len = sum;
            break;
          }
          case NodeKind::array: {
            const int64_t item = g_.nodes[size_t(n.item)].min_len;
            len = 2 + (n.min_items > 0 ? int64_t(n.min_items) * item + (n.min_items - 1) : 0);
            break;
          }
        }
        const int32_t l = cap(len);
        if (l < n.min_len) {
          n.min_len = l;
          changed = true;
        }
      }
    }
    for (Node& n : g_.nodes) {
      if (n.kind != NodeKind::object) continue;
      n.suffix.assign(n.keys.size() + 1, 1);
      for (size_t i = n.keys.size(); i-- > 0;) {
        n.suffix[i] = cap(int64_t(n.suffix[i + 1]) + int64_t(n.keys[i].size()) +
                          g_.nodes[size_t(n.values[i])].min_len);
      }
    }
  }

  const Json& root_;
  Grammar g_;
  std::map<std::string, int32_t> refs_;
};

}  // namespace

std::string json_write(const Json& v) {
  std::string out;
  write_value(v, out);
  return out;
}

Grammar grammar_from_json_schema(const std::string& schema_text) {
  Json schema;
  try {
    schema = json_parse(schema_text);
  } catch (const std::invalid_argument& e) {
    fail("#", std::string("is not valid JSON: ") + e.what());
  }
  return Compiler(schema).run();
}

Grammar grammar_json_object() {
  Json schema = json_parse("{\"type\":\"object\"}");
  return Compiler(schema).run();
}

}  // namespace grammar
}  // namespace bg
