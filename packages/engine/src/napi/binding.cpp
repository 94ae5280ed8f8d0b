// The Node-API binding (node-addon-api, NAPI_VERSION 8). ts/native.ts declares
// exactly what this file exports; ts/engine.ts is the public face.
//
//   load(options, onResults) -> Promise<NativeEngine>   (loads on a worker thread)
//   NativeEngine: submit(request), abort(id) -> boolean, stats(), modelInfo(),
//                 promptLogits(Int32Array) -> Promise<Float32Array>, close() -> Promise<void>
//
// The engine steps on its own thread (EngineRunner). Each step's finished results
// reach JavaScript as one call of onResults(results[]) through a thread-safe
// function, so the event loop never waits on a step. The function is referenced
// only while requests are in flight: an idle engine does not keep Node alive.
// Errors: every bg::EngineError becomes a JS Error with a `code` property
// ("invalid_argument", "model_load", ...), which ts/native.ts maps to classes.
#include <napi.h>

#include <cstring>
#include <memory>
#include <string>

#include "batchgen/engine.h"

namespace {

using bg::EngineError;
using bg::ErrorCode;

Napi::Error error_make(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Value().Set("code", Napi::String::New(env, code));
  return e;
}

// A caught C++ exception as a JS error (a thrown Napi::Error passes through).
Napi::Error error_from(Napi::Env env, std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const Napi::Error& e) {
    return e;
  } catch (const EngineError& e) {
    return error_make(env, bg::error_code_name(e.code), e.what());
  } catch (const std::bad_alloc&) {
    return error_make(env, "out_of_memory", "out of host memory");
  } catch (const std::exception& e) {
    return error_make(env, "internal", e.what());
  } catch (...) {
    return error_make(env, "internal", "unknown native error");
  }
}

[[noreturn]] void invalid(const std::string& msg) {
  throw EngineError(ErrorCode::invalid_argument, msg);
}

// --- reading plain JS objects (ts/native.ts sends every field explicitly) ----

