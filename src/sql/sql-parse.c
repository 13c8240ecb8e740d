/* sql-parse.c - tokenizer and recursive-descent parser for the SELECT subset
 * our columnar engine runs. Operator precedence follows SQLite's grammar
 * (parse.y): OR < AND < NOT < (= == != <> IS IN BETWEEN ISNULL NOTNULL) <
 * (< <= > >=) < (+ -) < (* / %) < unary (- + ~). Anything outside the
 * subset makes the parse fail with a reason; the caller then hands the
 * statement to SQLite unchanged, so being strict here costs speed, never
 * correctness. */
#include "sql-impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { T_EOF, T_ID, T_INT, T_REAL, T_STR, T_OP, T_BAD };

typedef struct {
    int type;
    const char *p;      /* start in the source */
    size_t n;
    char *text;         /* identifier (unquoted) / string value, arena */
    int quoted;         /* identifier was quoted */
} token;

typedef struct {
    elo_arena *a;
    const char *src;
    const char *p;
    token tok;
    const char *why;
    int depth;
    int nodes;          /* expression nodes so far */
} parser;

static const char *const reserved[] = {
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "OFFSET", "AS",
    "AND", "OR", "NOT", "IS", "IN", "BETWEEN", "NULL", "CASE", "WHEN", "THEN", "ELSE", "END",
    "CAST", "DISTINCT", "ALL", "ASC", "DESC", "UNION", "EXCEPT", "INTERSECT", "JOIN", "ON",
    "USING", "NATURAL", "LEFT", "INNER", "CROSS", "OUTER", "LIKE", "GLOB", "REGEXP", "MATCH",
    "ISNULL", "NOTNULL", "EXISTS", "COLLATE", "ESCAPE", "WINDOW", "OVER", "FILTER", "NULLS",
    "VALUES", "WITH", "INDEXED", "RIGHT", "FULL", NULL};

/* SQLite's keywords. Those that SQLite's grammar cannot take as a name
 * (no fallback to ID) make our parse fail wherever a name is expected, and
 * no keyword is taken as an alias without AS: SQLite then decides. */
static const char *const sqlite_strict_kw[] = {
    "ADD", "ALL", "ALTER", "AND", "AS", "AUTOINCREMENT", "BETWEEN", "CASE", "CHECK", "COLLATE",
    "COMMIT", "CONSTRAINT", "CREATE", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP",
    "DEFAULT", "DEFERRABLE", "DELETE", "DISTINCT", "DROP", "ELSE", "ESCAPE", "EXCEPT", "EXISTS",
    "FILTER", "FOREIGN", "FROM", "GLOB", "GROUP", "HAVING", "IN", "INDEX", "INDEXED", "INSERT",
    "INTERSECT", "INTO", "IS", "ISNULL", "JOIN", "LIKE", "LIMIT", "NOT", "NOTHING", "NOTNULL",
    "NULL", "ON", "OR", "ORDER", "OVER", "PRIMARY", "REFERENCES", "REGEXP", "RETURNING",
    "SELECT", "SET", "TABLE", "THEN", "TO", "TRANSACTION", "UNION", "UNIQUE", "UPDATE", "USING",
    "VALUES", "WHEN", "WHERE", "WINDOW", "CROSS", "INNER", "LEFT", "NATURAL", "OUTER", "RIGHT",
    "FULL", NULL};
static const char *const sqlite_soft_kw[] = {
    "ABORT", "ACTION", "AFTER", "ALWAYS", "ANALYZE", "ASC", "ATTACH", "BEFORE", "BEGIN", "BY",
    "CASCADE", "CAST", "COLUMN", "CONFLICT", "CURRENT", "DATABASE", "DEFERRED", "DESC",
    "DETACH", "DO", "EACH", "END", "EXCLUDE", "EXCLUSIVE", "EXPLAIN", "FAIL", "FIRST",
    "FOLLOWING", "FOR", "GENERATED", "GROUPS", "IF", "IGNORE", "IMMEDIATE", "INITIALLY",
    "INSTEAD", "KEY", "LAST", "MATCH", "MATERIALIZED", "NO", "NULLS", "OF", "OFFSET", "OTHERS",
    "PARTITION", "PLAN", "PRAGMA", "PRECEDING", "QUERY", "RAISE", "RANGE", "RECURSIVE",
    "REINDEX", "RELEASE", "RENAME", "REPLACE", "RESTRICT", "ROLLBACK", "ROW", "ROWS",
    "SAVEPOINT", "TEMP", "TEMPORARY", "TIES", "TRIGGER", "UNBOUNDED", "VACUUM", "VIEW",
    "VIRTUAL", "WITH", "WITHOUT", NULL};

