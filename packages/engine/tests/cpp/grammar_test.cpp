// Structured output: JSON Schema subset compile errors, the byte matcher, token
// masks over a synthetic vocabulary with the closing budget, and the sampler's
// penalties, bias, masks and logprobs on the CPU reference.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "batchgen/tensor.h"
#include "check.h"
#include "grammar/json_grammar.h"
#include "grammar/json_matcher.h"
#include "grammar/token_mask.h"
#include "model/json.h"
#include "sample/request_extras.h"
#include "sample/sampler.h"

using namespace bg;
using namespace bg::grammar;

namespace {

bool matches(const Grammar& g, const std::string& text) {
  JsonMatcher m(&g);
  MatchState s = m.initial(), scratch;
  return m.advance_bytes(s, text, scratch) && m.can_end(s);
}

std::string compile_error(const std::string& schema) {
  try {
    grammar_from_json_schema(schema);
  } catch (const EngineError& e) {
    return e.what();
  }
  return "";
}

// Every byte as a token, plus multi-byte pieces a JSON writer uses, plus one
// special token (id 0, no bytes) as end of sequence.
std::shared_ptr<const TokenVocab> test_vocab() {
  std::vector<std::string> bytes(1);
  for (int b = 1; b < 256; ++b) bytes.push_back(std::string(1, char(b)));
  for (const char* p : {"{\"", "\":", "\",\"", "\"}", "true", "false", "null", "12", "345", "abc", " the",
                        "\\n", "\\u00", "},{", "[{", "}]", "\"name\":\"", ",\"", "-1.5", "e+1", "red", "\"red\""}) {
    bytes.push_back(p);
  }
  return std::make_shared<const TokenVocab>(token_vocab_make(bytes));
}

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer"},
    "score": {"type": ["number", "null"]},
    "color": {"enum": ["red", "green", 3]},
    "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 3},
    "ok": {"type": "boolean"}
  },
  "required": ["name", "age", "score", "color", "tags", "ok"],
  "additionalProperties": false,
  "$defs": {"tag": {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}}
})";

}  // namespace

TEST_CASE(schema_outside_the_subset_names_the_keyword) {
  CHECK(compile_error(R"({"type":"string","pattern":"^a"})").find("keyword 'pattern'") != std::string::npos);
  CHECK(compile_error(R"({"type":"object","properties":{"a":{"oneOf":[]}}})").find("#/properties/a") !=
        std::string::npos);
  CHECK(compile_error(R"({"type":"object","properties":{"a":{"oneOf":[]}}})").find("'oneOf'") != std::string::npos);
  CHECK(compile_error(R"({"$ref":"#/$defs/nope"})").find("points at nothing") != std::string::npos);
  CHECK(compile_error(R"({"type":"wat"})").find("'wat'") != std::string::npos);
  CHECK(compile_error(R"({"type":"object","properties":{"a":{}},"required":["b"]})").find("'b'") != std::string::npos);
  // A recursion with no way out.
  CHECK(compile_error(R"({"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}},"required":["next"]}},"$ref":"#/$defs/n"})")
            .find("no finite instance") != std::string::npos);
  CHECK(compile_error(R"({"type":"integer","minimum":3})").find("minimum") != std::string::npos);
  CHECK(compile_error(R"({"type":"number","maximum":10})").find("maximum") != std::string::npos);
  CHECK_EQ(compile_error(kSchema), std::string());
}