Napi::Value field(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) invalid(std::string("missing field '") + key + "'");
  return v;
}
double get_number(const Napi::Object& o, const char* key) {
  Napi::Value v = field(o, key);
  if (!v.IsNumber()) invalid(std::string("'") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}
int64_t get_int(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  double d = get_number(o, key);
  if (!(d >= double(lo) && d <= double(hi)) || d != double(int64_t(d))) {
    invalid(std::string("'") + key + "' must be an integer in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "], got " + std::to_string(d));
  }
  return int64_t(d);
}
bool get_bool(const Napi::Object& o, const char* key) {
  Napi::Value v = field(o, key);
  if (!v.IsBoolean()) invalid(std::string("'") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}
std::string get_string(const Napi::Object& o, const char* key) {
  Napi::Value v = field(o, key);
  if (!v.IsString()) invalid(std::string("'") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}
std::vector<int32_t> int32_array(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    invalid(std::string(what) + " must be an Int32Array");
  }
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}
std::vector<float> float32_array(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    invalid(std::string(what) + " must be a Float32Array");
  }
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

bg::EngineOptions options_read(const Napi::Object& o) {
  bg::EngineOptions e;
  e.model_dir = get_string(o, "modelDir");
  e.device = get_string(o, "device");
  e.threads = int32_t(get_int(o, "threads", 0, 4096));
  e.block_size = int32_t(get_int(o, "blockSize", 1, 1024));
  e.kv_cache_blocks = get_int(o, "kvCacheBlocks", 0, INT32_MAX);
  e.kv_cache_memory_fraction = get_number(o, "kvCacheMemoryFraction");
  e.kv_cache_max_bytes = get_int(o, "kvCacheMaxBytes", 1, int64_t(1) << 53);
  e.max_batch_tokens = int32_t(get_int(o, "maxBatchTokens", 1, INT32_MAX));
  e.max_seqs = int32_t(get_int(o, "maxSeqs", 0, INT32_MAX));
  e.max_model_len = int32_t(get_int(o, "maxModelLen", 0, INT32_MAX));
  e.deterministic = get_bool(o, "deterministic");
  e.enable_prefix_caching = get_bool(o, "enablePrefixCaching");
  e.quantize = get_string(o, "quantize");
  Napi::Value loras = field(o, "loras");
  if (!loras.IsArray()) invalid("'loras' must be an array of { name, path }");
  Napi::Array la = loras.As<Napi::Array>();
  for (uint32_t i = 0; i < la.Length(); ++i) {
    Napi::Value v = la.Get(i);
    if (!v.IsObject()) invalid("'loras' must be an array of { name, path }");
    Napi::Object l = v.As<Napi::Object>();
    e.loras.push_back(bg::LoraSpec{get_string(l, "name"), get_string(l, "path")});
  }
  e.max_loras = int32_t(get_int(o, "maxLoras", 0, 4096));
  return e;
}

bg::GenerateRequest request_read(const Napi::Object& o) {
  bg::GenerateRequest r;
  r.id = get_string(o, "id");
  r.prompt = int32_array(field(o, "prompt"), "prompt");
  bg::SamplingParams& s = r.sampling;
  s.max_tokens = int32_t(get_int(o, "maxTokens", INT32_MIN, INT32_MAX));
  s.temperature = float(get_number(o, "temperature"));
  s.top_k = int32_t(get_int(o, "topK", INT32_MIN, INT32_MAX));
  s.top_p = float(get_number(o, "topP"));
  s.min_p = float(get_number(o, "minP"));
  Napi::Value seed = field(o, "seed");
  if (!seed.IsBigInt()) invalid("'seed' must be a bigint");
  bool lossless = false;
  s.seed = seed.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) invalid("'seed' must fit in 64 unsigned bits");
  r.has_seed = get_bool(o, "hasSeed");
  s.stop_token_ids = int32_array(field(o, "stopTokenIds"), "stopTokenIds");
  s.ignore_eos = get_bool(o, "ignoreEos");
  s.presence_penalty = float(get_number(o, "presencePenalty"));
  s.frequency_penalty = float(get_number(o, "frequencyPenalty"));
  s.repetition_penalty = float(get_number(o, "repetitionPenalty"));
  std::vector<int32_t> bias_ids = int32_array(field(o, "logitBiasIds"), "logitBiasIds");
  std::vector<float> bias_values = float32_array(field(o, "logitBiasValues"), "logitBiasValues");
  if (bias_ids.size() != bias_values.size()) invalid("logitBiasIds and logitBiasValues differ in length");
  for (size_t i = 0; i < bias_ids.size(); ++i) s.logit_bias.emplace_back(bias_ids[i], bias_values[i]);
  s.logprobs = int32_t(get_int(o, "logprobs", -1, bg::kMaxTopLogprobs));
  const std::string format = get_string(o, "responseFormat");
  if (format == "json_object") s.format = bg::SamplingParams::Format::json_object;
  else if (format == "json_schema") s.format = bg::SamplingParams::Format::json_schema;
  else if (format != "text") invalid("'responseFormat' must be text, json_object or json_schema");
  s.json_schema = get_string(o, "jsonSchema");
  r.priority = int32_t(get_int(o, "priority", INT32_MIN, INT32_MAX));
  const std::string pooling = get_string(o, "pooling");
  if (pooling == "last") r.pooling = bg::Pooling::last;
  else if (pooling == "mean") r.pooling = bg::Pooling::mean;
  else if (pooling != "none") invalid("'pooling' must be none, last or mean");
  r.lora = get_string(o, "lora");
  return r;
}

// --- writing JS objects -------------------------------------------------------

Napi::Int32Array int32_array_new(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

Napi::Array string_array_new(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), v[i]);
  return a;
}

