#!/usr/bin/env node
// Writes t/data/tokenizer-tiny-ref.json: the token ids Hugging Face's own
// tokenizer (npm `tokenizers`, the Rust core of HF tokenizers as a Node
// addon; pinned by scripts/fetch-hf-tokenizers.sh) computes for
// t/data/tokenizer-tiny.json on a fixed list of texts: the cases of
// t/unit/test_tokenizer.c, the prompts of t/060-precise.t and a
// deterministic random corpus. t/unit/test_tokenizer.c and t/060 take their
// expected ids from that file, and t/040-tokenizer.t regenerates it and
// checks it is unchanged, so the project's tokenizer is never its own
// reference. Regenerate with:
//   node tools/tokenizer-tiny-ref.js "$(scripts/fetch-hf-tokenizers.sh)" \
//       t/data/tokenizer-tiny.json > t/data/tokenizer-tiny-ref.json
'use strict';
const fs = require('fs');
const path = require('path');

const [cache, fixture] = process.argv.slice(2);
if (!cache || !fixture) {
    console.error('usage: tokenizer-tiny-ref.js <npm-hf cache> '
                  + '<tokenizer.json>');
    process.exit(2);
}
const pkg = path.resolve(cache, 'node_modules', 'tokenizers');
const { Tokenizer } = require(pkg);
const version = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'),
                                           'utf8')).version;

// [name, text as bytes (Buffer), add special tokens]. Invalid UTF-8 is
// decoded as TextDecoder does (each maximal invalid subpart becomes U+FFFD),
// which is what the C tokenizer promises too.
const b = (s) => Buffer.from(s, 'latin1');
const u = (s) => Buffer.from(s, 'utf8');
const cases = [
    ['merges: hello world', u('hello world'), false],
    ['merges: rank order', u('abc'), false],
    ['merges: leftmost of equal ranks', u('aaa'), false],
    ['merges: aaaa', u('aaaa'), false],
    ['merges: vocabulary token without merges', u('xyz'), false],
    ["split: 's", u("it's"), false],
    ['split: space run', u('      '), false],
    ['split: spaces before a word', u('  hello'), false],
    ['added: lstrip/rstrip', u('a <x>  b'), false],
    ['added: strip unicode white space', u('a \t\n<x>\u00a0b'), false],
    ['added: no space', u('a<x>b'), false],
    ['added: no strip flags', u('x <|s|> y'), false],
    ['added: longest first', u('<xx><x>'), false],
    ['added: incomplete <x', u('<x'), false],
    ['added: incomplete <|s|', u('<|s|'), false],
    ['utf8: lone ff', b('\xff'), false],
    ['utf8: truncated e2 82', b('\xe2\x82'), false],
    ['utf8: truncated e2 82 then a', b('\xe2\x82a'), false],
    ['utf8: overlong c0 80', b('\xc0\x80'), false],
    ['utf8: surrogate ed a0 80', b('\xed\xa0\x80'), false],
    ['utf8: truncated f0 9f 98', b('\xf0\x9f\x98'), false],
    ['utf8: four bytes', b('\xf0\x9f\x98\x80'), false],
    ['nfc: e + combining acute', u('e\u0301'), false],
    ['nfc: precomposed', u('\u00e9'), false],
    ['nfc: added token first', u('<x>e\u0301'), false],
    ['special: hello world', u('hello world'), true],
    ['special: empty', u(''), true],
    ['t/060 prompt', u('The quick brown fox jumps over the lazy dog and '
                       + 'keeps running far away'), true],
    ['t/060 request', u('The quick brown fox jumps over the lazy dog and '
                        + 'keeps running far away and then some more words'),
     true],
];

// A deterministic corpus over the fixture's interesting characters.
const alphabet = [...'abcdehlorwxyz <>|s\'\t\n\r.,!0123', '\u00e9', 'e\u0301',
                  '\u00a0', '<x>', '<|s|>', '<xx>', '\u4e2d', '\ud83d\ude00'];
let seed = 20251201;
const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 65536) % n;
};
for (let k = 0; k < 200; k++) {
    let s = '';
    const len = rand(40);
    for (let i = 0; i < len; i++) {
        s += alphabet[rand(alphabet.length)];
    }
    cases.push([`random ${k}`, u(s), k % 4 === 0]);
}

(async () => {
    const tok = Tokenizer.fromFile(fixture);
    const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    const out = [];
    for (const [name, bytes, special] of cases) {
        const enc = await tok.encode(dec.decode(bytes), null,
                                     { addSpecialTokens: special });
        out.push({ name, hex: bytes.toString('hex'), add_special: special,
                   ids: enc.getIds() });
    }
    const doc = {
        about: 'Token ids of t/data/tokenizer-tiny.json computed by Hugging '
            + 'Face tokenizers (npm tokenizers@' + version + '). Generated '
            + 'by tools/tokenizer-tiny-ref.js (its header says how); do not '
            + 'edit.',
        tokenizers: version,
        cases: out,
    };
    // one case per line: diffs stay readable
    process.stdout.write('{\n'
        + ['about', 'tokenizers'].map((k) => `  ${JSON.stringify(k)}: `
                                      + JSON.stringify(doc[k]) + ',\n').join('')
        + '  "cases": [\n'
        + out.map((c) => '    ' + JSON.stringify(c)).join(',\n')
        + '\n  ]\n}\n');
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
