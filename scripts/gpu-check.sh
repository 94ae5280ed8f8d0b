#!/usr/bin/env bash
# The GPU check of the engine (issue #4) in one run on a GPU machine, from the
# repository root:
#
#   scripts/gpu-prepare.sh               # here, first: copies the peer into .carry/
#   scripts/gpu-check.sh [PHASE ...]     # there (default: every phase, in this order)
#
# Phases:
#   build       cmake + make -j16: the engine with its CUDA backend (sm_90 here; CI
#               compiles sm_80/89/90 with scripts/ci-cuda-compile.sh)
#   ops         cuda_ops_test: every CUDA op against the CPU backend
#   kernels     kernel_bench: kernel timings beside the HBM-copy and cuBLAS ceilings
#   bench       bench_engine, workload A: Gemma-2B (1024 prompts), Gemma-7B (512)
#   peer        the peer, transformers static batching (.carry/peers/hf_transformers.py)
#   roofline    each workload A row of the bench phase beside its roofline
#               (packages/engine/tools/roofline.py: the model's FLOPs and bytes per step at
#               the two ceilings the kernels phase measured in this run) and the fraction
#               reached (issue 11's goals: about 0.8 of it)
#   reference   tools/gpu_reference.py: transformers float32 references
#   models      cuda_model_check --reference: logits and greedy tokens vs transformers
#   invariance  cuda_model_check --invariance: deterministic mode, 64 mixed requests;
#               --prefix-cache: the same tokens with prefix caching on and off;
#               --embeddings: pooled vectors beside generations, device vs CPU engine
#   det         bench_engine --deterministic on Gemma-2B: what that mode costs
#   sampled     workload A on Gemma-2B all greedy, then half the lines sampled (T 0.8,
#               top_p 0.95, a seed each): the sampler's cost in the engine (issue 11's
#               goal: >= 0.9x)
#   prefix      bench_engine --workload shared-prefix on Gemma-2B (2000 lines, 8 prefixes
#               of 500-1500 tokens, 20-150 own, 100-250 out), prefix caching off then on,
#               and workload A with caching off (the bench phase runs it with caching on,
#               the default: with no sharing, caching must cost nothing)
#   extras      bench_engine on Gemma-2B, sampling at T=1: every line under a 10-field
#               json_schema vs none, top_logprobs 5 vs none, n=4 (256 prompts x 4
#               choices) vs 1024 separate lines (issue 13; the n=4 gain needs prefix caching)
#   lora        LoRA adapters (issue 15), Gemma-7B shapes, workload A as the bench phase's
#               ours-7b (512 prompts of 512 tokens, 256 out, 160 sequences): the base
#               alone, lines round-robin over 8 random rank-16 adapters (8 slots), and
#               over 64 with 8 and with 32 slots (adapters loaded on demand, LRU); prints
#               each out tok/s and its ratio to the base (goals >= 0.8x for 8 adapters,
#               >= 0.7x for 64 over 32 slots; 64 over 8 slots runs 8 adapters' lines at
#               once, 64 sequences, and is shown without a goal; BG_LORA_SLOT_BOUND=0
#               leaves it out). Then
#               cuda_model_check --lora on Gemma-2B and tiny-gemma3 (Gemma 3: QK-norm,
#               windows): device vs CPU logits through three adapters, and the same
#               tokens together and alone with adapters mixed in a batch. Adapters are
#               written by bench_engine (C++, no Python): 64 x ~100 MB beside the model.
#               $BG_LORA_SHAPE, $BG_LORA_ARGS and $BG_LORA_CHECK_MODELS change the shape,
#               the bench arguments and the checked models; a CPU rehearsal (no figure):
#                 BG_ENGINE_BUILD=packages/engine/build BG_LORA_SHAPE=tiny-gemma \
#                 BG_LORA_ARGS="--device cpu --n 64 --inp 64 --out 32 --max-seqs 64" \
#                 BG_LORA_CHECK_MODELS= BG_SCRATCH=/tmp/bg-scratch scripts/gpu-check.sh lora
#   pending     the parked kernel patches (packages/engine/dev/cuda/pending/*.patch) in
#               the copy scripts/gpu-prepare.sh made of HEAD with it applied
#               (.carry/pending): that copy's own gpu-check.sh runs build ops kernels
#               sampled (its output in $OUT/pending; $BG_PENDING_PHASES names others,
#               e.g. "build ops kernels bench roofline sampled"), then its
#               cuda_model_check --invariance and --prefix-cache on Gemma-2B. Not in the
#               default list; about 6-8 min. What passes here can be merged.
#   archs       full-size shapes of the newer architectures, one model at a time
#               (write, transformers reference, logits + greedy check, workload A,
#               delete): the models named in $BG_ARCH_MODELS (default all seven:
#               gemma2-2b gemma2-9b gemma3-1b gemma3-4b gemma3-12b qwen3-8b
#               llama3.2-3b). Not in the default phase list: it takes about 2-4 min a
#               model on an H200, so split it over calls, e.g.
#                 BG_ARCH_MODELS="gemma3-1b gemma2-2b llama3.2-3b gemma3-4b" scripts/gpu-check.sh build archs
#                 BG_ARCH_MODELS="qwen3-8b gemma2-9b gemma3-12b" scripts/gpu-check.sh build archs
#
# Output under $OUT (default build/gpu-check): gpu-check.log (everything),
# results.jsonl (one JSON line per benchmark), summary.txt (the table printed last).
# Model directories go to $BG_SCRATCH (default /dev/shm/batchgen).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/build/gpu-check}
SCRATCH=${BG_SCRATCH:-/dev/shm/batchgen}
ENGINE=$ROOT/packages/engine
B=${BG_ENGINE_BUILD:-$ENGINE/build/gpu}
mkdir -p "$OUT" "$SCRATCH"
LOG=$OUT/gpu-check.log
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
: >"$LOG"
export PYTHONUNBUFFERED=1

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(build ops kernels bench peer roofline reference models invariance det sampled prefix extras lora)
ALL_PHASES=(build ops kernels bench peer roofline reference models invariance det sampled prefix extras lora pending archs)
declare -A status seconds
want() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
run_phase() { # name, function
  local name=$1 t0=$SECONDS; shift
  echo; echo "=== $name ($(date +%T))"
  if "$@"; then status[$name]=ok; else status[$name]=FAILED; fi
  seconds[$name]=$((SECONDS - t0))
  echo "=== $name: ${status[$name]} in ${seconds[$name]} s"
}

