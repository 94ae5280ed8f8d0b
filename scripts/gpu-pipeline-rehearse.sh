#!/usr/bin/env bash
# Rehearses scripts/gpu-pipeline.sh here, as the GPU machine will run it: on a copy of
# what a device run carries (tracked and untracked-not-ignored files, plus .carry/pipeline),
# with no node_modules, no build outputs, and a PATH of build tools and coreutils only
# (no node, no redis-server, no npm, no python), so only the carried Node binary, bundles
# and redis-server can serve. CPU engine, a tiny model and a small batch by default.
#
#   scripts/gpu-pipeline-prepare.sh && scripts/gpu-pipeline-rehearse.sh [gpu-pipeline.sh options]
#
# Default options: --device cpu --preset tiny-gemma --lines 50 --max-tokens 8 --max-seqs 32 --jobs 2
# Keeps the copy and the output in the folder it prints when it fails, removes them otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .carry/pipeline/app.tar.xz ] || { echo "rehearse: run scripts/gpu-pipeline-prepare.sh first" >&2; exit 1; }
tmp=$(mktemp -d /tmp/bgp-rehearse.XXXXXX)

# What a device run carries.
mkdir -p "$tmp/repo"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$tmp/repo"
cp -r --parents .carry/pipeline "$tmp/repo"
for d in node_modules packages/engine/build packages/engine/node_modules packages/coordinator/dist; do
  [ ! -e "$tmp/repo/$d" ] || { echo "rehearse: $d was copied; it does not travel" >&2; exit 1; }
done
echo "rehearse: carried tree $(du -sh "$tmp/repo" | cut -f1) in $tmp/repo"

# A PATH of tools the GPU machine has too; nothing of Node or Redis.
mkdir -p "$tmp/bin" "$tmp/home"
for t in bash sh env cat ls mkdir rm cp mv ln sed grep awk head tail tr cut sort seq wc date sleep kill \
  timeout tee xz tar cmake make gcc g++ cc c++ cpp as ld ar ranlib nm readelf ldd uname dirname basename \
  readlink realpath chmod touch printf mktemp find du df stat nproc id true false expr; do
  p=$(command -v "$t" || true)
  [ -n "$p" ] && ln -s "$p" "$tmp/bin/$t"
done
for t in node npm npx pnpm redis-server redis-cli python3 python; do
  [ ! -e "$tmp/bin/$t" ] || { echo "rehearse: $t is on the sandbox PATH" >&2; exit 1; }
done

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--device cpu --preset tiny-gemma --lines 50 --max-tokens 8 --max-seqs 32 --jobs 2)
set +e
env -i HOME="$tmp/home" PATH="$tmp/bin" LANG=C.UTF-8 OUT="$tmp/out" BG_PIPELINE_WORK="$tmp/work" BG_SCRATCH="$tmp/scratch" \
  bash "$tmp/repo/scripts/gpu-pipeline.sh" "${args[@]}"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "rehearse: FAILED (exit $rc); the copy and the logs are in $tmp"
  exit $rc
fi
echo "rehearse: ok; output files: $(cd "$tmp/out" && ls)"
tail -2 "$tmp/out/result.json"
[ -n "${KEEP:-}" ] || rm -rf "$tmp"
