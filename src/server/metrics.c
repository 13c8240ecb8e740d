/* metrics.c - a small process-wide metrics registry (counters and
 * histograms with up to three labels) rendered in the Prometheus text
 * exposition format.
 *
 * DESIGN: one mutex guards the registry; an update is a short linear scan
 * of a family's series (compared by a label hash first) and a few adds, so
 * HTTP workers, the embedder and the SQL engine may all record at once.
 * Families are created at first use of the registry (the built-in ones) or
 * by elo_metrics_register_*; series are created on first observation, at
 * most MAX_SERIES per family so that a client cannot grow memory without
 * bound (excess observations are dropped and counted). */
#include "server-impl.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 3
#define MAX_BUCKETS 24
#define MAX_SERIES 2000

typedef struct {
    char *values[MAX_LABELS];   /* label values (owned) */
    uint64_t hash;              /* of the joined values */
    double value;               /* counter value */
    uint64_t buckets[MAX_BUCKETS]; /* per-bucket (non-cumulative) counts */
    uint64_t count;             /* histogram observations */
    double sum;
} series;

typedef struct {
    char name[96];
    char help[192];
    int is_histogram;
    int label_count;
    char labels[MAX_LABELS][32];
    double bounds[MAX_BUCKETS];
    int bucket_count;
    series *items;
    int item_count, item_cap;
} family;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static family *families;
static int family_count, family_cap;
static uint64_t dropped_series;
static int builtins_done;

static int valid_name(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_' || *s == ':'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == ':'))
            return 0;
    return 1;
}

static family *find_family(const char *name)
{
    for (int i = 0; i < family_count; i++)
        if (!strcmp(families[i].name, name))
            return &families[i];
    return NULL;
}

/* Adds a family; the lock is held. */
static int add_family(const char *name, const char *help, const char *labels, int hist,
                      const double *bounds, int bucket_count)
{
    if (!valid_name(name) || strlen(name) >= sizeof families[0].name)
        return elo_seterr(ELO_BADINPUT, "bad metric name '%s'", name ? name : "");
    if (hist && (bucket_count < 1 || bucket_count > MAX_BUCKETS))
        return elo_seterr(ELO_BADINPUT, "%s: 1 to %d buckets", name, MAX_BUCKETS);
    family f;
    memset(&f, 0, sizeof f);
    snprintf(f.name, sizeof f.name, "%s", name);
    snprintf(f.help, sizeof f.help, "%s", help ? help : "");
    f.is_histogram = hist;
    const char *p = labels ? labels : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (f.label_count == MAX_LABELS || n == 0 || n >= sizeof f.labels[0])
            return elo_seterr(ELO_BADINPUT, "%s: bad label list '%s'", name, labels);
        memcpy(f.labels[f.label_count], p, n);
        f.labels[f.label_count][n] = 0;
        if (!valid_name(f.labels[f.label_count]) || !strcmp(f.labels[f.label_count], "le"))
            return elo_seterr(ELO_BADINPUT, "%s: bad label name", name);
        f.label_count++;
        p += n;
        if (*p == ',')
            p++;
    }
    for (int i = 0; hist && i < bucket_count; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            return elo_seterr(ELO_BADINPUT, "%s: buckets must ascend", name);
        f.bounds[i] = bounds[i];
    }
    f.bucket_count = hist ? bucket_count : 0;
    family *old = find_family(name);
    if (old) {
        if (old->is_histogram == f.is_histogram && old->label_count == f.label_count &&
            old->bucket_count == f.bucket_count)
            return ELO_OK;
        return elo_seterr(ELO_EXISTS, "metric %s already registered differently", name);
    }
    if (family_count == family_cap) {
        int cap = family_cap ? family_cap * 2 : 16;
        family *n = elo_realloc(families, (size_t)cap * sizeof *n);
        if (!n)
            return ELO_NOMEM;
        families = n;
        family_cap = cap;
    }
    families[family_count++] = f;
    return ELO_OK;
}

static void add_builtins(void)
{
    if (builtins_done)
        return;
    builtins_done = 1;
    static const double http_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static const double embed_b[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5};
    static const double search_b[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    static const double sql_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25, 0.5, 1, 2.5, 5, 10};
    add_family("elohim_http_requests_total", "HTTP requests by method, route and status.",
               "method,route,status", 0, NULL, 0);
    add_family("elohim_http_request_duration_seconds", "HTTP request latency by route.",
               "route", 1, http_b, (int)ELO_ARRAY_LEN(http_b));
    add_family("elohim_embedding_duration_seconds", "Latency of one embedding request.", "",
               1, embed_b, (int)ELO_ARRAY_LEN(embed_b));
    add_family("elohim_vector_search_duration_seconds", "Latency of one vector search.", "",
               1, search_b, (int)ELO_ARRAY_LEN(search_b));
    add_family("elohim_sql_query_duration_seconds", "Latency of one SQL query by engine.",
               "engine", 1, sql_b, (int)ELO_ARRAY_LEN(sql_b));
    add_family("elohim_sql_queries_total", "SQL queries by engine.", "engine", 0, NULL, 0);
    add_family("elohim_login_failures_total", "Failed logins by reason.", "reason", 0, NULL, 0);
    add_family("elohim_audit_write_failures_total",
               "Audit entries that could not be written (the change was refused).", "", 0, NULL,
               0);
}

