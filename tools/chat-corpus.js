#!/usr/bin/env node
// Deterministic random conversations for the chat template parity test
// (t/045-chat-template.t).
//   node tools/chat-corpus.js <seed> [count]
// Prints one JSON array of OpenAI chat messages per line: with or without
// a system message, multi-part content (text, refusal, plain-string and
// image parts, empty texts), null content, unicode, whitespace at the
// edges, long texts, assistant turns with and without <think> blocks or a
// "reasoning" field, tool results, and roles the templates do not know.
//
// Left out on purpose (docs/chat-templates.md, "Known differences"): the
// characters where Python's str.strip() and JavaScript's trim() disagree
// (U+001C..U+001F, U+0085, U+FEFF), U+0000 (cJSON ends strings there),
// empty message lists (an error in Python's Jinja, not in JavaScript's) and
// tool calls (not rendered natively).
'use strict';

const seed = parseInt(process.argv[2] || '1', 10) >>> 0;
const count = parseInt(process.argv[3] || '2000', 10);

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
const chance = (p) => rand() < p;

const words = ('the of and to in is you that it was for on are with they ' +
    'at be this have from or one had by word but not what all were we when ' +
    'your can said there use an each which she do how their if will up ' +
    'inference balancer nginx Kubernetes GPU cache prefix don\'t it\'s ' +
    'Hello World naïve café résumé Straße Ελληνικά русский العربية עברית ' +
    'हिन्दी ไทย tiếng Việt 你好 世界 日本語 한국어 😀 🚀 👩‍💻 ∑ ≠ → ½').split(' ');
const specials = ['<think>', '</think>', '<|im_start|>', '<|im_end|>',
    '<|eot_id|>', '<|start_header_id|>', '<tool_response>',
    '</tool_response>', '<tool_call>', '{"a": [1, 2]}', '\\n', '"quoted"',
    'back\\slash', '\t', '\r\n'];
// whitespace both Python and JavaScript strip
const spaces = [' ', '  ', '\n', '\n\n', '\t', '\r', '\u000b', '\u000c',
    '\u00a0', '\u1680', '\u2000', '\u2009', '\u200a', '\u2028', '\u2029',
    '\u202f', '\u205f', '\u3000'];
const controls = ['\u0001', '\u0007', '\u001b', '\u007f'];

function sentence(n) {
    const out = [];
    for (let i = 0; i < n; i++) {
        const r = rand();
        if (r < 0.80) out.push(pick(words));
        else if (r < 0.90) out.push(pick(specials));
        else if (r < 0.96) out.push(pick(spaces));
        else out.push(pick(controls));
    }
    return out.join(chance(0.9) ? ' ' : '');
}

function text() {
    const r = rand();
    let s;
    if (r < 0.08) s = '';
    else if (r < 0.12) s = pick(spaces) + pick(spaces);
    else if (r < 0.17) s = sentence(400 + int(1200));   // long
    else s = sentence(1 + int(30));
    if (chance(0.25)) s = pick(spaces) + s;
    if (chance(0.25)) s = s + pick(spaces);
    return s;
}

function parts() {
    const n = int(5);
    const out = [];
    for (let i = 0; i < n; i++) {
        const r = rand();
        if (r < 0.55) out.push({ type: 'text', text: text() });
        else if (r < 0.62) out.push({ type: 'text', text: '' });
        else if (r < 0.68) out.push({ type: 'image_url',
                                      image_url: { url: 'http://x/y.png' } });
        else if (r < 0.74) out.push({ type: 'refusal', refusal: text() });
        else if (r < 0.80) out.push({ type: 'input_text', text: text() });
        else if (r < 0.86) out.push(text());
        else if (r < 0.92) out.push({ type: 'text', text: null });
        else out.push({ type: 'text', text: '<think>' + text() + '</think>' });
    }
    return out;
}

function content() {
    const r = rand();
    if (r < 0.70) return text();
    if (r < 0.95) return parts();
    return null;
}

function thinking() {
    const inner = text();
    const after = text();
    switch (int(9)) {
    case 0: return '<think>\n' + inner + '\n</think>\n\n' + after;
    case 1: return '<think>' + inner + '</think>' + after;
    case 2: return inner + '</think>' + after;            // no opening tag
    case 3: return '<think>\n\n</think>\n\n' + after;       // empty thoughts
    case 4: return '\n\n<think>a<think>b\n</think>\n\n</think>\n' + after;
    case 5: return 'pre<think>\n' + inner + '</think>';    // nothing after
    case 6: return '<think>' + inner;                      // never closed
    case 7: return '</think>';
    default: return '\n' + inner + '\n\n</think>\n\n\n' + after;
    }
}

function assistant() {
    const m = { role: 'assistant' };
    const r = rand();
    if (r < 0.45) m.content = thinking();
    else if (r < 0.55) m.content = [{ type: 'text', text: thinking() },
                                    { type: 'text', text: text() }];
    else m.content = content();
    if (chance(0.12)) m.reasoning = chance(0.2) ? '' : text();
    if (chance(0.05)) m.tool_calls = null;
    if (chance(0.05)) m.name = 'bot';
    return m;
}

function user() {
    const m = { role: 'user', content: content() };
    if (chance(0.08)) {
        m.content = '<tool_response>' + text() + '</tool_response>';
    }
    if (chance(0.05)) m.name = 'alice';
    return m;
}

function conversation() {
    const msgs = [];
    if (chance(0.5)) msgs.push({ role: 'system', content: content() });
    const turns = 1 + int(7);
    for (let i = 0; i < turns; i++) {
        const r = rand();
        if (r < 0.04) msgs.push({ role: 'system', content: content() });
        else if (r < 0.06) msgs.push({ role: pick(['developer', 'critic']),
                                       content: content() });
        msgs.push(user());
        if (chance(0.85) || i + 1 < turns) msgs.push(assistant());
        if (chance(0.15)) {
            const n = 1 + int(3);
            for (let k = 0; k < n; k++) {
                msgs.push({ role: 'tool', content: content(),
                            tool_call_id: 'call_' + k });
            }
            if (chance(0.7)) msgs.push(assistant());
        }
    }
    return msgs;
}

const out = [];
for (let i = 0; i < count; i++) out.push(JSON.stringify(conversation()));
process.stdout.write(out.join('\n') + '\n');