Napi::Object result_to_js(Napi::Env env, const bg::GenerateResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", r.id);
  o.Set("tokens", int32_array_new(env, r.tokens));
  o.Set("finishReason", bg::finish_reason_name(r.finish_reason));
  o.Set("error", r.error);
  o.Set("promptTokens", r.prompt_tokens);
  o.Set("cachedTokens", r.cached_tokens);
  o.Set("completionTokens", r.completion_tokens);
  o.Set("preemptions", r.preemptions);
  o.Set("queueMs", r.queue_ms);
  o.Set("firstTokenMs", r.first_token_ms);
  o.Set("totalMs", r.total_ms);
  Napi::Float32Array lp = Napi::Float32Array::New(env, r.logprobs.size());
  if (!r.logprobs.empty()) std::memcpy(lp.Data(), r.logprobs.data(), r.logprobs.size() * sizeof(float));
  o.Set("logprobs", lp);
  o.Set("topLogprobsK", r.top_logprobs_k);
  o.Set("topLogprobIds", int32_array_new(env, r.top_logprob_ids));
  Napi::Float32Array top = Napi::Float32Array::New(env, r.top_logprobs.size());
  if (!r.top_logprobs.empty()) std::memcpy(top.Data(), r.top_logprobs.data(), r.top_logprobs.size() * sizeof(float));
  o.Set("topLogprobs", top);
  Napi::Float32Array embedding = Napi::Float32Array::New(env, r.embedding.size());
  if (!r.embedding.empty()) std::memcpy(embedding.Data(), r.embedding.data(), r.embedding.size() * sizeof(float));
  o.Set("embedding", embedding);
  return o;
}

Napi::Object stats_to_js(Napi::Env env, const bg::EngineStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("running", s.running);
  o.Set("waiting", s.waiting);
  o.Set("kvBlocksTotal", double(s.kv_blocks_total));
  o.Set("kvBlocksUsed", double(s.kv_blocks_used));
  o.Set("kvBlocksFree", double(s.kv_blocks_free));
  o.Set("kvBlocksCached", double(s.kv_blocks_cached));
  o.Set("kvBlocksEvicted", double(s.kv_blocks_evicted));
  o.Set("kvBlocksPeak", double(s.kv_blocks_peak));
  o.Set("promptTokensProcessed", double(s.prompt_tokens_processed));
  o.Set("promptTokensCached", double(s.prompt_tokens_cached));
  o.Set("generatedTokens", double(s.generated_tokens));
  o.Set("steps", double(s.steps));
  o.Set("preemptions", double(s.preemptions));
  o.Set("lastStepMs", s.last_step_ms);
  o.Set("maxSeqs", s.max_seqs);
  o.Set("hostMs", s.host_ms);
  o.Set("hostGapMs", s.host_gap_ms);
  o.Set("hostGaps", double(s.host_gaps));
  o.Set("grammarMasks", double(s.grammar_masks));
  o.Set("grammarDistinctMasks", double(s.grammar_distinct_masks));
  o.Set("grammarHostMs", s.grammar_host_ms);
  o.Set("lorasResident", string_array_new(env, s.loras_resident));
  o.Set("loraLoads", double(s.lora_loads));
  o.Set("loraEvictions", double(s.lora_evictions));
  return o;
}

Napi::Object model_info_to_js(Napi::Env env, const bg::ModelInfo& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", m.architecture);
  o.Set("modelType", m.model_type);
  o.Set("vocabSize", m.vocab_size);
  o.Set("hiddenSize", m.hidden_size);
  o.Set("numLayers", m.num_layers);
  o.Set("maxModelLen", m.max_model_len);
  Napi::Array eos = Napi::Array::New(env, m.eos_token_ids.size());
  for (size_t i = 0; i < m.eos_token_ids.size(); ++i) eos.Set(uint32_t(i), m.eos_token_ids[i]);
  o.Set("eosTokenIds", eos);
  o.Set("bosTokenId", m.bos_token_id);
  o.Set("device", m.device);
  o.Set("deviceName", m.device_name);
  o.Set("weightBytes", double(m.weight_bytes));
  o.Set("weightParams", double(m.weight_params));
  o.Set("weightFormat", m.weight_format);
  o.Set("kvBytesPerToken", double(m.kv_bytes_per_token));
  o.Set("blockSize", m.block_size);
  o.Set("kvBlocks", double(m.kv_blocks));
  o.Set("maxSeqs", m.max_seqs);
  o.Set("maxSeqsSeqLen", m.max_seqs_seq_len);
  o.Set("loras", string_array_new(env, m.loras));
  o.Set("maxLoras", m.max_loras);
  o.Set("loraRank", m.lora_rank);
  o.Set("loraSlotBytes", double(m.lora_slot_bytes));
  return o;
}

// --- the engine object --------------------------------------------------------

class NativeEngine;
using Results = std::vector<bg::GenerateResult>;
void results_call_js(Napi::Env env, Napi::Function on_results, NativeEngine* self, Results* data);
using ResultsTsfn = Napi::TypedThreadSafeFunction<NativeEngine, Results, results_call_js>;

