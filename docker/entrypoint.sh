#!/bin/sh
# The image's entrypoint. nginx's resolver (used by `llmd_endpoints dns`)
# does not read /etc/resolv.conf, so this writes the container's first DNS
# server into resolver.conf, which nginx.conf includes, unless one exists
# (mounted, or written by an earlier start). Then it runs the command:
# nginx in the foreground by default.
#   LLMD_RESOLVER_CONF, LLMD_RESOLV_CONF: other paths (for tests)
set -eu

conf=${LLMD_RESOLVER_CONF:-/etc/nginx/llmd/resolver.conf}
resolv=${LLMD_RESOLV_CONF:-/etc/resolv.conf}

if [ ! -e "$conf" ]; then
    ns=
    if [ -r "$resolv" ]; then
        while read -r key value _; do
            if [ "$key" = nameserver ] && [ -n "$value" ]; then
                ns=$value
                break
            fi
        done < "$resolv"
    fi
    ns=${ns%%\%*}                   # nginx takes no IPv6 zone (fe80::1%eth0)
    case $ns in
    "")
        echo "llmd-entrypoint: no nameserver in $resolv; $conf has no" \
             "resolver (llmd_endpoints dns will not start)" >&2
        echo "# no nameserver in $resolv" > "$conf" ;;
    *:*)
        echo "resolver [$ns] valid=5s;" > "$conf" ;;
    *)
        echo "resolver $ns valid=5s;" > "$conf" ;;
    esac
fi

if [ $# -eq 0 ]; then
    set -- nginx -g 'daemon off;'
fi
exec "$@"
