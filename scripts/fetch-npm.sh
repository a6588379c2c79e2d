#!/bin/sh
# Installs pinned npm packages into the ignored cache .cache/<name>/
# (idempotent; quick when already present) and prints that directory.
#   scripts/fetch-npm.sh <name> <package@version>...
# A package whose installed version differs from its pin is (re)installed.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 <cache name> <package@version>..." >&2
    exit 2
fi
top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/$1"
shift

mkdir -p "$cache"
missing=
for p in "$@"; do
    name=${p%@*}
    want=${p##*@}
    json="$cache/node_modules/$name/package.json"
    have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$json" 2>/dev/null \
           | head -n 1)
    [ "$have" = "$want" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ -f "$cache/package.json" ] \
        || echo '{"private":true}' > "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --silent --save-exact \
        $missing) >&2
fi
echo "$cache"
