#!/usr/bin/env node
// The parity reference: encodes texts with @lenml/tokenizers (a port of
// transformers.js) from the npm cache (scripts/fetch-tokenizers.sh).
//   node tools/tokenizer-reference.js <cache> <model> [--add-special] [--hex]
// model: qwen3 | llama3_1.  Reads one text per line on stdin (JSON strings,
// or with --hex the bytes in hex, decoded as TextDecoder does: invalid
// UTF-8 becomes U+FFFD) and prints one JSON array of ids per line.
'use strict';
const path = require('path');
const fs = require('fs');

const [cache, model, ...opts] = process.argv.slice(2);
if (!cache || !model) {
    console.error('usage: tokenizer-reference.js <cache> <model> [--add-special] [--hex]');
    process.exit(2);
}
const addSpecial = opts.includes('--add-special');
const hex = opts.includes('--hex');
const nm = path.resolve(cache, 'node_modules');
const { TokenizerLoader } = require(path.join(nm, '@lenml/tokenizers'));
const dir = path.join(nm, '@lenml/tokenizer-' + model, 'models');
const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
});
const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const input = fs.readFileSync(0, 'utf8');
const lines = input.split('\n');
if (lines.length && lines[lines.length - 1] === '') lines.pop();
const out = [];
for (const line of lines) {
    const text = hex ? dec.decode(Buffer.from(line, 'hex')) : JSON.parse(line);
    out.push(JSON.stringify(tok.encode(text, { add_special_tokens: addSpecial })));
}
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
