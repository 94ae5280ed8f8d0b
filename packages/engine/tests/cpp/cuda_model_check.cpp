// Full-model checks of the engine on a device against transformers, and its
// deterministic mode's batch invariance. Run by scripts/gpu-check.sh on the GPU box.
//
//   cuda_model_check --reference DIR [--device cuda] [--max-rel-l2 2e-2]
//       Every case of DIR/manifest.json (tools/gpu_reference.py): the engine's
//       logits of each prompt at every position against transformers' float32
//       logits on the same bf16 weights, and greedy generation of 16 tokens against
//       transformers' greedy tokens.
//       Error per position r: rel_l2(r) = ||engine[r] - ref[r]||_2 / ||ref[r]||_2;
//       a case passes when the largest rel_l2 over its positions is <= the bound,
//       which is --max-rel-l2 or, where transformers' own bf16 run of the case is
//       further from its float32 run (a few small random models: Gemma 3 with
//       QK-norm, Llama 3.2's tied head), that distance: a bf16 engine is not held
//       to more than the reference's own bf16 arithmetic reaches.
//       Also printed: max_rel(r) = max_i |engine - ref| / max_i |ref| (the CPU
//       tests' measure) and transformers' own bf16-vs-f32 rel_l2 for scale.
//   cuda_model_check --invariance MODEL_DIR [--device cuda] [--requests 64]
//       64 requests of mixed prompt lengths and sampling settings (greedy and
//       seeded sampling) run together under a small token budget (chunked prefill
//       beside decodes) and then each alone, with deterministic = true: every
//       request's tokens must be identical. The same run with deterministic = false
//       is reported (not checked): how often the default mode differs. (With
//       prefix caching on, the default, each request run alone finds its own
//       prompt's full blocks cached by the run together: the check covers a
//       prefill that starts after cached tokens too.)
//   cuda_model_check --prefix-cache MODEL_DIR [--device cuda] [--requests 64]
//       Requests sharing 4 prefixes of 100-400 tokens (then 1-60 tokens of their
//       own; greedy and seeded sampling) submitted together, deterministic = true,
//       with prefix caching off and then on: every request's tokens must be
//       identical, and the cached run must have served prompt tokens from its cache.
//   cuda_model_check --embeddings MODEL_DIR [--device cuda] [--requests 64]
//       Embedding requests (pooling last and mean, prompts of 1-300 tokens) submitted
//       together with the mixed generations under a 256-token budget (chunked
//       prefills beside decodes) on the device, against the same prompts on the CPU
//       engine (f32): every pooled vector's cosine to the CPU's must be >= 0.999
//       (bf16 weights and activations on the device).
//   cuda_model_check --lora MODEL_DIR [--device cuda] [--requests 64] [--max-rel-l2 2e-2]
//       Three random peft adapters (ranks 16, 8 and 4 on all seven projections;
//       bench/random_weights.h) written beside the model (MODEL_DIR/cuda-check-loras),
//       on the device with two adapter slots (so the third evicts one) against the
//       CPU engine (f32): the logits of a prompt through each adapter and the base
//       within the --reference bound (rel_l2 per position), where each adapter moves
//       the CPU's logits by more than that bound (an adapter the device ignored would
//       fail); then, deterministic = true, the mixed requests spread over the base
//       and the three adapters run together and each alone give identical tokens.
//
// Ends with `N passed, N failed` (checks, not positions).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../../bench/random_weights.h"
#include "batchgen/engine.h"
#include "model/json.h"
#include "model/model.h"

using namespace bg;