static int in_list(const char *const *list, const token *t)
{
    if (t->type != T_ID || t->quoted)
        return 0;
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == t->n && !strncasecmp(list[i], t->p, t->n))
            return 1;
    return 0;
}

static int is_reserved(const token *t)
{
    if (t->type != T_ID || t->quoted)
        return 0;
    for (int i = 0; reserved[i]; i++)
        if (strlen(reserved[i]) == t->n && !strncasecmp(reserved[i], t->p, t->n))
            return 1;
    return 0;
}

static int is_kw(const parser *ps, const char *kw)
{
    const token *t = &ps->tok;
    return t->type == T_ID && !t->quoted && strlen(kw) == t->n && !strncasecmp(kw, t->p, t->n);
}

static int is_op(const parser *ps, const char *op)
{
    return ps->tok.type == T_OP && strlen(op) == ps->tok.n && !strncmp(op, ps->tok.p, ps->tok.n);
}

static int fail(parser *ps, const char *why)
{
    if (!ps->why)
        ps->why = why;
    return -1;
}

static void next(parser *ps)
{
    const char *p = ps->p;
    token *t = &ps->tok;
    memset(t, 0, sizeof *t);
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r')
            p++; /* SQLite's whitespace (not \v) */
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        /* as SQLite: a slash-star at the very end is two operators */
        if (p[0] == '/' && p[1] == '*' && p[2]) {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        break;
    }
    t->p = p;
    if (!*p) {
        t->type = T_EOF;
        ps->p = p;
        return;
    }
    unsigned char c = (unsigned char)*p;
    if (isalpha(c) || c == '_' || c >= 0x80) {
        if ((c == 'x' || c == 'X') && p[1] == '\'') {
            t->type = T_BAD; /* blob literal */
            t->n = 1;
            ps->p = p + 1;
            return;
        }
        const char *s = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '$' ||
                      (unsigned char)*p >= 0x80))
            p++;
        t->type = T_ID;
        t->n = (size_t)(p - s);
        t->text = elo_arena_strndup(ps->a, s, t->n);
        ps->p = p;
        return;
    }
    if (c == '"' || c == '`' || c == '[' || c == '\'') {
        char close = c == '[' ? ']' : (char)c;
        const char *s = p + 1;
        size_t cap = strlen(s) + 1;
        char *buf = elo_arena_alloc(ps->a, cap);
        size_t n = 0;
        p = s;
        for (;;) {
            if (!*p) {
                t->type = T_BAD;
                t->n = (size_t)(p - t->p);
                ps->p = p;
                return;
            }
            if (*p == close) {
                if (close != ']' && p[1] == close) {
                    buf[n++] = close;
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            buf[n++] = *p++;
        }
        buf[n] = 0;
        t->text = buf;
        t->n = (size_t)(p - t->p);
        t->type = c == '\'' ? T_STR : T_ID;
        t->quoted = 1;
        ps->p = p;
        /* keep the length of string literals (may hold no NULs: C string) */
        if (t->type == T_STR)
            t->n = (size_t)(p - t->p);
        return;
    }
    if (isdigit(c) || (c == '.' && isdigit((unsigned char)p[1]))) {
        const char *s = p;
        int real = 0;
        if (c == '0' && (p[1] == 'x' || p[1] == 'X')) {
            t->type = T_BAD; /* hex literals: SQLite */
            t->n = 2;
            ps->p = p + 2;
            return;
        }
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '.') {
            real = 1;
            p++;
            while (isdigit((unsigned char)*p))
                p++;
        }
        if (*p == 'e' || *p == 'E') {
            const char *q = p + 1;
            if (*q == '+' || *q == '-')
                q++;
            if (isdigit((unsigned char)*q)) {
                real = 1;
                p = q;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        if (isalpha((unsigned char)*p) || *p == '_' || *p == '$' || (unsigned char)*p >= 0x80) {
            t->type = T_BAD; /* SQLite: unrecognized token */
            t->n = (size_t)(p - s);
            ps->p = p;
            return;
        }
        t->type = real ? T_REAL : T_INT;
        t->n = (size_t)(p - s);
        t->text = elo_arena_strndup(ps->a, s, t->n);
        ps->p = p;
        return;
    }
    static const char *const ops[] = {"<>", "<=", ">=", "==", "!=", "||", "<<", ">>", "->",
                                      "(", ")", ",", ".", "*", "/", "%", "+", "-", "<", ">",
                                      "=", ";", "&", "|", "~", NULL};
    for (int i = 0; ops[i]; i++) {
        size_t n = strlen(ops[i]);
        if (!strncmp(p, ops[i], n)) {
            t->type = T_OP;
            t->n = n;
            ps->p = p + n;
            return;
        }
    }
    t->type = T_BAD;
    t->n = 1;
    ps->p = p + 1;
}

static expr *new_expr(parser *ps, int kind)
{
    /* SQLite refuses expression trees deeper than 1000; staying far below
     * in node count keeps us from answering what SQLite rejects. A failed
     * parse still hands out a node (a per-thread scratch one when memory
     * runs out): the callers fill it in, and the parse reports failure. */
    static __thread expr scratch;
    if (++ps->nodes > 400)
        fail(ps, "expression too large");
    expr *e = elo_arena_alloc(ps->a, sizeof *e);
    if (!e) {
        fail(ps, "out of memory");
        e = &scratch;
    }
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->col = -1;
    return e;
}

static expr *parse_expr(parser *ps);
static expr *parse_cmp(parser *ps);

static int expect_op(parser *ps, const char *op, const char *why)
{
    if (!is_op(ps, op))
        return fail(ps, why);
    next(ps);
    return 0;
}

static expr *parse_list_expr(parser *ps, expr ***list, int *n)
{
    /* comma-separated expressions up to ')' (consumed) */
    int cap = 4;
    *list = elo_arena_alloc(ps->a, sizeof(expr *) * cap);
    *n = 0;
    if (is_op(ps, ")")) {
        next(ps);
        return (expr *)1;
    }
    for (;;) {
        expr *e = parse_expr(ps);
        if (!e)
            return NULL;
        if (*n == cap) {
            expr **nl = elo_arena_alloc(ps->a, sizeof(expr *) * cap * 2);
            memcpy(nl, *list, sizeof(expr *) * cap);
            *list = nl;
            cap *= 2;
        }
        (*list)[(*n)++] = e;
        if (is_op(ps, ",")) {
            next(ps);
            continue;
        }
        if (expect_op(ps, ")", "expected ')'") < 0)
            return NULL;
        return (expr *)1;
    }
}

static int type_affinity(parser *ps, int *aff)
{
    /* type name: identifiers, optionally (n[,m]) */
    char buf[128];
    size_t n = 0;
    if (ps->tok.type != T_ID || is_reserved(&ps->tok))
        return fail(ps, "CAST without a type name");
    while (ps->tok.type == T_ID && !is_reserved(&ps->tok)) {
        if (n + ps->tok.n + 2 < sizeof buf) {
            memcpy(buf + n, ps->tok.p, ps->tok.n);
            n += ps->tok.n;
            buf[n++] = ' ';
        }
        next(ps);
    }
    buf[n] = 0;
    if (is_op(ps, "(")) {
        next(ps);
        while (ps->tok.type == T_INT || is_op(ps, ",") || is_op(ps, "+") || is_op(ps, "-"))
            next(ps);
        if (expect_op(ps, ")", "bad type size") < 0)
            return -1;
    }
    *aff = elo__sql_affinity(buf);
    return 0;
}

static expr *parse_primary(parser *ps)
{
    token t = ps->tok;
    if (t.type == T_INT || t.type == T_REAL) {
        expr *e = new_expr(ps, E_LIT);
        next(ps);
        if (t.type == T_INT) {
            errno = 0;
            char *end;
            unsigned long long v = strtoull(t.text, &end, 10);
            if (errno || v > (unsigned long long)INT64_MAX) {
                fail(ps, "integer literal beyond int64 (SQLite makes it real)");
                return NULL;
            }
            e->lit.t = SV_INT;
            e->lit.i = (int64_t)v;
        } else {
            e->lit.t = SV_REAL;
            e->lit.r = strtod(t.text, NULL);
        }
        return e;
    }
    if (t.type == T_STR) {
        expr *e = new_expr(ps, E_LIT);
        e->lit.t = SV_TEXT;
        e->lit.s = t.text;
        e->lit.len = (uint32_t)strlen(t.text);
        next(ps);
        return e;
    }
    if (is_op(ps, "(")) {
        next(ps);
        if (is_kw(ps, "SELECT") || is_kw(ps, "WITH") || is_kw(ps, "VALUES")) {
            fail(ps, "subquery");
            return NULL;
        }
        expr *e = parse_expr(ps);
        if (!e)
            return NULL;
        if (is_op(ps, ",")) {
            fail(ps, "row value");
            return NULL;
        }
        if (expect_op(ps, ")", "expected ')'") < 0)
            return NULL;
        return e;
    }
    if (t.type != T_ID) {
        fail(ps, t.type == T_BAD ? "token outside our subset" : "expected an expression");
        return NULL;
    }
    if (is_kw(ps, "NULL")) {
        next(ps);
        return new_expr(ps, E_LIT);
    }
    if (is_kw(ps, "CASE")) {
        next(ps);
        expr *e = new_expr(ps, E_CASE);
        if (!is_kw(ps, "WHEN")) {
            e->a = parse_expr(ps);
            if (!e->a)
                return NULL;
        }
        int cap = 8;
        e->list = elo_arena_alloc(ps->a, sizeof(expr *) * cap);
        while (is_kw(ps, "WHEN")) {
            next(ps);
            expr *w = parse_expr(ps);
            if (!w)
                return NULL;
            if (!is_kw(ps, "THEN")) {
                fail(ps, "CASE without THEN");
                return NULL;
            }
            next(ps);
            expr *th = parse_expr(ps);
            if (!th)
                return NULL;
            if (e->nlist + 2 > cap) {
                expr **nl = elo_arena_alloc(ps->a, sizeof(expr *) * cap * 2);
                memcpy(nl, e->list, sizeof(expr *) * cap);
                e->list = nl;
                cap *= 2;
            }
            e->list[e->nlist++] = w;
            e->list[e->nlist++] = th;
        }
        if (e->nlist == 0) {
            fail(ps, "CASE without WHEN");
            return NULL;
        }
        if (is_kw(ps, "ELSE")) {
            next(ps);
            e->c = parse_expr(ps);
            if (!e->c)
                return NULL;
        }
        if (!is_kw(ps, "END")) {
            fail(ps, "CASE without END");
            return NULL;
        }
        next(ps);
        return e;
    }
    if (is_kw(ps, "CAST")) {
        next(ps);
        if (expect_op(ps, "(", "CAST without '('") < 0)
            return NULL;
        expr *e = new_expr(ps, E_CAST);
        e->a = parse_expr(ps);
        if (!e->a)
            return NULL;
        if (!is_kw(ps, "AS")) {
            fail(ps, "CAST without AS");
            return NULL;
        }
        next(ps);
        if (type_affinity(ps, &e->op) < 0)
            return NULL;
        if (expect_op(ps, ")", "CAST without ')'") < 0)
            return NULL;
        return e;
    }
    if (is_reserved(&ps->tok) || in_list(sqlite_strict_kw, &ps->tok)) {
        fail(ps, "keyword outside our subset");
        return NULL;
    }
    next(ps);
    if (is_op(ps, "(")) { /* function call */
        next(ps);
        expr *e = new_expr(ps, E_FUNC);
        e->name = t.text;
        if (is_op(ps, "*")) {
            next(ps);
            if (expect_op(ps, ")", "expected ')'") < 0)
                return NULL;
            e->kind = E_FUNC;
            e->op = -1; /* (*) */
            return e;
        }
        if (is_kw(ps, "DISTINCT")) {
            next(ps);
            e->distinct = 1;
        } else if (is_kw(ps, "ALL")) {
            next(ps);
        }
        if (!parse_list_expr(ps, &e->list, &e->nlist))
            return NULL;
        if (is_kw(ps, "FILTER") || is_kw(ps, "OVER")) {
            fail(ps, "window or filter clause");
            return NULL;
        }
        return e;
    }
    expr *e = new_expr(ps, E_COL);
    if (is_op(ps, ".")) {
        next(ps);
        if (ps->tok.type != T_ID) {
            fail(ps, "expected a column name after '.'");
            return NULL;
        }
        if (in_list(sqlite_strict_kw, &ps->tok)) {
            fail(ps, "keyword as a column name");
            return NULL;
        }
        e->tab = t.text;
        e->name = ps->tok.text;
        next(ps);
        if (is_op(ps, ".")) {
            fail(ps, "schema-qualified column");
            return NULL;
        }
    } else {
        e->name = t.text;
    }
    return e;
}

static expr *parse_unary(parser *ps)
{
    if (++ps->depth > 60) {
        fail(ps, "expression nested too deeply");
        return NULL;
    }
    expr *r;
    if (is_op(ps, "-") || is_op(ps, "+")) {
        int neg = is_op(ps, "-");
        next(ps);
        expr *a = parse_unary(ps);
        if (!a)
            return NULL;
        r = new_expr(ps, neg ? E_NEG : E_POS);
        r->a = a;
    } else if (is_op(ps, "~")) {
        fail(ps, "bitwise operator");
        return NULL;
    } else {
        r = parse_primary(ps);
        if (r && is_kw(ps, "COLLATE")) {
            fail(ps, "COLLATE");
            return NULL;
        }
    }
    ps->depth--;
    return r;
}

static expr *binary(parser *ps, int op, expr *a, expr *b)
{
    expr *e = new_expr(ps, E_BIN);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static expr *parse_mul(parser *ps)
{
    expr *a = parse_unary(ps);
    while (a) {
        int op;
        if (is_op(ps, "*")) op = OP_MUL;
        else if (is_op(ps, "/")) op = OP_DIV;
        else if (is_op(ps, "%")) op = OP_MOD;
        else if (is_op(ps, "||") || is_op(ps, "->")) {
            fail(ps, "string operator");
            return NULL;
        } else break;
        next(ps);
        expr *b = parse_unary(ps);
        if (!b)
            return NULL;
        a = binary(ps, op, a, b);
    }
    return a;
}

static expr *parse_add(parser *ps)
{
    expr *a = parse_mul(ps);
    while (a) {
        int op;
        if (is_op(ps, "+")) op = OP_ADD;
        else if (is_op(ps, "-")) op = OP_SUB;
        else break;
        next(ps);
        expr *b = parse_mul(ps);
        if (!b)
            return NULL;
        a = binary(ps, op, a, b);
    }
    if (a && (is_op(ps, "&") || is_op(ps, "|") || is_op(ps, "<<") || is_op(ps, ">>"))) {
        fail(ps, "bitwise operator");
        return NULL;
    }
    return a;
}

static expr *parse_cmp(parser *ps)
{
    expr *a = parse_add(ps);
    while (a) {
        int op;
        if (is_op(ps, "<")) op = OP_LT;
        else if (is_op(ps, "<=")) op = OP_LE;
        else if (is_op(ps, ">")) op = OP_GT;
        else if (is_op(ps, ">=")) op = OP_GE;
        else break;
        next(ps);
        expr *b = parse_add(ps);
        if (!b)
            return NULL;
        a = binary(ps, op, a, b);
    }
    return a;
}

static expr *parse_eq(parser *ps)
{
    expr *a = parse_cmp(ps);
    while (a) {
        if (is_op(ps, "=") || is_op(ps, "==") || is_op(ps, "!=") || is_op(ps, "<>")) {
            int op = (is_op(ps, "=") || is_op(ps, "==")) ? OP_EQ : OP_NE;
            next(ps);
            expr *b = parse_cmp(ps);
            if (!b)
                return NULL;
            a = binary(ps, op, a, b);
            continue;
        }
        if (is_kw(ps, "ISNULL") || is_kw(ps, "NOTNULL")) {
            expr *e = new_expr(ps, is_kw(ps, "ISNULL") ? E_ISNULL : E_NOTNULL);
            next(ps);
            e->a = a;
            a = e;
            continue;
        }
        if (is_kw(ps, "IS")) {
            next(ps);
            int isnot = 0;
            if (is_kw(ps, "NOT")) {
                isnot = 1;
                next(ps);
            }
            if (is_kw(ps, "DISTINCT")) {
                fail(ps, "IS DISTINCT FROM");
                return NULL;
            }
            expr *b = parse_cmp(ps);
            if (!b)
                return NULL;
            expr *e = new_expr(ps, isnot ? E_ISNOT : E_IS);
            e->a = a;
            e->b = b;
            a = e;
            continue;
        }
        int negate = 0;
        if (is_kw(ps, "NOT")) {
            /* NOT NULL / NOT IN / NOT BETWEEN / NOT LIKE */
            const char *save = ps->p;
            token st = ps->tok;
            next(ps);
            if (is_kw(ps, "NULL")) {
                next(ps);
                expr *e = new_expr(ps, E_NOTNULL);
                e->a = a;
                a = e;
                continue;
            }
            if (!is_kw(ps, "IN") && !is_kw(ps, "BETWEEN")) {
                if (is_kw(ps, "LIKE") || is_kw(ps, "GLOB") || is_kw(ps, "REGEXP") ||
                    is_kw(ps, "MATCH")) {
                    fail(ps, "pattern matching");
                    return NULL;
                }
                ps->p = save;
                ps->tok = st;
                break;
            }
            negate = 1;
        }
        if (is_kw(ps, "IN")) {
            next(ps);
            if (!is_op(ps, "(")) {
                fail(ps, "IN over a table");
                return NULL;
            }
            next(ps);
            if (is_kw(ps, "SELECT") || is_kw(ps, "WITH") || is_kw(ps, "VALUES")) {
                fail(ps, "IN (subquery)");
                return NULL;
            }
            expr *e = new_expr(ps, E_IN);
            e->negate = negate;
            e->a = a;
            if (!parse_list_expr(ps, &e->list, &e->nlist))
                return NULL;
            a = e;
            continue;
        }
        if (is_kw(ps, "BETWEEN")) {
            next(ps);
            expr *e = new_expr(ps, E_BETWEEN);
            e->negate = negate;
            e->a = a;
            e->b = parse_cmp(ps);
            if (!e->b)
                return NULL;
            if (!is_kw(ps, "AND")) {
                fail(ps, "BETWEEN without AND");
                return NULL;
            }
            next(ps);
            e->c = parse_cmp(ps);
            if (!e->c)
                return NULL;
            a = e;
            continue;
        }
        if (is_kw(ps, "LIKE") || is_kw(ps, "GLOB") || is_kw(ps, "REGEXP") || is_kw(ps, "MATCH")) {
            fail(ps, "pattern matching");
            return NULL;
        }
        break;
    }
    return a;
}

static expr *parse_not(parser *ps)
{
    if (is_kw(ps, "NOT")) {
        if (++ps->depth > 60) {
            fail(ps, "expression nested too deeply");
            return NULL;
        }
        next(ps);
        expr *a = parse_not(ps);
        if (!a)
            return NULL;
        expr *e = new_expr(ps, E_NOT);
        e->a = a;
        ps->depth--;
        return e;
    }
    if (is_kw(ps, "EXISTS")) {
        fail(ps, "EXISTS");
        return NULL;
    }
    return parse_eq(ps);
}

static expr *parse_and(parser *ps)
{
    expr *a = parse_not(ps);
    while (a && is_kw(ps, "AND")) {
        next(ps);
        expr *b = parse_not(ps);
        if (!b)
            return NULL;
        a = binary(ps, OP_AND, a, b);
    }
    return a;
}

static expr *parse_expr(parser *ps)
{
    if (++ps->depth > 60) {
        fail(ps, "expression nested too deeply");
        return NULL;
    }
    expr *a = parse_and(ps);
    while (a && is_kw(ps, "OR")) {
        next(ps);
        expr *b = parse_and(ps);
        if (!b)
            return NULL;
        a = binary(ps, OP_OR, a, b);
    }
    ps->depth--;
    return a;
}

static char *span(parser *ps, const char *s, const char *e)
{
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    return elo_arena_strndup(ps->a, s, (size_t)(e - s));
}

int elo__sql_parse(elo_arena *a, const char *sql, select_stmt *out, const char **why)
{
    parser ps = {.a = a, .src = sql, .p = sql};
    memset(out, 0, sizeof *out);
    next(&ps);
    if (!is_kw(&ps, "SELECT")) {
        *why = "not a SELECT";
        return ELO_UNSUPPORTED;
    }
    next(&ps);
    if (is_kw(&ps, "DISTINCT")) {
        out->distinct = 1;
        next(&ps);
    } else if (is_kw(&ps, "ALL")) {
        next(&ps);
    }
    int cap = 8;
    out->items = elo_arena_alloc(a, sizeof(sel_item) * cap);
    for (;;) {
        if (out->nitems == SQL_MAX_ITEMS) {
            *why = "too many result columns";
            return ELO_UNSUPPORTED;
        }
        if (out->nitems == cap) {
            sel_item *ni = elo_arena_alloc(a, sizeof(sel_item) * cap * 2);
            memcpy(ni, out->items, sizeof(sel_item) * cap);
            out->items = ni;
            cap *= 2;
        }
        sel_item *it = &out->items[out->nitems++];
        memset(it, 0, sizeof *it);
        const char *start = ps.tok.p;
        if (is_op(&ps, "*")) {
            it->star = 1;
            next(&ps);
        } else {
            /* tab.* */
            const char *save = ps.p;
            token st = ps.tok;
            if (ps.tok.type == T_ID && !is_reserved(&ps.tok)) {
                char *tab = ps.tok.text;
                next(&ps);
                if (is_op(&ps, ".")) {
                    next(&ps);
                    if (is_op(&ps, "*")) {
                        next(&ps);
                        it->star = 1;
                        it->star_tab = tab;
                    }
                }
            }
            if (!it->star) {
                ps.p = save;
                ps.tok = st;
                const char *estart = ps.tok.p;
                it->e = parse_expr(&ps);
                if (!it->e)
                    goto failed;
                it->span = span(&ps, estart, ps.tok.p);
                if (is_kw(&ps, "AS")) {
                    next(&ps);
                    if ((ps.tok.type != T_ID && ps.tok.type != T_STR) ||
                        in_list(sqlite_strict_kw, &ps.tok)) {
                        ps.why = "expected an alias after AS";
                        goto failed;
                    }
                    it->alias = ps.tok.text;
                    next(&ps);
                } else if ((ps.tok.type == T_ID && !is_reserved(&ps.tok)) || ps.tok.type == T_STR) {
                    if (in_list(sqlite_strict_kw, &ps.tok) || in_list(sqlite_soft_kw, &ps.tok)) {
                        ps.why = "keyword as an alias";
                        goto failed;
                    }
                    it->alias = ps.tok.text;
                    next(&ps);
                }
            }
        }
        (void)start;
        if (is_op(&ps, ",")) {
            next(&ps);
            continue;
        }
        break;
    }
    if (is_kw(&ps, "FROM")) {
        next(&ps);
        if (ps.tok.type != T_ID || is_reserved(&ps.tok) || in_list(sqlite_strict_kw, &ps.tok)) {
            ps.why = is_op(&ps, "(") ? "subquery in FROM" : "expected a table name";
            goto failed;
        }
        out->table = ps.tok.text;
        next(&ps);
        if (is_op(&ps, ".")) {
            ps.why = "schema-qualified table";
            goto failed;
        }
        if (is_kw(&ps, "AS")) {
            next(&ps);
            if (ps.tok.type != T_ID || in_list(sqlite_strict_kw, &ps.tok)) {
                ps.why = "expected an alias";
                goto failed;
            }
            out->alias = ps.tok.text;
            next(&ps);
        } else if (ps.tok.type == T_ID && !is_reserved(&ps.tok)) {
            if (in_list(sqlite_strict_kw, &ps.tok) || in_list(sqlite_soft_kw, &ps.tok)) {
                ps.why = "keyword as a table alias";
                goto failed;
            }
            out->alias = ps.tok.text;
            next(&ps);
        }
        if (is_op(&ps, ",") || is_kw(&ps, "JOIN") || is_kw(&ps, "LEFT") || is_kw(&ps, "INNER") ||
            is_kw(&ps, "CROSS") || is_kw(&ps, "NATURAL") || is_kw(&ps, "RIGHT") ||
            is_kw(&ps, "FULL")) {
            ps.why = "more than one table (join)";
            goto failed;
        }
        if (is_kw(&ps, "INDEXED") || is_kw(&ps, "NOT")) {
            ps.why = "INDEXED BY";
            goto failed;
        }
    }
    if (is_kw(&ps, "WHERE")) {
        next(&ps);
        out->where = parse_expr(&ps);
        if (!out->where)
            goto failed;
    }
    if (is_kw(&ps, "GROUP")) {
        next(&ps);
        if (!is_kw(&ps, "BY")) {
            ps.why = "GROUP without BY";
            goto failed;
        }
        next(&ps);
        out->group = elo_arena_alloc(a, sizeof(expr *) * SQL_MAX_KEYS);
        for (;;) {
            if (out->ngroup == SQL_MAX_KEYS) {
                ps.why = "too many GROUP BY terms";
                goto failed;
            }
            expr *e = parse_expr(&ps);
            if (!e)
                goto failed;
            out->group[out->ngroup++] = e;
            if (!is_op(&ps, ","))
                break;
            next(&ps);
        }
    }
    if (is_kw(&ps, "HAVING")) {
        next(&ps);
        out->having = parse_expr(&ps);
        if (!out->having)
            goto failed;
    }
    if (is_kw(&ps, "WINDOW")) {
        ps.why = "WINDOW";
        goto failed;
    }
    if (is_kw(&ps, "ORDER")) {
        next(&ps);
        if (!is_kw(&ps, "BY")) {
            ps.why = "ORDER without BY";
            goto failed;
        }
        next(&ps);
        int ocap = 4;
        out->order = elo_arena_alloc(a, sizeof(order_item) * ocap);
        for (;;) {
            if (out->norder == 64) {
                ps.why = "too many ORDER BY terms";
                goto failed;
            }
            if (out->norder == ocap) {
                order_item *no = elo_arena_alloc(a, sizeof(order_item) * ocap * 2);
                memcpy(no, out->order, sizeof(order_item) * ocap);
                out->order = no;
                ocap *= 2;
            }
            order_item *oi = &out->order[out->norder++];
            oi->e = parse_expr(&ps);
            oi->desc = 0;
            if (!oi->e)
                goto failed;
            if (is_kw(&ps, "ASC")) {
                next(&ps);
            } else if (is_kw(&ps, "DESC")) {
                oi->desc = 1;
                next(&ps);
            }
            if (is_kw(&ps, "NULLS")) {
                ps.why = "NULLS FIRST/LAST";
                goto failed;
            }
            if (!is_op(&ps, ","))
                break;
            next(&ps);
        }
    }
    if (is_kw(&ps, "LIMIT")) {
        next(&ps);
        out->limit = parse_expr(&ps);
        if (!out->limit)
            goto failed;
        if (is_kw(&ps, "OFFSET")) {
            next(&ps);
            out->offset = parse_expr(&ps);
            if (!out->offset)
                goto failed;
        } else if (is_op(&ps, ",")) {
            /* LIMIT offset, count */
            next(&ps);
            out->offset = out->limit;
            out->limit = parse_expr(&ps);
            if (!out->limit)
                goto failed;
        }
    }
    while (is_op(&ps, ";"))
        next(&ps);
    if (ps.why)
        goto failed;
    if (ps.tok.type != T_EOF) {
        ps.why = (is_kw(&ps, "UNION") || is_kw(&ps, "EXCEPT") || is_kw(&ps, "INTERSECT"))
                     ? "compound SELECT"
                     : "text after the statement";
        goto failed;
    }
    return ELO_OK;
failed:
    *why = ps.why ? ps.why : "parse error";
    return ELO_UNSUPPORTED;
}
