#!/usr/bin/env python3
"""Checks the layer rules of docs/architecture.md; exits 1 on a violation.

1. Includes only point down:  nginx -> kv -> core,  nginx -> tokenizer.
   Only src/nginx/ and ngx_http_llmd_module.c include nginx's headers.
   The tools (sim/, loadgen/, bench/, tools/, t/unit/) may use the plain-C
   layers, never the nginx glue.  Every quoted include must exist.
2. No loops: no cycle of files that include each other, and no cycle of
   object files that call each other (read with nm from the built objects:
   file A uses a symbol B defines and B, directly or through others, uses
   one A defines).  The module object ngx_http_llmd_module, which every
   nginx module file refers to by nginx's design, is not a call.
3. No call up: an object of a lower layer never uses a symbol that an
   object of a layer above it defines.

Usage: scripts/check-layers.py [--root DIR] [--build DIR]   (after `make`)
"""

import argparse
import os
import re
import subprocess
import sys

LAYERS = ("nginx", "kv", "core", "tokenizer")
ALLOWED = {
    "nginx": {"nginx", "kv", "core", "tokenizer"},
    "kv": {"kv", "core"},
    "core": {"core"},
    "tokenizer": {"tokenizer"},
    # the tools on top: anything but the nginx glue
    "tool": {"kv", "core", "tokenizer", "tool"},
}
TOOL_DIRS = ("sim", "loadgen", "bench", "tools", "t/unit", "fuzz")
# referenced by every glue file: nginx's module object, not a call
EXEMPT_SYMBOLS = {"ngx_http_llmd_module"}
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def layer_of(path):
    """Layer of a repository-relative path, or None."""
    parts = path.split("/")
    if parts[0] == "src" and len(parts) > 2 and parts[1] in LAYERS:
        return parts[1]
    if path == "ngx_http_llmd_module.c":
        return "nginx"
    if any(path == d or path.startswith(d + "/") for d in TOOL_DIRS):
        return "tool"
    return None


def sources(root):
    out = []
    for top in ("src",) + TOOL_DIRS:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(d, f), root))
    out.append("ngx_http_llmd_module.c")
    return sorted(out)


def resolve(root, src, name):
    """Repository-relative path of a quoted include, or None."""
    for base in (os.path.dirname(src), "src"):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, p)):
            return p
    return None


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_includes(root, errors):
    graph = {}
    for src in sources(root):
        text = open(os.path.join(root, src), errors="replace").read()
        lay = layer_of(src)
        for kind, name in INCLUDE.findall(text):
            if kind == "<":
                if name.startswith("ngx_") and lay != "nginx":
                    errors.append("%s includes <%s>: only src/nginx/ may "
                                  "include nginx's headers" % (src, name))
                continue
            dst = resolve(root, src, name)
            if dst is None:
                errors.append('%s includes "%s", which does not exist'
                              % (src, name))
                continue
            graph.setdefault(src, set()).add(dst)
            dl = layer_of(dst)
            if lay in ALLOWED and dl is not None and dl not in ALLOWED[lay]:
                errors.append('%s (%s) includes %s (%s): %s may not point '
                              'to %s' % (src, lay, dst, dl, lay, dl))
    for comp in cycles(graph):
        errors.append("include loop: " + " -> ".join(comp))
    return len(graph)


def nm(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDBRVW":
            defined.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            used.add(f[1])
    return defined, used


def objects(build):
    groups = {}
    for sub, name in (("obj", "plain-C layers"), ("nginx/addon", "module"),
                      ("sim", "vllm-sim"), ("loadgen", "llmd-loadgen")):
        d = os.path.join(build, sub)
        objs = []
        if not os.path.isdir(d):
            groups[name] = objs
            continue
        for dirpath, _, files in os.walk(d):
            objs += [os.path.join(dirpath, f) for f in files
                     if f.endswith(".o")]
        groups[name] = sorted(objs)
    return groups


def obj_layer(build, obj):
    rel = os.path.relpath(obj, build).split(os.sep)
    for lay in LAYERS:
        if lay in rel[:-1]:
            return lay
    if rel[-1] == "ngx_http_llmd_module.o":
        return "nginx"
    return "tool"


def check_objects(build, errors):
    groups = objects(build)
    if not groups["plain-C layers"]:
        errors.append("no objects under %s: run `make` first" % build)
        return 0
    count = 0
    for name, objs in groups.items():
        syms = {o: nm(o) for o in objs}
        owner = {}
        for o in objs:
            for s in syms[o][0]:
                owner.setdefault(s, o)
        graph, why = {}, {}
        for o in objs:
            for s in syms[o][1] - EXEMPT_SYMBOLS:
                d = owner.get(s)
                if d is None or d == o:
                    continue
                graph.setdefault(o, set()).add(d)
                why.setdefault((o, d), s)
                lo, ld = obj_layer(build, o), obj_layer(build, d)
                if lo in ALLOWED and ld not in ALLOWED[lo]:
                    errors.append("%s (%s) calls %s in %s (%s)"
                                  % (os.path.relpath(o, build), lo, s,
                                     os.path.relpath(d, build), ld))
        for comp in cycles(graph):
            names = [os.path.relpath(o, build) for o in comp]
            edges = ["%s uses %s" % (os.path.basename(a), why[(a, b)])
                     for a in comp for b in comp if (a, b) in why]
            errors.append("call loop in %s: %s (%s)"
                          % (name, ", ".join(names), "; ".join(edges)))
        count += len(objs)
    return count


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--root", help="the tree to check (default: this one)")
    args = ap.parse_args()
    root = os.path.abspath(args.root or os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    args.build = os.path.join(root, args.build)
    os.chdir(root)
    errors = []
    nfiles = check_includes(root, errors)
    nobjs = check_objects(os.path.abspath(args.build), errors)
    for e in errors:
        print("layers: " + e)
    print("layers: %d files with includes, %d objects checked, %d problem(s)"
          % (nfiles, nobjs, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