int elo_metrics_register_counter(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&reg_lock);
    add_builtins();
    int rc = add_family(name, help, labels, 0, NULL, 0);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int elo_metrics_register_histogram(const char *name, const char *help, const char *labels,
                                   const double *buckets, int bucket_count)
{
    pthread_mutex_lock(&reg_lock);
    add_builtins();
    int rc = add_family(name, help, labels, 1, buckets, bucket_count);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

/* The series of `f` for `values` (label_count strings), created on first
 * use; NULL when the family is full or memory is out. The lock is held. */
static series *get_series(family *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < f->label_count; i++) {
        h ^= elo_hash64(values[i], strlen(values[i]));
        h *= 1099511628211ULL;
    }
    for (int i = 0; i < f->item_count; i++) {
        series *s = &f->items[i];
        if (s->hash != h)
            continue;
        int same = 1;
        for (int j = 0; j < f->label_count && same; j++)
            same = !strcmp(s->values[j], values[j]);
        if (same)
            return s;
    }
    if (f->item_count >= MAX_SERIES) {
        dropped_series++;
        return NULL;
    }
    if (f->item_count == f->item_cap) {
        int cap = f->item_cap ? f->item_cap * 2 : 8;
        series *n = elo_realloc(f->items, (size_t)cap * sizeof *n);
        if (!n)
            return NULL;
        f->items = n;
        f->item_cap = cap;
    }
    series *s = &f->items[f->item_count];
    memset(s, 0, sizeof *s);
    for (int j = 0; j < f->label_count; j++) {
        s->values[j] = elo_strdup(values[j]);
        if (!s->values[j]) {
            for (int k = 0; k < j; k++)
                elo_free(s->values[k]);
            return NULL;
        }
    }
    s->hash = h;
    f->item_count++;
    return s;
}

/* Splits `joined` ("a\x1fb\x1fc") into up to MAX_LABELS values. */
static int split_values(const char *joined, char *buf, size_t buflen, const char **values)
{
    int n = 0;
    if (!joined)
        return 0;
    snprintf(buf, buflen, "%s", joined);
    char *p = buf;
    for (;;) {
        if (n == MAX_LABELS)
            return -1;
        values[n++] = p;
        char *sep = strchr(p, '\x1f');
        if (!sep)
            break;
        *sep = 0;
        p = sep + 1;
    }
    return n;
}

