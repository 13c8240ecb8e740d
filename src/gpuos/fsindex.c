/* fsindex.c - the flat filesystem index: one walk of the registered app
 * directories on the CPU, giving (path, size, mtime, extension hash, kind)
 * per entry, sorted by path. The device scans the entries in parallel
 * during discovery; the paths stay with the I/O thread. */
#include "gpuos/gpuos-impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint64_t gos_ext_hash(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return 0;
    return elo_hash64(dot, strlen(dot));
}

uint64_t gos_gpuapp_ext_hash(void)
{
    return elo_hash64(".gpuapp", 7);
}

static int index_add(gos_fsindex *idx, const char *path, const struct stat *st)
{
    if (idx->count == idx->cap) {
        uint32_t cap = idx->cap ? idx->cap * 2 : 256;
        gos_fs_entry *e = elo_realloc(idx->entries, (size_t)cap * sizeof *e);
        if (!e)
            return elo_seterr(ELO_NOMEM, "filesystem index: out of memory");
        idx->entries = e;
        char **p = elo_realloc(idx->paths, (size_t)cap * sizeof *p);
        if (!p)
            return elo_seterr(ELO_NOMEM, "filesystem index: out of memory");
        idx->paths = p;
        idx->cap = cap;
    }
    char *copy = elo_strdup(path);
    if (!copy)
        return elo_seterr(ELO_NOMEM, "filesystem index: out of memory");
    gos_fs_entry *e = &idx->entries[idx->count];
    memset(e, 0, sizeof *e);
    e->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
    e->mtime = (int64_t)st->st_mtime;
    e->ext_hash = gos_ext_hash(path);
    e->kind = S_ISREG(st->st_mode) ? 0 : S_ISDIR(st->st_mode) ? 1 : 2;
    idx->paths[idx->count++] = copy;
    return ELO_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(gos_fsindex *idx, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return ELO_OK; /* missing or unreadable directory: nothing to index */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = ELO_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = elo_realloc(names, cap * sizeof *nn);
            if (!nn) { rc = elo_seterr(ELO_NOMEM, "filesystem index: out of memory"); break; }
            names = nn;
        }
        if (!(names[n] = elo_strdup(de->d_name))) {
            rc = elo_seterr(ELO_NOMEM, "filesystem index: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == ELO_OK && n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == ELO_OK; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = elo_malloc(len);
        if (!path) { rc = elo_seterr(ELO_NOMEM, "filesystem index: out of memory"); break; }
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat lst, st;
        if (lstat(path, &lst) == 0) {
            int is_link = S_ISLNK(lst.st_mode);
            if (!is_link || stat(path, &st) != 0)
                st = lst;
            rc = index_add(idx, path, &st);
            if (rc == ELO_OK && S_ISDIR(st.st_mode) && !is_link && depth < 16)
                rc = walk(idx, path, depth + 1);
        }
        elo_free(path);
    }
    for (size_t i = 0; i < n; i++)
        elo_free(names[i]);
    elo_free(names);
    return rc;
}

int gos_fsindex_build(gos_fsindex *idx, const char *const *dirs, int dir_count)
{
    memset(idx, 0, sizeof *idx);
    for (int i = 0; i < dir_count; i++) {
        char *dir = elo_strdup(dirs[i]);
        if (!dir)
            return elo_seterr(ELO_NOMEM, "filesystem index: out of memory");
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            dir[--len] = 0;
        int rc = walk(idx, dir, 0);
        elo_free(dir);
        if (rc < 0) {
            gos_fsindex_free(idx);
            return rc;
        }
    }
    return ELO_OK;
}

void gos_fsindex_free(gos_fsindex *idx)
{
    for (uint32_t i = 0; i < idx->count; i++)
        elo_free(idx->paths[i]);
    elo_free(idx->paths);
    elo_free(idx->entries);
    memset(idx, 0, sizeof *idx);
}

int elo_gpuos_index_count(const char *const *dirs, int dir_count, uint32_t *count)
{
    gos_fsindex idx;
    int rc = gos_fsindex_build(&idx, dirs, dir_count);
    if (rc < 0)
        return rc;
    *count = idx.count;
    gos_fsindex_free(&idx);
    return ELO_OK;
}
