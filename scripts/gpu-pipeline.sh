#!/usr/bin/env bash
# The whole pipeline on a GPU machine, against the engine alone (issue #4: "a 2,000-line
# batch runs through coordinator + worker with the CUDA engine; its tokens/s divided by
# the engine benchmark's tokens/s on the same prompts"). From the repository root:
#
#   scripts/gpu-pipeline-prepare.sh     # here, first: fills .carry/pipeline
#   scripts/gpu-pipeline.sh [options]   # there, with .carry carried
#
# It needs no Node, npm, Redis or internet there: it unpacks the carried Node binary,
# bundles and redis-server, builds the engine's Node-API addon (CUDA backend included)
# with cmake against the carried Node-API headers, writes a random-weight model, and a
# batch of completion lines with prompts of exactly --prompt-len random token ids,
# --max-tokens output tokens each (greedy, ignore_eos). Then:
#   1. the engine alone: Engine.generate on every line's prompt at once, same addon,
#      same engine options as the worker's;
#   2. the pipeline: redis-server, the coordinator (filesystem store), one worker; the
#      batch is uploaded and run through the HTTP API, its output checked line by line.
# Each run warms up on 4 other lines first. Prints one JSON line per workload: both
# output tokens/s (pipeline: batch in_progress -> completed, model load and warm-up
# excluded from both) and their ratio.
#
# Options (default first):
#   --device cuda:0|cpu   --preset gemma-2b|tiny-gemma|...   --lines 2000
#   --prompt-len 512      --max-tokens 256    --max-seqs 1024   --max-batch-tokens 8192
#   --threads N (CPU)     --jobs 16 (build)   --cuda-arch 90    --seed 1
#   --workload a|shared-prefix|shared-prefix,a: shared-prefix is bench_engine's
#     shared-prefix workload (each line one of 8 prefixes of 500-1500 ids, then 20-150 of
#     its own, 100-250 output tokens; --prompt-len and --max-tokens then size only the
#     warm-up and workload A); a list runs each workload's engine-alone run, then one
#     coordinator and worker for all of them, and prints one JSON line per workload.
#     Prefix caching is on in every run (the worker's default).
#     a-sampled is workload A with every --sampled-every'th line (default 2: half of them)
#     sampled at --temperature 0.8, --top-p 0.95 and a seed of its own; with a and a-sampled
#     in one list a last JSON line (label sampled-vs-greedy) gives a-sampled's tokens/s over
#     a's, engine alone and through the pipeline (issue 11: >= 0.9x both).
#   --prefixes 8 --prefix-min 500 --prefix-max 1500 --suffix-min 20 --suffix-max 150
#   --out-min 100 --out-max 250: the shared-prefix workload's shape
#   --compare-caching-off: the engine alone also runs each workload with prefix caching
#     off (the baseline of "caching on vs off in one run")
# Every JSON line carries the prompt tokens, and of them computed and served from the
# cache, for each run (engine alone from the engine's counters, pipeline from the batch's
# progress).
# Output under $OUT (default build/gpu-pipeline): pipeline.log (every step, the build and
# all runs), coordinator.log, worker.log, result.json (the JSON lines, then every report).
# Scratch: $BG_PIPELINE_WORK (default /tmp/batchgen-pipeline); models under $BG_SCRATCH
# (default /dev/shm/batchgen, or /tmp/batchgen when /dev/shm has under 12 GiB free)/pipeline,
# kept for a later run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=$ROOT/.carry/pipeline
OUT=${OUT:-$ROOT/build/gpu-pipeline}
WORK=${BG_PIPELINE_WORK:-/tmp/batchgen-pipeline}
# Models in memory (/dev/shm, as gpu-check.sh) when it has room for a 2B model, else on disk.
scratch=${BG_SCRATCH:-/dev/shm/batchgen}
if [ -z "${BG_SCRATCH:-}" ] && [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -lt $((12 * 1024 * 1024)) ] 2>/dev/null; then
  scratch=/tmp/batchgen
fi
MODELS=$scratch/pipeline

