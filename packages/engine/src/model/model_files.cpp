#include "model/model_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "batchgen/tensor.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }

}  // namespace

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) load_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json read_json_object_file(const std::string& path) {
  const std::string text = read_text_file(path);
  Json j;
  try {
    j = json_parse(text);
  } catch (const std::invalid_argument& e) {
    load_error(path + ": " + e.what());
  }
  if (!j.is_object()) load_error(path + ": expected a JSON object");
  return j;
}

}  // namespace bg