# cuBLAS: the toolkit's, else a pip wheel's (nvidia-cublas) next to the Python.
cublas_root() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    ls "$d"/libcublas.so* >/dev/null 2>&1 && { echo ""; return; }
  done
  for d in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    for sub in nvidia/cu13 nvidia/cublas; do
      [ -f "$d/$sub/include/cublas_v2.h" ] && { echo "$d/$sub"; return; }
    done
  done
}

do_build() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  nvcc --version | tail -2; cmake --version | head -1; g++ --version | head -1
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  local root; root=$(cublas_root)
  echo "cuBLAS: ${root:-from the CUDA toolkit}"
  cmake -S "$ENGINE" -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    ${root:+-DBG_CUBLAS_ROOT=$root} || return 1
  limit 600 cmake --build "$B" -j16 || return 1
  [ -x "$B/cuda_ops_test" ] || { echo "the CUDA backend was not built"; return 1; }
}

# Every program runs under a time limit, so one hang cannot eat the whole run.
limit() { local s=$1; shift; timeout -k 10 "$s" "$@"; }

do_ops() { limit 420 "$B/cuda_ops_test"; }
do_kernels() { limit 240 "$B/kernel_bench"; }

bench() { # label, bench_engine args...
  local label=$1; shift
  local line
  line=$(limit 300 "$B/bench_engine" "$@" | tail -1) || { echo "$label failed"; return 1; }
  echo "$line"
  echo "{\"label\":\"$label\",${line#\{}" >>"$RESULTS"
}
do_bench() {
  local ok=0
  # No --max-seqs: the engine runs as many sequences as its KV cache holds (bench_engine
  # sets max_model_len to the workload's 768 tokens); 2B holds all 1024 at once.
  bench ours-2b --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --n 1024 --max-batch-tokens 8192 || ok=1
  bench ours-7b --shape gemma-7b --model-dir "$SCRATCH/gemma-7b" --n 512 --max-batch-tokens 8192 || ok=1
  return $ok
}
do_prefix() {
  local ok=0
  bench shared-prefix-2b-off --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --workload shared-prefix \
    --max-batch-tokens 8192 --no-prefix-caching || ok=1
  bench shared-prefix-2b-on --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --workload shared-prefix \
    --max-batch-tokens 8192 || ok=1
  bench ours-2b-caching-off --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --n 1024 \
    --max-batch-tokens 8192 --no-prefix-caching || ok=1
  return $ok
}
do_sampled() {
  local ok=0
  bench ours-2b-greedy --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --n 1024 --max-seqs 1024 \
    --max-batch-tokens 8192 || ok=1
  bench ours-2b-half-sampled --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --n 1024 --max-seqs 1024 \
    --max-batch-tokens 8192 --temperature 0.8 --top-p 0.95 --sampled-every 2 || ok=1
  return $ok
}
do_det() {
  bench ours-2b-deterministic --shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --n 1024 \
    --max-batch-tokens 8192 --deterministic
}

