#!/usr/bin/env bash
# Run here, before handing the repository to a GPU machine: copies what
# scripts/gpu-check.sh needs from outside the repository into .carry/ (ignored by
# git; pass carry: [".carry"] to the device run so it travels with the tree):
#   .carry/peers/hf_transformers.py   the peer benchmark (../shared/peers)
#   .carry/pending/                    HEAD's packages/engine and scripts with the parked
#                                      kernel patches applied (packages/engine/dev/cuda/pending/
#                                      *.patch; none parked: no .carry/pending),
#                                      for gpu-check.sh's `pending` phase; the machine there
#                                      has no git to apply it
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${BATCHGEN_SHARED:-../shared}
[ -f "$shared/peers/hf_transformers.py" ] || { echo "gpu-prepare: $shared/peers/hf_transformers.py not found" >&2; exit 1; }
mkdir -p .carry/peers
cp "$shared/peers/hf_transformers.py" .carry/peers/
rm -rf .carry/pending
patches=$(ls packages/engine/dev/cuda/pending/*.patch 2>/dev/null || true)
if [ -n "$patches" ]; then
  # Applied in a folder outside the repository: git apply inside one skips paths
  # outside the current folder.
  tmp=$(mktemp -d)
  git archive HEAD packages/engine scripts | tar -x -C "$tmp"
  for patch in $patches; do
    (cd "$tmp" && git apply --exclude=README.md "$OLDPWD/$patch") \
      || { rm -rf "$tmp"; echo "gpu-prepare: $patch does not apply to HEAD" >&2; exit 1; }
  done
  mv "$tmp" .carry/pending
  mkdir -p .carry/pending/.carry/peers  # its own peer phase looks there
  cp "$shared/peers/hf_transformers.py" .carry/pending/.carry/peers/
fi
git check-ignore -q .carry || echo "gpu-prepare: warning: .carry is not ignored by git" >&2
echo "gpu-prepare: .carry/ ready ($(du -sh .carry | cut -f1))"
