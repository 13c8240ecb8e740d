/* sql-kernel.c - the dense group-aggregate kernel on the CPU: filter and
 * aggregate fused in one pass over the columns, on all cores.
 *
 * DESIGN: the rows are cut into T contiguous ranges (T = pool size, fewer
 * for small tables); task t aggregates its range into its own partial
 * state (one slot per group and aggregate), so no two threads write the
 * same memory. The caller then merges the partials in task order, which is
 * row order: MIN/MAX keep the first of equal values as SQLite does, and
 * integer sums keep their positive and negative parts apart so that an
 * overflow of either (the only way a running sum can leave int64 in some
 * order) is detected and handed to SQLite. Real sums are Neumaier-
 * compensated within and across tasks. Many groups take the radix-
 * partitioned path instead (below). */
#include "sql-impl.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const kernel_job *j;
    int ntasks;
    int by_group;       /* tasks own group ranges and scan every row */
    int64_t **rows;     /* per task [G] */
    kslot **st;         /* per task [G * A] */
    int *overflow;
} kctx;

static inline double bits_d(int64_t v) { double d; memcpy(&d, &v, 8); return d; }
static inline int64_t d_bits(double d) { int64_t v; memcpy(&v, &d, 8); return v; }

static inline int pred_ok(const kernel_job *j, int64_t r)
{
    for (int q = 0; q < j->npreds; q++) {
        if (j->pred_type[q][r] == SV_NULL)
            return 0;
        const kpred *p = &j->preds[q];
        int c;
        if (p->is_real) {
            double v = bits_d(j->pred_val[q][r]);
            c = v < p->rval ? -1 : v > p->rval;
        } else {
            int64_t v = j->pred_val[q][r];
            c = v < p->ival ? -1 : v > p->ival;
        }
        int ok;
        switch (p->op) {
        case OP_EQ: ok = c == 0; break;
        case OP_NE: ok = c != 0; break;
        case OP_LT: ok = c < 0; break;
        case OP_LE: ok = c <= 0; break;
        case OP_GT: ok = c > 0; break;
        default: ok = c >= 0; break;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static inline void neumaier(int64_t *sum_bits, int64_t *comp_bits, double x)
{
    double s = bits_d(*sum_bits), c = bits_d(*comp_bits);
    double t = s + x;
    if (fabs(s) >= fabs(x))
        c += (s - t) + x;
    else
        c += (x - t) + s;
    *sum_bits = d_bits(t);
    *comp_bits = d_bits(c);
}

/* Adds `n` rows to the slots: gid[i] < 0 skips a row. Values come from the
 * columns at row `base` (vals NULL), or from partition buffers: vals/types
 * hold, per aggregate a, `stride` entries starting at a * stride. Returns
 * nonzero when an integer part overflowed. */
static int agg_chunk(const kernel_job *j, const int64_t *gid, int64_t n, int64_t base,
                     const int64_t *vals, const uint8_t *types, int64_t stride, int64_t *rows,
                     kslot *st, int may_skip)
{
    const int A = j->naggs;
    int ovf = 0;
    if (may_skip) {
        for (int64_t i = 0; i < n; i++)
            if (gid[i] >= 0)
                rows[gid[i]]++;
    } else {
        for (int64_t i = 0; i < n; i++)
            rows[gid[i]]++;
    }
    for (int a = 0; a < A; a++) {
        int fn = j->agg_fn[a];
        if (fn == A_COUNT_STAR)
            continue;
        const int64_t *vv = vals ? vals + a * stride : j->agg_val[a] + base;
        const uint8_t *vt = types ? types + a * stride : j->agg_type[a] + base;
        kslot *S = st + a;
        int sum = fn == A_SUM || fn == A_TOTAL || fn == A_AVG;
        if (sum && !may_skip && j->agg_nonull[a]) {
            /* the common case: every row counts, no NULL to test */
            if (j->agg_real[a]) {
                for (int64_t i = 0; i < n; i++) {
                    kslot *x = &S[gid[i] * A];
                    x->cnt++;
                    neumaier(&x->a, &x->b, bits_d(vv[i]));
                }
            } else {
                for (int64_t i = 0; i < n; i++) {
                    kslot *x = &S[gid[i] * A];
                    int64_t v = vv[i];
                    x->cnt++;
                    if (v >= 0)
                        ovf |= __builtin_add_overflow(x->a, v, &x->a);
                    else
                        ovf |= __builtin_add_overflow(x->b, v, &x->b);
                }
            }
        } else if (sum && j->agg_real[a]) {
            for (int64_t i = 0; i < n; i++) {
                if (gid[i] < 0 || vt[i] == SV_NULL)
                    continue;
                kslot *x = &S[gid[i] * A];
                x->cnt++;
                neumaier(&x->a, &x->b, bits_d(vv[i]));
            }
        } else if (sum) {
            for (int64_t i = 0; i < n; i++) {
                if (gid[i] < 0 || vt[i] == SV_NULL)
                    continue;
                kslot *x = &S[gid[i] * A];
                int64_t v = vv[i];
                x->cnt++;
                if (v >= 0)
                    ovf |= __builtin_add_overflow(x->a, v, &x->a);
                else
                    ovf |= __builtin_add_overflow(x->b, v, &x->b);
            }
        } else if (fn == A_COUNT) {
            for (int64_t i = 0; i < n; i++)
                if (gid[i] >= 0 && vt[i] != SV_NULL)
                    S[gid[i] * A].cnt++;
        } else if (fn == A_MIN || fn == A_MAX) {
            int want = fn == A_MIN ? -1 : 1, real = j->agg_real[a];
            for (int64_t i = 0; i < n; i++) {
                if (gid[i] < 0 || vt[i] == SV_NULL)
                    continue;
                kslot *x = &S[gid[i] * A];
                int64_t v = vv[i];
                if (x->cnt++ == 0) {
                    x->a = v;
                    continue;
                }
                int c;
                if (real) {
                    double dv = bits_d(v), db = bits_d(x->a);
                    c = dv < db ? -1 : dv > db;
                } else {
                    c = v < x->a ? -1 : v > x->a;
                }
                if (c == want)
                    x->a = v; /* strictly better: the first of equals stays */
            }
        }
    }
    return ovf;
}

/* Group ids of rows [base, base + n): keys, then the fused filter (-1). */
static void chunk_gids(const kernel_job *j, int64_t base, int n, int64_t *gid)
{
    for (int i = 0; i < n; i++)
        gid[i] = 0;
    for (int q = 0; q < j->nkeys; q++) {
        const int64_t *kv = j->key_val[q] + base;
        const uint8_t *kt = j->key_type[q] + base;
        int64_t span = j->key_span[q];
        /* id = value - base + 1 (text codes: base 0), in unsigned
         * arithmetic: base may be INT64_MIN */
        uint64_t off = 1u - (uint64_t)j->key_base[q];
        for (int i = 0; i < n; i++)
            gid[i] = gid[i] * span + (kt[i] == SV_NULL ? 0 : (int64_t)((uint64_t)kv[i] + off));
    }
    if (j->npreds)
        for (int i = 0; i < n; i++)
            if (!pred_ok(j, base + i))
                gid[i] = -1;
}

/* Rows are processed in chunks: group ids for the chunk first (keys, then
 * the fused filter), then one tight loop per aggregate over the chunk. */
#define KCHUNK 1024

static void task_fn(void *arg, int task, int thread)
{
    kctx *k = arg;
    const kernel_job *j = k->j;
    int64_t lo = j->nrows * task / k->ntasks, hi = j->nrows * (task + 1) / k->ntasks;
    int64_t glo = 0, ghi = INT64_MAX;
    if (k->by_group) {
        lo = 0;
        hi = j->nrows;
        glo = j->ngroups * task / k->ntasks;
        ghi = j->ngroups * (task + 1) / k->ntasks;
    }
    int64_t *rows = k->rows[task];
    kslot *st = k->st[task];
    int ovf = 0;
    int64_t gid[KCHUNK];
    for (int64_t base = lo; base < hi; base += KCHUNK) {
        int n = (int)(hi - base < KCHUNK ? hi - base : KCHUNK);
        chunk_gids(j, base, n, gid);
        if (k->by_group)
            for (int i = 0; i < n; i++)
                if (gid[i] < glo || gid[i] >= ghi)
                    gid[i] = -1;
        ovf |= agg_chunk(j, gid, n, base, NULL, NULL, 0, rows, st, j->npreds || k->by_group);
    }
    if (ovf)
        k->overflow[task] = 1;
    (void)thread;
}

static void pool_task_fn(void *arg, int task, int thread) { task_fn(arg, task, thread); }


static __thread struct {
    void *p;
    size_t cap;
} g_scratch[8];

void *elo__sql_scratch(int which, size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (g_scratch[which].cap < bytes) {
        elo_free(g_scratch[which].p);
        g_scratch[which].p = elo_malloc(bytes);
        g_scratch[which].cap = g_scratch[which].p ? bytes : 0;
    }
    return g_scratch[which].p;
}

/* ---- many groups: radix partitioning ------------------------------------
 *
 * With a group table far larger than the caches every row costs a cache
 * miss per aggregate. Instead: pass 1 counts the rows of each partition (a
 * power-of-two range of group ids whose slots fit in ~1 MiB) per task; pass
 * 2 copies each row into its partition as one record, tasks in row order so
 * that each partition keeps row order (MIN/MAX keep the first of equal
 * values); pass 3 aggregates partition by partition, in cache, each task
 * owning whole partitions (disjoint slots, no merge), zeroing its slots
 * just before it fills them.
 *
 * A record is 1 + V words, V the aggregates with an input column: word 0
 * holds the group id (below 2^26) and, from bit 32, one NULL bit per input;
 * then the V input values. One write stream per partition, not one per
 * array, is what keeps pass 2 cheap. */

#define PART_MAX_VALS 32

typedef struct {
    const kernel_job *j;
    kernel_out *o;
    int T, P;
    int shift;            /* the partition of group id g is g >> shift */
    int nvals;            /* V: aggregates with an input column */
    int val_agg[PART_MAX_VALS];  /* their aggregate indexes */
    int words;            /* words per record: 1 + V */
    int sums_only;        /* every aggregate COUNT(*) or a sum without NULLs */
    int64_t *hist;        /* [T][P] rows, then write cursors (records) */
    int64_t *pstart;      /* [P + 1] first record of each partition */
    int64_t *rec;         /* the records, partition by partition */
    int phase;
    int ovf[256];
} pctx;

/* Copies rows [base, base + n) with group ids gid into their partitions. */
static void part_scatter(pctx *c, int64_t base, int n, const int64_t *gid, int64_t *cursor)
{
    const kernel_job *j = c->j;
    const int V = c->nvals, W = c->words, shift = c->shift;
    const int64_t *val[PART_MAX_VALS];
    const uint8_t *type[PART_MAX_VALS];
    int nullable = 0;
    for (int v = 0; v < V; v++) {
        int a = c->val_agg[v];
        val[v] = j->agg_val[a] + base;
        type[v] = j->agg_nonull[a] ? NULL : j->agg_type[a] + base;
        nullable |= !j->agg_nonull[a];
    }
    int64_t *rec = c->rec;
    for (int i = 0; i < n; i++) {
        if (gid[i] < 0)
            continue;
        int64_t *r = rec + cursor[gid[i] >> shift]++ * W;
        uint64_t nulls = 0;
        for (int v = 0; v < V; v++)
            r[1 + v] = val[v][i];
        if (nullable)
            for (int v = 0; v < V; v++)
                if (type[v] && type[v][i] == SV_NULL)
                    nulls |= (uint64_t)1 << v;
        r[0] = (int64_t)((uint64_t)gid[i] | nulls << 32);
    }
}

/* The common case, every aggregate COUNT(*) or a sum over a column without
 * NULLs: the n records at r accumulate into a compact table, per group its
 * row count then two words per input (Neumaier sum and compensation, or
 * the positive and negative integer parts), so that a record touches one
 * cache line; the table then fills the slots of groups [g0, g1) in order.
 * An integer input whose |values| * rows stays below 2^53 keeps its whole
 * sum in the first word: no partial sum can then overflow or reach 2^53.
 * Returns nonzero when an integer part overflowed, -1 when out of memory. */
static int part_sums(const pctx *c, int64_t g0, int64_t g1, const int64_t *r, int64_t n)
{
    const kernel_job *j = c->j;
    const int A = j->naggs, V = c->nvals, W = c->words, S = 1 + 2 * V;
    enum { SUM_REAL, SUM_INT_PARTS, SUM_INT_SMALL };
    int agg[PART_MAX_VALS], how[PART_MAX_VALS];
    for (int v = 0; v < V; v++) {
        int a = agg[v] = c->val_agg[v];
        how[v] = j->agg_real[a] ? SUM_REAL
                 : j->agg_absmax[a] < ((int64_t)1 << 53) / (j->nrows + 1) ? SUM_INT_SMALL
                                                                          : SUM_INT_PARTS;
    }
    int64_t *acc = elo__sql_scratch(5, sizeof(int64_t) * (size_t)((g1 - g0) * S));
    if (!acc)
        return -1;
    memset(acc, 0, sizeof(int64_t) * (size_t)((g1 - g0) * S));
    int ovf = 0;
    for (int64_t i = 0; i < n; i++, r += W) {
        int64_t *x = acc + ((int64_t)(uint32_t)r[0] - g0) * S;
        x[0]++;
        for (int v = 0; v < V; v++) {
            int64_t val = r[1 + v], *part = x + 1 + 2 * v;
            if (how[v] == SUM_REAL)
                neumaier(&part[0], &part[1], bits_d(val));
            else if (how[v] == SUM_INT_SMALL)
                part[0] += val;
            else
                ovf |= __builtin_add_overflow(part[val < 0], val, &part[val < 0]);
        }
    }
    for (int64_t g = g0; g < g1; g++) {
        const int64_t *x = acc + (g - g0) * S;
        kslot *y = c->o->st + g * A;
        c->o->rows[g] = x[0];
        memset(y, 0, sizeof(kslot) * (size_t)A);
        for (int v = 0; v < V; v++) {
            kslot *z = &y[agg[v]];
            z->a = x[1 + 2 * v];
            z->b = x[2 + 2 * v];
            z->cnt = x[0];
        }
    }
    return ovf;
}

/* Aggregates the records of partition p into its slots, zeroed here (in
 * cache, just before use). */
static int part_aggregate(pctx *c, int p)
{
    const kernel_job *j = c->j;
    const int A = j->naggs, V = c->nvals, W = c->words;
    kernel_out *o = c->o;
    int64_t g0 = (int64_t)p << c->shift, g1 = ELO_MIN(g0 + ((int64_t)1 << c->shift), j->ngroups);
    if (c->sums_only)
        return part_sums(c, g0, g1, c->rec + c->pstart[p] * W, c->pstart[p + 1] - c->pstart[p]);
    memset(o->rows + g0, 0, sizeof(int64_t) * (size_t)(g1 - g0));
    memset(o->st + g0 * A, 0, sizeof(kslot) * (size_t)((g1 - g0) * A));
    /* records are unpacked a chunk at a time into agg_chunk's layout:
     * per aggregate a, values at a * KCHUNK (thread-local scratch) */
    int64_t *gid = elo__sql_scratch(6, sizeof(int64_t) * KCHUNK * (size_t)(1 + A));
    uint8_t *types = elo__sql_scratch(7, KCHUNK * (size_t)A);
    if (!gid || !types)
        return -1;
    int64_t *vals = gid + KCHUNK;
    int ovf = 0;
    for (int64_t s = c->pstart[p]; s < c->pstart[p + 1]; s += KCHUNK) {
        int n = (int)ELO_MIN(c->pstart[p + 1] - s, (int64_t)KCHUNK);
        const int64_t *r = c->rec + s * W;
        for (int i = 0; i < n; i++)
            gid[i] = (int64_t)(uint32_t)r[i * W];
        for (int v = 0; v < V; v++) {
            int a = c->val_agg[v];
            int64_t *dv = vals + a * KCHUNK;
            uint8_t *dt = types + a * KCHUNK;
            for (int i = 0; i < n; i++)
                dv[i] = r[i * W + 1 + v];
            /* agg_chunk only tells NULL from not NULL */
            for (int i = 0; i < n; i++)
                dt[i] = (uint8_t)((uint64_t)r[i * W] >> (32 + v) & 1 ? SV_NULL : SV_INT);
        }
        ovf |= agg_chunk(j, gid, n, 0, vals, types, KCHUNK, o->rows, o->st, 0);
    }
    return ovf;
}

static void part_task(pctx *c, int t)
{
    const kernel_job *j = c->j;
    int64_t lo = j->nrows * t / c->T, hi = j->nrows * (t + 1) / c->T;
    int64_t gid[KCHUNK];
    int64_t *h = c->hist + (int64_t)t * c->P;
    if (c->phase == 1 || c->phase == 2) {
        for (int64_t base = lo; base < hi; base += KCHUNK) {
            int n = (int)(hi - base < KCHUNK ? hi - base : KCHUNK);
            chunk_gids(j, base, n, gid);
            if (c->phase == 2) {
                part_scatter(c, base, n, gid, h);
                continue;
            }
            for (int i = 0; i < n; i++)
                if (gid[i] >= 0)
                    h[gid[i] >> c->shift]++;
        }
        return;
    }
    /* phase 3: partitions t, t + T, ... */
    for (int p = t; p < c->P; p += c->T)
        c->ovf[t] |= part_aggregate(c, p);
}

static void pool_part_task(void *arg, int task, int thread)
{
    (void)thread;
    part_task(arg, task);
}

/* The tasks are independent: they run on the process thread pool (whose
 * workers keep their thread-local scratch between queries). */
static void part_run(pctx *c) { elo_pool_run(elo_pool_global(), pool_part_task, c, c->T); }

/* ELO_OK, or ELO_NOMEM when the buffers do not fit or the job has more
 * inputs than a record holds NULL bits for (the caller then runs the
 * unpartitioned kernel). */
static int kernel_partitioned(const kernel_job *j, kernel_out *o, int T)
{
    const int A = j->naggs;
    pctx c;
    memset(&c, 0, sizeof c);
    c.j = j;
    c.o = o;
    c.T = T;
    for (int a = 0; a < A; a++) {
        if (!j->agg_val[a])
            continue;
        if (c.nvals == PART_MAX_VALS)
            return ELO_NOMEM;
        c.val_agg[c.nvals++] = a;
    }
    c.words = 1 + c.nvals;
    c.sums_only = 1;
    for (int a = 0; a < A; a++) {
        int fn = j->agg_fn[a];
        if (fn != A_COUNT_STAR && !((fn == A_SUM || fn == A_TOTAL || fn == A_AVG) && j->agg_nonull[a]))
            c.sums_only = 0;
    }
    /* the widest power of two of groups whose slots fit in ~1 MiB */
    int64_t per_group = 8 + (int64_t)sizeof(kslot) * A;
    int64_t gpp = ((int64_t)1 << 20) / per_group;
    if (gpp < 1024)
        gpp = 1024;
    while (((int64_t)2 << c.shift) <= gpp)
        c.shift++;
    /* pass 2 writes one stream per partition: past ~64 streams the
     * hardware prefetchers lose track and every record store misses, so
     * partitions grow (up to ~2 MiB of slots, L2-sized) to stay below */
    while (((j->ngroups - 1) >> c.shift) + 1 > 64 && (per_group << (c.shift + 1)) <= ((int64_t)2 << 20))
        c.shift++;
    const char *gp = getenv("ELOHIM_SQL_PART_GROUPS");
    if (gp && atoll(gp) > 0)
        for (c.shift = 0; ((int64_t)2 << c.shift) <= atoll(gp); c.shift++)
            ;
    int64_t P = ((j->ngroups - 1) >> c.shift) + 1;
    if (P > 65536)
        return ELO_NOMEM;
    c.P = (int)P;
    c.hist = elo_calloc((size_t)(T * P), sizeof(int64_t));
    c.pstart = elo_calloc((size_t)P + 1, sizeof(int64_t));
    if (!c.hist || !c.pstart)
        goto nomem;
    double t0 = elo_time_sec();
    c.phase = 1;
    part_run(&c);
    double t1 = elo_time_sec();
    /* cursors: partition by partition, tasks in row order inside each */
    int64_t at = 0;
    for (int p = 0; p < c.P; p++) {
        c.pstart[p] = at;
        for (int t = 0; t < T; t++) {
            int64_t n = c.hist[(int64_t)t * P + p];
            c.hist[(int64_t)t * P + p] = at;
            at += n;
        }
    }
    c.pstart[P] = at;
    c.rec = elo__sql_scratch(2, sizeof(int64_t) * (size_t)at * (size_t)c.words);
    if (!c.rec)
        goto nomem;
    double t2 = elo_time_sec();
    c.phase = 2;
    part_run(&c);
    double t3 = elo_time_sec();
    c.phase = 3;
    part_run(&c);
    elo_debug("sql: %d tasks, %d partitions of %lld groups: count %.1f ms, copy %.1f ms, "
              "aggregate %.1f ms", T, c.P, (long long)1 << c.shift, (t1 - t0) * 1e3,
              (t3 - t2) * 1e3, (elo_time_sec() - t3) * 1e3);
    for (int t = 0; t < T; t++) {
        if (c.ovf[t] < 0)
            goto nomem;
        if (c.ovf[t])
            o->overflow = 1;
    }
    elo_free(c.hist);
    elo_free(c.pstart);
    return ELO_OK;
nomem:
    elo_free(c.hist);
    elo_free(c.pstart);
    return ELO_NOMEM;
}

int elo__kernel_cpu(const kernel_job *j, kernel_out *o)
{
    /* As many tasks as the process pool has threads ($ELOHIM_THREADS). */
    int T = elo_pool_size(elo_pool_global());
    /* rows per task and the many-groups threshold can be lowered through
     * the environment so that tests exercise the split paths on small tables */
    const char *tr = getenv("ELOHIM_SQL_TASK_ROWS"), *bg = getenv("ELOHIM_SQL_BYGROUP_MIN");
    int64_t task_rows = tr && atoll(tr) > 0 ? atoll(tr) : 65536;
    int64_t bygroup_min = bg && atoll(bg) > 0 ? atoll(bg) : 65536;
    int64_t want = j->nrows / task_rows + 1;
    if (want < T)
        T = (int)want;
    if (T > 256)
        T = 256;
    const char *pm = getenv("ELOHIM_SQL_PART_MIN");
    int64_t part_min = pm && atoll(pm) > 0 ? atoll(pm) : 65536;
    if (j->ngroups > part_min && kernel_partitioned(j, o, T) == ELO_OK)
        return ELO_OK;
    memset(o->rows, 0, sizeof(int64_t) * (size_t)j->ngroups);
    memset(o->st, 0, sizeof(kslot) * (size_t)(j->ngroups * j->naggs));
    /* partial states cost G per task: keep them modest */
    while (T > 1 && j->ngroups * (int64_t)(1 + j->naggs * 3) * 8 * T > ((int64_t)1 << 31))
        T--;
    int64_t G = j->ngroups, A = j->naggs;
    kctx k = {.j = j, .ntasks = T};
    int64_t *rows_p[256];
    kslot *st_p[256];
    int ovf[256] = {0};
    if (T > 256)
        T = k.ntasks = 256;
    /* many groups: per-task copies would cost G slots each and a merge;
     * instead each task owns a range of groups and scans all rows */
    k.by_group = T > 1 && G > bygroup_min;
    k.rows = rows_p;
    k.st = st_p;
    k.overflow = ovf;
    int rc = ELO_OK;
    for (int t = 0; t < T; t++) {
        if (t == 0 || k.by_group) {
            rows_p[t] = o->rows;
            st_p[t] = o->st;
            continue;
        }
        rows_p[t] = elo_calloc((size_t)G, sizeof(int64_t));
        st_p[t] = elo_calloc((size_t)(G * (A ? A : 1)), sizeof(kslot));
        if (!rows_p[t] || !st_p[t]) {
            for (int u = 1; u <= t; u++) {
                elo_free(rows_p[u]);
                elo_free(st_p[u]);
            }
            return ELO_NOMEM;
        }
    }
    elo_pool_run(elo_pool_global(), pool_task_fn, &k, T);
    for (int t = 0; t < T; t++)
        if (ovf[t])
            o->overflow = 1;
    /* merge in task order (row order): the first of equal MIN/MAX stays */
    for (int t = 1; t < T && !k.by_group; t++) {
        kslot *st = st_p[t];
        for (int64_t g = 0; g < G; g++) {
            o->rows[g] += rows_p[t][g];
            for (int a = 0; a < A; a++) {
                kslot *x = &st[g * A + a], *y = &o->st[g * A + a];
                if (!x->cnt)
                    continue;
                int fn = j->agg_fn[a];
                int64_t before = y->cnt;
                y->cnt += x->cnt;
                switch (fn) {
                case A_SUM:
                case A_TOTAL:
                case A_AVG:
                    if (j->agg_real[a]) {
                        neumaier(&y->a, &y->b, bits_d(x->a));
                        y->b = d_bits(bits_d(y->b) + bits_d(x->b));
                    } else if (__builtin_add_overflow(y->a, x->a, &y->a) ||
                               __builtin_add_overflow(y->b, x->b, &y->b)) {
                        o->overflow = 1;
                    }
                    break;
                case A_MIN:
                case A_MAX: {
                    if (!before) {
                        y->a = x->a;
                        break;
                    }
                    int c;
                    if (j->agg_real[a]) {
                        double dv = bits_d(x->a), db = bits_d(y->a);
                        c = dv < db ? -1 : dv > db;
                    } else {
                        c = x->a < y->a ? -1 : x->a > y->a;
                    }
                    if ((fn == A_MIN && c < 0) || (fn == A_MAX && c > 0))
                        y->a = x->a;
                    break;
                }
                default:
                    break;
                }
            }
        }
    }
    for (int t = 1; t < T && !k.by_group; t++) {
        elo_free(rows_p[t]);
        elo_free(st_p[t]);
    }
    return rc;
}

/* ---- the GPU's group table (kwords_layout) --------------------------------
 *
 * The layout is decided here, in C, for sql-cuda.cu to follow, so that the
 * CPU can build the very same table from its own slots
 * (elo__kernel_to_words): with $ELOHIM_SQL_WORDS set, the executor sends
 * the CPU kernel's groups out through the GPU's form, and every CPU test
 * (unit tests, sqllogictest, the differential fuzzer) checks how groups
 * out reads it. */

void elo__sql_words_layout(const kernel_job *j, kwords_layout *l)
{
    memset(l, 0, sizeof *l);
    const int A = j->naggs;
    /* Packing: when aggregate 0 is an integer sum over a narrowed column
     * without NULLs and no group's sum of stored offsets can reach 2^32,
     * that sum rides in the low half of the row counter (one atomic per
     * row instead of two; the sum is offsets + rows * base). */
    if (A > 0 && j->nrows < ((int64_t)1 << 32) && !j->agg_real[0] && !j->agg_type[0] &&
        j->agg_val[0] && j->agg_w[0] > 0 && j->agg_w[0] < 8 &&
        (j->agg_fn[0] == A_SUM || j->agg_fn[0] == A_TOTAL || j->agg_fn[0] == A_AVG)) {
        uint64_t wmax = j->agg_w[0] == 4 ? 0xffffffffull : ((uint64_t)1 << (8 * j->agg_w[0])) - 1;
        uint64_t range = (uint64_t)j->agg_absmax[0] * 2u; /* >= max - min */
        if (range > wmax)
            range = wmax;
        if ((unsigned __int128)range * (uint64_t)j->nrows < ((uint64_t)1 << 32)) {
            l->pack = 1;
            l->pack_base = j->agg_b[0];
        }
    }
    int W = 1;
    l->kind[0] = KW_INT;
    for (int a = 0; a < A; a++) {
        int fn = j->agg_fn[a];
        l->cnt_off[a] = l->val_off[a] = -1;
        if (fn == A_COUNT_STAR)
            continue;
        if (j->agg_type[a]) {
            l->cnt_off[a] = W;
            l->kind[W++] = KW_INT;
        }
        if (a == 0 && l->pack)
            continue;
        if (fn == A_SUM || fn == A_TOTAL || fn == A_AVG) {
            l->val_off[a] = W;
            l->kind[W++] = j->agg_real[a] ? KW_REAL : KW_INT;
        } else if (fn == A_MIN || fn == A_MAX) {
            l->val_off[a] = W;
            l->kind[W++] = fn == A_MIN ? KW_MIN : KW_MAX;
        }
    }
    l->W = W;
}

int elo__kernel_to_words(const kernel_job *dj, kernel_out *o)
{
    kwords_layout *l = &o->lay;
    elo__sql_words_layout(dj, l);
    const int A = dj->naggs, W = l->W;
    int64_t *words = elo__sql_scratch(3, sizeof(int64_t) * (size_t)(dj->ngroups * W));
    if (!words)
        return ELO_NOMEM;
    for (int64_t g = 0; g < dj->ngroups; g++) {
        int64_t *w = words + g * W, rows = o->rows[g];
        const kslot *st = o->st + g * A;
        for (int i = 0; i < W; i++)
            w[i] = l->kind[i] == KW_MIN ? INT64_MAX : l->kind[i] == KW_MAX ? INT64_MIN : 0;
        w[0] = rows;
        if (l->pack) {
            /* offsets = sum - rows * base, below 2^32 by the layout's rule */
            uint64_t off = (uint64_t)st[0].a + (uint64_t)st[0].b -
                           (uint64_t)rows * (uint64_t)l->pack_base;
            assert(off < ((uint64_t)1 << 32));
            w[0] = (int64_t)((uint64_t)rows << 32 | off);
        }
        for (int a = 0; a < A; a++) {
            const kslot *x = &st[a];
            if (l->cnt_off[a] >= 0)
                w[l->cnt_off[a]] = x->cnt;
            int v = l->val_off[a];
            if (v < 0)
                continue;
            switch (l->kind[v]) {
            case KW_INT: w[v] = (int64_t)((uint64_t)x->a + (uint64_t)x->b); break;
            case KW_REAL: {
                double sum = bits_d(x->a), comp = bits_d(x->b);
                w[v] = d_bits(isfinite(sum) ? sum + comp : sum); /* no term left */
                break;
            }
            default:
                if (x->cnt)
                    w[v] = elo__sql_ordered(x->a, dj->agg_real[a]);
                break;
            }
        }
    }
    o->words = words;
    return ELO_OK;
}
