/* util.c - number parsing, hashing and checksums. */
#include "elohim/core.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int elo_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return ELO_BADINPUT;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return ELO_BADINPUT;
    *out = (int64_t)v;
    return ELO_OK;
}

int elo_parse_f64(const char *s, double *out)
{
    if (!s || !*s)
        return ELO_BADINPUT;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end != '\0')
        return ELO_BADINPUT;
    *out = v;
    return ELO_OK;
}

uint64_t elo_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint32_t elo_crc32c(uint32_t crc, const void *data, size_t len)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {   /* benign race: every thread computes the same table */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
