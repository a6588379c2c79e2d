#!/usr/bin/env node
// Validates Kubernetes manifests as `kubectl apply --validate=strict` would,
// without a cluster: every object against the API schemas of npm
// kubernetes-models (types, required fields, enums), no field the API does
// not know (read from the models' type declarations), and the references
// between the objects (volumes, ConfigMap keys, claims, named ports,
// selectors). A directory is a kustomization, rendered as kustomize does
// for the subset used in docker/k8s/: resources, namespace and JSON 6902
// patches; anything else in it is an error, not ignored.
//   node tools/validate-k8s.js <cache> [--render] PATH...
// <cache>: scripts/fetch-k8s-models.sh's directory. PATH: a kustomization
// directory or a manifest file. Prints one line per PATH; --render prints
// instead, per PATH, {"path", "files", "objects"} as one JSON array.
// Exits 1 when something is wrong (messages on stderr).
'use strict';
const fs = require('fs');
const path = require('path');

const KUSTOMIZATION_KEYS = ['apiVersion', 'kind', 'resources', 'namespace',
                            'patches'];
const POD_OWNERS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet',
                    'Job'];

// The fields the API knows, per declaration file (typeOfFile).
const interfaces = new Map();
let nm;         // <cache>/node_modules
let YAML;       // npm yaml

main();


function main() {
    const args = process.argv.slice(2);
    const cache = args.shift();
    const render = args[0] === '--render';
    if (render) {
        args.shift();
    }
    if (!cache || args.length === 0) {
        console.error('usage: validate-k8s.js <cache> [--render] PATH...');
        process.exit(2);
    }
    nm = path.resolve(cache, 'node_modules');
    YAML = require(path.join(nm, 'yaml'));

    let failed = false;
    const out = [];
    for (const p of args) {
        const errors = [];
        const files = [];
        let objects = [];
        try {
            objects = load(path.resolve(p), files, errors);
            checkObjects(objects, errors);
        } catch (e) {
            errors.push(e.message);
        }
        for (const e of errors) {
            console.error(`${p}: ${e}`);
        }
        if (errors.length) {
            failed = true;
        } else if (render) {
            out.push({ path: p, files, objects });
        } else {
            console.log(`ok ${p}: ${objects.length} objects (`
                        + objects.map(id).join(', ') + ')');
        }
    }
    if (render && !failed) {
        console.log(JSON.stringify(out, null, 1));
    }
    process.exit(failed ? 1 : 0);
}


function id(o) {
    return `${o.kind}/${o.metadata && o.metadata.name}`;
}

function readYaml(file, errors) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'),
                                        { version: '1.1' });
    const values = [];
    for (const d of docs) {
        for (const e of d.errors) {
            errors.push(`${file}: ${e.message}`);
        }
        const v = d.toJS();
        if (v !== null && v !== undefined) {
            values.push(v);
        }
    }
    return values;
}

// A file: its objects. A directory: its kustomization, rendered.
function load(p, files, errors) {
    if (!fs.statSync(p).isDirectory()) {
        files.push(p);
        return readYaml(p, errors);
    }
    const kfile = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
        .map((f) => path.join(p, f)).find((f) => fs.existsSync(f));
    if (!kfile) {
        throw new Error(`${p}: no kustomization.yaml`);
    }
    files.push(kfile);
    const [k] = readYaml(kfile, errors);
    for (const key of Object.keys(k || {})) {
        if (!KUSTOMIZATION_KEYS.includes(key)) {
            errors.push(`${kfile}: "${key}" is not supported here (only `
                        + KUSTOMIZATION_KEYS.join(', ') + ')');
        }
    }
    if (k.kind !== 'Kustomization'
        || k.apiVersion !== 'kustomize.config.k8s.io/v1beta1') {
        errors.push(`${kfile}: not a kustomize.config.k8s.io/v1beta1 `
                    + 'Kustomization');
    }
    let objects = [];
    for (const r of k.resources || []) {
        objects = objects.concat(load(path.resolve(p, r), files, errors));
    }
    for (const [i, patch] of (k.patches || []).entries()) {
        applyPatch(objects, patch, `${kfile}: patches[${i}]`, errors);
    }
    if (k.namespace) {
        for (const o of objects) {
            o.metadata = Object.assign(o.metadata || {},
                                       { namespace: k.namespace });
        }
    }
    return objects;
}

// A JSON 6902 patch (kustomize's `patches` with a target and an inline
// operation list) applied to every object the target names.
function applyPatch(objects, patch, where, errors) {
    const t = patch.target || {};
    const ops = typeof patch.patch === 'string'
        ? YAML.parse(patch.patch, { version: '1.1' }) : null;
    if (!t.kind || !t.name || !Array.isArray(ops)) {
        errors.push(`${where}: only JSON 6902 patches (target kind and `
                    + 'name, an inline list of operations) are supported');
        return;
    }
    const hits = objects.filter((o) => o.kind === t.kind
                                && o.metadata && o.metadata.name === t.name);
    if (hits.length === 0) {
        errors.push(`${where}: no ${t.kind}/${t.name} to patch`);
    }
    for (const o of hits) {
        for (const op of ops) {
            try {
                applyOp(o, op);
            } catch (e) {
                errors.push(`${where}: ${op.op} ${op.path}: ${e.message}`);
            }
        }
    }
}