static int record(const char *name, const char *joined, int hist, double v)
{
    char buf[512];
    const char *values[MAX_LABELS] = {0};
    int given = split_values(joined, buf, sizeof buf, values);
    pthread_mutex_lock(&reg_lock);
    add_builtins();
    int rc = ELO_OK;
    family *f = find_family(name);
    if (!f) {
        rc = elo_seterr(ELO_NOTFOUND, "no metric named %s", name);
    } else if (f->is_histogram != hist || given != f->label_count) {
        rc = elo_seterr(ELO_BADINPUT, "%s: wrong kind or label count", name);
    } else {
        series *s = get_series(f, values);
        if (!s) {
            rc = ELO_RANGE;
        } else if (!hist) {
            s->value += v;
        } else {
            int b = 0;
            while (b < f->bucket_count && v > f->bounds[b])
                b++;
            if (b < f->bucket_count)
                s->buckets[b]++;
            s->count++;
            s->sum += v;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int elo_metrics_observe(const char *name, double seconds)
{
    return record(name, NULL, 1, seconds);
}

int elo_metrics_observe_label(const char *name, const char *label_value, double seconds)
{
    return record(name, label_value ? label_value : "", 1, seconds);
}

int elo_metrics_count(const char *name, const char *label_value, double increment)
{
    if (!(increment >= 0))
        return elo_seterr(ELO_BADINPUT, "counters only go up");
    return record(name, label_value, 0, increment);
}

int elo__metrics_count_labels(const char *name, const char *const *values, int count,
                              double increment)
{
    char joined[512];
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        int n = snprintf(joined + off, sizeof joined - off, "%s%s", i ? "\x1f" : "", values[i]);
        if (n < 0 || (size_t)n >= sizeof joined - off)
            return ELO_RANGE;
        off += (size_t)n;
    }
    return record(name, count ? joined : NULL, 0, increment);
}

/* ---- rendering ------------------------------------------------------------ */

void elo__buf_init(elo_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void elo__buf_add(elo_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = elo_realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void elo__buf_printf(elo_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        elo__buf_add(b, small, (size_t)n);
        return;
    }
    char *big = elo_malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    elo__buf_add(b, big, (size_t)n);
    elo_free(big);
}

/* A label value escaped per the text format (backslash, quote, newline). */
void elo__buf_label_value(elo_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            elo__buf_add(b, "\\\\", 2);
        else if (*v == '"')
            elo__buf_add(b, "\\\"", 2);
        else if (*v == '\n')
            elo__buf_add(b, "\\n", 2);
        else
            elo__buf_add(b, v, 1);
    }
}

void elo__buf_number(elo_buf *b, double v)
{
    if (isnan(v))
        elo__buf_add(b, "NaN", 3);
    else if (isinf(v))
        elo__buf_add(b, v > 0 ? "+Inf" : "-Inf", 4);
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        elo__buf_printf(b, "%lld", (long long)v);
    else {
        /* shortest of %.15g/%.17g that reads back exactly */
        char t[40];
        snprintf(t, sizeof t, "%.15g", v);
        if (strtod(t, NULL) != v)
            snprintf(t, sizeof t, "%.17g", v);
        elo__buf_add(b, t, strlen(t));
    }
}

static void put_labels(elo_buf *b, const family *f, const series *s, const char *le)
{
    if (f->label_count == 0 && !le)
        return;
    elo__buf_add(b, "{", 1);
    for (int i = 0; i < f->label_count; i++) {
        elo__buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        elo__buf_label_value(b, s->values[i]);
        elo__buf_add(b, "\"", 1);
    }
    if (le)
        elo__buf_printf(b, "%sle=\"%s\"", f->label_count ? "," : "", le);
    elo__buf_add(b, "}", 1);
}

static void render_family(elo_buf *b, const family *f)
{
    elo__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                    f->is_histogram ? "histogram" : "counter");
    series zero;
    memset(&zero, 0, sizeof zero);
    int n = f->item_count;
    const series *items = f->items;
    if (n == 0 && f->label_count == 0) {   /* unlabelled: always present */
        items = &zero;
        n = 1;
    }
    for (int i = 0; i < n; i++) {
        const series *s = &items[i];
        if (!f->is_histogram) {
            elo__buf_add(b, f->name, strlen(f->name));
            put_labels(b, f, s, NULL);
            elo__buf_add(b, " ", 1);
            elo__buf_number(b, s->value);
            elo__buf_add(b, "\n", 1);
            continue;
        }
        uint64_t cumulative = 0;
        for (int k = 0; k <= f->bucket_count; k++) {
            char le[40];
            if (k < f->bucket_count) {
                cumulative += s->buckets[k];
                snprintf(le, sizeof le, "%g", f->bounds[k]);
            } else {
                cumulative = s->count;
                snprintf(le, sizeof le, "+Inf");
            }
            elo__buf_printf(b, "%s_bucket", f->name);
            put_labels(b, f, s, le);
            elo__buf_printf(b, " %llu\n", (unsigned long long)cumulative);
        }
        elo__buf_printf(b, "%s_sum", f->name);
        put_labels(b, f, s, NULL);
        elo__buf_add(b, " ", 1);
        elo__buf_number(b, s->sum);
        elo__buf_printf(b, "\n%s_count", f->name);
        put_labels(b, f, s, NULL);
        elo__buf_printf(b, " %llu\n", (unsigned long long)s->count);
    }
}

int elo__metrics_render_into(elo_buf *b)
{
    pthread_mutex_lock(&reg_lock);
    add_builtins();
    for (int i = 0; i < family_count; i++)
        render_family(b, &families[i]);
    uint64_t dropped = dropped_series;
    pthread_mutex_unlock(&reg_lock);
    elo__buf_printf(b, "# HELP elohim_metrics_dropped_series_total Observations dropped "
                       "because a family reached its series limit.\n"
                       "# TYPE elohim_metrics_dropped_series_total counter\n"
                       "elohim_metrics_dropped_series_total %llu\n",
                    (unsigned long long)dropped);
    return b->failed ? ELO_NOMEM : ELO_OK;
}

char *elo_metrics_render(size_t *len)
{
    elo_buf b;
    elo__buf_init(&b);
    if (elo__metrics_render_into(&b) < 0) {
        elo_free(b.data);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.data;
}
