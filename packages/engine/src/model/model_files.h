// Reading the files of a model or adapter directory. Errors are
// EngineError(model_load) naming the file.
#pragma once
#include <string>

#include "model/json.h"

namespace bg {

bool is_regular_file(const std::string& path);
std::string read_text_file(const std::string& path);
// The file's JSON, which must be an object.
Json read_json_object_file(const std::string& path);

}  // namespace bg