struct AddonData {
  Napi::FunctionReference engine_ctor;
};

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {InstanceMethod<&NativeEngine::submit>("submit"),
                        InstanceMethod<&NativeEngine::abort>("abort"),
                        InstanceMethod<&NativeEngine::stats>("stats"),
                        InstanceMethod<&NativeEngine::model_info>("modelInfo"),
                        InstanceMethod<&NativeEngine::prompt_logits>("promptLogits"),
                        InstanceMethod<&NativeEngine::close>("close")});
  }

  // new NativeEngine(External<bg::Engine>, onResults): takes the loaded engine.
  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsExternal() || !info[1].IsFunction()) {
      throw error_make(env, "internal", "NativeEngine is made by load(), not by new");
    }
    std::unique_ptr<bg::Engine> engine(info[0].As<Napi::External<bg::Engine>>().Data());
    tsfn_ = ResultsTsfn::New(env, info[1].As<Napi::Function>(), "batchgen-results", 0, 1, this);
    tsfn_.Unref(env);
    ResultsTsfn tsfn = tsfn_;
    runner_ = std::make_unique<bg::EngineRunner>(std::move(engine), [tsfn](Results&& results) {
      auto* data = new Results(std::move(results));
      if (tsfn.NonBlockingCall(data) != napi_ok) delete data;  // Node is shutting down
    });
    napi_add_env_cleanup_hook(env, &NativeEngine::on_env_exit, this);
    hooked_ = true;
  }

  ~NativeEngine() override {
    unhook();
    runner_.reset();  // stops the step thread
    release_tsfn();
  }

  // Called on the JS thread with one step's results.
  void deliver(Napi::Env env, Napi::Function on_results, Results& results) {
    in_flight_ -= int64_t(results.size());
    if (in_flight_ <= 0) {
      in_flight_ = 0;
      if (!released_) tsfn_.Unref(env);
    }
    Napi::Array arr = Napi::Array::New(env, results.size());
    for (size_t i = 0; i < results.size(); ++i) arr.Set(uint32_t(i), result_to_js(env, results[i]));
    on_results.Call({arr});
  }

 private:
  static void on_env_exit(void* arg) {
    auto* self = static_cast<NativeEngine*>(arg);
    self->hooked_ = false;
    self->released_ = true;  // Node finalises thread-safe functions itself at teardown
    if (self->runner_) self->runner_->close();
  }

  void unhook() {
    if (hooked_) napi_remove_env_cleanup_hook(Env(), &NativeEngine::on_env_exit, this);
    hooked_ = false;
  }

  void release_tsfn() {
    if (!released_) tsfn_.Release();
    released_ = true;
  }

  bg::EngineRunner& runner() {
    if (!runner_ || closed_) throw EngineError(ErrorCode::invalid_argument, "the engine is closed");
    return *runner_;
  }

  Napi::Value submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      if (!info[0].IsObject()) invalid("generate: the request must be an object");
      runner().submit(request_read(info[0].As<Napi::Object>()));
    } catch (...) {
      throw error_from(env, std::current_exception());
    }
    if (in_flight_++ == 0) tsfn_.Ref(env);
    return env.Undefined();
  }

  Napi::Value abort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw error_make(env, "invalid_argument", "abort: id must be a string");
    if (!runner_ || closed_) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, runner_->abort(info[0].As<Napi::String>().Utf8Value()));
  }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    return stats_to_js(info.Env(), runner_->stats());
  }

  Napi::Value model_info(const Napi::CallbackInfo& info) {
    return model_info_to_js(info.Env(), runner_->model_info());
  }

  Napi::Value prompt_logits(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);

  std::unique_ptr<bg::EngineRunner> runner_;
  ResultsTsfn tsfn_;
  int64_t in_flight_ = 0;  // submitted, result not yet delivered (JS thread only)
  bool closed_ = false;
  bool released_ = false;
  bool hooked_ = false;

  friend class CloseWorker;
};

void results_call_js(Napi::Env env, Napi::Function on_results, NativeEngine* self, Results* data) {
  std::unique_ptr<Results> results(data);
  if (env == nullptr || self == nullptr) return;  // torn down with calls still queued
  try {
    self->deliver(env, on_results, *results);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();  // onResults threw: an uncaught JS error, not a crash
  }
}

