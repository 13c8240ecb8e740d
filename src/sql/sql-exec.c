/* sql-exec.c - the columnar executor: expression evaluation with SQLite's
 * semantics (integer vs real arithmetic, integer division, overflow to
 * real, three-valued logic, NULL propagation), grouping and aggregation,
 * HAVING, DISTINCT, ORDER BY and LIMIT/OFFSET.
 *
 * Two ways through: queries whose keys and aggregates are plain columns of
 * uniform type go to the dense group-aggregate kernel (all CPU cores in
 * sql-kernel.c, or CUDA), whose group slots become result rows on all
 * cores too (groups_to_result); everything else in the subset runs
 * through the row interpreter here, in rowid order, one thread. Whenever
 * a value met at run time needs a rule we do not reproduce (text in
 * arithmetic, text compared with a number, integer SUM overflow, ...),
 * execution stops with ELO_UNSUPPORTED before any row is returned, and
 * SQLite runs the query. */
#include "sql-impl.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sql_table *t;
    int64_t row;
    const sv *keys;
    const sv *aggs;
    const char *why;
} ectx;

#define FAIL(c, msg) ((c)->why = (msg), -1)

static int numeric_aff(int aff) { return aff == AFF_INTEGER || aff == AFF_REAL || aff == AFF_NUMERIC; }

static int expr_aff(const expr *e)
{
    if (e->kind == E_COL || e->kind == E_KEYREF)
        return e->aff;
    if (e->kind == E_CAST)
        return e->op;
    if (e->kind == E_POS)
        return AFF_NONE;
    return AFF_NONE;
}

static int eval(ectx *c, const expr *e, sv *out);

/* Compares under SQLite's affinity rules; 2 for NULL. */
static int cmp_aff(ectx *c, const sv *x, int ax, const sv *y, int ay, int *res)
{
    if (x->t == SV_NULL || y->t == SV_NULL) {
        *res = 2;
        return 0;
    }
    int xt = x->t == SV_TEXT, yt = y->t == SV_TEXT;
    if (xt != yt)
        return FAIL(c, "text compared with a number (affinity conversion)");
    if (xt && (numeric_aff(ax) || numeric_aff(ay)))
        return FAIL(c, "text compared under numeric affinity");
    *res = elo__sv_cmp(x, y);
    return 0;
}

static int truth(ectx *c, const sv *v, int *t)
{
    switch (v->t) {
    case SV_NULL: *t = -1; return 0;
    case SV_INT: *t = v->i != 0; return 0;
    case SV_REAL: *t = v->r != 0.0; return 0;
    default: return FAIL(c, "text used as a truth value");
    }
}

static void set_int(sv *o, int64_t i) { o->t = SV_INT; o->i = i; }
static void set_real(sv *o, double r)
{
    if (isnan(r)) {
        o->t = SV_NULL;
        return;
    }
    o->t = SV_REAL;
    o->r = r;
}
static void set_null(sv *o) { o->t = SV_NULL; }
static void set_bool(sv *o, int b)
{
    if (b < 0)
        set_null(o);
    else
        set_int(o, b);
}

static double as_real(const sv *v) { return v->t == SV_INT ? (double)v->i : v->r; }

static int arith(ectx *c, int op, const sv *x, const sv *y, sv *o)
{
    if (x->t == SV_NULL || y->t == SV_NULL) {
        set_null(o);
        return 0;
    }
    if (x->t == SV_TEXT || y->t == SV_TEXT)
        return FAIL(c, "text in arithmetic");
    if (x->t == SV_INT && y->t == SV_INT) {
        int64_t a = x->i, b = y->i, r;
        switch (op) {
        case OP_ADD:
            if (__builtin_add_overflow(a, b, &r)) set_real(o, (double)a + (double)b);
            else set_int(o, r);
            return 0;
        case OP_SUB:
            if (__builtin_sub_overflow(a, b, &r)) set_real(o, (double)a - (double)b);
            else set_int(o, r);
            return 0;
        case OP_MUL:
            if (__builtin_mul_overflow(a, b, &r)) set_real(o, (double)a * (double)b);
            else set_int(o, r);
            return 0;
        case OP_DIV:
            if (b == 0) set_null(o);
            else if (a == INT64_MIN && b == -1) set_real(o, (double)a / (double)b);
            else set_int(o, a / b);
            return 0;
        case OP_MOD:
            if (b == 0) set_null(o);
            else set_int(o, b == -1 ? 0 : a % b);
            return 0;
        }
    }
    if (op == OP_MOD) {
        int64_t a = x->t == SV_INT ? x->i : elo__sql_d2i(x->r);
        int64_t b = y->t == SV_INT ? y->i : elo__sql_d2i(y->r);
        if (b == 0) {
            set_null(o);
            return 0;
        }
        if (b == -1)
            b = 1;
        set_real(o, (double)(a % b));
        return 0;
    }
    double a = as_real(x), b = as_real(y);
    switch (op) {
    case OP_ADD: set_real(o, a + b); return 0;
    case OP_SUB: set_real(o, a - b); return 0;
    case OP_MUL: set_real(o, a * b); return 0;
    case OP_DIV:
        if (b == 0.0) set_null(o);
        else set_real(o, a / b);
        return 0;
    }
    return FAIL(c, "operator");
}

static int eval_cmp(ectx *c, const expr *e, sv *o)
{
    sv x, y;
    if (eval(c, e->a, &x) < 0 || eval(c, e->b, &y) < 0)
        return -1;
    int r;
    if (cmp_aff(c, &x, expr_aff(e->a), &y, expr_aff(e->b), &r) < 0)
        return -1;
    if (r == 2) {
        set_null(o);
        return 0;
    }
    int b = 0;
    switch (e->op) {
    case OP_EQ: b = r == 0; break;
    case OP_NE: b = r != 0; break;
    case OP_LT: b = r < 0; break;
    case OP_LE: b = r <= 0; break;
    case OP_GT: b = r > 0; break;
    case OP_GE: b = r >= 0; break;
    }
    set_int(o, b);
    return 0;
}

