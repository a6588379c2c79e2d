/*
 * The engine of one pod, modelled on vLLM v1's scheduler
 * (vllm/v1/core/sched/scheduler.py): every step gets a token budget
 * (max_num_batched_tokens) spent first on the running requests (one decode
 * token each, or the next chunk of a prefill), then on waiting requests in
 * FIFO order while fewer than max_num_seqs run.  A waiting request starts
 * with the longest cached prefix of its full blocks.  When a running request
 * needs a block and none is free, the last running request is preempted:
 * its blocks are freed and it is recomputed later from the start.
 *
 * A request whose prompt a prefill pod has computed (do_remote_prefill,
 * docs/simulator.md) first pulls the blocks it lacks: it takes them at the
 * head of the waiting queue, waits out the transfer (bytes / bandwidth)
 * outside the batch, as vLLM's WAITING_FOR_REMOTE_KVS, then caches them
 * and continues from the head of the queue with only its last tokens left
 * to prefill.
 *
 * A step lasts step_time(prefill tokens, decode sequences, context tokens)
 * divided by the time scale; its tokens appear when it ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"


static int sim_grow(void **p, size_t *cap, size_t need, size_t size);
static int sim_take_hits(sim_pod_t *pod, sim_req_t *r, size_t from,
    size_t hits, size_t extra);
static int sim_pull_start(sim_pod_t *pod, sim_req_t *r, size_t hits,
    int64_t now);


sim_req_t *
sim_req_new(sim_pod_t *pod, sim_token_pt on_token)
{
    sim_req_t  *r;

    r = calloc(1, sizeof(sim_req_t));
    if (r == NULL) {
        return NULL;
    }

    r->pod = pod;
    r->on_token = on_token;
    r->prefill_cached = -1;
    r->created = (long) time(NULL);
    snprintf(r->id, sizeof(r->id), "%s-%llx-%llu", pod->name,
             (unsigned long long) r->created,
             (unsigned long long) ++pod->eng.next_req_id);
    return r;
}


void
sim_req_free(sim_req_t *r)
{
    if (r == NULL) {
        return;
    }

    free(r->tokens);
    free(r->hashes);
    free(r->blocks);
    free(r->salt);
    sim_buf_free(&r->text);
    free(r);
}


static int
sim_grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t  n;
    void   *q;

    if (need <= *cap) {
        return 0;
    }

    n = *cap ? *cap * 2 : 64;
    while (n < need) {
        n *= 2;
    }

    q = realloc(*p, n * size);
    if (q == NULL) {
        return -1;
    }

    *p = q;
    *cap = n;
    return 0;
}


static void
sim_q_remove(sim_queue_t *q, sim_req_t *r)
{
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        q->head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    } else {
        q->tail = r->prev;
    }
    r->prev = r->next = NULL;
    q->n--;
}


static void
sim_q_push_back(sim_queue_t *q, sim_req_t *r)
{
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail) {
        q->tail->next = r;
    } else {
        q->head = r;
    }
    q->tail = r;
    q->n++;
}


static void
sim_q_push_front(sim_queue_t *q, sim_req_t *r)
{
    r->prev = NULL;
    r->next = q->head;
    if (q->head) {
        q->head->prev = r;
    } else {
        q->tail = r;
    }
    q->head = r;
    q->n++;
}


/* Hash of full block i (the tokens up to its end must exist). */
static int
sim_req_hash_upto(sim_pod_t *pod, sim_req_t *r, size_t nblocks)
{
    size_t  bs = (size_t) pod->cf->block_size;
    size_t  i;

    if (nblocks <= r->n_hashes) {
        return 0;
    }

    if (sim_grow((void **) &r->hashes, &r->cap_hashes, nblocks,
                 sizeof(uint64_t)) != 0)
    {
        return -1;
    }

    for (i = r->n_hashes; i < nblocks; i++) {
        r->hashes[i] = sim_hash_block(&pod->hasher,
                                      i ? r->last_digest : NULL,
                                      r->tokens + i * bs, bs,
                                      i ? NULL : r->salt,
                                      i ? 0 : r->salt_len, r->last_digest);
    }

    r->n_hashes = nblocks;
    return 0;
}


