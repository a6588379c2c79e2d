/*
 * Byte-pair merging of one pre-tokenized piece.  Semantics of Hugging Face
 * tokenizers' BPE: repeatedly apply the lowest-ranked merge among adjacent
 * symbols, the leftmost one on ties, until no merge applies.  Short pieces
 * (almost all of them) use a flat array and a linear scan, O(n^2) for
 * n <= LLMD_TOK_SMALL_PIECE; long ones a linked list and an indexed binary
 * heap, so a megabyte piece costs O(n log n) time and 24n bytes.
 */
#include <string.h>

#include "tokenizer/llmd_tokenizer_int.h"


size_t
llmd_tok_bpe_scratch(size_t piece_len)
{
    /* sym, prev, next, rank, heap, heap_pos: six uint32 per symbol. */
    return piece_len * 6 * sizeof(uint32_t) + 64;
}


static size_t
llmd_tok_bpe_small(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len, uint32_t *out)
{
    uint32_t                 sym[LLMD_TOK_SMALL_PIECE];
    uint32_t                 rank[LLMD_TOK_SMALL_PIECE];
    uint32_t                 res[LLMD_TOK_SMALL_PIECE];
    size_t                   i, n, best_i;
    uint32_t                 best;
    const llmd_tok_merge_t  *m;

    n = len;
    for (i = 0; i < n; i++) {
        sym[i] = tok->byte_id[p[i]];
    }
    for (i = 0; i + 1 < n; i++) {
        m = llmd_tok_merge_find(tok, sym[i], sym[i + 1]);
        rank[i] = m ? m->rank : LLMD_TOK_NONE;
        res[i] = m ? m->result : LLMD_TOK_NONE;
    }

    while (n > 1) {
        best = LLMD_TOK_NONE;
        best_i = 0;
        for (i = 0; i + 1 < n; i++) {
            if (rank[i] < best) {
                best = rank[i];
                best_i = i;
            }
        }
        if (best == LLMD_TOK_NONE) {
            break;
        }

        sym[best_i] = res[best_i];
        memmove(&sym[best_i + 1], &sym[best_i + 2],
                (n - best_i - 2) * sizeof(uint32_t));
        if (best_i + 2 < n - 1) {
            memmove(&rank[best_i + 1], &rank[best_i + 2],
                    (n - best_i - 3) * sizeof(uint32_t));
            memmove(&res[best_i + 1], &res[best_i + 2],
                    (n - best_i - 3) * sizeof(uint32_t));
        }
        n--;

        if (best_i > 0) {
            m = llmd_tok_merge_find(tok, sym[best_i - 1], sym[best_i]);
            rank[best_i - 1] = m ? m->rank : LLMD_TOK_NONE;
            res[best_i - 1] = m ? m->result : LLMD_TOK_NONE;
        }
        if (best_i + 1 < n) {
            m = llmd_tok_merge_find(tok, sym[best_i], sym[best_i + 1]);
            rank[best_i] = m ? m->rank : LLMD_TOK_NONE;
            res[best_i] = m ? m->result : LLMD_TOK_NONE;
        }
    }

    memcpy(out, sym, n * sizeof(uint32_t));
    return n;
}


/*
 * The state of a long piece: symbols in a doubly linked list (a node keeps
 * its original byte position, so list order is index order) and an indexed
 * binary heap of the nodes whose pair with the next node has a merge,
 * ordered by (rank, position) -- the order in which HF tokenizers and the
 * JavaScript port apply merges.
 */
typedef struct {
    const llmd_tokenizer_t  *tok;
    uint32_t                *sym;
    uint32_t                *prev;
    uint32_t                *next;
    uint32_t                *rank;      /* of the pair (node, next) */
    uint32_t                *heap;      /* node indexes */
    uint32_t                *heap_pos;  /* node -> heap slot or NONE */
    size_t                   n_heap;
} llmd_tok_bpe_state_t;


static int
llmd_tok_heap_less(const llmd_tok_bpe_state_t *st, uint32_t a, uint32_t b)
{
    return st->rank[a] < st->rank[b] || (st->rank[a] == st->rank[b] && a < b);
}


static void
llmd_tok_heap_set(llmd_tok_bpe_state_t *st, size_t slot, uint32_t node)
{
    st->heap[slot] = node;
    st->heap_pos[node] = (uint32_t) slot;
}


static void
llmd_tok_heap_up(llmd_tok_bpe_state_t *st, size_t slot)
{
    uint32_t  node;
    size_t    parent;

    node = st->heap[slot];
    while (slot > 0) {
        parent = (slot - 1) / 2;
        if (!llmd_tok_heap_less(st, node, st->heap[parent])) {
            break;
        }
        llmd_tok_heap_set(st, slot, st->heap[parent]);
        slot = parent;
    }
    llmd_tok_heap_set(st, slot, node);
}