static int eval(ectx *c, const expr *e, sv *o)
{
    switch (e->kind) {
    case E_LIT:
        *o = e->lit;
        return 0;
    case E_COL: {
        const sql_column *col = &c->t->cols[e->col];
        int t = col->type[c->row];
        int64_t v = col->val[c->row];
        o->t = (uint8_t)t;
        if (t == SV_INT) o->i = v;
        else if (t == SV_REAL) memcpy(&o->r, &v, 8);
        else if (t == SV_TEXT) { o->s = col->dict[v]; o->len = col->dict_len[v]; }
        return 0;
    }
    case E_KEYREF: *o = c->keys[e->col]; return 0;
    case E_AGGREF: *o = c->aggs[e->col]; return 0;
    case E_POS: return eval(c, e->a, o);
    case E_NEG: {
        sv x;
        if (eval(c, e->a, &x) < 0)
            return -1;
        if (x.t == SV_NULL) set_null(o);
        else if (x.t == SV_INT) {
            if (x.i == INT64_MIN) set_real(o, 9223372036854775808.0);
            else set_int(o, -x.i);
        } else if (x.t == SV_REAL) {
            /* SQLite negates a real literal, but computes 0 - x otherwise
             * (so -(0.0) is 0.0, not -0.0) */
            set_real(o, e->a->kind == E_LIT ? -x.r : 0.0 - x.r);
        } else return FAIL(c, "text in arithmetic");
        return 0;
    }
    case E_NOT: {
        sv x;
        int t;
        if (eval(c, e->a, &x) < 0 || truth(c, &x, &t) < 0)
            return -1;
        set_bool(o, t < 0 ? -1 : !t);
        return 0;
    }
    case E_BIN: {
        if (e->op == OP_AND || e->op == OP_OR) {
            sv x, y;
            int tx, ty;
            if (eval(c, e->a, &x) < 0 || truth(c, &x, &tx) < 0)
                return -1;
            if (e->op == OP_AND && tx == 0) { set_int(o, 0); return 0; }
            if (e->op == OP_OR && tx == 1) { set_int(o, 1); return 0; }
            if (eval(c, e->b, &y) < 0 || truth(c, &y, &ty) < 0)
                return -1;
            if (e->op == OP_AND) set_bool(o, ty == 0 ? 0 : (tx < 0 || ty < 0) ? -1 : 1);
            else set_bool(o, ty == 1 ? 1 : (tx < 0 || ty < 0) ? -1 : 0);
            return 0;
        }
        if (e->op >= OP_EQ)
            return eval_cmp(c, e, o);
        sv x, y;
        if (eval(c, e->a, &x) < 0 || eval(c, e->b, &y) < 0)
            return -1;
        return arith(c, e->op, &x, &y, o);
    }
    case E_IS:
    case E_ISNOT: {
        sv x, y;
        if (eval(c, e->a, &x) < 0 || eval(c, e->b, &y) < 0)
            return -1;
        int eq;
        if (x.t == SV_NULL || y.t == SV_NULL) eq = x.t == y.t;
        else {
            int r;
            if (cmp_aff(c, &x, expr_aff(e->a), &y, expr_aff(e->b), &r) < 0)
                return -1;
            eq = r == 0;
        }
        set_int(o, e->kind == E_IS ? eq : !eq);
        return 0;
    }
    case E_ISNULL:
    case E_NOTNULL: {
        sv x;
        if (eval(c, e->a, &x) < 0)
            return -1;
        set_int(o, (x.t == SV_NULL) == (e->kind == E_ISNULL));
        return 0;
    }
    case E_BETWEEN: {
        sv x, lo, hi;
        if (eval(c, e->a, &x) < 0 || eval(c, e->b, &lo) < 0 || eval(c, e->c, &hi) < 0)
            return -1;
        int r1, r2, ax = expr_aff(e->a);
        if (cmp_aff(c, &x, ax, &lo, expr_aff(e->b), &r1) < 0 ||
            cmp_aff(c, &x, ax, &hi, expr_aff(e->c), &r2) < 0)
            return -1;
        int t1 = r1 == 2 ? -1 : r1 >= 0, t2 = r2 == 2 ? -1 : r2 <= 0;
        int t = (t1 == 0 || t2 == 0) ? 0 : (t1 < 0 || t2 < 0) ? -1 : 1;
        if (e->negate && t >= 0)
            t = !t;
        set_bool(o, t);
        return 0;
    }
    case E_IN: {
        if (e->nlist == 0) {
            set_int(o, e->negate);
            return 0;
        }
        sv x;
        if (eval(c, e->a, &x) < 0)
            return -1;
        int ax = expr_aff(e->a), saw_null = 0, found = 0;
        for (int i = 0; i < e->nlist && !found; i++) {
            sv y;
            if (eval(c, e->list[i], &y) < 0)
                return -1;
            int r;
            if (cmp_aff(c, &x, ax, &y, ax == AFF_NONE ? expr_aff(e->list[i]) : AFF_NONE, &r) < 0)
                return -1;
            if (r == 2) saw_null = 1;
            else if (r == 0) found = 1;
        }
        int t = found ? 1 : (saw_null || x.t == SV_NULL) ? -1 : 0;
        if (e->negate && t >= 0)
            t = !t;
        set_bool(o, t);
        return 0;
    }
    case E_CASE: {
        sv base;
        if (e->a && eval(c, e->a, &base) < 0)
            return -1;
        for (int i = 0; i + 1 < e->nlist; i += 2) {
            sv w;
            if (eval(c, e->list[i], &w) < 0)
                return -1;
            int hit;
            if (e->a) {
                int r;
                if (cmp_aff(c, &base, expr_aff(e->a), &w, expr_aff(e->list[i]), &r) < 0)
                    return -1;
                hit = r == 0;
            } else {
                int t;
                if (truth(c, &w, &t) < 0)
                    return -1;
                hit = t == 1;
            }
            if (hit)
                return eval(c, e->list[i + 1], o);
        }
        if (e->c)
            return eval(c, e->c, o);
        set_null(o);
        return 0;
    }
    case E_CAST: {
        sv x;
        if (eval(c, e->a, &x) < 0)
            return -1;
        if (x.t == SV_TEXT)
            return FAIL(c, "CAST of text");
        if (x.t == SV_NULL) { set_null(o); return 0; }
        if (e->op == AFF_INTEGER) set_int(o, x.t == SV_INT ? x.i : elo__sql_d2i(x.r));
        else if (e->op == AFF_REAL) set_real(o, as_real(&x));
        else *o = x; /* NUMERIC: numbers stay as they are */
        return 0;
    }
    case E_FUNC: {
        switch (e->op) {
        case F_COALESCE:
        case F_IFNULL:
            for (int i = 0; i < e->nlist; i++) {
                if (eval(c, e->list[i], o) < 0)
                    return -1;
                if (o->t != SV_NULL)
                    return 0;
            }
            return 0;
        case F_NULLIF: {
            sv x, y;
            if (eval(c, e->list[0], &x) < 0 || eval(c, e->list[1], &y) < 0)
                return -1;
            if (x.t != SV_NULL && y.t != SV_NULL && elo__sv_cmp(&x, &y) == 0) set_null(o);
            else *o = x;
            return 0;
        }
        case F_ABS: {
            sv x;
            if (eval(c, e->list[0], &x) < 0)
                return -1;
            if (x.t == SV_NULL) set_null(o);
            else if (x.t == SV_INT) {
                if (x.i == INT64_MIN)
                    return FAIL(c, "abs() integer overflow");
                set_int(o, x.i < 0 ? -x.i : x.i);
            } else if (x.t == SV_REAL) set_real(o, fabs(x.r));
            else return FAIL(c, "abs() of text");
            return 0;
        }
        }
        return FAIL(c, "function");
    }
    default:
        return FAIL(c, "expression outside the subset");
    }
}

/* ---- aggregation (row interpreter) --------------------------------------- */

typedef struct {
    int64_t cnt;
    int64_t isum_so;     /* SQLite's scan-order integer sum */
    __int128 isum;       /* exact integer sum */
    int overflow, approx;
    double rsum, rcomp;  /* reals, Neumaier */
    double isum_d;       /* integers summed as doubles in scan order, as SQLite does */
    double naive;        /* everything summed as SQLite does: infinities and NaN */
    sv best;
    int has_best;
    sv *dv;              /* DISTINCT values */
    int64_t dn, dcap;
} agg_state;

static void neumaier(double *sum, double *comp, double x)
{
    double t = *sum + x;
    if (fabs(*sum) >= fabs(x))
        *comp += (*sum - t) + x;
    else
        *comp += (x - t) + *sum;
    *sum = t;
}

static int agg_step(ectx *c, int fn, agg_state *s, const sv *v)
{
    if (fn == A_COUNT_STAR) {
        s->cnt++;
        return 0;
    }
    if (fn == A_BARE) {
        if (!s->has_best) {
            s->best = *v;
            s->has_best = 1;
        } else if (elo__sv_cmp(&s->best, v) != 0 || s->best.t != v->t) {
            s->overflow = 1; /* the rows of the group disagree */
        }
        return 0;
    }
    if (v->t == SV_NULL)
        return 0;
    switch (fn) {
    case A_COUNT:
        s->cnt++;
        return 0;
    case A_SUM:
    case A_TOTAL:
    case A_AVG:
        if (v->t == SV_TEXT)
            return FAIL(c, "SUM/AVG of text");
        s->cnt++;
        s->naive += v->t == SV_INT ? (double)v->i : v->r;
        if (v->t == SV_INT) {
            s->isum += v->i;
            s->isum_d += (double)v->i;
            if (!s->approx && !s->overflow && __builtin_add_overflow(s->isum_so, v->i, &s->isum_so))
                s->overflow = 1;
        } else {
            s->approx = 1;
            neumaier(&s->rsum, &s->rcomp, v->r);
        }
        return 0;
    case A_MIN:
    case A_MAX:
        s->cnt++;
        if (!s->has_best) {
            s->best = *v;
            s->has_best = 1;
        } else {
            int r = elo__sv_cmp(&s->best, v);
            if ((fn == A_MAX && r < 0) || (fn == A_MIN && r > 0))
                s->best = *v;
        }
        return 0;
    }
    return FAIL(c, "aggregate");
}

static int agg_final(ectx *c, int fn, agg_state *s, sv *o)
{
    switch (fn) {
    case A_COUNT_STAR:
    case A_COUNT:
        set_int(o, s->cnt);
        return 0;
    case A_SUM:
        if (!s->cnt) { set_null(o); return 0; }
        if (s->overflow)
            return FAIL(c, "integer overflow in SUM (SQLite reports it)");
        if (!s->approx) { set_int(o, (int64_t)s->isum); return 0; }
        /* fallthrough */
    case A_TOTAL:
    case A_AVG: {
        if (fn == A_AVG && !s->cnt) { set_null(o); return 0; }
        /* integers only: SQLite's own double sum (exact while |sum| < 2^53,
         * and SQLite's answer beyond); with reals: Neumaier + exact ints */
        double total;
        if (!s->approx) {
            total = s->isum_d;
        } else {
            double sum = s->rsum, comp = s->rcomp;
            if (s->isum != 0) {
                /* the exact integer part as two doubles: high + remainder */
                double hi = (double)s->isum;
                double lo = (double)(s->isum - (__int128)hi);
                neumaier(&sum, &comp, hi);
                neumaier(&sum, &comp, lo);
            }
            /* an infinite sum leaves a NaN compensation: the sum alone is it */
            total = isfinite(s->naive) ? sum + comp : s->naive;
        }
        set_real(o, fn == A_AVG ? total / (double)s->cnt : total);
        return 0;
    }
    case A_MIN:
    case A_MAX:
        if (s->has_best) *o = s->best;
        else set_null(o);
        return 0;
    case A_BARE:
        if (s->overflow)
            return FAIL(c, "bare column whose rows differ within a group (SQLite picks one)");
        if (s->has_best) *o = s->best;
        else set_null(o);
        return 0;
    }
    return FAIL(c, "aggregate");
}