int
sim_engine_add(sim_pod_t *pod, sim_req_t *r)
{
    size_t  usable;

    if (r->remote_blocks) {
        /* as a local hit, the pull leaves the last token to compute */
        pod->stats.remote_prefills++;
        usable = (r->n_prompt - 1) / pod->cf->block_size;
        if (r->remote_blocks > usable) {
            r->remote_blocks = usable;
        }
    }

    if (!pod->cf->no_prefix_caching
        && sim_req_hash_upto(pod, r, r->n_prompt / pod->cf->block_size)
           != 0)
    {
        return -1;
    }

    r->arrival_ns = sim_now_ns();

    if (pod->cf->request_latency_ms > 0) {
        /* the serving stack in front of the engine: a constant delay */
        r->state = SIM_REQ_ARRIVING;
        r->ready_ns = r->arrival_ns
                      + (int64_t) (pod->cf->request_latency_ms * 1e6
                                   / pod->cf->time_scale);
        sim_q_push_back(&pod->eng.arriving, r);
        return 0;
    }

    r->state = SIM_REQ_WAITING;
    sim_q_push_back(&pod->eng.waiting, r);
    sim_engine_kick(pod);
    return 0;
}


int64_t
sim_engine_arrivals(sim_pod_t *pod, int64_t now)
{
    sim_engine_t  *eng = &pod->eng;
    sim_req_t     *r;
    int            done = 0;

    /* one constant delay: the queue is in the order requests are due */
    while ((r = eng->arriving.head) != NULL && r->ready_ns <= now) {
        sim_q_remove(&eng->arriving, r);
        r->state = SIM_REQ_WAITING;
        sim_q_push_back(&eng->waiting, r);
        done = 1;
    }

    if (done) {
        sim_engine_kick(pod);
    }

    return eng->arriving.head ? eng->arriving.head->ready_ns : 0;
}


static void
sim_req_release_blocks(sim_pod_t *pod, sim_req_t *r)
{
    size_t  i;

    /* reverse order: a request's last blocks are evicted first */
    for (i = r->n_blocks; i > 0; i--) {
        sim_kv_release(pod->kv, r->blocks[i - 1]);
    }

    r->n_blocks = 0;
    r->n_cached_blocks = 0;
}


static int
sim_req_alloc(sim_pod_t *pod, sim_req_t *r, size_t total_tokens)
{
    size_t   bs = (size_t) pod->cf->block_size;
    size_t   need, i;
    int32_t  b;

    need = (total_tokens + bs - 1) / bs;
    if (need <= r->n_blocks) {
        return 0;
    }

    if (need - r->n_blocks > sim_kv_num_free(pod->kv)
        || sim_grow((void **) &r->blocks, &r->cap_blocks, need,
                    sizeof(int32_t)) != 0)
    {
        return -1;
    }

    for (i = r->n_blocks; i < need; i++) {
        b = sim_kv_alloc(pod->kv);
        r->blocks[r->n_blocks++] = b;
    }

    return 0;
}


static void
sim_preempt(sim_pod_t *pod, sim_req_t *r)
{
    sim_q_remove(&pod->eng.running, r);
    sim_req_release_blocks(pod, r);
    r->num_computed = 0;
    r->remote_blocks = 0;               /* recomputed here from now on */
    r->state = SIM_REQ_WAITING;
    sim_q_push_front(&pod->eng.waiting, r);
    pod->stats.preemptions++;
}


/*
 * Registers the blocks that the scheduled tokens fill (vLLM caches them when
 * it allocates the slots) and reports them as BlockStored events, one event
 * per contiguous run.
 */
static void
sim_cache_full_blocks(sim_pod_t *pod, sim_req_t *r, size_t total)
{
    size_t  bs = (size_t) pod->cf->block_size;
    size_t  full, i, first;

    if (pod->cf->no_prefix_caching) {
        return;
    }

    full = total / bs;
    if (full <= r->n_cached_blocks) {
        return;
    }

    if (sim_req_hash_upto(pod, r, full) != 0) {
        return;
    }

    first = r->n_cached_blocks;
    for (i = r->n_cached_blocks; i < full; i++) {
        if (sim_kv_cache(pod->kv, r->blocks[i], r->hashes[i]) == 0) {
            continue;
        }

        /* the same hash is cached in another block: end the run here */
        sim_pub_block_stored(pod->pub, r->hashes + first, i - first,
                             first > 0, first ? r->hashes[first - 1] : 0,
                             r->tokens + first * bs, (i - first) * bs,
                             (int) bs, r->salt, r->salt_len);
        first = i + 1;
    }

    sim_pub_block_stored(pod->pub, r->hashes + first, full - first,
                         first > 0, first ? r->hashes[first - 1] : 0,
                         r->tokens + first * bs, (full - first) * bs,
                         (int) bs, r->salt, r->salt_len);
    r->n_cached_blocks = full;
}


