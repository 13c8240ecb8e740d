/* alloc.c - allocation wrappers that report failure instead of aborting,
 * and check size arithmetic for overflow. */
#include "elohim/core.h"

#include <stdlib.h>
#include <string.h>

int elo_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

void *elo_malloc(size_t bytes) { return malloc(bytes ? bytes : 1); }

void *elo_calloc(size_t count, size_t size)
{
    size_t total;
    if (elo_mul_size(count, size, &total) != 0)
        return NULL;
    return calloc(total ? total : 1, 1);
}

void *elo_realloc(void *ptr, size_t bytes) { return realloc(ptr, bytes ? bytes : 1); }

void *elo_aligned_alloc(size_t alignment, size_t bytes)
{
    void *p = NULL;
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, bytes ? bytes : 1) != 0)
        return NULL;
    return p;
}

void elo_free(void *ptr) { free(ptr); }

char *elo_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = elo_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
