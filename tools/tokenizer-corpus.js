#!/usr/bin/env node
// Deterministic corpus for the tokenizer parity test (t/040-tokenizer.t).
//   node tools/tokenizer-corpus.js <seed> [count]
// Prints one text per line as the hex of its bytes: hex, because some texts
// are cut at random byte offsets and so are not valid UTF-8.  Both encoders
// get the same bytes; the JavaScript side decodes them with TextDecoder
// (invalid sequences become U+FFFD) and the C side does the same WHATWG
// decoding itself.
'use strict';

const seed = parseInt(process.argv[2] || '1', 10) >>> 0;
const count = parseInt(process.argv[3] || '12000', 10);

// mulberry32: a small seeded PRNG, so the corpus depends only on the seed.
let state = seed;
function rand() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];
const cp = (lo, hi) => String.fromCodePoint(lo + int(hi - lo + 1));

const words = ('the of and to in is you that it he was for on are as with his ' +
    'they I at be this have from or one had by word but not what all were we ' +
    'when your can said there use an each which she do how their if will up ' +
    'other about out many then them these so some her would make like him into ' +
    'time has look two more write go see number no way could people my than ' +
    'first water been call who oil its now find long down day did get come ' +
    'made may part tokenizer inference balancer nginx Kubernetes GPU cache ' +
    'prefix don\'t it\'s we\'re they\'ve I\'m you\'ll she\'d DON\'T IT\'S ' +
    'Hello World Ünïcödé naïve café résumé façade Straße Ελληνικά русский ' +
    'العربية עברית हिन्दी ไทย tiếng Việt').split(' ');
const code = [
    'int main(int argc, char **argv) {\n    return 0;\n}\n',
    'def f(x):\n\treturn x ** 2  # square\n',
    'for (i = 0; i < n; i++) { sum += a[i]; }',
    'const x = await fetch(`/v1/completions?id=${id}`);',
    'if err != nil {\r\n\treturn fmt.Errorf("bad: %w", err)\r\n}',
    '#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))\n',
    'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
    '    let v: Vec<u32> = (0..10).map(|i| i * i).collect();\n',
    '<div class="x">&nbsp;&lt;tag&gt;</div>',
    '$ curl -s http://127.0.0.1:8080/metrics | grep vllm:num_requests',
];
const specials = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>',
    '</think>', '<tool_call>', '<|begin_of_text|>', '<|end_of_text|>',
    '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>',
    '<|reserved_special_token_5|>', '<|im_start', 'im_end|>', '<|', '|>',
    '<|begin_of_text|><|begin_of_text|>'];
const spaces = [' ', '  ', '\t', '\n', '\r\n', '\r', '\u000b', '\u000c',
    '\u00a0', '\u1680', '\u2000', '\u2007', '\u200a', '\u2028', '\u2029',
    '\u202f', '\u205f', '\u3000', '\ufeff', '\u0085', '\u200b', ' \n ',
    '\n\n\n', '\t\t', '    '];
const emoji = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇯🇵', '❤️', '🧑🏻‍💻', '✈︎', '🤖', '🔥🔥',
    '🏳️‍🌈'];