/* Longest cached prefix of a waiting request, in blocks. */
static size_t
sim_prefix_hits(sim_pod_t *pod, sim_req_t *r)
{
    size_t  bs = (size_t) pod->cf->block_size;
    size_t  limit, i;

    if (pod->cf->no_prefix_caching) {
        return 0;
    }

    /* at least one token is always computed, to sample from */
    limit = (r->n_tokens - 1) / bs;
    if (limit > r->n_hashes) {
        limit = r->n_hashes;
    }

    for (i = 0; i < limit; i++) {
        if (sim_kv_lookup(pod->kv, r->hashes[i]) < 0) {
            break;
        }
    }

    return i;
}


double
sim_engine_transfer_s(double bytes, double gbps)
{
    return bytes * 8 / (gbps * 1e9);
}


/*
 * Gives r its cached prefix: hit blocks from..hits-1 (blocks below from are
 * held already), if they and extra new blocks fit in the free queue (hit
 * blocks may sit in it).
 */
static int
sim_take_hits(sim_pod_t *pod, sim_req_t *r, size_t from, size_t hits,
    size_t extra)
{
    size_t  i, freed_hits;

    freed_hits = 0;
    for (i = from; i < hits; i++) {
        freed_hits += sim_kv_is_free(pod->kv,
                                     sim_kv_lookup(pod->kv, r->hashes[i]));
    }

    if (extra + freed_hits > sim_kv_num_free(pod->kv)
        || sim_grow((void **) &r->blocks, &r->cap_blocks, hits + extra,
                    sizeof(int32_t)) != 0)
    {
        return -1;
    }

    for (i = from; i < hits; i++) {
        r->blocks[i] = sim_kv_lookup(pod->kv, r->hashes[i]);
        sim_kv_touch(pod->kv, r->blocks[i]);
    }

    r->n_blocks = hits;
    r->n_cached_blocks = hits;
    r->num_computed = hits * pod->cf->block_size;
    return 0;
}


/*
 * Starts pulling the remote blocks r lacks: vLLM allocates them at once
 * and the transfer runs beside the batches; the tokens are counted as the
 * connector's (external) prefix-cache hits.
 */
static int
sim_pull_start(sim_pod_t *pod, sim_req_t *r, size_t hits, int64_t now)
{
    const sim_config_t  *cf = pod->cf;
    size_t               bs = (size_t) cf->block_size, nload, i;
    double               secs;

    nload = r->remote_blocks - hits;
    if (sim_take_hits(pod, r, 0, hits, nload) != 0) {
        return -1;
    }

    for (i = hits; i < r->remote_blocks; i++) {
        r->blocks[r->n_blocks++] = sim_kv_alloc(pod->kv);
    }
    r->num_computed = r->remote_blocks * bs;

    r->counted = 1;
    r->cached_prompt = r->num_computed;     /* local and remote, as vLLM */
    pod->stats.prefix_queries += r->n_tokens;
    pod->stats.prefix_hits += hits * bs;
    pod->stats.external_queries += r->n_tokens;
    pod->stats.external_hits += nload * bs;

    r->pull_bytes = (uint64_t) (nload * bs * cf->kv_bytes_per_token);
    secs = sim_engine_transfer_s((double) r->pull_bytes, cf->kv_transfer_gbps);
    r->load_end_ns = now + (int64_t) (secs * 1e9 / cf->time_scale);
    if (pod->eng.pull_due_ns == 0 || r->load_end_ns < pod->eng.pull_due_ns) {
        pod->eng.pull_due_ns = r->load_end_ns;
    }

    sim_q_remove(&pod->eng.waiting, r);
    r->state = SIM_REQ_LOADING;
    sim_q_push_back(&pod->eng.loading, r);
    return 0;
}


