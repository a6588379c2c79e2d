/*
 * Where a pod's KV events come from, by the upstream's server names
 * ("ip:port"): which server the <pod> part of a topic kv@<pod>@<model>
 * names, and the tcp:// endpoint of a server's publisher or replay socket.
 * See docs/kv-events.md.
 */
#ifndef LLMD_KV_POD_H
#define LLMD_KV_POD_H

#include "core/llmd_common.h"

/* An upstream server's name, "ip:port" (not NUL-terminated). */
typedef struct {
    const char  *data;
    size_t       len;
} llmd_kv_server_t;

/*
 * The index of the server named pod exactly ("ip:port", as llm-d today),
 * else of the first whose host part is pod (the bare "ip" of the seed
 * era); -1 if none. Slots with len 0 (no server) are skipped.
 */
int llmd_kv_pod_find(const llmd_kv_server_t *servers, size_t n,
    const char *pod, size_t pod_len);

/*
 * "tcp://<host of server>:<port>" into buf (NUL-terminated); port is
 * absolute, or added to the server's own port when relative (port=+N).
 * -1 if the name has no ":port", a relative port leaves 0..65535 or buf
 * is too small.
 */
int llmd_kv_pod_endpoint(const llmd_kv_server_t *server, unsigned port,
    int relative, char *buf, size_t size);

/*
 * Whether peer, the address a message came from ("10.0.0.1", "::1"), is
 * the host of the server's name ("10.0.0.1:8000", "[::1]:8000"): a pod
 * may only publish under its own name.
 */
int llmd_kv_pod_peer_is(const llmd_kv_server_t *server, const char *peer);

#endif /* LLMD_KV_POD_H */