namespace {

int g_passed = 0, g_failed = 0;

void verdict(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  std::fflush(stdout);
  (ok ? g_passed : g_failed) += 1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> ints(const Json& arr) {
  std::vector<int32_t> v;
  for (const Json& x : arr.items()) v.push_back(int32_t(x.as_int()));
  return v;
}

std::unique_ptr<Engine> load(const std::string& model_dir, const std::string& device, bool deterministic,
                             int max_seqs, int max_batch_tokens, bool prefix_caching = true,
                             const std::vector<LoraSpec>& loras = {}, int max_loras = 0) {
  EngineOptions o;
  o.loras = loras;
  o.max_loras = max_loras;
  o.enable_prefix_caching = prefix_caching;
  o.model_dir = model_dir;
  o.device = device;
  o.deterministic = deterministic;
  o.max_seqs = max_seqs;
  o.max_batch_tokens = max_batch_tokens;
  o.kv_cache_memory_fraction = 0.5;
  o.kv_cache_max_bytes = int64_t(1) << 30;
  return Engine::load(o);
}

std::vector<std::vector<int32_t>> run(Engine& e, const std::vector<GenerateRequest>& reqs) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < reqs.size(); ++i) {
    index[reqs[i].id] = i;
    e.submit(reqs[i]);
  }
  std::vector<std::vector<int32_t>> out(reqs.size());
  while (e.has_work()) {
    for (GenerateResult& r : e.step()) {
      if (r.finish_reason == FinishReason::error) throw std::runtime_error("request failed: " + r.error);
      out[index.at(r.id)] = r.tokens;
    }
  }
  return out;
}

void check_reference(const std::string& dir, const std::string& device, double max_rel_l2) {
  const Json manifest = json_parse(read_file(dir + "/manifest.json"));
  for (const auto& [name, c] : manifest.find("cases")->members()) {
    const std::string model_dir = c.find("model_dir")->as_string();
    const int64_t vocab = c.find("vocab_size")->as_int();
    std::unique_ptr<Engine> engine = load(model_dir, device, false, 64, 2048);
    for (const Json& p : c.find("prompts")->items()) {
      const std::vector<int32_t> ids = ints(*p.find("ids"));
      const std::vector<float> got = engine->prompt_logits(ids);
      const std::string ref_bytes = read_file(dir + "/" + p.find("logits")->as_string());
      if (ref_bytes.size() != got.size() * 4) {
        verdict(false, name + ": reference logits have the wrong size");
        continue;
      }
      std::vector<float> ref(got.size());
      std::memcpy(ref.data(), ref_bytes.data(), ref_bytes.size());
      double worst_l2 = 0, worst_max = 0;
      bool finite = true;
      for (size_t r = 0; r < ids.size(); ++r) {
        double num = 0, den = 0, maxd = 0, maxr = 0;
        for (int64_t i = 0; i < vocab; ++i) {
          const double g = got[r * size_t(vocab) + size_t(i)], f = ref[r * size_t(vocab) + size_t(i)];
          finite = finite && std::isfinite(g);
          num += (g - f) * (g - f);
          den += f * f;
          maxd = std::max(maxd, std::fabs(g - f));
          maxr = std::max(maxr, std::fabs(f));
        }
        worst_l2 = std::max(worst_l2, std::sqrt(num / den));
        worst_max = std::max(worst_max, maxd / maxr);
      }
      const Json* hf = c.find("hf_bf16_rel_l2");
      const double hf_l2 = hf ? hf->as_double() : -1.0;
      const double bound = std::max(max_rel_l2, hf_l2);
      char msg[256];
      std::snprintf(msg, sizeof msg,
                    "%s logits, %zu positions: rel_l2 %.2e (bound %.2e), max_rel %.2e; transformers bf16 rel_l2 %.2e",
                    name.c_str(), ids.size(), worst_l2, bound, worst_max, hf_l2);
      verdict(finite && worst_l2 <= bound, msg);
    }
    std::vector<GenerateRequest> reqs;
    for (const Json& g : c.find("greedy")->items()) {
      GenerateRequest r;
      r.id = "g" + std::to_string(reqs.size());
      r.prompt = ints(*g.find("prompt"));
      r.sampling.temperature = 0.0f;
      r.sampling.max_tokens = int32_t(g.find("tokens")->items().size());
      r.sampling.ignore_eos = true;
      reqs.push_back(r);
    }
    const std::vector<std::vector<int32_t>> out = run(*engine, reqs);
    const std::vector<Json>& greedy = c.find("greedy")->items();
    for (size_t i = 0; i < greedy.size(); ++i) {
      const std::vector<int32_t> want = ints(*greedy[i].find("tokens"));
      size_t same = 0;
      while (same < want.size() && same < out[i].size() && out[i][same] == want[same]) ++same;
      char msg[256];
      std::snprintf(msg, sizeof msg, "%s greedy %zu: %zu of %zu tokens identical (reference min margin %.3f std)",
                    name.c_str(), i, same, want.size(), greedy[i].find("min_margin_std")->as_double());
      verdict(same == want.size() && out[i].size() == want.size(), msg);
    }
  }
}