TEST_CASE(matcher_accepts_the_schema_language_and_nothing_else) {
  Grammar g = grammar_from_json_schema(kSchema);
  CHECK(matches(g, R"({"name":"a\"b\u00e9","age":-12,"score":null,"color":"red","tags":[{"k":""}],"ok":true})"));
  CHECK(matches(g, R"({"name":"","age":0,"score":1.5e+10,"color":3,"tags":[],"ok":false})"));
  CHECK(!matches(g, R"({"name":"","age":1.5,"score":null,"color":"red","tags":[],"ok":false})"));   // integer
  CHECK(!matches(g, R"({"name":"","age":1,"score":null,"color":"blue","tags":[],"ok":false})"));    // enum
  CHECK(!matches(g, R"({"age":1,"name":"","score":null,"color":"red","tags":[],"ok":false})"));     // order
  CHECK(!matches(g, R"({"name":"","age":01,"score":null,"color":"red","tags":[],"ok":false})"));    // leading 0
  CHECK(!matches(g, R"({"name":"","age":1,"score":null,"color":"red","tags":[{"k":""},{"k":""},{"k":""},{"k":""}],"ok":false})"));
  CHECK(!matches(g, R"({"name":"a)" "\n" R"(","age":1,"score":null,"color":"red","tags":[],"ok":false})"));
  Grammar bounded = grammar_from_json_schema(R"({"type":"array","items":{"type":"number","minimum":0,"maximum":1e300}})");
  CHECK(matches(bounded, "[0,1.5,12]"));
  CHECK(!matches(bounded, "[-1]"));
  CHECK(!matches(bounded, "[1e5]"));
  Grammar any = grammar_json_object();
  CHECK(matches(any, R"({"a":[1,{"b":null},"x",-0.5e-3],"c":{}})"));
  CHECK(!matches(any, R"([1])"));
  CHECK(!matches(any, R"({"a":1,})"));
  // The shortest completion of the initial state is the schema's shortest value.
  JsonMatcher m(&g);
  CHECK_EQ(m.remaining(m.initial()),
           int32_t(std::string(R"({"name":"","age":0,"score":0,"color":3,"tags":[],"ok":true})").size()));
}

TEST_CASE(masked_random_walks_end_in_valid_json_within_the_budget) {
  auto vocab = test_vocab();
  auto cg = std::make_shared<const CompiledGrammar>(grammar_from_json_schema(kSchema), vocab);
  const int32_t shortest = cg->min_len();
  std::mt19937 rng(7);
  std::vector<uint32_t> words(size_t(cg->mask_words()));
  for (int line = 0; line < 200; ++line) {
    const int32_t max_tokens = shortest + 1 + int32_t(rng() % 60);
    GrammarState st(cg);
    std::string text;
    bool ended = false;
    for (int32_t n = 0; n < max_tokens; ++n) {
      cg->fill_mask(st.state(), max_tokens - n, {0}, words.data());
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->size(); ++id) if ((words[size_t(id) >> 5] >> (id & 31)) & 1u) allowed.push_back(id);
      CHECK(!allowed.empty());
      if (allowed.empty()) break;
      const int32_t id = allowed[rng() % allowed.size()];
      if (id == 0) {
        ended = true;
        break;
      }
      CHECK(st.accept(id));
      text += vocab->bytes[size_t(id)];
    }
    CHECK(st.can_end());
    CHECK(matches(grammar_from_json_schema(kSchema), text));
    bool parses = true;
    try {
      json_parse(text);
    } catch (const std::exception&) {
      parses = false;
    }
    CHECK(parses);
    if (!parses) std::printf("line %d (ended %d): %s\n", line, int(ended), text.c_str());
  }
  CHECK(cg->cached_states() > 0);
}