static int sv_cmp_stable(const void *x, const void *y)
{
    const sv *a = x, *b = y;
    return elo__sv_cmp(a, b);
}

static int agg_final_distinct(ectx *c, int fn, agg_state *s, sv *o)
{
    /* equal values are kept once; mixed int/real equal values would make the
     * choice of representative matter, so those go to SQLite */
    if (s->dn > 1)
        qsort(s->dv, (size_t)s->dn, sizeof(sv), sv_cmp_stable);
    agg_state f;
    memset(&f, 0, sizeof f);
    for (int64_t i = 0; i < s->dn; i++) {
        if (i > 0 && elo__sv_cmp(&s->dv[i - 1], &s->dv[i]) == 0) {
            if (s->dv[i - 1].t != s->dv[i].t)
                return FAIL(c, "DISTINCT over equal integer and real values");
            continue;
        }
        if (agg_step(c, fn, &f, &s->dv[i]) < 0)
            return -1;
    }
    return agg_final(c, fn, &f, o);
}

/* ---- groups --------------------------------------------------------------- */

typedef struct {
    int nkeys, naggs;
    int64_t ngroups, cap;
    sv *keys;            /* ngroups * nkeys */
    agg_state *st;       /* ngroups * naggs */
    int64_t *slots;      /* hash table of group indexes (+1), size hcap */
    int64_t hcap;
} group_table;

static uint64_t key_hash(const sv *k, int n)
{
    uint64_t h = 0x12345;
    for (int i = 0; i < n; i++)
        h = (h ^ elo__sv_hash(&k[i])) * 0x100000001b3ull;
    return h ^ (h >> 31);
}

static int grow_groups(group_table *g)
{
    int64_t ncap = g->cap ? g->cap * 2 : 64;
    sv *nk = elo_realloc(g->keys, sizeof(sv) * (size_t)(ncap * (g->nkeys ? g->nkeys : 1)));
    if (!nk)
        return ELO_NOMEM;
    g->keys = nk;
    agg_state *ns = elo_realloc(g->st, sizeof(agg_state) * (size_t)(ncap * (g->naggs ? g->naggs : 1)));
    if (!ns)
        return ELO_NOMEM;
    g->st = ns;
    g->cap = ncap;
    /* rehash */
    elo_free(g->slots);
    g->hcap = ncap * 2;
    g->slots = elo_calloc((size_t)g->hcap, sizeof(int64_t));
    if (!g->slots)
        return ELO_NOMEM;
    for (int64_t i = 0; i < g->ngroups; i++) {
        uint64_t h = key_hash(&g->keys[i * g->nkeys], g->nkeys) & (uint64_t)(g->hcap - 1);
        while (g->slots[h])
            h = (h + 1) & (uint64_t)(g->hcap - 1);
        g->slots[h] = i + 1;
    }
    return ELO_OK;
}

/* Finds or adds the group of key tuple `k`; -1 with c->why on ambiguity. */
static int64_t group_find(ectx *c, group_table *g, const sv *k)
{
    if (g->ngroups == g->cap && grow_groups(g) < 0)
        return FAIL(c, "out of memory grouping");
    uint64_t h = key_hash(k, g->nkeys) & (uint64_t)(g->hcap - 1);
    for (;;) {
        int64_t s = g->slots[h];
        if (!s)
            break;
        const sv *gk = &g->keys[(s - 1) * g->nkeys];
        int eq = 1;
        for (int i = 0; i < g->nkeys && eq; i++)
            eq = elo__sv_cmp(&gk[i], &k[i]) == 0;
        if (eq) {
            for (int i = 0; i < g->nkeys; i++)
                if (gk[i].t != k[i].t)
                    return FAIL(c, "group key equal as integer and real");
            return s - 1;
        }
        h = (h + 1) & (uint64_t)(g->hcap - 1);
    }
    int64_t id = g->ngroups++;
    g->slots[h] = id + 1;
    memcpy(&g->keys[id * g->nkeys], k, sizeof(sv) * (size_t)g->nkeys);
    memset(&g->st[id * g->naggs], 0, sizeof(agg_state) * (size_t)g->naggs);
    return id;
}

static void group_free(group_table *g)
{
    if (g->st)
        for (int64_t i = 0; i < g->ngroups * g->naggs; i++)
            elo_free(g->st[i].dv);
    elo_free(g->keys);
    elo_free(g->st);
    elo_free(g->slots);
}

/* ---- output rows ------------------------------------------------------------ */

typedef struct {
    int width;            /* nout + norder */
    sv *cells;
    int64_t n, cap;
} rowbuf;

static int rowbuf_push(rowbuf *b, const sv *row)
{
    if (b->n == b->cap) {
        int64_t ncap = b->cap ? b->cap * 2 : 256;
        sv *nc = elo_realloc(b->cells, sizeof(sv) * (size_t)(ncap * b->width));
        if (!nc)
            return ELO_NOMEM;
        b->cells = nc;
        b->cap = ncap;
    }
    memcpy(&b->cells[b->n * b->width], row, sizeof(sv) * (size_t)b->width);
    b->n++;
    return ELO_OK;
}

typedef struct {
    const sql_plan *p;
    const rowbuf *b;
} sort_ctx;
static __thread const sort_ctx *g_sort;

static int row_order_cmp(const void *x, const void *y)
{
    int64_t i = *(const int64_t *)x, j = *(const int64_t *)y;
    const sql_plan *p = g_sort->p;
    const sv *ri = &g_sort->b->cells[i * g_sort->b->width + p->nout];
    const sv *rj = &g_sort->b->cells[j * g_sort->b->width + p->nout];
    for (int o = 0; o < p->norder; o++) {
        int r = elo__sv_cmp(&ri[o], &rj[o]);
        if (r)
            return p->desc[o] ? -r : r;
    }
    return i < j ? -1 : i > j;
}

/* Evaluates outputs (+ order keys) for the current context and appends. */
static int emit(ectx *c, const sql_plan *p, rowbuf *b, sv *scratch)
{
    for (int i = 0; i < p->nout; i++)
        if (eval(c, p->out[i], &scratch[i]) < 0)
            return -1;
    for (int o = 0; o < p->norder; o++)
        if (eval(c, p->order[o], &scratch[p->nout + o]) < 0)
            return -1;
    if (rowbuf_push(b, scratch) < 0)
        return FAIL(c, "out of memory");
    return 0;
}

static int finish_rows(ectx *c, const sql_plan *p, rowbuf *b, elo_sql_result *res)
{
    int64_t *idx = elo_malloc(sizeof(int64_t) * (size_t)(b->n ? b->n : 1));
    if (!idx)
        return FAIL(c, "out of memory");
    int64_t n = 0;
    if (p->s->distinct) {
        /* keep the first of equal rows (over the result columns) */
        int64_t hcap = 16;
        while (hcap < b->n * 2)
            hcap *= 2;
        int64_t *slots = elo_calloc((size_t)hcap, sizeof(int64_t));
        if (!slots) {
            elo_free(idx);
            return FAIL(c, "out of memory");
        }
        for (int64_t i = 0; i < b->n; i++) {
            const sv *r = &b->cells[i * b->width];
            uint64_t h = key_hash(r, p->nout) & (uint64_t)(hcap - 1);
            int dup = 0;
            while (slots[h]) {
                const sv *q = &b->cells[(slots[h] - 1) * b->width];
                int eq = 1;
                for (int k = 0; k < p->nout && eq; k++)
                    eq = elo__sv_cmp(&q[k], &r[k]) == 0;
                if (eq) {
                    for (int k = 0; k < p->nout; k++)
                        if (q[k].t != r[k].t) {
                            elo_free(slots);
                            elo_free(idx);
                            return FAIL(c, "DISTINCT over equal integer and real values");
                        }
                    dup = 1;
                    break;
                }
                h = (h + 1) & (uint64_t)(hcap - 1);
            }
            if (!dup) {
                slots[h] = i + 1;
                idx[n++] = i;
            }
        }
        elo_free(slots);
    } else {
        for (int64_t i = 0; i < b->n; i++)
            idx[n++] = i;
    }
    if (p->norder) {
        sort_ctx sc = {p, b};
        g_sort = &sc;
        qsort(idx, (size_t)n, sizeof(int64_t), row_order_cmp);
        g_sort = NULL;
        /* rows tied on every ORDER BY term but different in what they show
         * come out in SQLite's sorter order, which we do not reproduce */
        for (int64_t i = 1; i < n; i++) {
            const sv *x = &b->cells[idx[i - 1] * b->width], *y = &b->cells[idx[i] * b->width];
            int tied = 1;
            for (int o = 0; o < p->norder && tied; o++)
                tied = elo__sv_cmp(&x[p->nout + o], &y[p->nout + o]) == 0;
            if (!tied)
                continue;
            for (int k = 0; k < p->nout; k++)
                if (elo__sv_cmp(&x[k], &y[k]) != 0 || x[k].t != y[k].t) {
                    elo_free(idx);
                    return FAIL(c, "ORDER BY leaves ties in SQLite's sorter order");
                }
        }
    }
    int64_t start = p->offset < n ? p->offset : n;
    int64_t end = n;
    if (p->limit >= 0 && start + p->limit < end)
        end = start + p->limit;
    for (int64_t i = start; i < end; i++)
        if (elo__result_push_row(res, &b->cells[idx[i] * b->width]) < 0) {
            elo_free(idx);
            return FAIL(c, "out of memory");
        }
    elo_free(idx);
    return 0;
}

