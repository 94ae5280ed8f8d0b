// The object schema bench_engine --json-schema F and grammar_bench use: F required
// properties field_0.., string, integer and boolean in turn, nothing else allowed.
#pragma once
#include <string>

inline std::string schema_of_fields(int fields) {
  static const char* types[] = {"string", "integer", "boolean"};
  std::string props, req;
  for (int i = 0; i < fields; ++i) {
    const std::string name = "field_" + std::to_string(i);
    props += (i ? "," : "") + ("\"" + name + "\":{\"type\":\"") + types[i % 3] + "\"}";
    req += (i ? "," : "") + ("\"" + name + "\"");
  }
  return "{\"type\":\"object\",\"properties\":{" + props + "},\"required\":[" + req +
         "],\"additionalProperties\":false}";
}
