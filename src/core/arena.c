/* arena.c - bump allocation in linked blocks, freed all at once. */
#include "elohim/core.h"

#include <string.h>

typedef struct arena_block {
    struct arena_block *next;
    size_t size;    /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
} arena_block;

struct elo_arena {
    arena_block *head;      /* current block (newest) */
    size_t block_bytes;     /* default block size */
    size_t total_used;
};

static arena_block *block_new(size_t size)
{
    arena_block *b = elo_malloc(sizeof(arena_block) + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

elo_arena *elo_arena_new(size_t block_bytes)
{
    elo_arena *a = elo_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->block_bytes = block_bytes ? block_bytes : 64 * 1024;
    a->head = block_new(a->block_bytes);
    if (!a->head) {
        elo_free(a);
        return NULL;
    }
    return a;
}

void elo_arena_free(elo_arena *a)
{
    if (!a)
        return;
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        elo_free(b);
        b = next;
    }
    elo_free(a);
}

void *elo_arena_alloc(elo_arena *a, size_t bytes)
{
    size_t need = (bytes + 15) & ~(size_t)15;
    if (need < bytes)
        return NULL;
    arena_block *b = a->head;
    if (b->size - b->used < need) {
        size_t size = need > a->block_bytes ? need : a->block_bytes;
        arena_block *nb = block_new(size);
        if (!nb)
            return NULL;
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total_used += need;
    return p;
}

char *elo_arena_strndup(elo_arena *a, const char *s, size_t len)
{
    char *d = elo_arena_alloc(a, len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *elo_arena_strdup(elo_arena *a, const char *s)
{
    return elo_arena_strndup(a, s, strlen(s));
}

void elo_arena_reset(elo_arena *a)
{
    arena_block *b = a->head;
    while (b->next) {          /* keep only the oldest block */
        arena_block *next = b->next;
        elo_free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
    a->total_used = 0;
}

size_t elo_arena_used(const elo_arena *a) { return a->total_used; }
