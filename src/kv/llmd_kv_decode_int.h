/*
 * What the two KV-event decoders share: the tree decoder
 * (llmd_kv_events.c, msgpack-c, the reference) and the direct reader
 * (llmd_kv_reader.c, llmd_kv_batch_decode). Not part of the KV layer's
 * interface.
 */
#ifndef LLMD_KV_DECODE_INT_H
#define LLMD_KV_DECODE_INT_H

#include <stddef.h>
#include <stdint.h>

#define LLMD_KV_MAX_DEPTH  24          /* below msgpack-c's own 32 */

/*
 * Memory kept between batches per thread (the tree's zone and scratch,
 * the direct reader's buffers): returning it to malloc after every batch
 * costs more than the decoding (page faults and brk calls on each batch);
 * a batch needing more than this gets memory of its own, freed after it.
 */
#define LLMD_KV_KEEP_BYTES  (16u << 20)

/* Total size of the msgpack scalars whose size the first byte tells (ints,
   nil, bool, floats, fixext); 0 for everything else.  Token ids are all
   such scalars, so the prescan skips them in a tight loop. */
extern const uint8_t  llmd_kv_fixed[256];

/* The prescan's walk of count values at *ppos (llmd_kv_events.c). */
int llmd_kv_scan(const unsigned char *p, size_t len, size_t *ppos,
    int base, size_t count, size_t *zone_bytes, const char **why);

/* Frees the tree decoder's per-thread zone and scratch (llmd_kv_events.c;
   the direct reader depends on the tree decoder, never the reverse). */
void llmd_kv_tree_release(void);

#endif /* LLMD_KV_DECODE_INT_H */
