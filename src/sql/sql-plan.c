/* sql-plan.c - name resolution and the "can we answer this exactly?"
 * decision. Resolves column references against the one table (name or
 * alias), result aliases and column numbers in ORDER BY / GROUP BY as
 * SQLite does, classifies function calls, and for aggregate queries
 * rewrites the result, HAVING and ORDER BY expressions over group keys
 * (E_KEYREF) and aggregate slots (E_AGGREF). Every construct whose SQLite
 * behaviour we do not reproduce ends the plan with a reason. */
#include "sql-impl.h"

#include <string.h>
#include <strings.h>

typedef struct {
    elo_arena *a;
    select_stmt *s;
    sql_table *t;
    sql_plan *p;
    const char *why;
} planner;

static int fail(planner *pl, const char *why)
{
    if (!pl->why)
        pl->why = why;
    return -1;
}

static expr *copy_expr(planner *pl, const expr *e)
{
    if (!e)
        return NULL;
    expr *c = elo_arena_alloc(pl->a, sizeof *c);
    *c = *e;
    c->a = copy_expr(pl, e->a);
    c->b = copy_expr(pl, e->b);
    c->c = copy_expr(pl, e->c);
    if (e->nlist) {
        c->list = elo_arena_alloc(pl->a, sizeof(expr *) * e->nlist);
        for (int i = 0; i < e->nlist; i++)
            c->list[i] = copy_expr(pl, e->list[i]);
    }
    return c;
}

static int expr_eq(const expr *x, const expr *y)
{
    if (!x || !y)
        return x == y;
    if (x->kind != y->kind || x->op != y->op || x->negate != y->negate ||
        x->distinct != y->distinct || x->nlist != y->nlist)
        return 0;
    if (x->kind == E_LIT) {
        if (x->lit.t != y->lit.t)
            return 0;
        if (x->lit.t == SV_INT)
            return x->lit.i == y->lit.i;
        if (x->lit.t == SV_REAL)
            return !memcmp(&x->lit.r, &y->lit.r, 8);
        if (x->lit.t == SV_TEXT)
            return x->lit.len == y->lit.len && !memcmp(x->lit.s, y->lit.s, x->lit.len);
        return 1;
    }
    if ((x->kind == E_COL || x->kind == E_KEYREF || x->kind == E_AGGREF) && x->col != y->col)
        return 0;
    if (!expr_eq(x->a, y->a) || !expr_eq(x->b, y->b) || !expr_eq(x->c, y->c))
        return 0;
    for (int i = 0; i < x->nlist; i++)
        if (!expr_eq(x->list[i], y->list[i]))
            return 0;
    return 1;
}

static int has_agg(const expr *e)
{
    if (!e)
        return 0;
    if (e->kind == E_AGG)
        return 1;
    if (has_agg(e->a) || has_agg(e->b) || has_agg(e->c))
        return 1;
    for (int i = 0; i < e->nlist; i++)
        if (has_agg(e->list[i]))
            return 1;
    return 0;
}

static int find_column(sql_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcasecmp(t->cols[i].name, name))
            return i;
    return -1;
}

/* Resolves columns and functions in place. `aliases`: result aliases may
 * stand for unknown bare names (ORDER BY only). */
