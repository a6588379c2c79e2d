#!/usr/bin/env bash
# Builds the nginx-llmd image without a Docker engine, then checks it.
#   docker/build.sh [--refresh-base] [--no-cache] [TAG]
# (as root; TAG defaults to nginx-llmd).
# Debian's buildah builds docker/Dockerfile in chroot isolation with the vfs
# storage driver (no daemon, no overlay or user namespaces needed). The base
# image is a Debian 12 minbase made by debootstrap from deb.debian.org
# (cached as .cache/debian-bookworm-minbase.tar), imported into buildah's
# storage as localhost/llmd-debian:bookworm once (--refresh-base remakes it).
# Steps are cached as layers; --no-cache runs them all again (and so
# installs Debian's latest updates).
# The checks run in a container of the built image, as its user:
#   nginx -V; ldd of the module finds every library; the module loads
#   (a minimal config); `nginx -t` of the image's own nginx.conf.
# Exits 1 when a check fails; the image stays tagged for inspection.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
refresh=no
cache=--layers
while [ $# -gt 0 ]; do
    case $1 in
    --refresh-base) refresh=yes ;;
    --no-cache) cache=--no-cache ;;
    -*) echo "usage: $0 [--refresh-base] [--no-cache] [TAG]" >&2; exit 2 ;;
    *) break ;;
    esac
    shift
done
tag=${1:-nginx-llmd}
base=localhost/llmd-debian:bookworm
mirror=http://deb.debian.org/debian
tarball=$top/.cache/debian-bookworm-minbase.tar

bh() { buildah --storage-driver vfs "$@"; }
say() { printf '== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "build.sh: run as root (debootstrap and buildah's chroot need it)" >&2
    exit 1
fi

# buildah and debootstrap from Debian, when missing
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

start=$(date +%s)

# The base image: a debootstrap minbase with the apt sources of Debian's
# own debian:12 image (with updates and security), made once and kept in
# buildah's storage (and as a tarball, to import it again).
if [ $refresh = yes ]; then
    rm -f "$tarball"
    bh rmi -f "$base" >/dev/null 2>&1 || true
fi
if ! bh inspect --type image "$base" >/dev/null 2>&1; then
    if [ ! -s "$tarball" ]; then
        say "debootstrap --variant=minbase bookworm (cached in $tarball)"
        root=$(mktemp -d /var/tmp/llmd-debootstrap.XXXXXX)
        trap 'rm -rf "$root"' EXIT
        debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
        rm -f "$root/etc/apt/sources.list"
        cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        mkdir -p "$top/.cache"
        tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
        trap - EXIT
    fi
    say "importing $tarball as $base"
    ctr=$(bh from scratch)
    trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
    bh add "$ctr" "$tarball" / >/dev/null
    bh config --cmd /bin/bash \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$ctr"
    bh commit --rm "$ctr" "$base" >/dev/null
    trap - EXIT
fi

say "buildah bud -f docker/Dockerfile -t $tag"
bud_start=$(date +%s)
bh bud --isolation chroot "$cache" --build-arg BASE="$base" \
    -f "$top/docker/Dockerfile" -t "$tag" "$top"
bud_end=$(date +%s)

# The checks, in one container of the image, removed on exit.
ctr=$(bh from --pull=never "localhost/$tag")
trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
failed=()
check() {
    local name=$1; shift
    say "check: $name"
    if bh run --isolation chroot "$ctr" -- "$@"; then
        echo "   ok: $name"
    else
        echo "   FAILED: $name"
        failed+=("$name")
    fi
}
so=/usr/lib/nginx/modules/ngx_http_llmd_module.so
check "nginx -V" nginx -V
check "ldd finds every library of the module" sh -c \
    "ldd $so; ! ldd $so | grep -q 'not found'"
check "the module loads as the image's user (nginx -t, minimal config)" sh -c '
    f=$(mktemp /tmp/llmd-smoke.XXXXXX)
    printf "%s\n" "load_module modules/ngx_http_llmd_module.so;" \
        "pid /tmp/llmd-smoke.pid;" "events {}" \
        "http { upstream u { llmd_balancer; server 127.0.0.1:1; } }" > "$f"
    nginx -t -c "$f"; rc=$?; rm -f "$f"; exit $rc'
# nginx opens access_log /dev/stdout, i.e. the stdout it was given: runc and
# crun give the container's stdio to its user, buildah's chroot does not, so
# here stdout is a file that user owns.
conf_check="nginx -t of the image's nginx.conf (through the entrypoint)"
check "$conf_check" sh -c '
    out=$(mktemp /tmp/llmd-smoke.XXXXXX)
    /usr/local/bin/llmd-entrypoint nginx -t > "$out" 2>&1; rc=$?
    cat "$out"; rm -f "$out"; exit $rc'

end=$(date +%s)
bh images "localhost/$tag"
echo "build.sh: buildah bud $((bud_end - bud_start))s, all $((end - start))s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "build.sh: image localhost/$tag built, but these checks FAILED:" >&2
    printf '  - %s\n' "${failed[@]}" >&2
    case " ${failed[*]} " in
    *"$conf_check"*)
        echo "  docker/nginx.conf uses llmd_endpoints and llmd_health:" \
             "nginx -t fails until the module has them" >&2 ;;
    esac
    exit 1
fi
echo "build.sh: image localhost/$tag built and checked"