function applyOp(doc, op) {
    const keys = op.path.split('/').slice(1)
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop();
    let parent = doc;
    for (const key of keys) {
        if (parent === null || typeof parent !== 'object' || !(key in parent)) {
            throw new Error(`no "${key}"`);
        }
        parent = parent[key];
    }
    const isArray = Array.isArray(parent);
    const index = last === '-' ? parent.length : Number(last);
    if (isArray && !(Number.isInteger(index) && index >= 0
                     && index <= parent.length)) {
        throw new Error(`bad index "${last}"`);
    }
    if (op.op === 'add') {
        if (isArray) {
            parent.splice(index, 0, op.value);
        } else {
            parent[last] = op.value;
        }
        return;
    }
    if (!(isArray ? index < parent.length : last in parent)) {
        throw new Error(`no "${last}"`);
    }
    if (op.op === 'replace') {
        parent[isArray ? index : last] = op.value;
    } else if (op.op === 'remove') {
        if (isArray) {
            parent.splice(index, 1);
        } else {
            delete parent[last];
        }
    } else {
        throw new Error('unsupported operation');
    }
}

function checkObjects(objects, errors) {
    const seen = new Set();
    for (const o of objects) {
        const name = o && o.metadata && o.metadata.name;
        if (!o || typeof o !== 'object' || !o.kind || !o.apiVersion || !name) {
            errors.push(`an object without apiVersion, kind or `
                        + `metadata.name: ${JSON.stringify(o).slice(0, 80)}`);
            continue;
        }
        const key = `${id(o)} in ${o.metadata.namespace || '(default)'}`;
        if (seen.has(key)) {
            errors.push(`${key} is defined twice`);
        }
        seen.add(key);
        checkSchema(o, errors);
    }
    checkReferences(objects, errors);
}

// The kubernetes-models class of an apiVersion and kind.
function modelFile(o) {
    // core "v1" is the directory v1/, "apps/v1" apps/v1/
    if (!/^([a-z0-9.]+\/)?v[a-z0-9]+$/.test(o.apiVersion)
        || !/^[A-Za-z]+$/.test(o.kind)) {
        return null;
    }
    const f = path.join(nm, 'kubernetes-models', o.apiVersion, o.kind);
    return fs.existsSync(`${f}.js`) ? f : null;
}

function checkSchema(o, errors) {
    const f = modelFile(o);
    if (!f) {
        errors.push(`${id(o)}: ${o.apiVersion} ${o.kind} is not a `
                    + 'Kubernetes API type');
        return;
    }
    const Model = require(f)[o.kind];
    try {
        new Model(JSON.parse(JSON.stringify(o))).validate();
    } catch (e) {
        errors.push(`${id(o)}: ${e.message}`);
    }
    for (const u of unknownFields(o, typeOfFile(`${f}.d.ts`), '')) {
        errors.push(`${id(o)}: unknown field "${u}"`);
    }
}

// The fields the API knows, from the models' generated declarations: per
// file, its interface's properties and their types (another interface, an
// Array<>, a { [key: string]: } map, or a leaf checked by the schema).
function typeOfFile(dts) {
    if (interfaces.has(dts)) {
        return interfaces.get(dts);
    }
    const text = fs.readFileSync(dts, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const imports = {};
    for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
        imports[m[1]] = m[2].startsWith('.')
            ? path.resolve(path.dirname(dts), `${m[2]}.d.ts`)
            : path.join(nm, `${m[2]}.d.ts`);
    }
    const m = /export interface \w+(?: extends [\w, ]+)? \{/.exec(text);
    const type = { leaf: !m };
    interfaces.set(dts, type);
    if (m) {
        type.props = {};
        const body = bodyAt(text, m.index + m[0].length);
        for (const p of topLevelStatements(body)) {
            const pm = /^"([^"]+)"\??:\s*([\s\S]*)$/.exec(p);
            if (pm) {
                type.props[pm[1]] = parseType(pm[2].trim(), imports);
            } else if (/^\[key: string\]/.test(p)) {
                type.open = true;
            }
        }
    }
    return type;
}

function parseType(t, imports) {
    let m;
    if ((m = /^Array<([\s\S]*)>$/.exec(t))) {
        return { items: parseType(m[1].trim(), imports) };
    }
    if ((m = /^\{\s*\[key: string\]:\s*([\s\S]*?);?\s*\}$/.exec(t))) {
        return { values: parseType(m[1].trim(), imports) };
    }
    if (imports[t]) {
        return { file: imports[t] };
    }
    return { leaf: true };
}

function bodyAt(text, start) {
    let depth = 1;
    for (let i = start; i < text.length; i++) {
        depth += text[i] === '{' ? 1 : text[i] === '}' ? -1 : 0;
        if (depth === 0) {
            return text.slice(start, i);
        }
    }
    throw new Error('unbalanced declaration');
}