/* ---- the dense kernel path ------------------------------------------------ */

/* Fills a kernel job when the plan fits it: keys are plain columns holding
 * only integers (or only text, dictionary codes) and NULLs, over a combined
 * dense domain; aggregates are COUNT(*) or over plain columns holding only
 * integers or only reals (and NULLs); the WHERE clause, if any, is a
 * conjunction of column-vs-number comparisons on such columns. */
static int kernel_fits(const sql_plan *p, kernel_job *j)
{
    sql_table *t = p->t;
    if (!t || !p->aggregate || p->nkeys == 0 || p->nkeys > 4 || t->nrows == 0)
        return 0;
    memset(j, 0, sizeof *j);
    j->nrows = t->nrows;
    int64_t groups = 1;
    for (int k = 0; k < p->nkeys; k++) {
        const expr *e = p->keys[k];
        if (e->kind != E_COL)
            return 0;
        const sql_column *col = &t->cols[e->col];
        int64_t span;
        if (col->has_real || (col->has_int && col->has_text))
            return 0;
        if (col->has_text) {
            j->key_base[k] = 0;
            span = (int64_t)col->ndict + 1;
        } else if (col->has_int) {
            if ((__int128)col->imax - col->imin > (1 << 26))
                return 0;
            j->key_base[k] = col->imin;
            span = col->imax - col->imin + 2;
        } else {
            span = 1;
        }
        j->key_val[k] = col->val;
        j->key_type[k] = col->type;
        j->key_span[k] = span;
        if (groups > (1 << 26) / span)
            return 0;
        groups *= span;
    }
    j->nkeys = p->nkeys;
    j->ngroups = groups;
    if (p->naggs > SQL_MAX_AGGS)
        return 0;
    for (int a = 0; a < p->naggs; a++) {
        const agg_spec *s = &p->aggs[a];
        if (s->distinct || s->fn == A_BARE)
            return 0;
        j->agg_fn[a] = s->fn;
        if (s->fn == A_COUNT_STAR)
            continue;
        if (s->arg->kind != E_COL)
            return 0;
        const sql_column *col = &t->cols[s->arg->col];
        if (col->has_text || (col->has_int && col->has_real))
            return 0;
        j->agg_real[a] = col->has_real;
        j->agg_negzero[a] = col->has_negzero;
        j->agg_nonull[a] = !col->has_null;
        if (col->has_int) {
            int64_t lo = col->imin == INT64_MIN ? INT64_MAX : (col->imin < 0 ? -col->imin : col->imin);
            int64_t hi = col->imax == INT64_MIN ? INT64_MAX : (col->imax < 0 ? -col->imax : col->imax);
            j->agg_absmax[a] = lo > hi ? lo : hi;
        }
        j->agg_val[a] = col->val;
        j->agg_type[a] = col->type;
    }
    j->naggs = p->naggs;
    /* WHERE: conjunction of col op number */
    const expr *stack[16];
    int ns = 0;
    if (p->s->where)
        stack[ns++] = p->s->where;
    while (ns) {
        const expr *e = stack[--ns];
        if (e->kind == E_BIN && e->op == OP_AND) {
            if (ns + 2 > 16)
                return 0;
            stack[ns++] = e->a;
            stack[ns++] = e->b;
            continue;
        }
        const expr *colx, *lit;
        int op;
        if (e->kind == E_BIN && e->op >= OP_EQ && e->op <= OP_GE) {
            op = e->op;
            colx = e->a;
            lit = e->b;
            if (colx->kind != E_COL) {
                colx = e->b;
                lit = e->a;
                static const int swap[] = {[OP_EQ] = OP_EQ, [OP_NE] = OP_NE, [OP_LT] = OP_GT,
                                           [OP_LE] = OP_GE, [OP_GT] = OP_LT, [OP_GE] = OP_LE};
                op = swap[op];
            }
        } else {
            return 0;
        }
        int neg = 0;
        if (lit->kind == E_NEG) {
            neg = 1;
            lit = lit->a;
        }
        if (colx->kind != E_COL || lit->kind != E_LIT ||
            (lit->lit.t != SV_INT && lit->lit.t != SV_REAL))
            return 0;
        if (neg && lit->lit.t == SV_INT && lit->lit.i == INT64_MIN)
            return 0;
        const sql_column *col = &t->cols[colx->col];
        if (col->has_text || (col->has_int && col->has_real) || j->npreds == 8)
            return 0;
        kpred *pr = &j->preds[j->npreds];
        pr->col = colx->col;
        pr->op = op;
        /* compare in the column's domain exactly: integer column vs a real
         * constant is done in doubles only when the constant is integral */
        if (col->has_real) {
            pr->is_real = 1;
            pr->rval = lit->lit.t == SV_INT ? (double)lit->lit.i : lit->lit.r;
            if (lit->lit.t == SV_INT && (lit->lit.i > (1LL << 53) || lit->lit.i < -(1LL << 53)))
                return 0;
            if (neg)
                pr->rval = -pr->rval;
        } else {
            if (lit->lit.t == SV_REAL) {
                double r = neg ? -lit->lit.r : lit->lit.r;
                if (r != floor(r) || fabs(r) > 9e15)
                    return 0;
                pr->ival = (int64_t)r;
            } else {
                pr->ival = neg ? -lit->lit.i : lit->lit.i;
            }
        }
        j->pred_val[j->npreds] = col->val;
        j->pred_type[j->npreds] = col->type;
        j->npreds++;
    }
    return 1;
}

/* ---- groups out: kernel slots to rows --------------------------------------- */

/* The key ids of group g, last key fastest: id 0 is NULL, else a text code
 * + 1 or an integer - base + 1. */
static void group_ids(const kernel_job *j, int64_t g, int64_t *id)
{
    for (int k = j->nkeys - 1; k >= 0; k--) {
        id[k] = g % j->key_span[k];
        g /= j->key_span[k];
    }
}

/* Steps id[] from group g to group g + 1. */
static void group_ids_next(const kernel_job *j, int64_t *id)
{
    for (int k = j->nkeys - 1; k >= 0 && ++id[k] == j->key_span[k]; k--)
        id[k] = 0;
}

/* The columns of the plan's keys, for group_keys. */
static void key_columns(const sql_plan *p, const kernel_job *j, const sql_column **col)
{
    for (int k = 0; k < j->nkeys; k++)
        col[k] = &p->t->cols[p->keys[k]->col];
}

/* The key values for ids id[] (col: key_columns); text points into the
 * column's dictionary. */
static void group_keys(const sql_column *const *key_col, const kernel_job *j, const int64_t *id,
                       sv *keys)
{
    for (int k = 0; k < j->nkeys; k++) {
        const sql_column *col = key_col[k];
        if (id[k] == 0) {
            keys[k].t = SV_NULL;
        } else if (col->has_text) {
            keys[k].t = SV_TEXT;
            keys[k].s = col->dict[id[k] - 1];
            keys[k].len = col->dict_len[id[k] - 1];
        } else {
            keys[k].t = SV_INT;
            keys[k].i = (int64_t)((uint64_t)(id[k] - 1) + (uint64_t)j->key_base[k]);
        }
    }
}

/* How groups out reads and finalises each aggregate, decided once per
 * query (group_reader_init) rather than per group: AR_* says what to
 * finalise; cnt_off and val_off where the count and the value lie in the
 * GPU's words (-1: the count is the group's rows; no value). */
enum { AR_ROWS, AR_COUNT, AR_ISUM, AR_ITOTAL, AR_IAVG, AR_RSUM, AR_RTOTAL, AR_RAVG, AR_IMINMAX,
       AR_RMINMAX };

typedef struct {
    uint8_t how;        /* AR_* */
    uint8_t packed;     /* the words' packed sum (aggregate 0) */
    int16_t cnt_off, val_off;
} agg_read;

