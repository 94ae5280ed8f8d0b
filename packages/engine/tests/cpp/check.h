// A tiny test harness shared by the C++ test binaries (no framework to install).
//
//   TEST_CASE(name) { CHECK(cond); CHECK_EQ(a, b); CHECK_THROWS(expr); }
//   int main() { return bg_test::run_all(); }
//
// A failed check prints file:line and the expression and marks its test failed;
// the test goes on. An exception escaping a test fails it. run_all() prints a
// final line `N passed, N failed` (tests, not checks) and returns non-zero when
// any test failed. Pass test names as arguments to run only those.
#pragma once
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace bg_test {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

inline bool& current_failed() {
  static bool failed = false;
  return failed;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back(Case{name, fn}); }
};

inline void report(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  %s:%d: FAILED %s\n", file, line, what.c_str());
  current_failed() = true;
}

template <typename A, typename B>
std::string describe_eq(const char* ea, const char* eb, const A& a, const B& b) {
  std::ostringstream os;
  os << ea << " == " << eb << " (" << a << " vs " << b << ")";
  return os.str();
}

inline int run_all(int argc = 0, char** argv = nullptr) {
  int passed = 0, failed = 0;
  for (const Case& c : registry()) {
    bool selected = argc <= 1;
    for (int i = 1; i < argc; ++i) selected = selected || std::strcmp(argv[i], c.name) == 0;
    if (!selected) continue;
    current_failed() = false;
    try {
      c.fn();
    } catch (const std::exception& e) {
      report(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    } catch (...) {
      report(__FILE__, __LINE__, "uncaught non-std exception");
    }
    std::fprintf(stderr, "%s %s\n", current_failed() ? "FAIL" : "ok  ", c.name);
    (current_failed() ? failed : passed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace bg_test

#define TEST_CASE(name)                                             \
  static void name();                                               \
  static const bg_test::Registrar name##_registrar(#name, &name);   \
  static void name()

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) bg_test::report(__FILE__, __LINE__, #cond);                    \
  } while (0)

#define CHECK_EQ(a, b)                                                          \
  do {                                                                          \
    const auto& bg_a_ = (a);                                                    \
    const auto& bg_b_ = (b);                                                    \
    if (!(bg_a_ == bg_b_))                                                      \
      bg_test::report(__FILE__, __LINE__, bg_test::describe_eq(#a, #b, bg_a_, bg_b_)); \
  } while (0)

#define CHECK_THROWS(expr)                                                      \
  do {                                                                          \
    bool bg_threw_ = false;                                                     \
    try {                                                                       \
      (void)(expr);                                                             \
    } catch (...) {                                                             \
      bg_threw_ = true;                                                         \
    }                                                                           \
    if (!bg_threw_) bg_test::report(__FILE__, __LINE__, "expected a throw: " #expr); \
  } while (0)

// Throws an exception of `type` whose what() contains `text`.
#define CHECK_THROWS_WITH(expr, type, text)                                     \
  do {                                                                          \
    bool bg_ok_ = false;                                                        \
    std::string bg_msg_ = "no exception";                                       \
    try {                                                                       \
      (void)(expr);                                                             \
    } catch (const type& e) {                                                   \
      bg_msg_ = e.what();                                                       \
      bg_ok_ = bg_msg_.find(text) != std::string::npos;                         \
    } catch (const std::exception& e) {                                         \
      bg_msg_ = std::string("other exception: ") + e.what();                    \
    }                                                                           \
    if (!bg_ok_)                                                                \
      bg_test::report(__FILE__, __LINE__,                                       \
                      std::string(#expr " throws " #type " with '") + text + "' (" + bg_msg_ + ")"); \
  } while (0)
