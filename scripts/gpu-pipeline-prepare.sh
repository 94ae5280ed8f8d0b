#!/usr/bin/env bash
# Run here, before handing the repository to a GPU machine (no Node, no npm registry, no
# Redis, no internet there): packs into .carry/pipeline/ (ignored by git; pass carry
# [".carry"] to the device run) everything scripts/gpu-pipeline.sh needs beside the
# repository's sources:
#
#   node.xz       a Node.js binary (../shared/tools/gpu-node.sh; `xz -dc` it there)
#   app.tar.xz    bundle/   coordinator, worker, make-model and pipeline-tool as single
#                           ESM files with every JavaScript dependency inlined
#                           (scripts/gpu-pipeline/bundle.mjs), the coordinator's lua/
#                           and the Gemma tokenizer files
#                 include/  Node-API headers (node-api-headers) and node-addon-api's, so
#                           the engine addon builds there without cmake-js's download
#                 redis/    redis-server, with the libraries Ubuntu may lack in lib/
#                           (always used) and the rest of its libraries in lib-extra/
#                           (used only where the machine lacks them)
#   VERSIONS      what went in
#
# Usage: scripts/gpu-pipeline-prepare.sh [--no-build]
#   --no-build   bundle the packages' dist/ as they are (default: tsc-build them first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODE_VERSION=20.19.5
DEST=.carry/pipeline
build=1
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done
command -v redis-server >/dev/null || { echo "gpu-pipeline-prepare: redis-server not found here (apt-get install redis-server)" >&2; exit 1; }
[ -d node_modules/esbuild ] || { echo "gpu-pipeline-prepare: run pnpm install first (esbuild is a root devDependency)" >&2; exit 1; }

if [ $build = 1 ]; then
  # TypeScript only: the native addon is built on the GPU machine.
  for p in proto core engine coordinator console worker; do
    if [ $p = engine ]; then pnpm --filter @batchgen/engine run build:ts >/dev/null; else pnpm --filter @batchgen/$p build >/dev/null; fi
    echo "gpu-pipeline-prepare: built @batchgen/$p"
  done
fi

mkdir -p "$DEST"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Node.js binary (kept between runs: it is the slow part).
if [ ! -s "$DEST/node.xz" ] || ! grep -qx "node $NODE_VERSION" "$DEST/VERSIONS" 2>/dev/null; then
  bash "${BATCHGEN_SHARED:-../shared}/tools/gpu-node.sh" "$DEST" "$NODE_VERSION" >/dev/null
fi

# The bundles.
node scripts/gpu-pipeline/bundle.mjs "$stage/bundle"

# Node-API headers for the addon.
napi_headers=$(node -p 'require("path").dirname(require.resolve("node-api-headers/package.json"))')
addon_api=$(cd packages/engine && node -p 'require("node-addon-api").include.replace(/"/g, "")')
mkdir -p "$stage/include/node" "$stage/include/node-addon-api"
cp "$napi_headers"/include/*.h "$stage/include/node/"
cp "$addon_api"/napi.h "$addon_api"/napi-inl.h "$addon_api"/napi-inl.deprecated.h "$stage/include/node-addon-api/"

# redis-server (Debian's is one binary that reads argv[0]: copy it under this name).
mkdir -p "$stage/redis/lib" "$stage/redis/lib-extra"
cp "$(readlink -f "$(command -v redis-server)")" "$stage/redis/redis-server"
ldd "$stage/redis/redis-server" | awk '/=> \//{print $1, $3}' | while read -r name path; do
  case $name in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
    liblzf.so*|libjemalloc.so*|libatomic.so*) cp -L "$path" "$stage/redis/lib/$name" ;;
    *) cp -L "$path" "$stage/redis/lib-extra/$name" ;;
  esac
done

{
  echo "node $NODE_VERSION"
  echo "esbuild $(node -p 'require("esbuild/package.json").version')"
  echo "node-api-headers $(node -p 'require("node-api-headers/package.json").version')"
  echo "node-addon-api $(cd packages/engine && node -p 'require("node-addon-api/package.json").version')"
  echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') ($(. /etc/os-release; echo "$PRETTY_NAME"))"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- packages scripts || echo '+changes')"
} >"$DEST/VERSIONS"

tar -C "$stage" -cf - bundle include redis | xz -T2 -6 >"$DEST/app.tar.xz.tmp"
mv "$DEST/app.tar.xz.tmp" "$DEST/app.tar.xz"
git check-ignore -q .carry || echo "gpu-pipeline-prepare: warning: .carry is not ignored by git" >&2
ls -l "$DEST"
echo "gpu-pipeline-prepare: $DEST ready: $(du -sh "$DEST" | cut -f1) (.carry in all: $(du -sh .carry | cut -f1))"