/* Where the groups' row counts lie: word g * stride, shifted right by
 * shift (rows[], or word 0 of the GPU's words, packed or not). */
typedef struct {
    int64_t *word;
    int64_t stride;
    int shift;
} row_counts;

/* A kernel's output as groups out reads it (either form), set up once. */
typedef struct {
    kernel_out *o;
    row_counts rows;
    int naggs;
    int W;              /* the GPU's words per group, or 0: the CPU's kslots */
    int64_t pack_base;
    agg_read agg[SQL_MAX_AGGS];
} group_reader;

static void group_reader_init(group_reader *r, const kernel_job *j, kernel_out *o)
{
    r->o = o;
    r->naggs = j->naggs;
    r->W = o->words ? o->lay.W : 0;
    r->rows = o->words ? (row_counts){o->words, o->lay.W, o->lay.pack ? 32 : 0}
                       : (row_counts){o->rows, 1, 0};
    r->pack_base = o->lay.pack_base;
    for (int a = 0; a < j->naggs; a++) {
        agg_read *d = &r->agg[a];
        int real = j->agg_real[a];
        switch (j->agg_fn[a]) {
        case A_COUNT_STAR: d->how = AR_ROWS; break;
        case A_COUNT: d->how = AR_COUNT; break;
        case A_SUM: d->how = real ? AR_RSUM : AR_ISUM; break;
        case A_TOTAL: d->how = real ? AR_RTOTAL : AR_ITOTAL; break;
        case A_AVG: d->how = real ? AR_RAVG : AR_IAVG; break;
        default: d->how = real ? AR_RMINMAX : AR_IMINMAX; break;
        }
        d->packed = o->words && a == 0 && o->lay.pack;
        d->cnt_off = (int16_t)(o->words ? o->lay.cnt_off[a] : -1);
        d->val_off = (int16_t)(o->words ? o->lay.val_off[a] : -1);
    }
}

/* The rows of group g that passed the filter (0: an empty group, or one
 * groups out dropped). Hot loops keep `rc` in a local (registers). */
static inline int64_t group_rows(row_counts rc, int64_t g)
{
    return (int64_t)((uint64_t)rc.word[g * rc.stride] >> rc.shift);
}

/* Drops group g (HAVING): group_rows says 0 from now on. */
static inline void group_drop(row_counts rc, int64_t g) { rc.word[g * rc.stride] = 0; }

/* One aggregate's value into v from a group's rows, its count of inputs
 * and its slot words a and b (kslot). Integer sums: a and b hold the
 * positive and negative parts, or (whole) the sum in a; returns 1 when
 * one reaches 2^53, the value then unset: SQLite's double running sum may
 * round there, and the interpreter reproduces it. Real sums: the sum and
 * its compensation, double bits. MIN/MAX: the value in a. */
static inline int agg_value(int how, int64_t rows, int64_t cnt, int64_t a, int64_t b, sv *v)
{
    switch (how) {
    case AR_ROWS: set_int(v, rows); return 0;
    case AR_COUNT: set_int(v, cnt); return 0;
    case AR_ISUM:
    case AR_ITOTAL:
    case AR_IAVG: {
        if (a >= (1LL << 53) || a <= -(1LL << 53) || b <= -(1LL << 53))
            return 1;
        if (!cnt && how != AR_ITOTAL) { set_null(v); return 0; }
        int64_t s = a + b; /* both parts below 2^53 in magnitude */
        if (how == AR_ISUM) set_int(v, s);
        else if (how == AR_ITOTAL) set_real(v, (double)s);
        else set_real(v, (double)s / (double)cnt);
        return 0;
    }
    case AR_RSUM:
    case AR_RTOTAL:
    case AR_RAVG: {
        if (!cnt && how != AR_RTOTAL) { set_null(v); return 0; }
        double sum, comp;
        memcpy(&sum, &a, 8);
        memcpy(&comp, &b, 8);
        double s = isfinite(sum) ? sum + comp : sum;
        set_real(v, how == AR_RAVG ? s / (double)cnt : s);
        return 0;
    }
    case AR_IMINMAX:
        if (!cnt) set_null(v);
        else set_int(v, a);
        return 0;
    default:
        if (!cnt) set_null(v);
        else { v->t = SV_REAL; memcpy(&v->r, &a, 8); }
        return 0;
    }
}

/* Aggregate a of the nb groups sel[] (rows[] rows each) into v[0],
 * v[stride], ..., reading the CPU kernel's kslots or the GPU's words:
 * there a sum is whole (no part kept apart) in one word, or packed (low 32
 * bits of word 0 + rows * base), a real sum has no compensation term, a
 * MIN/MAX is its ordered image. Returns 1, the cells then incomplete, when
 * an integer sum needs the interpreter (agg_value). */
static int agg_column(const group_reader *r, int a, const int64_t *sel, const int64_t *rows, int nb,
                      sv *v, int stride)
{
    const agg_read d = r->agg[a];
    if (!r->W) {
        const int A = r->naggs;
        const kslot *st = r->o->st + a;
        for (int b = 0; b < nb; b++, v += stride) {
            const kslot *x = &st[sel[b] * A];
            if (agg_value(d.how, rows[b], x->cnt, x->a, x->b, v))
                return 1;
        }
        return 0;
    }
    const int64_t *words = r->o->words, base = r->pack_base;
    const int64_t W = r->W;
    for (int b = 0; b < nb; b++, v += stride) {
        const int64_t *w = words + sel[b] * W;
        int64_t cnt = d.cnt_off >= 0 ? w[d.cnt_off] : rows[b];
        int64_t val = d.val_off >= 0 ? w[d.val_off] : 0;
        if (d.packed) /* offsets + rows * base: no overflow (the job's bound) */
            val = (int64_t)(((uint64_t)w[0] & 0xffffffffu) + (uint64_t)rows[b] * (uint64_t)base);
        else if (d.how == AR_RMINMAX)
            val = elo__sql_ordered(val, 1);
        if (agg_value(d.how, rows[b], cnt, val, 0, v))
            return 1;
    }
    return 0;
}

/* Finalises the aggregates of group g, which has `rows` rows, into aggs[]
 * (numbers or NULL, never text); 1 as agg_column. */
static int group_aggs(const group_reader *r, int64_t g, int64_t rows, sv *aggs)
{
    for (int a = 0; a < r->naggs; a++)
        if (agg_column(r, a, &g, &rows, 1, &aggs[a], 1))
            return 1;
    return 0;
}

/* Groups into `b` (outputs and ORDER BY terms) for finish_rows, on one
 * thread, in group order. Returns 0, -1 with c->why, or 1 when a sum needs
 * the interpreter. */
static int groups_to_rowbuf(const sql_plan *p, const kernel_job *j, kernel_out *o, ectx *c,
                            rowbuf *b)
{
    group_reader r;
    group_reader_init(&r, j, o);
    sv keys[SQL_MAX_KEYS], aggs[SQL_MAX_AGGS];
    sv *scratch = elo_malloc(sizeof(sv) * (size_t)(b->width + 1));
    if (!scratch)
        return FAIL(c, "out of memory");
    c->keys = keys;
    c->aggs = aggs;
    int64_t id[SQL_MAX_KEYS];
    const sql_column *key_col[SQL_MAX_KEYS];
    key_columns(p, j, key_col);
    group_ids(j, 0, id);
    int rc = 0;
    for (int64_t g = 0; g < j->ngroups; g++, group_ids_next(j, id)) {
        int64_t rows = group_rows(r.rows, g);
        if (!rows)
            continue;
        group_keys(key_col, j, id, keys);
        if (group_aggs(&r, g, rows, aggs)) {
            rc = 1;
            break;
        }
        if (p->having) {
            sv h;
            int tv;
            if (eval(c, p->having, &h) < 0 || truth(c, &h, &tv) < 0) {
                rc = -1;
                break;
            }
            if (tv != 1)
                continue;
        }
        if (emit(c, p, b, scratch) < 0) {
            rc = -1;
            break;
        }
    }
    c->keys = c->aggs = NULL; /* they were this frame's */
    elo_free(scratch);
    return rc;
}