static int resolve(planner *pl, expr *e, int allow_agg, int in_agg)
{
    if (!e)
        return 0;
    switch (e->kind) {
    case E_COL: {
        if (!pl->t)
            return fail(pl, "column reference without FROM");
        if (e->tab && strcasecmp(e->tab, pl->s->alias ? pl->s->alias : pl->s->table))
            return fail(pl, "column of an unknown table");
        int c = find_column(pl->t, e->name);
        if (c < 0)
            return fail(pl, "name that is not a column of the table (alias or rowid)");
        e->col = c;
        e->aff = pl->t->cols[c].aff;
        return 0;
    }
    case E_FUNC: {
        const char *n = e->name;
        int nargs = e->nlist;
        static const struct { const char *name; int fn; } aggs[] = {
            {"count", A_COUNT}, {"sum", A_SUM}, {"total", A_TOTAL}, {"avg", A_AVG},
            {"min", A_MIN}, {"max", A_MAX}};
        if (e->op == -1) {
            if (strcasecmp(n, "count"))
                return fail(pl, "function(*) other than COUNT(*)");
            if (!allow_agg)
                return fail(pl, "aggregate where none is allowed");
            if (in_agg)
                return fail(pl, "nested aggregate");
            e->kind = E_AGG;
            e->op = A_COUNT_STAR;
            return 0;
        }
        for (size_t i = 0; i < ELO_ARRAY_LEN(aggs); i++) {
            if (strcasecmp(n, aggs[i].name))
                continue;
            if ((aggs[i].fn == A_MIN || aggs[i].fn == A_MAX) && nargs > 1)
                break; /* scalar min/max */
            if (nargs != 1)
                return fail(pl, "aggregate with a wrong argument count");
            if (!allow_agg)
                return fail(pl, "aggregate where none is allowed");
            if (in_agg)
                return fail(pl, "nested aggregate");
            e->kind = E_AGG;
            e->op = aggs[i].fn;
            e->a = e->list[0];
            return resolve(pl, e->a, 0, 1);
        }
        if (e->distinct)
            return fail(pl, "DISTINCT in a scalar function");
        if (!strcasecmp(n, "coalesce") && nargs >= 2) e->op = F_COALESCE;
        else if (!strcasecmp(n, "ifnull") && nargs == 2) e->op = F_IFNULL;
        else if (!strcasecmp(n, "nullif") && nargs == 2) e->op = F_NULLIF;
        else if (!strcasecmp(n, "abs") && nargs == 1) e->op = F_ABS;
        else return fail(pl, "function outside our subset");
        for (int i = 0; i < nargs; i++)
            if (resolve(pl, e->list[i], allow_agg, in_agg) < 0)
                return -1;
        return 0;
    }
    case E_CAST:
        if (e->op != AFF_INTEGER && e->op != AFF_REAL && e->op != AFF_NUMERIC)
            return fail(pl, "CAST to TEXT/BLOB");
        break;
    default:
        break;
    }
    if (resolve(pl, e->a, allow_agg, in_agg) < 0 || resolve(pl, e->b, allow_agg, in_agg) < 0 ||
        resolve(pl, e->c, allow_agg, in_agg) < 0)
        return -1;
    for (int i = 0; i < e->nlist; i++)
        if (resolve(pl, e->list[i], allow_agg, in_agg) < 0)
            return -1;
    return 0;
}

/* Aggregate query: rewrites `e` over keys and aggregate slots. */
static expr *rewrite(planner *pl, expr *e)
{
    if (!e)
        return NULL;
    sql_plan *p = pl->p;
    for (int k = 0; k < p->nkeys; k++) {
        if (expr_eq(e, p->keys[k]) && e->kind != E_LIT) {
            expr *r = elo_arena_alloc(pl->a, sizeof *r);
            memset(r, 0, sizeof *r);
            r->kind = E_KEYREF;
            r->col = k;
            r->aff = e->kind == E_COL ? e->aff : (e->kind == E_CAST ? e->op : AFF_NONE);
            return r;
        }
    }
    if (e->kind == E_AGG) {
        int slot = -1;
        for (int i = 0; i < p->naggs; i++)
            if (p->aggs[i].fn == e->op && p->aggs[i].distinct == e->distinct &&
                expr_eq(p->aggs[i].arg, e->a))
                slot = i;
        if (slot < 0) {
            if (p->naggs == SQL_MAX_AGGS) {
                fail(pl, "too many aggregates");
                return NULL;
            }
            slot = p->naggs++;
            p->aggs[slot].fn = e->op;
            p->aggs[slot].distinct = e->distinct;
            p->aggs[slot].arg = e->a;
        }
        expr *r = elo_arena_alloc(pl->a, sizeof *r);
        memset(r, 0, sizeof *r);
        r->kind = E_AGGREF;
        r->col = slot;
        return r;
    }
    if (e->kind == E_COL) {
        /* SQLite takes a bare column from an arbitrary row of the group; we
         * answer only when all rows of every group agree (checked while
         * running), which makes the choice of row irrelevant */
        int slot = -1;
        for (int i = 0; i < p->naggs; i++)
            if (p->aggs[i].fn == A_BARE && p->aggs[i].arg->col == e->col)
                slot = i;
        if (slot < 0) {
            if (p->naggs == SQL_MAX_AGGS) {
                fail(pl, "too many aggregates");
                return NULL;
            }
            slot = p->naggs++;
            p->aggs[slot].fn = A_BARE;
            p->aggs[slot].distinct = 0;
            p->aggs[slot].arg = e;
        }
        expr *r = elo_arena_alloc(pl->a, sizeof *r);
        memset(r, 0, sizeof *r);
        r->kind = E_AGGREF;
        r->col = slot;
        return r;
    }
    expr *c = elo_arena_alloc(pl->a, sizeof *c);
    *c = *e;
    if (e->a && !(c->a = rewrite(pl, e->a)))
        return NULL;
    if (e->b && !(c->b = rewrite(pl, e->b)))
        return NULL;
    if (e->c && !(c->c = rewrite(pl, e->c)))
        return NULL;
    if (e->nlist) {
        c->list = elo_arena_alloc(pl->a, sizeof(expr *) * e->nlist);
        for (int i = 0; i < e->nlist; i++)
            if (!(c->list[i] = rewrite(pl, e->list[i])))
                return NULL;
    }
    return c;
}

