/* sql-value.c - SQLite's value rules we depend on: column affinity from a
 * declared type, the total order of values (sqlite3MemCompare with BINARY
 * collation), the saturating real-to-integer conversion, a hash that agrees
 * with that order's equality, and MD5 for sqllogictest result hashes. */
#include "sql-impl.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#include <strings.h>

static int contains(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (!strncasecmp(s, needle, n))
            return 1;
    return 0;
}

int elo__sql_affinity(const char *t)
{
    /* datatype3.html 3.1, applied in this order */
    if (!t)
        return AFF_BLOB;
    if (contains(t, "INT"))
        return AFF_INTEGER;
    if (contains(t, "CHAR") || contains(t, "CLOB") || contains(t, "TEXT"))
        return AFF_TEXT;
    int blank = 1;
    for (const char *p = t; *p; p++)
        if (!isspace((unsigned char)*p))
            blank = 0;
    if (contains(t, "BLOB") || blank)
        return AFF_BLOB;
    if (contains(t, "REAL") || contains(t, "FLOA") || contains(t, "DOUB"))
        return AFF_REAL;
    return AFF_NUMERIC;
}

int64_t elo__sql_d2i(double r)
{
    if (isnan(r))
        return 0;
    if (r <= -9223372036854775808.0)
        return INT64_MIN;
    if (r >= 9223372036854775807.0)
        return INT64_MAX;
    return (int64_t)r;
}

/* int vs real, exactly (sqlite3IntFloatCompare). */
static int int_real_cmp(int64_t i, double r)
{
    if (r < -9223372036854775808.0)
        return 1;
    if (r >= 9223372036854775808.0)
        return -1;
    int64_t y = (int64_t)r;
    if (i < y)
        return -1;
    if (i > y)
        return 1;
    double t = (double)y;
    if (t < r)
        return -1;
    if (t > r)
        return 1;
    return 0;
}

int elo__sv_cmp(const sv *a, const sv *b)
{
    if (a->t == SV_NULL || b->t == SV_NULL)
        return a->t == b->t ? 0 : (a->t == SV_NULL ? -1 : 1);
    int an = a->t != SV_TEXT, bn = b->t != SV_TEXT;
    if (an && bn) {
        if (a->t == SV_INT && b->t == SV_INT)
            return a->i < b->i ? -1 : a->i > b->i;
        if (a->t == SV_REAL && b->t == SV_REAL)
            return a->r < b->r ? -1 : a->r > b->r;
        if (a->t == SV_INT)
            return int_real_cmp(a->i, b->r);
        return -int_real_cmp(b->i, a->r);
    }
    if (an)
        return -1;
    if (bn)
        return 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->s, b->s, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

uint64_t elo__sv_hash(const sv *v)
{
    switch (v->t) {
    case SV_NULL:
        return 0x9e3779b97f4a7c15ull;
    case SV_INT: {
        uint64_t x = (uint64_t)v->i * 0x9e3779b97f4a7c15ull;
        return x ^ (x >> 29);
    }
    case SV_REAL: {
        double r = v->r;
        if (r >= -9223372036854775808.0 && r < 9223372036854775808.0 && r == floor(r)) {
            sv iv = {.t = SV_INT, .i = (int64_t)r};
            return elo__sv_hash(&iv);
        }
        if (r == 0)
            r = 0; /* -0.0 */
        uint64_t bits;
        memcpy(&bits, &r, 8);
        return elo_hash64(&bits, 8);
    }
    default:
        return elo_hash64(v->s, v->len) ^ 0x5bd1e995u;
    }
}

/* ---- MD5 (RFC 1321) ------------------------------------------------------ */

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
    0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
    0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
    0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
    0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
    0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391};
static const uint8_t md5_r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_block(elo_md5 *m, const uint8_t *p)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 | (uint32_t)p[i * 4 + 2] << 16 |
               (uint32_t)p[i * 4 + 3] << 24;
    uint32_t a = m->s[0], b = m->s[1], c = m->s[2], d = m->s[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) { f = (b & c) | (~b & d); g = i; }
        else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
        else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
        else { f = c ^ (b | ~d); g = (7 * i) & 15; }
        uint32_t t = d;
        d = c;
        c = b;
        uint32_t x = a + f + md5_k[i] + w[g];
        b = b + ((x << md5_r[i]) | (x >> (32 - md5_r[i])));
        a = t;
    }
    m->s[0] += a; m->s[1] += b; m->s[2] += c; m->s[3] += d;
}

void elo__md5_init(elo_md5 *m)
{
    m->s[0] = 0x67452301; m->s[1] = 0xefcdab89; m->s[2] = 0x98badcfe; m->s[3] = 0x10325476;
    m->n = 0;
}

void elo__md5_update(elo_md5 *m, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        size_t have = m->n & 63, take = 64 - have;
        if (take > len)
            take = len;
        memcpy(m->buf + have, p, take);
        m->n += take;
        p += take;
        len -= take;
        if ((m->n & 63) == 0)
            md5_block(m, m->buf);
    }
}

void elo__md5_final(elo_md5 *m, char hex[33])
{
    uint64_t bits = m->n * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    elo__md5_update(m, &pad, 1);
    while ((m->n & 63) != 56)
        elo__md5_update(m, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (8 * i));
    elo__md5_update(m, lenb, 8);
    for (int i = 0; i < 16; i++) {
        uint8_t byte = (uint8_t)(m->s[i / 4] >> (8 * (i % 4)));
        static const char *h = "0123456789abcdef";
        hex[i * 2] = h[byte >> 4];
        hex[i * 2 + 1] = h[byte & 15];
    }
    hex[32] = 0;
}