void
sim_engine_pulls(sim_pod_t *pod, int64_t now)
{
    sim_engine_t  *eng = &pod->eng;
    sim_req_t     *r, *next;
    int64_t        due = 0;
    int            done = 0;
    double         secs;

    for (r = eng->loading.head; r; r = next) {
        next = r->next;

        if (r->load_end_ns > now) {
            if (due == 0 || r->load_end_ns < due) {
                due = r->load_end_ns;
            }
            continue;
        }

        /* the blocks arrived: cached (BlockStored) as vLLM does then */
        sim_q_remove(&eng->loading, r);
        sim_cache_full_blocks(pod, r, r->num_computed);
        secs = sim_engine_transfer_s((double) r->pull_bytes,
                                 pod->cf->kv_transfer_gbps);
        pod->stats.kv_pulls++;
        pod->stats.kv_pull_bytes += r->pull_bytes;
        sim_hist_observe(&pod->stats.xfer_time, secs);
        sim_hist_observe(&pod->stats.xfer_bytes, (double) r->pull_bytes);

        r->state = SIM_REQ_WAITING;
        sim_q_push_front(&eng->waiting, r);
        done = 1;
    }

    eng->pull_due_ns = due;

    if (done) {
        sim_engine_kick(pod);
    }
}


/*
 * The step's cost.  Linear: the fitted coefficients.  Physical: a step
 * streams the weights once and the KV of every scheduled request's context
 * (plus the new tokens' KV) from HBM, and computes 2 x params FLOPs per
 * token plus 4 x attn_dim per attention pair, on tp GPUs; it takes the
 * longer of the two at their achieved rates, plus a fixed overhead
 * (scheduling, sampling, TP all-reduce latency).
 */
double
sim_step_cost_us(const sim_config_t *cf, const sim_step_load_t *ld,
    double *mem_us, double *compute_us)
{
    double  tokens, bytes, flops, mem, comp;

    if (mem_us) {
        *mem_us = 0;
    }
    if (compute_us) {
        *compute_us = 0;
    }

    if (cf->step_model != SIM_STEP_PHYSICAL) {
        return cf->step_base_us + cf->prefill_us_per_token * ld->prefill_tokens
               + cf->decode_us_per_seq * ld->decode_seqs
               + cf->ctx_ns_per_token * ld->ctx_tokens / 1000.0;
    }

    tokens = (double) ld->prefill_tokens + (double) ld->decode_seqs;
    bytes = cf->weight_bytes
            + cf->kv_bytes_per_token * ((double) ld->ctx_tokens + tokens);
    flops = 2.0 * cf->params * tokens + 4.0 * cf->attn_dim * ld->attn_pairs;

    mem = bytes / (cf->tp * cf->hbm_tbps * 1e12 * cf->mem_eff) * 1e6;
    comp = flops / (cf->tp * cf->peak_tflops * 1e12 * cf->mfu) * 1e6;

    if (mem_us) {
        *mem_us = mem;
    }
    if (compute_us) {
        *compute_us = comp;
    }

    return (mem > comp ? mem : comp) + cf->overhead_us;
}



/* n new tokens after c computed ones: token i attends to c + i + 1 */
static double
sim_attn_pairs(size_t c, size_t n)
{
    return (double) n * (double) c + (double) n * (double) (n + 1) / 2.0;
}