device=cuda:0 preset=gemma-2b lines=2000 prompt_len=512 max_tokens=256 max_seqs=1024
max_batch_tokens=8192 threads="" jobs=16 cuda_arch=90 seed=1 workload=a compare_off=0 shape=() sampling=()
while [ $# -gt 0 ]; do
  case $1 in
    --compare-caching-off) compare_off=1; shift; continue ;;
    -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
  esac
  [ $# -ge 2 ] || { echo "gpu-pipeline: $1 needs a value" >&2; exit 2; }
  case $1 in
    --device) device=$2 ;;
    --preset) preset=$2 ;;
    --lines) lines=$2 ;;
    --prompt-len) prompt_len=$2 ;;
    --max-tokens) max_tokens=$2 ;;
    --max-seqs) max_seqs=$2 ;;
    --max-batch-tokens) max_batch_tokens=$2 ;;
    --threads) threads=$2 ;;
    --jobs) jobs=$2 ;;
    --cuda-arch) cuda_arch=$2 ;;
    --seed) seed=$2 ;;
    --workload) workload=$2 ;;
    --prefixes|--prefix-min|--prefix-max|--suffix-min|--suffix-max|--out-min|--out-max) shape+=("$1" "$2") ;;
    --sampled-every|--temperature|--top-p) sampling+=("$1" "$2") ;;
    *) echo "gpu-pipeline: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
IFS=, read -ra workloads <<<"$workload"
[ ${#workloads[@]} -gt 0 ] || { echo "gpu-pipeline: --workload: a, a-sampled, shared-prefix or a list of them" >&2; exit 2; }
for w in "${workloads[@]}"; do
  case $w in
    a|a-sampled|shared-prefix) ;;
    *) echo "gpu-pipeline: --workload: a, a-sampled, shared-prefix or a list of them (got $w)" >&2; exit 2 ;;
  esac
done

mkdir -p "$OUT" "$WORK" "$MODELS"
LOG=$OUT/pipeline.log

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  pids=()
}
die() { echo "gpu-pipeline: FAILED: $*"; exit 1; }
step() { echo; echo "=== $* ($(date +%T))"; }
limit() { local s=$1; shift; timeout -k 10 "$s" "$@"; }