// Statements separated by ';' outside {} and <>.
function topLevelStatements(body) {
    const out = [];
    let depth = 0;
    let cur = '';
    for (const c of body) {
        depth += '{<'.includes(c) ? 1 : '}>'.includes(c) ? -1 : 0;
        if (c === ';' && depth === 0) {
            out.push(cur.trim());
            cur = '';
        } else {
            cur += c;
        }
    }
    return out.filter((s) => s !== '');
}

function unknownFields(value, type, where) {
    if (type.file) {
        type = typeOfFile(type.file);
    }
    if (value === null || typeof value !== 'object') {
        return [];
    }
    if (type.items && Array.isArray(value)) {
        return value.flatMap((v, i) => unknownFields(v, type.items,
                                                     `${where}[${i}]`));
    }
    if (type.values) {
        return Object.entries(value).flatMap(([k, v]) =>
            unknownFields(v, type.values, `${where}.${k}`));
    }
    if (!type.props || type.open || Array.isArray(value)) {
        return [];
    }
    return Object.entries(value).flatMap(([k, v]) => {
        const p = where ? `${where}.${k}` : k;
        return type.props[k] ? unknownFields(v, type.props[k], p) : [p];
    });
}

// References between the objects: what kubectl would accept but the
// cluster would not run.
function checkReferences(objects, errors) {
    const byKind = (kind) => objects.filter((o) => o.kind === kind);
    const named = (kind, name) => byKind(kind)
        .find((o) => o.metadata.name === name);
    const pods = objects.filter((o) => POD_OWNERS.includes(o.kind)
                                && o.spec && o.spec.template);
    for (const o of pods) {
        const spec = o.spec.template.spec || {};
        const labels = (o.spec.template.metadata || {}).labels || {};
        const sel = (o.spec.selector || {}).matchLabels || {};
        if (!matches(sel, labels)) {
            errors.push(`${id(o)}: selector does not match its pod labels`);
        }
        const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
        const volumeKeys = new Map();       // ConfigMap volume -> its files
        for (const v of volumes.values()) {
            if (v.configMap && !v.configMap.optional) {
                const cm = named('ConfigMap', v.configMap.name);
                const keys = Object.keys(Object.assign({},
                    cm && cm.data, cm && cm.binaryData));
                if (!cm) {
                    errors.push(`${id(o)}: volume ${v.name}: no ConfigMap `
                                + v.configMap.name);
                }
                for (const it of v.configMap.items || []) {
                    if (cm && !keys.includes(it.key)) {
                        errors.push(`${id(o)}: volume ${v.name}: ConfigMap `
                                    + `${v.configMap.name} has no ${it.key}`);
                    }
                }
                volumeKeys.set(v.name, v.configMap.items
                    ? v.configMap.items.map((it) => it.path) : keys);
            }
            if (v.persistentVolumeClaim
                && !named('PersistentVolumeClaim',
                          v.persistentVolumeClaim.claimName)) {
                errors.push(`${id(o)}: volume ${v.name}: no `
                            + `PersistentVolumeClaim `
                            + v.persistentVolumeClaim.claimName);
            }
        }
        const containers = (spec.initContainers || [])
            .concat(spec.containers || []);
        for (const c of containers) {
            const ports = (c.ports || []).map((p) => p.name).filter(Boolean);
            for (const m of c.volumeMounts || []) {
                const keys = volumeKeys.get(m.name);
                if (!volumes.has(m.name)) {
                    errors.push(`${id(o)}: ${c.name}: mount of unknown `
                                + `volume ${m.name}`);
                } else if (m.subPath && keys && !keys.includes(m.subPath)) {
                    errors.push(`${id(o)}: ${c.name}: ${m.mountPath}: `
                                + `volume ${m.name} has no ${m.subPath}`);
                }
            }
            for (const probe of ['readinessProbe', 'livenessProbe',
                                 'startupProbe']) {
                const get = c[probe] && c[probe].httpGet;
                if (get && typeof get.port === 'string'
                    && !ports.includes(get.port)) {
                    errors.push(`${id(o)}: ${c.name}: ${probe} port `
                                + `${get.port} is not a container port`);
                }
            }
        }
    }
    for (const s of byKind('Service')) {
        const sel = (s.spec || {}).selector;
        if (!sel) {
            continue;
        }
        const targets = pods.filter((o) => matches(sel,
            (o.spec.template.metadata || {}).labels || {}));
        if (targets.length === 0) {
            errors.push(`${id(s)}: selects no pods`);
        }
        for (const p of (s.spec.ports || [])) {
            if (typeof p.targetPort !== 'string') {
                continue;
            }
            const found = targets.some((o) => (o.spec.template.spec.containers
                || []).some((c) => (c.ports || [])
                    .some((cp) => cp.name === p.targetPort)));
            if (!found) {
                errors.push(`${id(s)}: targetPort ${p.targetPort} is not a `
                            + 'port of the pods it selects');
            }
        }
    }
}

function matches(selector, labels) {
    const keys = Object.keys(selector);
    return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}
