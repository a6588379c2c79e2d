#!/bin/sh
# Installs pinned npm packages into the ignored cache .cache/<name>/
# (idempotent; quick when already present) and prints that directory.
#   scripts/fetch-npm.sh <name> <package@version>...
# A package whose installed version differs from its pin is (re)installed.
# LLMD_NPM_CACHE=DIR puts the caches in DIR instead of .cache/.
# Exit status 3 (and a message saying so) when packages are missing and the
# npm registry cannot be reached; the tests that need the packages then
# skip (t/lib/Llmd/Npm.pm), unless LLMD_REQUIRE_NPM=1 (CI). Any other
# failure is 1.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 <cache name> <package@version>..." >&2
    exit 2
fi
top=$(cd "$(dirname "$0")/.." && pwd)
cache="${LLMD_NPM_CACHE:-$top/.cache}/$1"
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
    # npm retries an unreachable registry for over a minute: ask once first
    if ! npm ping --fetch-retries=1 --fetch-retry-mintimeout=1000 \
            --fetch-timeout=20000 >/dev/null 2>&1; then
        registry=$(npm config get registry 2>/dev/null || echo '?')
        echo "$0: the npm registry ($registry) cannot be reached; missing:" \
             "${missing# }" >&2
        exit 3
    fi
    [ -f "$cache/package.json" ] \
        || echo '{"private":true}' > "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --silent --save-exact \
        $missing) >&2
fi
echo "$cache"