/* Groups straight into the result, on all cores.
 *
 * DESIGN: the group slots are cut into chunks of OUT_CHUNK_GROUPS, one pool
 * task per chunk, in two passes. Pass 1 (count) walks its chunk as the
 * one-thread loop would (aggregates, HAVING, output expressions) but keeps
 * nothing: it counts the rows the chunk yields and their text bytes, and
 * stops at the first group that needs the interpreter or fails. A group
 * that HAVING drops gets a row count of 0 (group_drop: the kernel's output
 * is ours, and a dropped group's count is needed no more), so pass 2 skips
 * it without evaluating HAVING again. Between the passes groups_to_result
 * takes the first chunk that stopped, if any: its group is where the
 * one-thread loop would have stopped, so the outcome (interpreter, or
 * which error) is the same. Otherwise prefix sums give each chunk its
 * first row and its slice of one text block (NUL-terminated strings,
 * packed; elo__result_text), the result gets room for the rows, and pass 2
 * (fill) writes each chunk's cells in place and copies its text into its
 * slice. Tasks write disjoint memory; only the calling thread touches the
 * result's arena and row count.
 *
 * When there is no HAVING and every output is a key or an aggregate
 * reference (the common case, "light"), pass 1 cannot fail: it only counts
 * rows and the text bytes of keys, and the 2^53 test of integer sums waits
 * for pass 2 (whose rows are then dropped). Pass 2 then goes column by
 * column over batches of non-empty groups (out_fill_light): one loop per
 * output whose kind, aggregate and source are decided once per batch, not
 * per cell. Outputs that are plain key or aggregate references are copied
 * without eval in the other cases too.
 *
 * Both passes read a group's rows and slots where the kernel left them:
 * the CPU kernel's rows[] and kslots, or the GPU's group table in its own
 * words (group_reader). Turning the GPU's table into kslots first was a
 * pass of its own that wrote 56 MB for 1M groups, which groups out then
 * read again: 1.7-2.0 ms on a 16-core H200 host, beside 0.3 ms for pass 1
 * and 5.6-6.7 ms for pass 2. Deciding each aggregate's reading once
 * (agg_read) and the column-by-column light pass 2 took q3's shape from
 * 400 to 134 instructions per group out of kslots, and from 464 to 161 out
 * of the GPU's words (callgrind, both passes). */

/* Groups per chunk; $ELOHIM_SQL_OUT_GROUPS lowers it so that tests cut
 * small tables into many chunks. */
#define OUT_CHUNK_GROUPS 16384

enum { OUT_KEY, OUT_AGG, OUT_EVAL };

typedef struct {
    int kind;           /* OUT_* */
    int slot;           /* key or aggregate index; for OUT_EVAL the output */
} out_col;

typedef struct {
    int64_t rows;       /* pass 1: rows the chunk yields; then its first row */
    int64_t text;       /* pass 1: their text bytes (NULs included); then the
                           offset of its slice */
    int stop;           /* 1: a sum needs the interpreter; -1: error, `why` */
    const char *why;
} out_chunk;

typedef struct {
    const sql_plan *p;
    const kernel_job *j;
    kernel_out *o;
    group_reader r;
    const out_col *cols;    /* [p->nout] */
    const sql_column *key_col[SQL_MAX_KEYS]; /* key_columns */
    int light;              /* pass 1 only counts rows and key text */
    int ntext_outs;         /* outputs that are text keys, */
    int text_outs[SQL_MAX_ITEMS]; /* their indexes */
    int fill;               /* pass 2 */
    int64_t chunk_groups;
    out_chunk *chunks;
    sv *cells;              /* pass 2: the first new row of the result
                               (whose columns are the plan's outputs) */
    char *text;             /* pass 2: the text block */
} out_ctx;

/* Copies `len` bytes of text and a NUL to dst; short keys (most are)
 * without a call. */
static inline void copy_text(char *dst, const char *src, uint32_t len)
{
    if (len >= 8 && len <= 16) {
        uint64_t lo, hi; /* two overlapping 8-byte moves */
        memcpy(&lo, src, 8);
        memcpy(&hi, src + len - 8, 8);
        memcpy(dst, &lo, 8);
        memcpy(dst + len - 8, &hi, 8);
    } else if (len < 8) {
        for (uint32_t i = 0; i < len; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, len);
    }
    dst[len] = '\0';
}

/* Pass 1 over groups [g0, g1) of chunk `ch`. */
static void out_count(const out_ctx *x, out_chunk *ch, int64_t g0, int64_t g1)
{
    const sql_plan *p = x->p;
    const kernel_job *j = x->j;
    const group_reader *r = &x->r;
    const row_counts rc = r->rows;
    const int nout = p->nout;
    int64_t id[SQL_MAX_KEYS], rows = 0, text = 0;
    group_ids(j, g0, id);
    if (x->light) {
        /* outputs are keys and aggregates: the text is the keys'; with
         * one key its id is the group's */
        const int ntext = x->ntext_outs, nkeys = j->nkeys;
        int key[SQL_MAX_ITEMS];
        const uint32_t *dict_len[SQL_MAX_ITEMS];
        for (int t = 0; t < ntext; t++) {
            key[t] = x->cols[x->text_outs[t]].slot;
            dict_len[t] = x->key_col[key[t]]->dict_len;
        }
        for (int64_t g = g0; g < g1; g++) {
            if (group_rows(rc, g)) {
                rows++;
                for (int t = 0; t < ntext; t++) {
                    int64_t kid = nkeys == 1 ? g : id[key[t]];
                    if (kid)
                        text += (int64_t)dict_len[t][kid - 1] + 1;
                }
            }
            if (nkeys > 1)
                group_ids_next(j, id);
        }
        ch->rows = rows;
        ch->text = text;
        return;
    }
    sv keys[SQL_MAX_KEYS], aggs[SQL_MAX_AGGS];
    ectx c = {.t = p->t, .keys = keys, .aggs = aggs};
    for (int64_t g = g0; g < g1; g++, group_ids_next(j, id)) {
        int64_t n = group_rows(rc, g);
        if (!n)
            continue;
        group_keys(x->key_col, j, id, keys);
        if (group_aggs(r, g, n, aggs)) {
            ch->stop = 1;
            return;
        }
        if (p->having) {
            sv h;
            int tv;
            if (eval(&c, p->having, &h) < 0 || truth(&c, &h, &tv) < 0)
                goto fail;
            if (tv != 1) {
                group_drop(rc, g);
                continue;
            }
        }
        for (int i = 0; i < nout; i++) {
            const out_col *oc = &x->cols[i];
            sv v;
            if (oc->kind == OUT_AGG)
                continue; /* a number: no text */
            if (oc->kind == OUT_KEY) {
                if (keys[oc->slot].t == SV_TEXT)
                    text += (int64_t)keys[oc->slot].len + 1;
                continue;
            }
            if (eval(&c, p->out[oc->slot], &v) < 0)
                goto fail;
            if (v.t == SV_TEXT)
                text += (int64_t)v.len + 1;
        }
        rows++;
    }
    ch->rows = rows;
    ch->text = text;
    return;
fail:
    ch->stop = -1;
    ch->why = c.why;
}

/* Light pass 2 works column by column over batches of this many
 * non-empty groups: one loop per output, whose kind is decided once. */
#define OUT_BATCH 256

/* Pass 2 in light mode: every output is a key or an aggregate, and only
 * text keys carry text. Per batch: the non-empty groups and their key
 * ids, then each output's column of cells. */
static void out_fill_light(const out_ctx *x, out_chunk *ch, int64_t g0, int64_t g1)
{
    const kernel_job *j = x->j;
    const row_counts rc = x->r.rows;
    const int nout = x->p->nout, nkeys = j->nkeys;
    int64_t id[SQL_MAX_KEYS], sel[OUT_BATCH], rows[OUT_BATCH], ids[SQL_MAX_KEYS][OUT_BATCH];
    group_ids(j, g0, id);
    sv *dst = x->cells + ch->rows * nout;
    char *text = x->text ? x->text + ch->text : NULL;
    for (int64_t g = g0; g < g1;) {
        int nb = 0;
        if (nkeys == 1) { /* the key's id is the group's */
            for (; g < g1 && nb < OUT_BATCH; g++) {
                int64_t n = group_rows(rc, g);
                sel[nb] = ids[0][nb] = g;
                rows[nb] = n;
                nb += n != 0;
            }
        } else {
            for (; g < g1 && nb < OUT_BATCH; g++, group_ids_next(j, id)) {
                int64_t n = group_rows(rc, g);
                if (!n)
                    continue;
                sel[nb] = g;
                rows[nb] = n;
                for (int k = 0; k < nkeys; k++)
                    ids[k][nb] = id[k];
                nb++;
            }
        }
        for (int i = 0; i < nout; i++) {
            const out_col *oc = &x->cols[i];
            sv *v = dst + i;
            if (oc->kind == OUT_AGG) {
                if (agg_column(&x->r, oc->slot, sel, rows, nb, v, nout)) {
                    ch->stop = 1;
                    return;
                }
                continue;
            }
            const sql_column *col = x->key_col[oc->slot];
            const int64_t *kid = ids[oc->slot];
            if (col->has_text) {
                for (int b = 0; b < nb; b++, v += nout) {
                    if (!kid[b]) {
                        *v = (sv){.t = SV_NULL};
                        continue;
                    }
                    uint32_t len = col->dict_len[kid[b] - 1];
                    copy_text(text, col->dict[kid[b] - 1], len);
                    *v = (sv){.t = SV_TEXT, .len = len, .s = text};
                    text += len + 1;
                }
            } else {
                uint64_t base = (uint64_t)j->key_base[oc->slot] - 1u;
                for (int b = 0; b < nb; b++, v += nout)
                    *v = kid[b] ? (sv){.t = SV_INT, .i = (int64_t)((uint64_t)kid[b] + base)}
                                : (sv){.t = SV_NULL};
            }
        }
        dst += (int64_t)nb * nout;
    }
}

