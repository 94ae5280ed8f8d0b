#!/usr/bin/env bash
# CI on a machine with nvcc but no GPU and no cuBLAS: compiles and links the CUDA
# backend for sm_80, sm_89 and sm_90 together with the programs built on it
# (cuda_ops_test, cuda_model_check, kernel_bench, bench_engine). Nothing runs: the
# GPU checks are scripts/gpu-check.sh on a GPU machine.
#
# cuBLAS headers and libraries come from the nvidia-cublas wheel (pinned below),
# fetched once with pip (this machine's pip configuration) into build/cublas-wheel (or
# $BG_CUBLAS_CACHE); the build lives in build/cuda-compile.
set -euo pipefail
cd "$(dirname "$0")/.."
CUBLAS_WHEEL_VERSION=13.1.1.3
cache=${BG_CUBLAS_CACHE:-$PWD/build/cublas-wheel}
root=$cache/nvidia/cu13
python=${BATCHGEN_PYTHON:-$PWD/.venv/bin/python}
[ -x "$python" ] || python=python3

command -v nvcc >/dev/null || { echo "ci-cuda-compile: nvcc not found" >&2; exit 1; }
if [ ! -f "$root/include/cublas_v2.h" ] || [ ! -f "$root/lib/libcublasLt.so.13" ]; then
  echo "ci-cuda-compile: fetching nvidia-cublas==$CUBLAS_WHEEL_VERSION"
  rm -rf "$cache" && mkdir -p "$cache/dl"
  "$python" -m pip download -q --retries 2 --no-deps \
    "nvidia-cublas==$CUBLAS_WHEEL_VERSION" -d "$cache/dl"
  "$python" - "$cache" <<'PY'
import glob, sys, zipfile
cache = sys.argv[1]
with zipfile.ZipFile(glob.glob(cache + "/dl/*.whl")[0]) as z:
    for n in z.namelist():
        if n.startswith("nvidia/cu13/include/") or n.endswith(("libcublas.so.13", "libcublasLt.so.13")):
            z.extract(n, cache)
PY
  rm -rf "$cache/dl"
fi

build=build/cuda-compile
mkdir -p build
cmake -S packages/engine -B "$build" -DCMAKE_BUILD_TYPE=Release -DBG_CUBLAS_ROOT="$root" \
  -DCMAKE_CUDA_ARCHITECTURES="80;89;90" >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
grep -q "batchgen: CUDA backend" "$build.configure.log" || { cat "$build.configure.log"; echo "CUDA backend not configured" >&2; exit 1; }
cmake --build "$build" -j"${BG_JOBS:-2}" --target bg_cuda cuda_ops_test cuda_model_check kernel_bench bench_engine
echo "ci-cuda-compile: CUDA backend and its programs compiled and linked for sm_80/89/90"
