// CPU forward-pass speed of a model directory, driving Model directly (no
// scheduler): prompt processing (one sequence's prompt in one step) and decode
// (B sequences, one token each per step), in tokens/s.
//
//   cpu_forward_bench MODEL_DIR [--threads N] [--prompt 512] [--decode-steps 64] [--batch 1,16]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "batchgen/backend.h"
#include "model/model.h"

using namespace bg;

namespace {

constexpr int32_t kBlockSize = 16;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sequence s owns blocks [s * blocks_per_seq, (s + 1) * blocks_per_seq).
StepBatch step_for(const std::vector<int32_t>& starts, const std::vector<int32_t>& lens, int32_t blocks_per_seq,
                   int32_t vocab) {
  StepBatch b;
  b.cu_seq_q.push_back(0);
  b.max_blocks_per_seq = blocks_per_seq;
  for (size_t s = 0; s < starts.size(); ++s) {
    for (int32_t i = 0; i < lens[s]; ++i) {
      const int32_t pos = starts[s] + i;
      b.token_ids.push_back(int32_t((pos * 7919 + int32_t(s) * 104729) % vocab));
      b.positions.push_back(pos);
      b.slot_mapping.push_back((int32_t(s) * blocks_per_seq + pos / kBlockSize) * kBlockSize + pos % kBlockSize);
    }
    b.cu_seq_q.push_back(int32_t(b.token_ids.size()));
    b.logit_rows.push_back(int32_t(b.token_ids.size()) - 1);
    b.context_lens.push_back(starts[s] + lens[s]);
    for (int32_t k = 0; k < blocks_per_seq; ++k) b.block_tables.push_back(int32_t(s) * blocks_per_seq + k);
    b.max_q_len = std::max(b.max_q_len, lens[s]);
    b.max_context_len = std::max(b.max_context_len, starts[s] + lens[s]);
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [--threads N] [--prompt N] [--decode-steps N] [--batch 1,16]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int threads = 0, prompt = 512, steps = 64;
  std::vector<int32_t> batches = {1, 16};
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--prompt") prompt = std::atoi(v.c_str());
    else if (k == "--decode-steps") steps = std::atoi(v.c_str());
    else if (k == "--batch") {
      batches.clear();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        batches.push_back(std::atoi(v.substr(p, q - p).c_str()));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    }
  }
  try {
    BackendOptions opt;
    opt.threads = threads;
    auto backend = backend_create(opt);
    double t0 = now_s();
    auto model = Model::load(dir, *backend);
    const ModelConfig& c = model->config();
    const int32_t max_batch = *std::max_element(batches.begin(), batches.end());
    const int32_t ctx = prompt + steps + 1;
    const int32_t blocks_per_seq = (ctx + kBlockSize - 1) / kBlockSize;
    model->kv_cache_alloc(int64_t(blocks_per_seq) * max_batch, kBlockSize);
    model->reserve(std::max(prompt, max_batch), max_batch, ctx);
    std::printf("model %s (%s): hidden %d, layers %d, heads %d/%d x %d, intermediate %d, vocab %d; %.1f MB f32 weights\n",
                dir.c_str(), c.architecture.c_str(), c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads,
                c.head_dim, c.intermediate_size, c.vocab_size, double(model->weight_bytes()) / 1e6);
    std::printf("backend: %s, %u threads; load %.2f s\n", backend->info().device_name.c_str(),
                threads > 0 ? unsigned(threads) : std::thread::hardware_concurrency(), now_s() - t0);

    // Prompt processing: the whole prompt as one step, best of 3.
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      StepTensors st = backend->upload_step(step_for({0}, {prompt}, blocks_per_seq, c.vocab_size));
      double t = now_s();
      model->forward(st);
      backend->synchronize();
      best = std::min(best, now_s() - t);
    }
    std::printf("prefill  1 x %4d tokens: %9.1f tokens/s (%.1f ms)\n", prompt, prompt / best, best * 1e3);

    // Decode: B sequences each with a `prompt`-token context, `steps` steps.
    for (int32_t B : batches) {
      std::vector<int32_t> starts(static_cast<size_t>(B)), ones(static_cast<size_t>(B), 1);
      // Fill each sequence's cache with one prefill (not timed).
      for (int32_t s = 0; s < B; ++s) {
        StepBatch b = step_for({0}, {prompt}, blocks_per_seq, c.vocab_size);
        for (int32_t& slot : b.slot_mapping) slot += s * blocks_per_seq * kBlockSize;
        for (int32_t& blk : b.block_tables) blk += s * blocks_per_seq;
        model->forward(backend->upload_step(b));
      }
      double t = now_s();
      for (int32_t i = 0; i < steps; ++i) {
        for (int32_t s = 0; s < B; ++s) starts[size_t(s)] = prompt + i;
        model->forward(backend->upload_step(step_for(starts, ones, blocks_per_seq, c.vocab_size)));
      }
      backend->synchronize();
      double dt = now_s() - t;
      std::printf("decode  %2d x %4d steps (context %d): %9.1f tokens/s (%.2f ms/step)\n", B, steps, prompt,
                  double(B) * steps / dt, dt / steps * 1e3);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