peer() { # label, args...
  local label=$1; shift
  local line
  line=$(limit 300 python3 "$ROOT/.carry/peers/hf_transformers.py" "$@" | tail -1) || return 1
  echo "$line"
  echo "{\"label\":\"$label\",${line#\{}" >>"$RESULTS"
}
do_peer() {
  [ -f "$ROOT/.carry/peers/hf_transformers.py" ] || { echo "no .carry/peers: run scripts/gpu-prepare.sh first"; return 1; }
  local ok=0
  peer peer-2b --shape gemma-2b --n 256 --bs 128 --mode static || ok=1
  peer peer-7b --shape gemma-7b --n 128 --bs 128 --mode static \
    || peer peer-7b --shape gemma-7b --n 128 --bs 64 --mode static || ok=1
  return $ok
}

# The ceilings of this run's kernels phase (kernel_bench's "ceiling:" lines).
ceiling() { # pattern, unit
  grep -m1 "ceiling: $1" "$LOG" | awk -v u="$2" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i - 1)}'
}
do_roofline() {
  local copy mma
  copy=$(ceiling "device copy" GB/s) mma=$(ceiling "cuBLAS bf16" TFLOP/s)
  [ -n "$copy" ] && [ -n "$mma" ] || { echo "roofline: no ceilings in this run's log (the kernels phase runs first)"; return 1; }
  python3 - "$RESULTS" "$copy" "$mma" "$ENGINE/tools" "$SCRATCH" <<'PY'
import json, os, sys
results, copy, mma, tools, scratch = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path.insert(0, tools)
from roofline import roofline, shape_of
rows = [r for r in map(json.loads, filter(str.strip, open(results))) if r["label"] in ("ours-2b", "ours-7b")]
if not rows:
    sys.exit("roofline: no ours-2b / ours-7b row (the bench phase runs first)")
print("  ceilings of this run: copy %.0f GB/s, cuBLAS bf16 %.0f TFLOP/s" % (copy, mma))
print("  %-8s %9s %6s %11s %11s %9s %11s" % ("label", "shape", "seqs", "out tok/s", "roofline", "fraction", "no-schedule"))
for r in rows:
    shape = shape_of(json.load(open(os.path.join(scratch, r["shape"], "config.json"))))
    f = roofline(shape, r["n"], r["inp"], r["out"], r["max_seqs"], r["max_batch_tokens"], copy, mma)
    print("  %-8s %9s %6d %11.1f %11.1f %8.2fx %11.1f" % (r["label"], r["shape"], r["max_seqs"], r["out_tok_s"],
          f["roofline_out_tok_s"], r["out_tok_s"] / f["roofline_out_tok_s"], f["bound_out_tok_s"]))
    with open(results, "a") as out:
        out.write(json.dumps({"label": "roofline-" + r["label"], "workload": "roofline", "shape": r["shape"], "n": r["n"], "secs": 0,
                              "out_tok_s": f["roofline_out_tok_s"], **f}) + "\n")
PY
}