function prose() {
    let s = '';
    const n = 1 + int(30);
    for (let i = 0; i < n; i++) {
        s += (i ? (rand() < 0.1 ? pick(spaces) : ' ') : '') + pick(words);
        if (rand() < 0.1) s += pick([',', '.', '!', '?', ';', ':', '...', ' -']);
    }
    return s;
}
function numbers() {
    const f = [() => String(int(1e9)), () => (rand() * 1e6).toFixed(int(6)),
        () => '-' + int(1e4) + 'e' + int(40), () => '0x' + int(1e9).toString(16),
        () => '1,234,567.89', () => '٣٤٥ ۴۵۶ १२३ ５６７'];
    let s = '';
    for (let i = 0, n = 1 + int(8); i < n; i++) s += pick(f)() + pick([' ', '', ', ', '\n']);
    return s;
}
function json() {
    const o = { id: int(1e6), name: pick(words), tags: [pick(words), pick(words)],
        score: rand(), nested: { ok: rand() < 0.5, text: prose() } };
    return rand() < 0.5 ? JSON.stringify(o) : JSON.stringify(o, null, 1 + int(4));
}
function cjk() {
    let s = '';
    for (let i = 0, n = 1 + int(40); i < n; i++) {
        s += pick([() => cp(0x4e00, 0x9fff), () => cp(0x3041, 0x3096),
            () => cp(0x30a1, 0x30fa), () => cp(0xac00, 0xd7a3),
            () => pick(['。', '、', '「', '」', '，', '！', ' ']),
            () => cp(0x20000, 0x2a6df)])();
    }
    return s;
}
function combining() {
    let s = '';
    for (let i = 0, n = 1 + int(12); i < n; i++) {
        s += pick(['a', 'e', 'o', 'A', 'n', 'ι', 'α', 'и', 'ᄀ', 'ᅡ', 'ᆨ', ' ']);
        for (let k = int(4); k > 0; k--) s += cp(0x0300, 0x036f);
        if (rand() < 0.2) s += pick(['\u0344', '\u0958', '\u1e9b\u0323', '\u212b',
            '\u0f73', '\ufb2c', '\u1d15e', 'e\u0301', 'A\u030a', '\u00c5']);
        if (rand() < 0.2) s += pick(['\u0301\u0323', '\u0323\u0301', 'q\u0307\u0323']);
    }
    return rand() < 0.5 ? s : s.normalize(pick(['NFD', 'NFC', 'NFKD']));
}
function whitespace() {
    let s = '';
    for (let i = 0, n = 1 + int(10); i < n; i++) {
        s += rand() < 0.5 ? pick(spaces).repeat(1 + int(4)) : pick(words);
    }
    return s;
}
function contraction() {
    return pick(["I'", "we'", "x'", "'", "''", " '"]) +
        pick(['s', 'S', 't', 'T', 're', 'RE', 'rE', 've', 'Ve', 'm', 'M', 'll',
            'LL', 'lL', 'd', 'D', 'ſ', 'K', 'x', '']) + pick(['', ' ', 'ok', "'s"]);
}
function special() {
    let s = '';
    for (let i = 0, n = 1 + int(6); i < n; i++) {
        s += pick([pick(specials), prose(), pick(spaces), ' ' + pick(specials) + ' ']);
    }
    return s;
}
// Random code points from ranges whose letters, digits and combining marks
// were all assigned by Unicode 14: PCRE2 and utf8proc here use Unicode
// 14/15 tables, Node's ICU a newer one, and characters assigned since may
// be classified differently (docs/tokenizer.md, "Unicode versions").
const stableRanges = [[0x20, 0x7ff], [0x2000, 0x2fff], [0x3040, 0x9fff],
    [0xac00, 0xd7a3], [0x1f300, 0x1f64f]];
function randomCodePoints() {
    let s = '';
    for (let i = 0, n = 1 + int(20); i < n; i++) {
        const [lo, hi] = pick(stableRanges);
        s += cp(lo, hi);
    }
    return s;
}
function longRepeat() {
    const unit = pick(['a', ' ', '\n', '1', 'ab', 'é', '日', '😀', '-', ' a',
        '\t ', '\r\n', 'the ', '0', '!']);
    return unit.repeat(100 + int(3000));
}
const kinds = [prose, prose, prose, () => pick(code), numbers, json, cjk,
    () => pick(emoji) + prose() + pick(emoji), combining, whitespace,
    contraction, special, randomCodePoints];

const out = [];
for (let i = 0; i < count; i++) {
    let s;
    if (i % 200 === 0) s = longRepeat();
    else {
        s = '';
        for (let k = 0, n = 1 + int(3); k < n; k++) s += pick(kinds)();
    }
    let b = Buffer.from(s, 'utf8');
    const r = rand();
    if (r < 0.08 && b.length > 1) {
        // Cut at a random byte offset: may end inside a UTF-8 sequence.
        b = b.subarray(int(b.length / 2), int(b.length) + 1);
    } else if (r < 0.1) {
        // Stray bytes: lone continuation bytes, overlong and surrogate forms.
        const bad = [0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff, 0xe0, 0xed, 0xf0, 0xf4];
        const parts = [b];
        for (let k = int(4); k >= 0; k--) {
            parts.push(Buffer.from([pick(bad), 0x80 + int(64), 0x80 + int(64)]
                .slice(0, 1 + int(3))), Buffer.from(pick(words)));
        }
        b = Buffer.concat(parts);
    }
    out.push(b.toString('hex'));
}
process.stdout.write(out.join('\n') + '\n');