static void
llmd_tok_heap_down(llmd_tok_bpe_state_t *st, size_t slot)
{
    uint32_t  node;
    size_t    child;

    node = st->heap[slot];
    for ( ;; ) {
        child = 2 * slot + 1;
        if (child >= st->n_heap) {
            break;
        }
        if (child + 1 < st->n_heap
            && llmd_tok_heap_less(st, st->heap[child + 1], st->heap[child]))
        {
            child++;
        }
        if (!llmd_tok_heap_less(st, st->heap[child], node)) {
            break;
        }
        llmd_tok_heap_set(st, slot, st->heap[child]);
        slot = child;
    }
    llmd_tok_heap_set(st, slot, node);
}


static void
llmd_tok_heap_remove(llmd_tok_bpe_state_t *st, uint32_t node)
{
    size_t    slot;
    uint32_t  last;

    slot = st->heap_pos[node];
    if (slot == LLMD_TOK_NONE) {
        return;
    }
    st->heap_pos[node] = LLMD_TOK_NONE;
    last = st->heap[--st->n_heap];
    if (slot == st->n_heap) {
        return;
    }
    llmd_tok_heap_set(st, slot, last);
    llmd_tok_heap_up(st, slot);
    llmd_tok_heap_down(st, st->heap_pos[last]);
}


/* Recomputes the rank of the pair (node, next) and fixes the heap. */
static void
llmd_tok_bpe_rerank(llmd_tok_bpe_state_t *st, uint32_t node)
{
    const llmd_tok_merge_t  *m;

    m = NULL;
    if (st->next[node] != LLMD_TOK_NONE) {
        m = llmd_tok_merge_find(st->tok, st->sym[node],
                                st->sym[st->next[node]]);
    }
    if (m == NULL) {
        llmd_tok_heap_remove(st, node);
        st->rank[node] = LLMD_TOK_NONE;
        return;
    }
    st->rank[node] = m->rank;
    if (st->heap_pos[node] == LLMD_TOK_NONE) {
        llmd_tok_heap_set(st, st->n_heap++, node);
        llmd_tok_heap_up(st, st->n_heap - 1);
    } else {
        llmd_tok_heap_up(st, st->heap_pos[node]);
        llmd_tok_heap_down(st, st->heap_pos[node]);
    }
}


/* O(n log n) time, 24 bytes of work memory per byte of the piece. */
static size_t
llmd_tok_bpe_large(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len, void *work, uint32_t *out)
{
    size_t                   i, n;
    uint32_t                 node, nx;
    llmd_tok_bpe_state_t     st;
    const llmd_tok_merge_t  *m;

    st.tok = tok;
    st.sym = work;
    st.prev = st.sym + len;
    st.next = st.prev + len;
    st.rank = st.next + len;
    st.heap = st.rank + len;
    st.heap_pos = st.heap + len;
    st.n_heap = 0;

    for (i = 0; i < len; i++) {
        st.sym[i] = tok->byte_id[p[i]];
        st.prev[i] = i == 0 ? LLMD_TOK_NONE : (uint32_t) (i - 1);
        st.next[i] = i + 1 == len ? LLMD_TOK_NONE : (uint32_t) (i + 1);
        st.heap_pos[i] = LLMD_TOK_NONE;
    }
    /* Pushing in position order onto equal ranks keeps the heap cheap. */
    for (i = 0; i + 1 < len; i++) {
        m = llmd_tok_merge_find(tok, st.sym[i], st.sym[i + 1]);
        st.rank[i] = m ? m->rank : LLMD_TOK_NONE;
        if (m != NULL) {
            llmd_tok_heap_set(&st, st.n_heap++, (uint32_t) i);
            llmd_tok_heap_up(&st, st.n_heap - 1);
        }
    }
    st.rank[len - 1] = LLMD_TOK_NONE;

    while (st.n_heap > 0) {
        node = st.heap[0];
        nx = st.next[node];
        m = llmd_tok_merge_find(tok, st.sym[node], st.sym[nx]);

        st.sym[node] = m->result;
        llmd_tok_heap_remove(&st, nx);
        st.next[node] = st.next[nx];
        if (st.next[nx] != LLMD_TOK_NONE) {
            st.prev[st.next[nx]] = node;
        }

        llmd_tok_bpe_rerank(&st, node);
        if (st.prev[node] != LLMD_TOK_NONE) {
            llmd_tok_bpe_rerank(&st, st.prev[node]);
        }
    }

    n = 0;
    for (node = 0; node != LLMD_TOK_NONE; node = st.next[node]) {
        out[n++] = st.sym[node];
    }
    return n;
}


size_t
llmd_tok_bpe(const llmd_tokenizer_t *tok, const unsigned char *p, size_t len,
    void *work, uint32_t *out)
{
    if (len == 0) {
        return 0;
    }
    if (len == 1) {
        out[0] = tok->byte_id[p[0]];
        return 1;
    }
    if (len <= LLMD_TOK_SMALL_PIECE) {
        return llmd_tok_bpe_small(tok, p, len, out);
    }
    return llmd_tok_bpe_large(tok, p, len, work, out);
}