std::vector<GenerateRequest> mixed_requests(int n, int vocab) {
  std::mt19937_64 rng(99);
  std::vector<GenerateRequest> reqs;
  const int lo = vocab > 200000 ? 1000 : 3, hi = std::min(vocab, 200000);
  for (int i = 0; i < n; ++i) {
    GenerateRequest r;
    r.id = "m" + std::to_string(i);
    const int len = std::uniform_int_distribution<int>(1, i % 4 == 0 ? 300 : 40)(rng);
    for (int t = 0; t < len; ++t) r.prompt.push_back(std::uniform_int_distribution<int>(lo, hi - 1)(rng));
    SamplingParams& s = r.sampling;
    s.max_tokens = std::uniform_int_distribution<int>(4, 40)(rng);
    s.ignore_eos = true;
    switch (i % 4) {
      case 0: s.temperature = 0.0f; break;
      case 1: s.temperature = 0.9f; s.top_p = 0.9f; break;
      case 2: s.temperature = 1.0f; s.top_k = 20; s.min_p = 0.02f; break;
      default: s.temperature = 0.7f; break;
    }
    r.has_seed = i % 2 == 1;  // half seeded explicitly, half from the id
    s.seed = 1000 + uint64_t(i);
    reqs.push_back(r);
  }
  return reqs;
}

void check_invariance(const std::string& model_dir, const std::string& device, int n) {
  for (bool det : {true, false}) {
    std::unique_ptr<Engine> e = load(model_dir, device, det, 64, 256);
    const std::vector<GenerateRequest> reqs = mixed_requests(n, e->model_info().vocab_size);
    const std::vector<std::vector<int32_t>> together = run(*e, reqs);
    int differ = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      const std::vector<std::vector<int32_t>> alone = run(*e, {reqs[i]});
      if (alone[0] != together[i]) ++differ;
    }
    char msg[256];
    std::snprintf(msg, sizeof msg, "invariance %s deterministic=%s: %d of %d requests differ alone vs together",
                  model_dir.c_str(), det ? "true" : "false", differ, n);
    if (det) {
      verdict(differ == 0, msg);
    } else {
      std::printf("info %s (not required in the default mode)\n", msg);
    }
  }
}

void check_prefix_cache(const std::string& model_dir, const std::string& device, int n) {
  std::vector<std::vector<std::vector<int32_t>>> outs;
  int64_t cached = 0;
  for (bool caching : {false, true}) {
    std::unique_ptr<Engine> e = load(model_dir, device, true, 64, 256, caching);
    const int vocab = e->model_info().vocab_size;
    std::mt19937_64 rng(7);
    const int lo = vocab > 200000 ? 1000 : 3, hi = std::min(vocab, 200000);
    auto ids = [&](int len) {
      std::vector<int32_t> v;
      for (int t = 0; t < len; ++t) v.push_back(std::uniform_int_distribution<int>(lo, hi - 1)(rng));
      return v;
    };
    std::vector<std::vector<int32_t>> heads;
    for (int p = 0; p < 4; ++p) heads.push_back(ids(std::uniform_int_distribution<int>(100, 400)(rng)));
    std::vector<GenerateRequest> reqs = mixed_requests(n, vocab);
    for (size_t i = 0; i < reqs.size(); ++i) {
      std::vector<int32_t> prompt = heads[i % heads.size()];
      const std::vector<int32_t> own = ids(std::uniform_int_distribution<int>(1, 60)(rng));
      prompt.insert(prompt.end(), own.begin(), own.end());
      reqs[i].prompt = prompt;
    }
    outs.push_back(run(*e, reqs));
    if (caching) cached = e->stats().prompt_tokens_cached;
  }
  int differ = 0;
  for (size_t i = 0; i < outs[0].size(); ++i) differ += outs[0][i] != outs[1][i] ? 1 : 0;
  char msg[256];
  std::snprintf(msg, sizeof msg, "prefix cache %s: %d of %d requests differ with caching on vs off (%lld prompt tokens cached)",
                model_dir.c_str(), differ, n, (long long)cached);
  verdict(differ == 0 && cached > 0, msg);
}