static void
sim_schedule(sim_pod_t *pod, int64_t now)
{
    sim_engine_t  *eng = &pod->eng;
    sim_req_t     *r, *next, *victim;
    size_t         bs = (size_t) pod->cf->block_size;
    size_t         hits, held, need, n, nblk, i;
    long           budget, prefill, decode, ctx;
    int            preempted, self;
    double         us, pairs;
    sim_step_load_t  ld;

    budget = pod->cf->max_batched_tokens;
    prefill = decode = ctx = 0;
    pairs = 0;
    preempted = 0;
    eng->n_step = 0;

    for (r = eng->running.head; r && budget > 0; r = next) {
        next = r->next;
        need = r->n_tokens - r->num_computed;
        n = need < (size_t) budget ? need : (size_t) budget;
        if (n == 0) {
            continue;
        }

        self = 0;
        while (sim_req_alloc(pod, r, r->num_computed + n) != 0) {
            victim = eng->running.tail;
            preempted = 1;
            if (victim == r) {
                self = 1;
            }
            if (victim == next) {
                next = NULL;
            }
            sim_preempt(pod, victim);
            if (self) {
                break;
            }
        }

        if (self) {
            break;
        }

        r->scheduled = (int) n;
        r->in_step = 1;
        eng->step[eng->n_step++] = r;
        budget -= (long) n;
        ctx += (long) r->num_computed;
        pairs += sim_attn_pairs(r->num_computed, n);
        if (r->num_computed < r->n_prompt) {
            prefill += (long) n;
        } else {
            decode++;
        }
    }

    while (!preempted && budget > 0 && eng->waiting.head
           && eng->running.n < pod->cf->max_num_seqs)
    {
        r = eng->waiting.head;

        /* blocks a pull filled are held already; else the cached prefix */
        held = r->n_blocks;
        hits = held ? held : sim_prefix_hits(pod, r);

        if (!held && r->remote_blocks > hits) {
            if (sim_pull_start(pod, r, hits, now) != 0) {
                break;
            }
            continue;
        }

        /* blocks this chunk needs */
        need = r->n_tokens - hits * bs;
        n = need < (size_t) budget ? need : (size_t) budget;
        nblk = (hits * bs + n + bs - 1) / bs - hits;

        if (sim_take_hits(pod, r, held, hits, nblk) != 0) {
            break;
        }

        if (!r->counted) {
            r->counted = 1;
            r->cached_prompt = hits * bs;
            pod->stats.prefix_queries += r->n_tokens;
            pod->stats.prefix_hits += hits * bs;
            if (pod->role != SIM_ROLE_BOTH) {
                pod->stats.external_queries += r->n_tokens;
            }
        }

        if (sim_req_alloc(pod, r, r->num_computed + n) != 0) {
            /* cannot happen after the check above */
            sim_req_release_blocks(pod, r);
            r->num_computed = 0;
            break;
        }

        sim_q_remove(&eng->waiting, r);
        r->state = SIM_REQ_RUNNING;
        sim_q_push_back(&eng->running, r);

        r->scheduled = (int) n;
        r->in_step = 1;
        eng->step[eng->n_step++] = r;
        budget -= (long) n;
        ctx += (long) r->num_computed;
        pairs += sim_attn_pairs(r->num_computed, n);
        prefill += (long) n;
    }

    for (i = 0; i < (size_t) eng->n_step; i++) {
        r = eng->step[i];
        sim_cache_full_blocks(pod, r, r->num_computed + (size_t) r->scheduled);
    }

    sim_pub_flush(pod->pub, sim_wall_time());

    if (eng->n_step == 0) {
        eng->busy = 0;
        return;
    }

    ld.prefill_tokens = prefill;
    ld.decode_seqs = decode;
    ld.ctx_tokens = ctx;
    ld.attn_pairs = pairs;
    us = sim_step_cost_us(pod->cf, &ld, NULL, NULL);
    eng->busy = 1;
    eng->steps++;
    eng->model_us += us;
    eng->step_end_ns = now + (int64_t) (us * 1000.0 / pod->cf->time_scale);
}


static void
sim_finish(sim_pod_t *pod, sim_req_t *r, int64_t now)
{
    double  scale = pod->cf->time_scale;

    sim_q_remove(&pod->eng.running, r);
    sim_req_release_blocks(pod, r);
    r->state = SIM_REQ_DONE;

    if (!r->aborted) {
        sim_hist_observe(&pod->stats.e2e,
                         (double) (now - r->arrival_ns) * scale / 1e9);
        pod->stats.prompt_tokens += r->n_prompt;
        if (strcmp(r->finish_reason, "stop") == 0) {
            pod->stats.success_stop++;
        } else {
            pod->stats.success_length++;
        }
    }

    sim_req_free(r);
}


static void
sim_step_done(sim_pod_t *pod, int64_t now)
{
    sim_engine_t  *eng = &pod->eng;
    sim_req_t     *r;
    const char    *text;
    size_t         len;
    uint32_t       id;
    double         scale = pod->cf->time_scale;
    int            i, last;

    for (i = 0; i < eng->n_step; i++) {
        r = eng->step[i];
        r->in_step = 0;
        r->num_computed += (size_t) r->scheduled;
        r->scheduled = 0;

        if (r->aborted) {
            sim_finish(pod, r, now);
            continue;
        }

        if (r->num_computed < r->n_tokens) {
            continue;                   /* a prefill chunk */
        }

        /* the step sampled one token */
        if (sim_grow((void **) &r->tokens, &r->cap_tokens, r->n_tokens + 1,
                     sizeof(uint32_t)) != 0)
        {
            r->aborted = 1;
            sim_finish(pod, r, now);
            continue;
        }

        id = sim_tok_output(r->n_output, &text, &len);
        r->tokens[r->n_tokens++] = id;
        r->n_output++;
        pod->stats.generation_tokens++;

        if (r->n_output == 1) {
            r->first_token_ns = now;
            sim_hist_observe(&pod->stats.ttft,
                             (double) (now - r->arrival_ns) * scale / 1e9);
        } else {
            sim_hist_observe(&pod->stats.itl,
                             (double) (now - r->last_token_ns) * scale / 1e9);
        }
        r->last_token_ns = now;

        last = r->n_output >= (size_t) r->max_tokens;
        r->on_token(r, id, text, len, last);

        if (last) {
            sim_finish(pod, r, now);
        }
    }

    eng->n_step = 0;
    eng->busy = 0;
}