do_reference() {
  local s
  for s in gemma-2b gemma-7b; do
    limit 120 "$B/bench_engine" --shape $s --model-dir "$SCRATCH/$s" --write-only || return 1
  done
  limit 480 python3 "$ENGINE/tools/gpu_reference.py" --out "$SCRATCH/ref" --device cuda --tiny \
    --full "gemma-2b=$SCRATCH/gemma-2b" --full "gemma-7b=$SCRATCH/gemma-7b"
}
do_models() { limit 300 "$B/cuda_model_check" --reference "$SCRATCH/ref"; }
do_invariance() {
  local ok=0
  limit 240 "$B/cuda_model_check" --invariance "$SCRATCH/gemma-2b" || ok=1
  limit 120 "$B/cuda_model_check" --invariance "$SCRATCH/ref/llama-gqa/model" || ok=1
  # Prefix caching: tokens identical with it on and off (deterministic mode).
  limit 240 "$B/cuda_model_check" --prefix-cache "$SCRATCH/gemma-2b" || ok=1
  limit 120 "$B/cuda_model_check" --prefix-cache "$SCRATCH/ref/llama-gqa/model" || ok=1
  # Embedding requests (prefill only, pooled) beside generations: the device's vectors against the CPU engine's.
  limit 180 "$B/cuda_model_check" --embeddings "$SCRATCH/ref/llama-gqa/model" || ok=1
  return $ok
}

do_extras() {
  local ok=0 common=(--shape gemma-2b --model-dir "$SCRATCH/gemma-2b" --n 1024
    --max-batch-tokens 8192 --temperature 1)
  bench ours-2b-t1 "${common[@]}" || ok=1
  bench ours-2b-t1-schema10 "${common[@]}" --json-schema 10 || ok=1
  bench ours-2b-t1-logprobs5 "${common[@]}" --top-logprobs 5 || ok=1
  bench ours-2b-t1-n4 "${common[@]}" --n-choices 4 || ok=1
  return $ok
}

do_lora() {
  # shellcheck disable=SC2206
  local ok=0 m shape=${BG_LORA_SHAPE:-gemma-7b} args=(${BG_LORA_ARGS:---n 512 --max-batch-tokens 8192})
  local common=(--shape "$shape" --model-dir "$SCRATCH/$shape" "${args[@]}")
  limit 600 "$B/bench_engine" "${common[@]}" --loras 64 --write-only || return 1
  bench lora-base "${common[@]}" || ok=1
  bench lora-8 "${common[@]}" --loras 8 --max-loras 8 || ok=1
  [ "${BG_LORA_SLOT_BOUND:-1}" = 0 ] || bench lora-64-of-8 "${common[@]}" --loras 64 --max-loras 8 || ok=1
  bench lora-64-of-32 "${common[@]}" --loras 64 --max-loras 32 || ok=1
  python3 - "$RESULTS" <<'PY' || ok=1
import json, sys
rows = {r["label"]: r for r in map(json.loads, filter(str.strip, open(sys.argv[1]))) if r["label"].startswith("lora-")}
base = rows.get("lora-base")
if not base:
    sys.exit("lora: no base run")
print("  %-18s %7s %6s %11s %7s %6s %11s %s" % ("run", "adapters", "slots", "out tok/s", "ratio", "goal", "loads/evict", "verdict"))
bad = 0
# 64 adapters over 8 slots is bound by the slots (8 adapters x 8 lines run at once, not
# 160): shown, no goal. The goal's run holds 32 of the 64 (loaded on demand, LRU).
for label, goal in (("lora-base", None), ("lora-8", 0.8), ("lora-64-of-8", None), ("lora-64-of-32", 0.7)):
    r = rows.get(label)
    if not r:
        if goal is not None:
            print("  %-18s missing" % label); bad += 1
        continue
    ratio = r["out_tok_s"] / base["out_tok_s"]
    verdict = "" if goal is None else ("met" if ratio >= goal else "NOT MET")
    print("  %-18s %7d %6d %11.1f %6.2fx %6s %11s %s" % (label, r["loras"], r["max_loras"], r["out_tok_s"], ratio,
          "" if goal is None else ">=%.1fx" % goal, "%d/%d" % (r["lora_loads"], r["lora_evictions"]), verdict))
    bad += goal is not None and ratio < goal
sys.exit(1 if bad else 0)
PY
  for m in ${BG_LORA_CHECK_MODELS-gemma-2b tiny-gemma3}; do
    limit 120 "$B/bench_engine" --shape "$m" --model-dir "$SCRATCH/$m" --write-only || ok=1
    limit 300 "$B/cuda_model_check" --lora "$SCRATCH/$m" || ok=1
  done
  return $ok
}