// --- async work: load, prompt logits, close -----------------------------------

// Runs on the libuv pool; carries an EngineError's code into the rejection.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      run();
    } catch (...) {
      error_ = std::current_exception();
      SetError("failed");  // the message comes from error_ in OnError
    }
  }
  void OnError(const Napi::Error&) override {
    deferred_.Reject(error_from(Env(), error_).Value());
  }
  virtual void run() = 0;

  Napi::Promise::Deferred deferred_;
  std::exception_ptr error_;
};

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, bg::EngineOptions options, Napi::Function on_results)
      : PromiseWorker(env, "batchgen-load"), options_(std::move(options)) {
    on_results_.Reset(on_results, 1);
  }

 private:
  void run() override { engine_ = bg::Engine::load(options_); }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      Napi::FunctionReference& ctor = env.GetInstanceData<AddonData>()->engine_ctor;
      bg::Engine* engine = engine_.release();  // the NativeEngine owns it from here
      deferred_.Resolve(ctor.New({Napi::External<bg::Engine>::New(env, engine),
                                  on_results_.Value()}));
    } catch (...) {
      deferred_.Reject(error_from(env, std::current_exception()).Value());
    }
  }

  bg::EngineOptions options_;
  Napi::FunctionReference on_results_;
  std::unique_ptr<bg::Engine> engine_;
};

class LogitsWorker : public PromiseWorker {
 public:
  LogitsWorker(Napi::Env env, Napi::Object owner, std::future<std::vector<float>> future)
      : PromiseWorker(env, "batchgen-prompt-logits"), future_(std::move(future)) {
    owner_.Reset(owner, 1);  // keep the engine alive while we wait
  }

 private:
  void run() override { logits_ = future_.get(); }
  void OnOK() override {
    Napi::Float32Array a = Napi::Float32Array::New(Env(), logits_.size());
    if (!logits_.empty()) std::memcpy(a.Data(), logits_.data(), logits_.size() * sizeof(float));
    deferred_.Resolve(a);
  }

  Napi::ObjectReference owner_;
  std::future<std::vector<float>> future_;
  std::vector<float> logits_;
};

class CloseWorker : public PromiseWorker {
 public:
  CloseWorker(Napi::Env env, NativeEngine* self, Napi::Object owner)
      : PromiseWorker(env, "batchgen-close"), self_(self) {
    owner_.Reset(owner, 1);
  }

 private:
  // Joining the step thread waits for the step in progress: off the event loop.
  void run() override { self_->runner_->close(); }
  void OnOK() override {
    self_->unhook();
    self_->release_tsfn();  // queued results are still delivered first
    deferred_.Resolve(Env().Undefined());
  }

  NativeEngine* self_;
  Napi::ObjectReference owner_;
};

// A promise already rejected with the exception being handled (call it in a catch block).
Napi::Promise rejected_promise(Napi::Env env) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(error_from(env, std::current_exception()).Value());
  return d.Promise();
}

Napi::Value NativeEngine::prompt_logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    std::vector<int32_t> prompt = int32_array(info[0], "prompt");
    std::string lora;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsString()) invalid("the LoRA adapter of promptLogits must be a string");
      lora = info[1].As<Napi::String>().Utf8Value();
    }
    auto* w = new LogitsWorker(env, Value(), runner().prompt_logits(std::move(prompt), std::move(lora)));
    w->Queue();
    return w->promise();
  } catch (...) {
    return rejected_promise(env);
  }
}

Napi::Value NativeEngine::close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  closed_ = true;
  auto* w = new CloseWorker(env, this, Value());
  w->Queue();
  return w->promise();
}

Napi::Value load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsObject()) invalid("load: options must be an object");
    if (!info[1].IsFunction()) invalid("load: onResults must be a function");
    auto* w = new LoadWorker(env, options_read(info[0].As<Napi::Object>()),
                             info[1].As<Napi::Function>());
    w->Queue();
    return w->promise();
  } catch (...) {
    return rejected_promise(env);
  }
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->engine_ctor = Napi::Persistent(NativeEngine::define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("load", Napi::Function::New(env, load, "load"));
  return exports;
}

}  // namespace

NODE_API_MODULE(batchgen_engine, init)