static int64_t
sim_cpu_ns(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return 0;
    }
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


void
sim_engine_tick(sim_pod_t *pod, int64_t now)
{
    sim_engine_t  *eng = &pod->eng;
    size_t         cap;
    int64_t        lag, cpu;

    cpu = sim_cpu_ns();

    if (eng->busy) {
        if (now < eng->step_end_ns) {
            return;
        }

        /*
         * A loop that comes late (a busy CPU) does not stretch simulated
         * time: the step ended at its deadline, and the next one starts
         * there, up to --max-lag-ms of wall time behind; the steps due
         * meanwhile then follow back to back.  Beyond it (a stopped
         * process) the wall clock wins: the time is lost to the pod.
         */
        lag = now - eng->step_end_ns;
        if (lag > 0) {
            eng->late_steps++;
            eng->lag_sum_ns += lag;
            if (lag > eng->lag_max_ns) {
                eng->lag_max_ns = lag;
            }
        }
        if (lag < pod->cf->max_lag_ms * 1000000LL) {
            now = eng->step_end_ns;
        } else {
            eng->lost_ns += lag;
        }
        sim_step_done(pod, now);
    }

    if (eng->running.n == 0 && eng->waiting.n == 0) {
        eng->cpu_ns += sim_cpu_ns() - cpu;
        return;
    }

    cap = (size_t) (eng->running.n + eng->waiting.n);
    if (eng->step == NULL || cap > (size_t) eng->step_cap) {
        free(eng->step);
        eng->step_cap = (int) (cap * 2);
        eng->step = malloc(sizeof(sim_req_t *) * (size_t) eng->step_cap);
        if (eng->step == NULL) {
            eng->step_cap = 0;
            return;
        }
    }

    sim_schedule(pod, now);
    eng->cpu_ns += sim_cpu_ns() - cpu;
}


void
sim_engine_kick(sim_pod_t *pod)
{
    if (!pod->eng.busy) {
        sim_engine_tick(pod, sim_now_ns());
    }
}


void
sim_engine_abort(sim_pod_t *pod, sim_req_t *r)
{
    r->conn = NULL;
    r->aborted = 1;

    if (r->in_step) {
        return;                         /* ends with its step */
    }

    switch (r->state) {
    case SIM_REQ_SIDECAR:
        return;                         /* freed when its prefill leg ends */
    case SIM_REQ_WAITING:
        sim_q_remove(&pod->eng.waiting, r);
        break;
    case SIM_REQ_LOADING:
        sim_q_remove(&pod->eng.loading, r);
        break;
    case SIM_REQ_ARRIVING:
        sim_q_remove(&pod->eng.arriving, r);
        break;
    default:
        sim_finish(pod, r, sim_now_ns());
        return;
    }

    sim_req_release_blocks(pod, r);
    sim_req_free(r);
}


void
sim_engine_clear(sim_pod_t *pod)
{
    sim_engine_t  *eng = &pod->eng;
    sim_req_t     *r;

    while ((r = eng->waiting.head) != NULL) {
        sim_q_remove(&eng->waiting, r);
        sim_req_release_blocks(pod, r);
        sim_req_free(r);
    }

    while ((r = eng->running.head) != NULL) {
        sim_q_remove(&eng->running, r);
        sim_req_release_blocks(pod, r);
        sim_req_free(r);
    }

    while ((r = eng->loading.head) != NULL) {
        sim_q_remove(&eng->loading, r);
        sim_req_release_blocks(pod, r);
        sim_req_free(r);
    }

    while ((r = eng->arriving.head) != NULL) {
        sim_q_remove(&eng->arriving, r);
        sim_req_free(r);
    }

    eng->n_step = 0;
    eng->busy = 0;
}