do_pending() {
  local P=$ROOT/.carry/pending ok=0
  [ -x "$P/scripts/gpu-check.sh" ] || { echo "no .carry/pending: no patch is parked, or scripts/gpu-prepare.sh has not run"; return 1; }
  # shellcheck disable=SC2086
  OUT=$OUT/pending BG_ENGINE_BUILD=$P/packages/engine/build/gpu "$P/scripts/gpu-check.sh" \
    ${BG_PENDING_PHASES:-build ops kernels sampled} || ok=1
  limit 120 "$P/packages/engine/build/gpu/cuda_model_check" --invariance "$SCRATCH/gemma-2b" || ok=1
  limit 90 "$P/packages/engine/build/gpu/cuda_model_check" --prefix-cache "$SCRATCH/gemma-2b" || ok=1
  return $ok
}

# Workload A's prompt count per shape; the sequence cap is the engine's own (what its
# KV cache holds of 768-token lines: the 9B/12B caches hold fewer than 512 on an H200).
arch_bench_args() {
  case $1 in
    gemma2-9b|gemma3-12b|gemma3-4b|qwen3-8b) echo "--n 512" ;;
    *) echo "--n 1024" ;;
  esac
}
do_archs() {
  local ok=0 m dir ref t0
  for m in ${BG_ARCH_MODELS:-gemma2-2b gemma2-9b gemma3-1b gemma3-4b gemma3-12b qwen3-8b llama3.2-3b}; do
    dir=$SCRATCH/$m ref=$SCRATCH/ref-$m t0=$SECONDS
    echo "--- $m"
    limit 120 "$B/bench_engine" --shape "$m" --model-dir "$dir" --write-only || { ok=1; continue; }
    # One model's reference: transformers float32 on its bf16 weights.
    limit 300 python3 "$ENGINE/tools/gpu_reference.py" --out "$ref" --device cuda --full "$m=$dir" || ok=1
    limit 180 "$B/cuda_model_check" --reference "$ref" || ok=1
    # shellcheck disable=SC2046
    bench "ours-$m" --shape "$m" --model-dir "$dir" --max-batch-tokens 8192 $(arch_bench_args "$m") || ok=1
    rm -rf "$dir" "$ref"  # /dev/shm holds one model at a time
    echo "--- $m done in $((SECONDS - t0)) s"
  done
  return $ok
}

main() {
for p in "${ALL_PHASES[@]}"; do
  want $p && run_phase $p do_$p
done

{
  echo
  echo "GPU check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
  for p in "${ALL_PHASES[@]}"; do
    want $p && printf '  %-11s %-7s %5s s\n' "$p" "${status[$p]:-?}" "${seconds[$p]:-?}"
  done
  python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if rows:
    print("  %-28s %-14s %-9s %6s %9s %11s %16s" % ("label", "workload", "shape", "n", "secs", "out tok/s", "prompt computed"))
for r in rows:
    print("  %-28s %-14s %-9s %6d %9.1f %11.1f %16s" % (r["label"], r.get("workload", "a"), r.get("shape", "?"), r["n"], r["secs"],
          r["out_tok_s"], r.get("prompt_tokens_computed", "?")))
PY
  grep -hE '^[0-9]+ passed, [0-9]+ failed' "$LOG" | sed 's/^/  tests: /'
} | tee "$OUT/summary.txt"
local p; for p in "${!status[@]}"; do [ "${status[$p]}" = ok ] || return 1; done
}

main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
