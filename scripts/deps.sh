#!/usr/bin/env bash
# Installs every Debian package the build, the tests, the demo and the
# benchmarks need, when it is missing. Safe to run again: it does nothing
# when everything is present. Needs root (or sudo) on a fresh Debian 12.
set -euo pipefail

PKGS=(
  # build: nginx and its module API, the scheduling core's libraries
  nginx nginx-dev dpkg-dev build-essential pkg-config
  libyaml-dev libcjson-dev libxxhash-dev libzmq3-dev libmsgpack-dev
  libpcre2-dev libutf8proc-dev libcbor-dev libssl-dev
  # tests: cmocka, Test::Base and what the Test::Nginx subset uses
  libcmocka-dev libtest-base-perl libtest-longstring-perl
  liblist-moreutils-perl liburi-perl libhttp-message-perl libwww-perl
  libipc-run-perl libzmq-ffi-perl libdata-messagepack-perl
  valgrind
  # the fuzz targets (make fuzz): clang and its libFuzzer/sanitizer runtimes
  clang-14 libclang-rt-14-dev
  # the tests' DNS server (tools/dns-server.py, run by /usr/bin/python3)
  python3-dnslib
  # tools for the demo, benchmarks and tokenizer parity data
  curl jq wrk bc gnuplot-nox nodejs npm
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
       | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# node and npm may come from elsewhere than Debian (a newer build on PATH)
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]:-}"

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