// Pooled vectors by id (embedding requests) while the generations among `reqs` run beside them.
std::map<std::string, std::vector<float>> run_embeddings(Engine& e, const std::vector<GenerateRequest>& reqs) {
  for (const GenerateRequest& r : reqs) e.submit(r);
  std::map<std::string, std::vector<float>> out;
  while (e.has_work()) {
    for (GenerateResult& r : e.step()) {
      if (r.finish_reason == FinishReason::error) throw std::runtime_error("request failed: " + r.error);
      if (!r.embedding.empty()) out[r.id] = std::move(r.embedding);
    }
  }
  return out;
}

void check_embeddings(const std::string& model_dir, const std::string& device, int n) {
  std::unique_ptr<Engine> dev = load(model_dir, device, false, 64, 256);
  std::vector<GenerateRequest> reqs = mixed_requests(n, dev->model_info().vocab_size);
  std::vector<GenerateRequest> embeds;
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateRequest e;
    e.id = "e" + std::to_string(i);
    e.prompt = reqs[i].prompt;
    e.pooling = i % 2 == 0 ? Pooling::last : Pooling::mean;
    embeds.push_back(e);
  }
  std::vector<GenerateRequest> together = reqs;
  together.insert(together.end(), embeds.begin(), embeds.end());
  const std::map<std::string, std::vector<float>> got = run_embeddings(*dev, together);
  dev.reset();
  std::unique_ptr<Engine> cpu = load(model_dir, "cpu", false, 64, 2048);
  const std::map<std::string, std::vector<float>> want = run_embeddings(*cpu, embeds);
  double worst = 1.0;
  int missing = 0;
  for (const GenerateRequest& e : embeds) {
    auto g = got.find(e.id);
    auto w = want.find(e.id);
    if (g == got.end() || w == want.end() || g->second.size() != w->second.size()) {
      ++missing;
      continue;
    }
    double ab = 0, aa = 0, bb = 0;
    for (size_t j = 0; j < g->second.size(); ++j) {
      ab += double(g->second[j]) * w->second[j];
      aa += double(g->second[j]) * g->second[j];
      bb += double(w->second[j]) * w->second[j];
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  char msg[256];
  std::snprintf(msg, sizeof msg, "embeddings %s: %d pooled vectors (last and mean) beside %d generations, min cosine to the CPU %.6f, %d missing",
                model_dir.c_str(), int(embeds.size()), int(reqs.size()), worst, missing);
  verdict(missing == 0 && worst >= 0.999, msg);
}

// max over positions r of ||got[r] - want[r]||_2 / ||want[r]||_2 (rows of `vocab`).
double worst_rel_l2(const std::vector<float>& got, const std::vector<float>& want, size_t vocab) {
  if (got.size() != want.size() || vocab == 0) return INFINITY;
  double worst = 0;
  for (size_t r = 0; r * vocab < want.size(); ++r) {
    double num = 0, den = 0;
    for (size_t i = r * vocab; i < (r + 1) * vocab; ++i) {
      const double d = double(got[i]) - want[i];
      num += d * d;
      den += double(want[i]) * want[i];
    }
    const double e = std::sqrt(num / den);
    worst = std::isfinite(e) ? std::max(worst, e) : INFINITY;
  }
  return worst;
}

void check_lora(const std::string& model_dir, const std::string& device, int n, double max_rel_l2) {
  const std::string dir = model_dir + "/cuda-check-loras";
  ::mkdir(dir.c_str(), 0755);
  const ModelConfig base = model_config_load(model_dir);
  std::vector<LoraSpec> loras;
  const int32_t ranks[] = {16, 8, 4};
  for (int i = 0; i < 3; ++i) {
    const std::string d = dir + "/r" + std::to_string(ranks[i]);
    random_lora_write(d, base, ranks[i], 100 + uint64_t(i));
    loras.push_back({"r" + std::to_string(ranks[i]), d});
  }
  std::unique_ptr<Engine> cpu = load(model_dir, "cpu", false, 64, 2048, true, loras);
  const int vocab = cpu->model_info().vocab_size;
  std::mt19937_64 rng(11);
  const int lo = vocab > 200000 ? 1000 : 3, hi = std::min(vocab, 200000);
  std::vector<int32_t> prompt;
  for (int t = 0; t < 40; ++t) prompt.push_back(std::uniform_int_distribution<int>(lo, hi - 1)(rng));
  const std::vector<std::string> models = {"", "r16", "r8", "r4"};
  std::vector<std::vector<float>> want;
  for (const std::string& m : models) want.push_back(cpu->prompt_logits(prompt, m));
  cpu.reset();

  std::unique_ptr<Engine> dev = load(model_dir, device, false, 64, 2048, true, loras, 2);
  for (size_t i = 0; i < models.size(); ++i) {
    const double err = worst_rel_l2(dev->prompt_logits(prompt, models[i]), want[i], size_t(vocab));
    char msg[256];
    std::snprintf(msg, sizeof msg, "lora %s %s: %zu positions, device vs CPU rel_l2 %.2e (bound %.2e)",
                  model_dir.c_str(), models[i].empty() ? "base" : models[i].c_str(), prompt.size(), err, max_rel_l2);
    std::string what = msg;
    double moved = INFINITY;
    if (i > 0) {
      moved = worst_rel_l2(want[i], want[0], size_t(vocab));
      std::snprintf(msg, sizeof msg, "; the adapter moves the CPU's logits by rel_l2 %.2e", moved);
      what += msg;
    }
    verdict(err <= max_rel_l2 && moved > max_rel_l2, what);
  }
  dev.reset();

  dev = load(model_dir, device, true, 64, 256, true, loras, 2);
  std::vector<GenerateRequest> reqs = mixed_requests(n, vocab);
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].lora = models[i % models.size()];
  const std::vector<std::vector<int32_t>> together = run(*dev, reqs);
  int differ = 0;
  for (size_t i = 0; i < reqs.size(); ++i) differ += run(*dev, {reqs[i]})[0] != together[i] ? 1 : 0;
  const EngineStats st = dev->stats();
  char msg[256];
  std::snprintf(msg, sizeof msg,
                "lora %s deterministic=true: %d of %d requests (base and 3 adapters, 2 slots) differ alone vs together; "
                "%lld adapter loads, %lld evictions",
                model_dir.c_str(), differ, n, (long long)st.lora_loads, (long long)st.lora_evictions);
  verdict(differ == 0 && st.lora_evictions > 0, msg);
}

}  // namespace

int main(int argc, char** argv) {
  std::string reference_dir, invariance_dir, prefix_dir, embeddings_dir, lora_dir, device = "cuda";
  double max_rel_l2 = 2e-2;
  int requests = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--reference") reference_dir = val();
    else if (a == "--invariance") invariance_dir = val();
    else if (a == "--prefix-cache") prefix_dir = val();
    else if (a == "--embeddings") embeddings_dir = val();
    else if (a == "--lora") lora_dir = val();
    else if (a == "--device") device = val();
    else if (a == "--max-rel-l2") max_rel_l2 = std::stod(val());
    else if (a == "--requests") requests = std::stoi(val());
    else {
      std::fprintf(stderr, "cuda_model_check: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    if (!reference_dir.empty()) check_reference(reference_dir, device, max_rel_l2);
    if (!invariance_dir.empty()) check_invariance(invariance_dir, device, requests);
    if (!prefix_dir.empty()) check_prefix_cache(prefix_dir, device, requests);
    if (!embeddings_dir.empty()) check_embeddings(embeddings_dir, device, requests);
    if (!lora_dir.empty()) check_lora(lora_dir, device, requests, max_rel_l2);
  } catch (const std::exception& e) {
    verdict(false, std::string("error: ") + e.what());
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