/* Pass 2 over groups [g0, g1) of chunk `ch`: its rows from ch->rows on,
 * its text from ch->text on. Fails only where pass 1 would have, which in
 * light mode is a sum reaching 2^53. */
static void out_fill(const out_ctx *x, out_chunk *ch, int64_t g0, int64_t g1)
{
    if (x->light) {
        out_fill_light(x, ch, g0, g1);
        return;
    }
    const sql_plan *p = x->p;
    const kernel_job *j = x->j;
    const group_reader *r = &x->r;
    const row_counts rc = r->rows;
    const out_col *cols = x->cols;
    const int nout = p->nout;
    sv keys[SQL_MAX_KEYS], aggs[SQL_MAX_AGGS];
    ectx c = {.t = p->t, .keys = keys, .aggs = aggs};
    int64_t id[SQL_MAX_KEYS];
    group_ids(j, g0, id);
    sv *dst = x->cells + ch->rows * nout;
    char *text = x->text ? x->text + ch->text : NULL;
    for (int64_t g = g0; g < g1; g++, group_ids_next(j, id)) {
        int64_t n = group_rows(rc, g);
        if (!n)
            continue;
        group_keys(x->key_col, j, id, keys);
        if (group_aggs(r, g, n, aggs)) {
            ch->stop = 1;
            return;
        }
        for (int i = 0; i < nout; i++) {
            sv v;
            if (cols[i].kind == OUT_KEY)
                v = keys[cols[i].slot];
            else if (cols[i].kind == OUT_AGG)
                v = aggs[cols[i].slot];
            else if (eval(&c, p->out[cols[i].slot], &v) < 0)
                goto fail;
            if (v.t == SV_TEXT) {
                memcpy(text, v.s, v.len);
                text[v.len] = '\0';
                v.s = text;
                text += v.len + 1;
            }
            dst[i] = v;
        }
        dst += nout;
    }
    return;
fail:
    ch->stop = -1;
    ch->why = c.why;
}

static void out_task(void *arg, int task, int thread)
{
    (void)thread;
    const out_ctx *x = arg;
    int64_t g0 = (int64_t)task * x->chunk_groups, g1 = ELO_MIN(g0 + x->chunk_groups, x->j->ngroups);
    if (x->fill)
        out_fill(x, &x->chunks[task], g0, g1);
    else
        out_count(x, &x->chunks[task], g0, g1);
}

/* The outcome of a pass: 0, or that of its first chunk that stopped. */
static int out_stopped(const out_ctx *x, int64_t nchunks, ectx *c)
{
    for (int64_t t = 0; t < nchunks; t++)
        if (x->chunks[t].stop) {
            if (x->chunks[t].stop < 0)
                c->why = x->chunks[t].why;
            return x->chunks[t].stop;
        }
    return 0;
}

/* Appends the groups to `res` in group order. Returns 0, -1 with c->why, or
 * 1 when a sum needs the interpreter; on any but 0 `res` holds no new row
 * (its capacity and arena may have grown). */
static int groups_to_result(const sql_plan *p, const kernel_job *j, kernel_out *o, ectx *c,
                            elo_sql_result *res)
{
    const char *env = getenv("ELOHIM_SQL_OUT_GROUPS");
    out_ctx x = {.p = p, .j = j, .o = o, .light = !p->having};
    x.chunk_groups = env && atoll(env) > 0 ? atoll(env) : OUT_CHUNK_GROUPS;
    /* at most 2^26 groups (kernel_fits): the count fits an int */
    int64_t nchunks = (j->ngroups + x.chunk_groups - 1) / x.chunk_groups;
    out_col *cols = elo_malloc(sizeof(out_col) * (size_t)(p->nout ? p->nout : 1));
    x.chunks = elo_calloc((size_t)(nchunks ? nchunks : 1), sizeof(out_chunk));
    int rc = 0;
    if (!cols || !x.chunks) {
        rc = FAIL(c, "out of memory");
        goto done;
    }
    for (int i = 0; i < p->nout; i++) {
        const expr *e = p->out[i];
        if (e->kind == E_KEYREF && p->t->cols[p->keys[e->col]->col].has_text)
            x.text_outs[x.ntext_outs++] = i;
        if (e->kind == E_KEYREF) cols[i] = (out_col){OUT_KEY, e->col};
        else if (e->kind == E_AGGREF) cols[i] = (out_col){OUT_AGG, e->col};
        else cols[i] = (out_col){OUT_EVAL, i};
        if (cols[i].kind == OUT_EVAL)
            x.light = 0;
    }
    x.cols = cols;
    key_columns(p, j, x.key_col);
    group_reader_init(&x.r, j, o);
    elo_pool_run(elo_pool_global(), out_task, &x, (int)nchunks);
    if ((rc = out_stopped(&x, nchunks, c)) != 0)
        goto done;
    int64_t rows = 0, text = 0;
    for (int64_t t = 0; t < nchunks; t++) {
        int64_t n = x.chunks[t].rows, bytes = x.chunks[t].text;
        x.chunks[t].rows = rows;
        x.chunks[t].text = text;
        rows += n;
        text += bytes;
    }
    if (rows == 0)
        goto done; /* nothing to write, and no sum left to test */
    if (elo__result_reserve(res, res->nrows + rows) < 0 ||
        (text && !(x.text = elo__result_text(res, (size_t)text)))) {
        rc = FAIL(c, "out of memory");
        goto done;
    }
    x.cells = res->cells + res->nrows * res->ncols;
    x.fill = 1;
    elo_pool_run(elo_pool_global(), out_task, &x, (int)nchunks);
    if ((rc = out_stopped(&x, nchunks, c)) == 0)
        res->nrows += rows;
done:
    elo_free(cols);
    elo_free(x.chunks);
    return rc;
}

/* Runs the kernel and turns its slots into rows, in group id order (key
 * order): into `b` for finish_rows, or straight into `direct` when the
 * plan has nothing left to do to them (no DISTINCT, ORDER BY, LIMIT or
 * OFFSET). Returns 0, -1 with c->why, or 1 when an integer sum needs the
 * interpreter (b and direct then hold no new rows). */
/* The CUDA kernel's device scratch and the pinned table it copies back are
 * process-wide (sql-cuda.cu), and groups out reads that table after the
 * kernel returns: one CUDA group-aggregate at a time, from the kernel to
 * the end of groups out, whichever elo_sql handle or thread runs it. */
static pthread_mutex_t g_cuda_lock = PTHREAD_MUTEX_INITIALIZER;