static int const_int(const expr *e, int64_t *out)
{
    /* as sqlite3ExprIsInteger: a literal under any number of unary +/- */
    if (e->kind == E_LIT && e->lit.t == SV_INT) {
        *out = e->lit.i;
        return 1;
    }
    if (e->kind == E_NEG && const_int(e->a, out)) {
        if (*out == INT64_MIN)
            return 0;
        *out = -*out;
        return 1;
    }
    if (e->kind == E_POS)
        return const_int(e->a, out);
    return 0;
}

int elo__sql_plan(elo_arena *a, select_stmt *s, sql_table *t, sql_plan *p, const char **why)
{
    planner pl = {.a = a, .s = s, .t = t, .p = p};
    memset(p, 0, sizeof *p);
    p->s = s;
    p->t = t;
    p->limit = -1;

    /* result columns, with * expanded */
    int n = 0;
    for (int i = 0; i < s->nitems; i++)
        n += s->items[i].star ? (t ? t->ncols : 0) : 1;
    if (n == 0) {
        *why = "SELECT * without a table";
        return ELO_UNSUPPORTED;
    }
    if (n > SQL_MAX_ITEMS * 4) {
        *why = "too many result columns";
        return ELO_UNSUPPORTED;
    }
    p->out = elo_arena_alloc(a, sizeof(expr *) * n);
    p->names = elo_arena_alloc(a, sizeof(char *) * n);
    const char *alias_of[SQL_MAX_ITEMS * 4];
    for (int i = 0; i < s->nitems; i++) {
        sel_item *it = &s->items[i];
        if (it->star) {
            if (!t) {
                *why = "* without a table";
                return ELO_UNSUPPORTED;
            }
            if (it->star_tab && strcasecmp(it->star_tab, s->alias ? s->alias : s->table)) {
                *why = "tab.* of an unknown table";
                return ELO_UNSUPPORTED;
            }
            for (int c = 0; c < t->ncols; c++) {
                expr *e = elo_arena_alloc(a, sizeof *e);
                memset(e, 0, sizeof *e);
                e->kind = E_COL;
                e->col = c;
                e->name = t->cols[c].name;
                e->aff = t->cols[c].aff;
                alias_of[p->nout] = NULL;
                p->names[p->nout] = t->cols[c].name;
                p->out[p->nout++] = e;
            }
            continue;
        }
        if (resolve(&pl, it->e, 1, 0) < 0)
            goto fail;
        alias_of[p->nout] = it->alias;
        p->names[p->nout] =
            it->alias ? it->alias : (it->e->kind == E_COL ? t->cols[it->e->col].name : it->span);
        p->out[p->nout++] = it->e;
    }
    if (s->where && resolve(&pl, s->where, 0, 0) < 0)
        goto fail;

    /* GROUP BY: a column number names a result column */
    for (int g = 0; g < s->ngroup; g++) {
        int64_t k;
        expr *e = s->group[g];
        if (const_int(e, &k)) { /* as sqlite3ExprIsInteger: also -N, +N */
            if (k < 1 || k > p->nout) {
                *why = "GROUP BY term out of range";
                return ELO_UNSUPPORTED;
            }
            e = copy_expr(&pl, p->out[k - 1]);
        } else if (resolve(&pl, e, 0, 0) < 0) {
            goto fail;
        }
        if (has_agg(e)) {
            *why = "aggregate in GROUP BY";
            return ELO_UNSUPPORTED;
        }
        p->keys[p->nkeys++] = e;
    }
    if (s->having && resolve(&pl, s->having, 1, 0) < 0)
        goto fail;

    /* ORDER BY: result alias first, then column number, then expression */
    p->norder = s->norder;
    p->order = elo_arena_alloc(a, sizeof(expr *) * (s->norder + 1));
    p->desc = elo_arena_alloc(a, sizeof(int) * (s->norder + 1));
    int order_is_out[64] = {0};
    for (int o = 0; o < s->norder; o++) {
        expr *e = s->order[o].e;
        p->desc[o] = s->order[o].desc;
        int j = -1;
        if (e->kind == E_COL && !e->tab)
            for (int c = 0; c < p->nout; c++)
                if (alias_of[c] && !strcasecmp(alias_of[c], e->name)) {
                    j = c;
                    break;
                }
        int64_t k;
        if (j < 0 && const_int(e, &k)) {
            if (k < 1 || k > p->nout) {
                *why = "ORDER BY term out of range";
                return ELO_UNSUPPORTED;
            }
            j = (int)k - 1;
        }
        if (j < 0 && e->kind == E_LIT) {
            p->order[o] = e; /* a constant: no effect on order */
            continue;
        }
        if (j >= 0) {
            order_is_out[o] = 1;
            p->order[o] = p->out[j];
            continue;
        }
        if (resolve(&pl, e, 1, 0) < 0)
            goto fail;
        p->order[o] = e;
    }

    /* as SQLite decides it: GROUP BY or an aggregate in the result columns;
     * aggregates only in HAVING or ORDER BY are errors there */
    int any_agg = s->ngroup > 0;
    for (int i = 0; i < p->nout && !any_agg; i++)
        any_agg = has_agg(p->out[i]);
    p->aggregate = any_agg;
    if (s->having && !any_agg) {
        *why = "HAVING on a non-aggregate query";
        return ELO_UNSUPPORTED;
    }
    for (int o = 0; o < p->norder && !any_agg; o++)
        if (has_agg(p->order[o])) {
            *why = "aggregate in ORDER BY of a non-aggregate query";
            return ELO_UNSUPPORTED;
        }
    if (any_agg) {
        expr *newout[SQL_MAX_ITEMS * 4];
        for (int i = 0; i < p->nout; i++)
            if (!(newout[i] = rewrite(&pl, p->out[i])))
                goto fail;
        for (int o = 0; o < p->norder; o++) {
            if (order_is_out[o]) {
                for (int i = 0; i < p->nout; i++)
                    if (p->order[o] == p->out[i]) {
                        p->order[o] = newout[i];
                        break;
                    }
            } else if (!(p->order[o] = rewrite(&pl, p->order[o]))) {
                goto fail;
            }
        }
        for (int i = 0; i < p->nout; i++)
            p->out[i] = newout[i];
        if (s->having && !(p->having = rewrite(&pl, s->having)))
            goto fail;
    }
    if (t && t->has_index && !p->aggregate && !s->norder && t->nrows > 1) {
        *why = "row order without ORDER BY follows SQLite's choice of index";
        return ELO_UNSUPPORTED;
    }
    if (s->limit) {
        int64_t v;
        if (!const_int(s->limit, &v)) {
            *why = "LIMIT that is not an integer constant";
            return ELO_UNSUPPORTED;
        }
        p->limit = v < 0 ? -1 : v;
    }
    if (s->offset) {
        int64_t v;
        if (!const_int(s->offset, &v)) {
            *why = "OFFSET that is not an integer constant";
            return ELO_UNSUPPORTED;
        }
        p->offset = v < 0 ? 0 : v;
    }
    return ELO_OK;
fail:
    *why = pl.why ? pl.why : "planning failed";
    return ELO_UNSUPPORTED;
}