main() {
trap cleanup EXIT
# --- unpack
step "unpack .carry/pipeline into $WORK"
[ -f "$CARRY/node.xz" ] && [ -f "$CARRY/app.tar.xz" ] || die "no $CARRY: run scripts/gpu-pipeline-prepare.sh first and carry .carry"
cat "$CARRY/VERSIONS"
rm -rf "$WORK/bundle" "$WORK/include" "$WORK/redis" "$WORK/store" "$WORK/redis-data"
mkdir -p "$WORK/bin" "$WORK/store" "$WORK/redis-data"
xz -dc "$CARRY/node.xz" >"$WORK/bin/node" && chmod +x "$WORK/bin/node" || die "unpacking node"
tar -xJf "$CARRY/app.tar.xz" -C "$WORK" || die "unpacking app.tar.xz"
NODE=$WORK/bin/node
APP=$WORK/bundle
echo "node $("$NODE" --version) at $NODE"

# --- the engine addon
step "build the engine addon (device $device)"
BUILD=$ROOT/packages/engine/build/gpu-addon
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_JS_VERSION=manual "-DCMAKE_JS_INC=$WORK/include/node;$WORK/include/node-addon-api" -DBG_TESTS=OFF)
if [[ $device == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || die "no GPU (nvidia-smi failed)"
  # cuBLAS: the toolkit's, else a pip wheel's (nvidia-cublas) next to the Python (as gpu-check.sh).
  cublas=""
  if ! ls /usr/local/cuda/lib64/libcublas.so* /usr/local/cuda/targets/x86_64-linux/lib/libcublas.so* >/dev/null 2>&1; then
    for d in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
      for sub in nvidia/cu13 nvidia/cublas; do [ -f "$d/$sub/include/cublas_v2.h" ] && { cublas=$d/$sub; break 2; }; done
    done
  fi
  echo "cuBLAS: ${cublas:-from the CUDA toolkit}"
  cmake_args+=(-DBG_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$cuda_arch" ${cublas:+"-DBG_CUBLAS_ROOT=$cublas"})
else
  cmake_args+=(-DBG_CUDA=OFF)
fi
t0=$SECONDS
limit 600 cmake -S packages/engine -B "$BUILD" "${cmake_args[@]}" >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; die "cmake configure"; }
grep -E "batchgen:|CUDA" "$WORK/cmake.log" || true
limit 900 cmake --build "$BUILD" --target batchgen_engine -j"$jobs" >"$WORK/build.log" 2>&1 || { tail -60 "$WORK/build.log"; die "building the addon"; }
ADDON=$BUILD/batchgen_engine.node
[ -f "$ADDON" ] || die "no $ADDON after the build"
cp "$ADDON" "$APP/batchgen_engine.node"
export BATCHGEN_ENGINE_ADDON=$APP/batchgen_engine.node
if [[ $device == cuda* ]]; then
  # The CUDA backend must be in it, or the "CUDA" figures would be the CPU's.
  grep -q "batchgen: CUDA backend for sm" "$WORK/cmake.log" && readelf -d "$ADDON" | grep -q "libcublas" \
    || die "the addon was built without the CUDA backend (see $WORK/cmake.log)"
fi
echo "addon built in $((SECONDS - t0)) s: $(ls -l "$ADDON" | awk '{print $5}') bytes"

# --- model and batch
model=$preset
model_dir=$MODELS/$model
step "model $model_dir"
if [ ! -f "$model_dir/config.json" ]; then
  t0=$SECONDS
  limit 900 "$NODE" "$APP/make-model.mjs" --preset "$preset" --out "$model_dir" --force || die "make-model"
  echo "written in $((SECONDS - t0)) s"
else
  echo "reusing it"
fi
# One batch per workload; flags that check each one's output.
batch_of() { echo "$WORK/batch-$1.jsonl"; }
expect_of() {
  if [ "$1" = shared-prefix ]; then echo --expect-input-max-tokens; else echo --expect-tokens "$max_tokens" --expect-prompt-tokens "$prompt_len"; fi
}
for w in "${workloads[@]}"; do
  if [ "$w" = shared-prefix ]; then
    step "batch: $lines lines of the shared-prefix workload ${shape[*]}"
    "$NODE" "$APP/pipeline-tool.mjs" make-batch --model-dir "$model_dir" --model "$model" --lines "$lines" \
      --workload shared-prefix "${shape[@]}" --seed "$seed" --out "$(batch_of "$w")" || die "make-batch"
  else
    step "batch ($w): $lines lines, $prompt_len prompt ids, max_tokens $max_tokens ${sampling[*]}"
    # a-sampled gets prompts of its own (seed + 1): the pipeline's one worker would
    # otherwise serve them from the prefix cache that workload A's batch left.
    sampled=() batch_seed=$seed
    [ "$w" = a-sampled ] && sampled=(--workload a-sampled "${sampling[@]}") batch_seed=$((seed + 1))
    "$NODE" "$APP/pipeline-tool.mjs" make-batch --model-dir "$model_dir" --model "$model" --lines "$lines" \
      --prompt-len "$prompt_len" --max-tokens "$max_tokens" --seed "$batch_seed" "${sampled[@]}" --out "$(batch_of "$w")" || die "make-batch"
  fi
done
# Every run first warms up on 4 other lines (the engine benchmark does too): first-use
# costs (cuBLAS handles, kernel loading) stay out of every figure.
WARMUP=$WORK/warmup.jsonl
"$NODE" "$APP/pipeline-tool.mjs" make-batch --model-dir "$model_dir" --model "$model" --lines 4 \
  --prompt-len "$prompt_len" --max-tokens 8 --seed $((seed + 1000)) --out "$WARMUP" || die "make-batch (warm-up)"

engine_flags=(--device "$device" --max-seqs "$max_seqs" --max-batch-tokens "$max_batch_tokens" ${threads:+--threads "$threads"})

# --- 1. the engine alone (each run loads the model afresh: an empty prefix cache)
for w in "${workloads[@]}"; do
  step "engine alone, $w: Engine.generate x $lines (${engine_flags[*]})"
  limit 1200 "$NODE" "$APP/pipeline-tool.mjs" engine --input "$(batch_of "$w")" --warmup "$WARMUP" --model-dir "$model_dir" "${engine_flags[@]}" \
    --report "$WORK/engine-$w.json" || die "the engine-alone run ($w)"
  if [ "$compare_off" = 1 ]; then
    step "engine alone, $w, prefix caching off"
    limit 1200 "$NODE" "$APP/pipeline-tool.mjs" engine --input "$(batch_of "$w")" --warmup "$WARMUP" --model-dir "$model_dir" "${engine_flags[@]}" \
      --no-prefix-caching --report "$WORK/engine-off-$w.json" || die "the engine-alone run ($w, caching off)"
  fi
done

# --- 2. the pipeline
step "pipeline: redis-server, coordinator, worker"
read -r redis_port http_port grpc_port <<<"$("$NODE" "$APP/pipeline-tool.mjs" free-ports 3 | tr '\n' ' ')"
redis_libs=$WORK/redis/lib
if LD_LIBRARY_PATH=$redis_libs ldd "$WORK/redis/redis-server" | grep -q "not found"; then
  redis_libs=$redis_libs:$WORK/redis/lib-extra
fi
LD_LIBRARY_PATH=$redis_libs "$WORK/redis/redis-server" --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly yes --appendfsync no --dir "$WORK/redis-data" --loglevel warning >"$WORK/redis.log" 2>&1 &
pids+=($!)
"$NODE" "$APP/pipeline-tool.mjs" wait-tcp "$redis_port" --timeout-s 30 || { cat "$WORK/redis.log"; die "redis-server did not start"; }
echo "redis-server on 127.0.0.1:$redis_port"

api_key=sk-pipeline-$RANDOM$RANDOM
worker_token=wt-pipeline-$RANDOM$RANDOM
"$NODE" "$APP/coordinator.mjs" --http-port "$http_port" --grpc-port "$grpc_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --store-url "$WORK/store" --api-keys "$api_key" \
  --worker-token "$worker_token" --models "$model" --queue-prefix "bgp$RANDOM" >"$OUT/coordinator.log" 2>&1 &
pids+=($!)
"$NODE" "$APP/pipeline-tool.mjs" wait-tcp "$http_port" --timeout-s 60 || { tail -20 "$OUT/coordinator.log"; die "the coordinator did not start"; }
echo "coordinator: HTTP 127.0.0.1:$http_port, gRPC 127.0.0.1:$grpc_port"

"$NODE" "$APP/worker.mjs" --coordinator "127.0.0.1:$grpc_port" --token "$worker_token" --model-dir "$model_dir" \
  "${engine_flags[@]}" --metrics-port 0 --metrics-host 127.0.0.1 >"$OUT/worker.log" 2>&1 &
worker_pid=$!
pids+=($worker_pid)
"$NODE" "$APP/pipeline-tool.mjs" wait-worker --url "http://127.0.0.1:$http_port" --timeout-s 600 \
  || { tail -20 "$OUT/worker.log"; die "the worker did not connect"; }
echo "worker connected"

step "pipeline: warm-up batch (4 lines)"
limit 300 "$NODE" "$APP/pipeline-tool.mjs" submit --url "http://127.0.0.1:$http_port" --api-key "$api_key" \
  --input "$WARMUP" --expect-tokens 8 --poll-ms 50 || { tail -20 "$OUT/worker.log"; die "the warm-up batch"; }
for w in "${workloads[@]}"; do
  step "pipeline, $w: submit $(batch_of "$w") and wait"
  # shellcheck disable=SC2046 # expect_of's words are separate flags
  limit 1800 "$NODE" "$APP/pipeline-tool.mjs" submit --url "http://127.0.0.1:$http_port" --api-key "$api_key" \
    --input "$(batch_of "$w")" $(expect_of "$w") --poll-ms 50 \
    --report "$WORK/pipeline-$w.json" || { tail -20 "$OUT/worker.log"; tail -20 "$OUT/coordinator.log"; die "the pipeline run ($w)"; }
  kill -0 "$worker_pid" 2>/dev/null || die "the worker exited during the run ($w)"
done
cleanup

step "result"
lines_out=()
for w in "${workloads[@]}"; do
  sizes=(--set "prompt_len=$prompt_len" --set "max_tokens=$max_tokens")
  [ "$w" = shared-prefix ] && sizes=()
  off=()
  [ "$compare_off" = 1 ] && off=(--engine-off "$WORK/engine-off-$w.json")
  line=$("$NODE" "$APP/pipeline-tool.mjs" summary --engine "$WORK/engine-$w.json" "${off[@]}" --pipeline "$WORK/pipeline-$w.json" \
    --set "device=$device" --set "workload=$w" --set "preset=$preset" "${sizes[@]}" \
    --set "max_seqs=$max_seqs" --set "max_batch_tokens=$max_batch_tokens") || die "summary ($w)"
  lines_out+=("$line")
done
if [[ " ${workloads[*]} " == *" a "* && " ${workloads[*]} " == *" a-sampled "* ]]; then
  line=$("$NODE" "$APP/pipeline-tool.mjs" compare --engine "$WORK/engine-a.json" --pipeline "$WORK/pipeline-a.json" \
    --engine-b "$WORK/engine-a-sampled.json" --pipeline-b "$WORK/pipeline-a-sampled.json" --set label=sampled-vs-greedy \
    --set "device=$device" --set "preset=$preset" --set "sampling=${sampling[*]:-every 2nd line at T 0.8, top_p 0.95}") || die "compare (a-sampled vs a)"
  lines_out+=("$line")
fi
{
  printf '%s\n' "${lines_out[@]}"
  for w in "${workloads[@]}"; do
    off_report=null
    [ "$compare_off" = 1 ] && off_report=$(cat "$WORK/engine-off-$w.json")
    echo "{\"workload\":\"$w\",\"engine\":$(cat "$WORK/engine-$w.json"),\"engine_caching_off\":$off_report,\"pipeline\":$(cat "$WORK/pipeline-$w.json")}"
  done
} >"$OUT/result.json"
printf '%s\n' "${lines_out[@]}"
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
