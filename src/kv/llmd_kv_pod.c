/*
 * Where a pod's KV events come from (llmd_kv_pod.h): topic pods matched
 * against server names, and publisher endpoints built from them.
 */
#include <stdio.h>
#include <string.h>

#include "kv/llmd_kv_pod.h"


int
llmd_kv_pod_find(const llmd_kv_server_t *servers, size_t n, const char *pod,
    size_t pod_len)
{
    size_t       i;
    const char  *colon;

    /*
     * An empty slot (no server: data may be NULL, which memcmp and memchr
     * must not get even for 0 bytes) matches nothing.
     */
    for (i = 0; i < n; i++) {
        if (servers[i].len != 0 && servers[i].len == pod_len
            && memcmp(servers[i].data, pod, pod_len) == 0)
        {
            return (int) i;
        }
    }

    for (i = 0; i < n; i++) {
        if (servers[i].len == 0) {
            continue;
        }

        colon = memchr(servers[i].data, ':', servers[i].len);

        if (colon != NULL && (size_t) (colon - servers[i].data) == pod_len
            && memcmp(servers[i].data, pod, pod_len) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


int
llmd_kv_pod_endpoint(const llmd_kv_server_t *server, unsigned port,
    int relative, char *buf, size_t size)
{
    int          n;
    size_t       host_len;
    unsigned     base;
    const char  *p, *end;

    end = server->data + server->len;

    /* the last colon: the host part may hold colons ("[::1]:8000") */
    for (p = end; p > server->data && p[-1] != ':'; p--) {
        /* void */
    }

    if (p == server->data) {
        return -1;
    }

    host_len = p - 1 - server->data;

    if (relative) {
        if (p == end) {
            return -1;
        }

        for (base = 0; p < end; p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }

            base = base * 10 + (*p - '0');

            if (base > 65535) {
                return -1;
            }
        }

        if (port > 65535 - base) {
            return -1;
        }

        port += base;
    }

    n = snprintf(buf, size, "tcp://%.*s:%u", (int) host_len, server->data,
                 port);

    return (n < 0 || (size_t) n >= size) ? -1 : 0;
}


int
llmd_kv_pod_peer_is(const llmd_kv_server_t *server, const char *peer)
{
    size_t       host_len;
    const char  *host, *p, *end;

    host = server->data;
    end = server->data + server->len;

    for (p = end; p > host && p[-1] != ':'; p--) {
        /* void */
    }

    if (p == host) {
        return 0;
    }

    host_len = p - 1 - host;

    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }

    return strlen(peer) == host_len && memcmp(peer, host, host_len) == 0;
}
