#!/usr/bin/env bash
# Run here, before handing the repository to a GPU machine: copies what
# scripts/gpu-check.sh needs from outside the repository into .carry/ (ignored by
# git; pass carry: [".carry"] to the device run so it travels with the tree):
#   .carry/peers/hf_transformers.py   the peer benchmark (../shared/peers)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${BATCHGEN_SHARED:-../shared}
[ -f "$shared/peers/hf_transformers.py" ] || { echo "gpu-prepare: $shared/peers/hf_transformers.py not found" >&2; exit 1; }
mkdir -p .carry/peers
cp "$shared/peers/hf_transformers.py" .carry/peers/
git check-ignore -q .carry || echo "gpu-prepare: warning: .carry is not ignored by git" >&2
echo "gpu-prepare: .carry/ ready ($(du -sh .carry | cut -f1))"