// The engine's per-step path: rows in one grammar state share a mask, and every
// row's mask is what fill_mask gives it alone (budget near the end, stop ids).
TEST_CASE(step_masks_are_shared_by_state_and_equal_each_rows_own) {
  auto vocab = test_vocab();
  auto cg = std::make_shared<const CompiledGrammar>(grammar_from_json_schema(kSchema), vocab);
  auto other = std::make_shared<const CompiledGrammar>(grammar_json_object(), vocab);
  std::mt19937 rng(11);
  const int32_t rows = 96;
  std::vector<std::unique_ptr<RequestExtras>> extras;
  std::vector<SamplingParams> params(static_cast<size_t>(rows));
  std::vector<int32_t> budgets;
  std::vector<uint32_t> words(size_t(cg->mask_words()));
  for (int32_t r = 0; r < rows; ++r) {
    auto e = std::make_unique<RequestExtras>();
    e->grammar = std::make_unique<GrammarState>(r % 7 == 3 ? other : cg);
    // A short masked walk: a handful of positions, so many rows meet in one state.
    const int32_t walk = int32_t(rng() % 4);
    for (int32_t n = 0; n < walk; ++n) {
      e->grammar->grammar().fill_mask(e->grammar->state(), 1000, {0}, words.data());
      std::vector<int32_t> allowed;
      for (int32_t id = 1; id < vocab->size(); ++id) if ((words[size_t(id) >> 5] >> (id & 31)) & 1u) allowed.push_back(id);
      if (allowed.empty()) break;
      CHECK(e->grammar->accept(allowed[rng() % allowed.size()]));
    }
    params[size_t(r)].format = SamplingParams::Format::json_schema;
    if (r % 11 == 5) params[size_t(r)].stop_token_ids = {7};
    budgets.push_back(r % 5 == 0 ? 1 + int32_t(rng() % 80) : 1000 + int32_t(rng() % 50));
    extras.push_back(std::move(e));
  }
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), new ThreadPool(3)}) {
    SampleExtrasBuilder xb(rows + 1, vocab->size(), cg->mask_words());
    const std::vector<int32_t> none;
    xb.add_row(SamplingParams{}, nullptr, none, none);  // row 0: no extras, no mask
    for (int32_t r = 0; r < rows; ++r) {
      xb.set_budget(r + 1, budgets[size_t(r)]);
      xb.add_row(params[size_t(r)], extras[size_t(r)].get(), none, none);
    }
    xb.fill_masks({0}, pool);
    const SampleExtras& x = xb.extras();
    CHECK_EQ(xb.masks(), int64_t(rows));
    CHECK(xb.distinct_masks() < rows / 2);
    CHECK_EQ(x.mask_row[0], -1);
    for (int32_t r = 0; r < rows; ++r) {
      std::vector<int32_t> end_ids = {0};
      end_ids.insert(end_ids.end(), params[size_t(r)].stop_token_ids.begin(), params[size_t(r)].stop_token_ids.end());
      const GrammarState& g = *extras[size_t(r)]->grammar;
      g.grammar().fill_mask(g.state(), budgets[size_t(r)], end_ids, words.data());
      const int32_t slot = x.mask_row[size_t(r) + 1];
      CHECK(slot >= 0 && slot < xb.distinct_masks());
      CHECK(std::equal(words.begin(), words.end(), x.masks.begin() + long(slot) * x.mask_words));
    }
    delete pool;
  }
}

TEST_CASE(penalties_bias_and_masks_follow_the_definition) {
  const int64_t V = 8;
  std::vector<float> l = {1.0f, -1.0f, 2.0f, 0.5f, -0.5f, 3.0f, 0.0f, 1.5f};
  SampleExtras x;
  x.presence = {0.5f};
  x.frequency = {0.25f};
  x.repetition = {2.0f};
  x.pen_offsets = {0, 3};
  x.pen_tokens = {0, 1, 2};
  x.pen_counts = {2, 1, 0};   // 2: prompt only
  x.bias_offsets = {0, 1};
  x.bias_tokens = {3};
  x.bias_values = {10.0f};
  x.mask_words = 1;
  x.mask_row = {0};
  x.masks = {0xFFu & ~(1u << 5)};  // token 5 masked
  std::vector<float> got = l;
  logits_process_row_cpu(got.data(), V, x, 0);
  CHECK(std::fabs(got[0] - (1.0f / 2 - 0.25f * 2 - 0.5f)) < 1e-6f);
  CHECK(std::fabs(got[1] - (-1.0f * 2 - 0.25f - 0.5f)) < 1e-6f);
  CHECK(std::fabs(got[2] - 1.0f) < 1e-6f);
  CHECK(std::fabs(got[3] - 10.5f) < 1e-6f);
  CHECK(std::isinf(got[5]) && got[5] < 0);
  CHECK_EQ(got[7], 1.5f);
  CHECK_EQ(sample_row_cpu(got.data(), V, SampleRow{0.0f, 0, 1.0f, 0.0f, 1, 0}), 3);
}

TEST_CASE(logprobs_are_the_raw_log_softmax) {
  std::vector<float> l = {1.0f, 3.0f, 3.0f, -2.0f, 0.0f};
  float sampled = 0;
  int32_t ids[kMaxTopLogprobs];
  float lps[kMaxTopLogprobs];
  SampleLogprobs out{&sampled, ids, lps};
  logprobs_row_cpu(l.data(), 5, 3, 4, out, 0);
  double sum = 0;
  for (float v : l) sum += std::exp(double(v));
  const double lse = std::log(sum);
  CHECK(std::fabs(sampled - float(0.0 - lse)) < 1e-6f);
  CHECK_EQ(ids[0], 1);
  CHECK_EQ(ids[1], 2);   // ties by id
  CHECK_EQ(ids[2], 0);
  CHECK(std::fabs(lps[2] - float(1.0 - lse)) < 1e-6f);
}

int main(int argc, char** argv) { return bg_test::run_all(argc, argv); }
