#!/bin/sh
# Hugging Face's tokenizer (npm `tokenizers`: the Rust core of HF tokenizers
# as a prebuilt Node addon), pinned, in .cache/npm-hf/: the independent
# reference of tools/tokenizer-tiny-ref.js (t/data/tokenizer-tiny-ref.json,
# checked by t/040-tokenizer.t). Prints the cache directory on success.
exec "$(dirname "$0")/fetch-npm.sh" npm-hf tokenizers@0.23.2