static int kernel_run(const sql_plan *p, kernel_job *j, elo_backend *dev, ectx *c, rowbuf *b,
                      elo_sql_result *direct, int *used_device)
{
    int64_t G = j->ngroups, A = j->naggs ? j->naggs : 1;
    kernel_out o;
    memset(&o, 0, sizeof o);
    int rc = ELO_OK, on_cpu = 1, locked = 0;
    double t_start = elo_time_sec();
    if (dev && dev->kind == ELO_DEVICE_CUDA && elo_sql_cuda_group_aggregate) {
        pthread_mutex_lock(&g_cuda_lock);
        locked = 1;
        /* swap host column pointers for their resident device copies */
        kernel_job dj = *j;
        sql_table *t = p->t;
        for (int k = 0; k < j->nkeys; k++) {
            const sql_column *col = &t->cols[p->keys[k]->col];
            dj.key_val[k] = col->dev_val;
            dj.key_type[k] = col->dev_type;
            dj.key_w[k] = col->dev_width;
            dj.key_b[k] = col->dev_base;
        }
        for (int a = 0; a < j->naggs; a++)
            if (j->agg_val[a]) {
                const sql_column *col = &t->cols[p->aggs[a].arg->col];
                dj.agg_val[a] = col->dev_val;
                dj.agg_type[a] = col->dev_type;
                dj.agg_w[a] = col->dev_width;
                dj.agg_b[a] = col->dev_base;
            }
        for (int q = 0; q < j->npreds; q++) {
            const sql_column *col = &t->cols[j->preds[q].col];
            dj.pred_val[q] = col->dev_val;
            dj.pred_type[q] = col->dev_type;
            dj.pred_w[q] = col->dev_width;
            dj.pred_b[q] = col->dev_base;
        }
        rc = elo_sql_cuda_group_aggregate(&dj, &o, elo_backend_cuda_stream(dev));
        if (rc == ELO_OK) {
            on_cpu = 0;
            *used_device = ELO_DEVICE_CUDA;
        } else if (rc != ELO_UNSUPPORTED) {
            c->why = "CUDA kernel failed";
            goto done;
        }
        rc = ELO_OK;
    }
    if (on_cpu) {
        o.rows = elo__sql_scratch(0, sizeof(int64_t) * (size_t)G);
        o.st = elo__sql_scratch(1, sizeof(kslot) * (size_t)(G * A));
        if (!o.rows || !o.st || elo__kernel_cpu(j, &o) < 0) {
            rc = FAIL(c, "out of memory");
            goto done;
        }
        *used_device = ELO_DEVICE_CPU;
        const char *words = getenv("ELOHIM_SQL_WORDS");
        if (words && *words && strcmp(words, "0") && !o.overflow) {
            /* tests: groups out reads the GPU's form of these groups,
             * laid out for the columns' device forms */
            kernel_job dj = *j;
            for (int a = 0; a < j->naggs; a++)
                if (j->agg_val[a]) {
                    const sql_column *col = &p->t->cols[p->aggs[a].arg->col];
                    elo__sql_device_form(col, &dj.agg_w[a], &dj.agg_b[a]);
                    dj.agg_type[a] = col->has_null ? col->type : NULL;
                }
            if (elo__kernel_to_words(&dj, &o) < 0) {
                rc = FAIL(c, "out of memory");
                goto done;
            }
        }
    }
    double t_kernel = elo_time_sec();
    if (o.overflow)
        rc = 1;
    else if (direct)
        rc = groups_to_result(p, j, &o, c, direct);
    else
        rc = groups_to_rowbuf(p, j, &o, c, b);
    if (rc == 1) {
        /* a partial sum left int64 (or reached 2^53): the interpreter
         * redoes it exactly in scan order (int128 sums, SQLite's overflow
         * rule, SQLite's double running sum) */
        b->n = 0;
    }
    elo_debug("sql: kernel %s %.2f ms over %lld rows, %lld group slots; groups out %.2f ms",
              *used_device == ELO_DEVICE_CUDA ? "cuda" : "cpu", (t_kernel - t_start) * 1e3,
              (long long)j->nrows, (long long)G, (elo_time_sec() - t_kernel) * 1e3);
done:
    if (locked)
        pthread_mutex_unlock(&g_cuda_lock);
    return rc;
}

/* ---- entry ------------------------------------------------------------------ */

static int passes_where(ectx *c, const sql_plan *p, int *ok)
{
    if (!p->s->where) {
        *ok = 1;
        return 0;
    }
    sv w;
    int t;
    if (eval(c, p->s->where, &w) < 0 || truth(c, &w, &t) < 0)
        return -1;
    *ok = t == 1;
    return 0;
}

int elo__sql_execute(sql_plan *p, elo_backend *dev, elo_sql_result *res, const char **why,
                     int *used_device)
{
    ectx c = {.t = p->t};
    rowbuf b = {.width = p->nout + p->norder};
    sv *scratch = elo_malloc(sizeof(sv) * (size_t)(b.width + 1));
    group_table g = {.nkeys = p->nkeys, .naggs = p->naggs};
    int rc = 0;
    int64_t nrows = p->t ? p->t->nrows : 1;
    *used_device = ELO_DEVICE_CPU;
    if (!scratch)
        return ELO_NOMEM;

    kernel_job job;
    if (kernel_fits(p, &job)) {
        int direct = !p->s->distinct && !p->norder && p->limit < 0 && p->offset == 0;
        rc = kernel_run(p, &job, dev, &c, &b, direct ? res : NULL, used_device);
        if (rc == 0 && !direct)
            rc = finish_rows(&c, p, &b, res);
        if (rc <= 0)
            goto out;
        rc = 0;
        b.n = 0;
        *used_device = ELO_DEVICE_CPU;
    }
    if (!p->aggregate) {
        for (int64_t r = 0; r < nrows; r++) {
            c.row = r;
            int ok;
            if (passes_where(&c, p, &ok) < 0) { rc = -1; goto out; }
            if (ok && emit(&c, p, &b, scratch) < 0) { rc = -1; goto out; }
        }
        rc = finish_rows(&c, p, &b, res);
        goto out;
    }

    sv keys[SQL_MAX_KEYS], vals[SQL_MAX_AGGS];
    for (int64_t r = 0; r < nrows; r++) {
        c.row = r;
        int ok;
        if (passes_where(&c, p, &ok) < 0) { rc = -1; goto out; }
        if (!ok)
            continue;
        for (int k = 0; k < p->nkeys; k++)
            if (eval(&c, p->keys[k], &keys[k]) < 0) { rc = -1; goto out; }
        int64_t gi = group_find(&c, &g, keys);
        if (gi < 0) { rc = -1; goto out; }
        agg_state *st = &g.st[gi * g.naggs];
        for (int a = 0; a < p->naggs; a++) {
            const agg_spec *s = &p->aggs[a];
            sv v = {0};
            if (s->arg && eval(&c, s->arg, &v) < 0) { rc = -1; goto out; }
            if (s->distinct) {
                if (v.t == SV_NULL)
                    continue;
                agg_state *d = &st[a];
                if (d->dn == d->dcap) {
                    int64_t nc = d->dcap ? d->dcap * 2 : 8;
                    sv *nd = elo_realloc(d->dv, sizeof(sv) * (size_t)nc);
                    if (!nd) { rc = FAIL(&c, "out of memory"); goto out; }
                    d->dv = nd;
                    d->dcap = nc;
                }
                d->dv[d->dn++] = v;
                continue;
            }
            if (agg_step(&c, s->fn, &st[a], &v) < 0) { rc = -1; goto out; }
        }
    }
    if (g.ngroups == 0 && p->nkeys == 0) {
        /* an aggregate without GROUP BY yields one row even over no rows */
        if (group_find(&c, &g, keys) < 0) { rc = -1; goto out; }
    }
    /* groups come out in key order, as SQLite's sorter gives them */
    int64_t *order = elo_malloc(sizeof(int64_t) * (size_t)(g.ngroups ? g.ngroups : 1));
    if (!order) { rc = FAIL(&c, "out of memory"); goto out; }
    for (int64_t i = 0; i < g.ngroups; i++)
        order[i] = i;
    if (p->nkeys) {
        /* stable merge sort of the group indexes by key tuple */
        int s_nkeys = p->nkeys;
        const sv *s_keys = g.keys;
        int64_t n = g.ngroups;
        int64_t *tmp = elo_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
        if (!tmp) { elo_free(order); rc = FAIL(&c, "out of memory"); goto out; }
        for (int64_t w = 1; w < n; w *= 2) {
            for (int64_t lo = 0; lo < n; lo += 2 * w) {
                int64_t mid = ELO_MIN(lo + w, n), hi = ELO_MIN(lo + 2 * w, n);
                int64_t i = lo, jx = mid, k = lo;
                while (i < mid && jx < hi) {
                    const sv *ka = &s_keys[order[i] * s_nkeys], *kb = &s_keys[order[jx] * s_nkeys];
                    int r = 0;
                    for (int q = 0; q < s_nkeys && !r; q++)
                        r = elo__sv_cmp(&ka[q], &kb[q]);
                    tmp[k++] = r <= 0 ? order[i++] : order[jx++];
                }
                while (i < mid) tmp[k++] = order[i++];
                while (jx < hi) tmp[k++] = order[jx++];
            }
            memcpy(order, tmp, sizeof(int64_t) * (size_t)n);
        }
        elo_free(tmp);
    }
    c.aggs = vals;
    for (int64_t oi = 0; oi < g.ngroups; oi++) {
        int64_t gi = order[oi];
        c.keys = &g.keys[gi * g.nkeys];
        agg_state *st = &g.st[gi * g.naggs];
        for (int a = 0; a < p->naggs; a++) {
            int r = p->aggs[a].distinct ? agg_final_distinct(&c, p->aggs[a].fn, &st[a], &vals[a])
                                        : agg_final(&c, p->aggs[a].fn, &st[a], &vals[a]);
            if (r < 0) { rc = -1; break; }
        }
        if (rc < 0)
            break;
        if (p->having) {
            sv h;
            int tv;
            if (eval(&c, p->having, &h) < 0 || truth(&c, &h, &tv) < 0) { rc = -1; break; }
            if (tv != 1)
                continue;
        }
        if (emit(&c, p, &b, scratch) < 0) { rc = -1; break; }
    }
    elo_free(order);
    if (rc == 0)
        rc = finish_rows(&c, p, &b, res);
out:
    group_free(&g);
    elo_free(b.cells);
    elo_free(scratch);
    if (rc < 0) {
        *why = c.why ? c.why : "execution failed";
        return ELO_UNSUPPORTED;
    }
    return ELO_OK;
}
