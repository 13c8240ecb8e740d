/* vstore.c - the vector store file: create, open (validated, mmap'd),
 * crash-safe append, delete by id, compaction, info, and the search entry
 * point that picks the CPU or the resident CUDA copy.
 *
 * DESIGN (durability). The header area holds two 128-byte slots; the valid
 * slot with the higher sequence number is the store's state, so a torn
 * header write leaves the previous state readable. Every change writes its
 * data first (pwrite + fdatasync), then the new header into the other slot
 * (pwrite + fdatasync):
 *  - append: rows, ids and zero stamps go past row_count, where no header
 *    looks; a crash before the header write loses only that batch.
 *  - delete: a header with the "delete pending" flag (seq s+1), then stamps
 *    = s+2 on the rows, then the header s+2 without the flag. Readers treat
 *    stamps above the header's seq as live, so a crash leaves the deletion
 *    invisible; the next writable open clears the stray stamps.
 *  - growth and compaction: the whole store is written to a temp file which
 *    is fsync'ed and renamed over the old one (then the directory fsync'ed).
 * Writers hold an exclusive flock on the file (re-checked against the path
 * after a rename) for as long as the handle is open. */
#include "vstore-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the vector store file format is little endian"
#endif

_Static_assert(sizeof(elo__vstore_header) == 128, "header slot is 128 bytes");

#define DEFAULT_CAPACITY 1024u

int elo_vstore_metric_parse(const char *s, elo_vstore_metric *out)
{
    if (s && !strcmp(s, "cosine")) *out = ELO_VSTORE_COSINE;
    else if (s && !strcmp(s, "ip")) *out = ELO_VSTORE_IP;
    else if (s && !strcmp(s, "l2")) *out = ELO_VSTORE_L2;
    else
        return elo_seterr(ELO_BADINPUT, "unknown metric '%s' (cosine, ip or l2)", s ? s : "");
    return ELO_OK;
}

const char *elo_vstore_metric_name(elo_vstore_metric m)
{
    switch (m) {
    case ELO_VSTORE_COSINE: return "cosine";
    case ELO_VSTORE_IP: return "ip";
    case ELO_VSTORE_L2: return "l2";
    }
    return "?";
}

/* ---- header ------------------------------------------------------------- */

uint32_t elo__vstore_header_crc(const elo__vstore_header *h)
{
    return elo_crc32c(0, h, offsetof(elo__vstore_header, crc));
}

int elo__vstore_layout(elo__vstore_header *h)
{
    size_t esize = h->dtype == ELO_DTYPE_F16 ? 2 : 4;
    uint64_t row_bytes = (uint64_t)h->dim * esize;
    /* Bound everything well below 2^63 so no sum below can overflow. */
    if (h->capacity > ((uint64_t)1 << 40) || row_bytes * h->capacity > ((uint64_t)1 << 52))
        return elo_seterr(ELO_TOOBIG, "capacity %llu x %llu bytes is too large",
                          (unsigned long long)h->capacity, (unsigned long long)row_bytes);
    h->rows_offset = ELO__VSTORE_HEADER_BYTES;
    h->ids_offset = (h->rows_offset + h->capacity * row_bytes + 63) & ~(uint64_t)63;
    h->stamps_offset = h->ids_offset + h->capacity * 8;
    h->file_bytes = h->stamps_offset + h->capacity * 8;
    return ELO_OK;
}

int elo__vstore_header_check(const elo__vstore_header *h, uint64_t file_size, const char *name)
{
    if (memcmp(h->magic, ELO__VSTORE_MAGIC, 8) != 0)
        return elo_seterr(ELO_CORRUPT, "%s: not a vector store (bad magic)", name);
    if (h->crc != elo__vstore_header_crc(h))
        return elo_seterr(ELO_CORRUPT, "%s: header checksum mismatch", name);
    if (h->version != ELO__VSTORE_VERSION)
        return elo_seterr(ELO_UNSUPPORTED, "%s: format version %u is not supported (this build reads 1)",
                          name, h->version);
    if (h->header_bytes != ELO__VSTORE_HEADER_BYTES)
        return elo_seterr(ELO_CORRUPT, "%s: header size %u (want 4096)", name, h->header_bytes);
    if (h->dim < 1 || h->dim > ELO_VSTORE_MAX_DIM)
        return elo_seterr(ELO_CORRUPT, "%s: dimension %u out of range 1..%d", name, h->dim,
                          ELO_VSTORE_MAX_DIM);
    if (h->dtype != ELO_DTYPE_F32 && h->dtype != ELO_DTYPE_F16)
        return elo_seterr(ELO_CORRUPT, "%s: unknown dtype %u", name, h->dtype);
    if (h->metric > ELO_VSTORE_L2)
        return elo_seterr(ELO_CORRUPT, "%s: unknown metric %u", name, h->metric);
    if (h->flags & ~ELO__VSTORE_FLAG_DELETE_PENDING)
        return elo_seterr(ELO_CORRUPT, "%s: unknown header flags 0x%x", name, h->flags);
    if (h->row_count > h->capacity || h->live_count > h->row_count)
        return elo_seterr(ELO_CORRUPT, "%s: counts out of range (rows %llu, live %llu, capacity %llu)",
                          name, (unsigned long long)h->row_count,
                          (unsigned long long)h->live_count, (unsigned long long)h->capacity);
    if (h->next_id < 0)
        return elo_seterr(ELO_CORRUPT, "%s: negative next id", name);
    for (size_t i = 0; i < sizeof h->reserved; i++)
        if (h->reserved[i])
            return elo_seterr(ELO_CORRUPT, "%s: reserved header bytes are not zero", name);
    elo__vstore_header want = *h;
    if (elo__vstore_layout(&want) < 0)
        return elo_seterr(ELO_CORRUPT, "%s: capacity %llu rows of %u x %s is too large", name,
                          (unsigned long long)h->capacity, h->dim,
                          h->dtype == ELO_DTYPE_F16 ? "f16" : "f32");
    if (want.rows_offset != h->rows_offset || want.ids_offset != h->ids_offset ||
        want.stamps_offset != h->stamps_offset || want.file_bytes != h->file_bytes)
        return elo_seterr(ELO_CORRUPT, "%s: section offsets do not match the geometry", name);
    if (file_size < h->file_bytes)
        return elo_seterr(ELO_CORRUPT, "%s: truncated: the header needs %llu bytes, the file has %llu",
                          name, (unsigned long long)h->file_bytes, (unsigned long long)file_size);
    return ELO_OK;
}

/* Picks the current header from the two slots of `data`. */
static int read_header(const uint8_t *data, size_t size, const char *name,
                       elo__vstore_header *out, int *slot_out)
{
    if (size < ELO__VSTORE_HEADER_BYTES) {
        if (size >= 8 && memcmp(data, ELO__VSTORE_MAGIC, 8) != 0)
            return elo_seterr(ELO_CORRUPT, "%s: not a vector store (bad magic)", name);
        return elo_seterr(ELO_CORRUPT, "%s: truncated: %zu bytes, the header alone is 4096",
                          name, size);
    }
    elo__vstore_header slots[2];
    memcpy(&slots[0], data, sizeof slots[0]);
    memcpy(&slots[1], data + ELO__VSTORE_SLOT_B, sizeof slots[1]);
    int best = -1, magic_seen = 0;
    for (int i = 0; i < 2; i++) {
        if (memcmp(slots[i].magic, ELO__VSTORE_MAGIC, 8) != 0)
            continue;
        magic_seen = 1;
        if (slots[i].crc != elo__vstore_header_crc(&slots[i]))
            continue;
        if (best < 0 || slots[i].seq > slots[best].seq)
            best = i;
    }
    if (best < 0)
        return elo_seterr(ELO_CORRUPT, magic_seen ? "%s: header checksum mismatch in both slots"
                                                  : "%s: not a vector store (bad magic)", name);
    int rc = elo__vstore_header_check(&slots[best], size, name);
    if (rc < 0)
        return rc;
    *out = slots[best];
    *slot_out = best;
    return ELO_OK;
}

static void attach_sections(elo_vstore *vs)
{
    vs->row_bytes = (size_t)vs->h.dim * elo_dtype_size((elo_dtype)vs->h.dtype);
    vs->rows = vs->map + vs->h.rows_offset;
    vs->ids = (const int64_t *)(vs->map + vs->h.ids_offset);
    vs->stamps = (const uint64_t *)(vs->map + vs->h.stamps_offset);
}

/* ---- create ------------------------------------------------------------- */

static int sync_fd(int fd, const char *path)
{
    if (fdatasync(fd) != 0)
        return elo_seterr(ELO_IO, "%s: fdatasync: %s", path, strerror(errno));
    return ELO_OK;
}

/* Writes a fresh file at `path` (must not exist) holding header `h` in
 * slot A, and leaves it open in *fd_out (locked) when fd_out is given. */
static int write_new_file(const char *path, elo__vstore_header *h, int *fd_out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return elo_seterr(errno == EEXIST ? ELO_EXISTS : ELO_IO, "%s: %s", path, strerror(errno));
    int rc = ELO_OK;
    if (flock(fd, LOCK_EX) != 0 || ftruncate(fd, (off_t)h->file_bytes) != 0)
        rc = elo_seterr(ELO_IO, "%s: %s", path, strerror(errno));
    if (rc == ELO_OK) {
        h->crc = elo__vstore_header_crc(h);
        rc = elo_pwrite_all(fd, h, sizeof *h, 0);
    }
    if (rc == ELO_OK)
        rc = sync_fd(fd, path);
    if (rc < 0 || !fd_out) {
        close(fd);
        if (rc < 0)
            unlink(path);
        return rc;
    }
    *fd_out = fd;
    return ELO_OK;
}

int elo_vstore_create(const char *path, int dim, elo_dtype dtype, elo_vstore_metric metric,
                      uint64_t capacity)
{
    if (dim < 1 || dim > ELO_VSTORE_MAX_DIM)
        return elo_seterr(ELO_BADINPUT, "dimension %d out of range 1..%d", dim, ELO_VSTORE_MAX_DIM);
    if (dtype != ELO_DTYPE_F32 && dtype != ELO_DTYPE_F16)
        return elo_seterr(ELO_BADINPUT, "dtype must be f32 or f16");
    if ((unsigned)metric > ELO_VSTORE_L2)
        return elo_seterr(ELO_BADINPUT, "unknown metric %d", (int)metric);
    elo__vstore_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, ELO__VSTORE_MAGIC, 8);
    h.version = ELO__VSTORE_VERSION;
    h.header_bytes = ELO__VSTORE_HEADER_BYTES;
    h.dim = (uint32_t)dim;
    h.dtype = (uint32_t)dtype;
    h.metric = (uint32_t)metric;
    h.seq = 1;
    h.capacity = capacity ? capacity : DEFAULT_CAPACITY;
    int rc = elo__vstore_layout(&h);
    if (rc < 0)
        return rc;
    rc = write_new_file(path, &h, NULL);
    if (rc == ELO_OK)
        rc = elo_fsync_dir_of(path);
    return rc;
}

/* ---- open / free -------------------------------------------------------- */

static int map_file(elo_vstore *vs)
{
    struct stat st;
    if (fstat(vs->fd, &st) != 0)
        return elo_seterr(ELO_IO, "%s: %s", vs->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return elo_seterr(ELO_BADINPUT, "%s: not a regular file", vs->path);
    size_t size = (size_t)st.st_size;
    if (size < ELO__VSTORE_HEADER_BYTES) {
        uint8_t head[8] = {0};
        size_t got = size < 8 ? size : 8;
        if (got && elo_pread_all(vs->fd, head, got, 0) < 0)
            return ELO_IO;
        return read_header(head, got, vs->path, &vs->h, &vs->slot);
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, vs->fd, 0);
    if (p == MAP_FAILED)
        return elo_seterr(ELO_IO, "%s: mmap: %s", vs->path, strerror(errno));
    vs->map = p;
    vs->map_bytes = size;
    vs->owns_map = 1;
    int rc = read_header(vs->map, size, vs->path, &vs->h, &vs->slot);
    if (rc < 0)
        return rc;
    attach_sections(vs);
    return ELO_OK;
}

static void unmap_file(elo_vstore *vs)
{
    if (vs->owns_map && vs->map)
        munmap(vs->map, vs->map_bytes);
    vs->map = NULL;
    vs->map_bytes = 0;
    vs->owns_map = 0;
}

static void drop_gpu(elo_vstore *vs)
{
    if (vs->gpu && elo__vstore_cuda_free)
        elo__vstore_cuda_free(vs->gpu);
    vs->gpu = NULL;
    vs->gpu_backend = NULL;
}

void elo_vstore_free(elo_vstore *vs)
{
    if (!vs)
        return;
    drop_gpu(vs);
    unmap_file(vs);
    if (vs->fd >= 0)
        close(vs->fd);   /* releases the flock */
    elo_free(vs->path);
    elo_free(vs);
}

static int write_header(elo_vstore *vs, elo__vstore_header *nh);
static int recover_pending_delete(elo_vstore *vs);

int elo_vstore_open(const char *path, int writable, elo_vstore **out)
{
    *out = NULL;
    elo_vstore *vs = elo_calloc(1, sizeof *vs);
    if (!vs || !(vs->path = elo_strdup(path))) {
        elo_free(vs);
        return elo_seterr(ELO_NOMEM, "out of memory");
    }
    vs->fd = -1;
    vs->writable = writable;
    int rc = ELO_OK;
    for (int attempt = 0; attempt < 8; attempt++) {
        vs->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (vs->fd < 0) {
            rc = elo_seterr(errno == ENOENT ? ELO_NOTFOUND : ELO_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (!writable)
            break;
        if (flock(vs->fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) {
                rc = elo_seterr(ELO_IO, "%s: flock: %s", path, strerror(errno));
                break;
            }
            elo_info("%s: waiting for another writer", path);
            if (flock(vs->fd, LOCK_EX) != 0) {
                rc = elo_seterr(ELO_IO, "%s: flock: %s", path, strerror(errno));
                break;
            }
        }
        /* A writer may have renamed a new file over the path meanwhile. */
        struct stat a, b;
        if (fstat(vs->fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            break;
        close(vs->fd);
        vs->fd = -1;
        rc = elo_seterr(ELO_BUSY, "%s: the file keeps being replaced", path);
    }
    if (rc == ELO_OK && vs->fd >= 0)
        rc = map_file(vs);
    if (rc == ELO_OK && writable && (vs->h.flags & ELO__VSTORE_FLAG_DELETE_PENDING))
        rc = recover_pending_delete(vs);
    if (rc < 0) {
        elo_vstore_free(vs);
        return rc;
    }
    *out = vs;
    return ELO_OK;
}

/* A read-only handle follows the file: appends and deletions commit with
 * a header write into the mapped file (MAP_SHARED sees it), while growth
 * and compaction rename a new file over the path. */
int elo_vstore_refresh(elo_vstore *vs)
{
    if (vs->writable || vs->fd < 0 || !vs->path)
        return 0;   /* a writer's handle is the state; a buffer never changes */
    struct stat a, b;
    if (stat(vs->path, &b) != 0)
        return elo_seterr(errno == ENOENT ? ELO_NOTFOUND : ELO_IO, "%s: %s", vs->path,
                          strerror(errno));
    if (fstat(vs->fd, &a) != 0)
        return elo_seterr(ELO_IO, "%s: %s", vs->path, strerror(errno));
    if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        elo_vstore *nv;
        int rc = elo_vstore_open(vs->path, 0, &nv);
        if (rc < 0)
            return rc;
        drop_gpu(vs);
        unmap_file(vs);
        close(vs->fd);
        elo_free(vs->path);
        *vs = *nv;
        elo_free(nv);
        return 1;
    }
    elo__vstore_header h;
    int slot;
    int rc = read_header(vs->map, vs->map_bytes, vs->path, &h, &slot);
    if (rc < 0)
        return rc;
    if (h.seq == vs->h.seq)
        return 0;
    uint64_t old_rows = vs->h.row_count, old_live = vs->h.live_count;
    int appends_only = h.row_count >= old_rows && h.live_count == old_live + (h.row_count - old_rows) &&
                       h.capacity == vs->h.capacity;
    vs->h = h;
    vs->slot = slot;
    attach_sections(vs);
    if (vs->gpu && (!appends_only || !elo__vstore_cuda_append)) {
        drop_gpu(vs);       /* deletions: reload on the next CUDA search */
    } else if (vs->gpu && h.row_count > old_rows &&
               elo__vstore_cuda_append(vs->gpu, vs->rows + old_rows * vs->row_bytes,
                                       vs->ids + old_rows, h.row_count - old_rows) < 0) {
        elo_warn("%s: GPU copy dropped after a failed update (%s); it reloads on the next search",
                 vs->path, elo_errmsg());
        drop_gpu(vs);
    }
    return 1;
}

int elo_vstore_open_buffer(const void *data, size_t size, elo_vstore **out)
{
    *out = NULL;
    elo_vstore *vs = elo_calloc(1, sizeof *vs);
    if (!vs)
        return elo_seterr(ELO_NOMEM, "out of memory");
    vs->fd = -1;
    int rc = read_header(data, size, "buffer", &vs->h, &vs->slot);
    if (rc < 0) {
        elo_free(vs);
        return rc;
    }
    vs->map = (uint8_t *)data;
    vs->map_bytes = size;
    attach_sections(vs);
    *out = vs;
    return ELO_OK;
}

void elo_vstore_get_info(elo_vstore *vs, elo_vstore_info *out)
{
    memset(out, 0, sizeof *out);
    out->dim = (int)vs->h.dim;
    out->dtype = (elo_dtype)vs->h.dtype;
    out->metric = (elo_vstore_metric)vs->h.metric;
    out->row_count = vs->h.row_count;
    out->live_count = vs->h.live_count;
    out->capacity = vs->h.capacity;
    out->next_id = vs->h.next_id;
    out->seq = vs->h.seq;
    out->file_bytes = vs->map_bytes;
    out->mapped_bytes = vs->map_bytes;
    if (vs->owns_map && vs->map_bytes) {
        long page = sysconf(_SC_PAGESIZE);
        size_t pages = (vs->map_bytes + (size_t)page - 1) / (size_t)page;
        unsigned char *vec = malloc(pages);
        if (vec && mincore(vs->map, vs->map_bytes, vec) == 0) {
            uint64_t resident = 0;
            for (size_t i = 0; i < pages; i++)
                resident += vec[i] & 1;
            out->resident_bytes = resident * (uint64_t)page;
            if (out->resident_bytes > vs->map_bytes)
                out->resident_bytes = vs->map_bytes;
        }
        free(vec);
    }
}

/* ---- writes ------------------------------------------------------------- */

static int need_writable(elo_vstore *vs)
{
    if (!vs->writable || vs->fd < 0)
        return elo_seterr(ELO_PERM, "%s: store is open read-only", vs->path ? vs->path : "buffer");
    return ELO_OK;
}

/* Commits `nh` (seq = current + 1) to the slot not holding the current
 * header, durably. */
static int write_header(elo_vstore *vs, elo__vstore_header *nh)
{
    nh->seq = vs->h.seq + 1;
    nh->crc = elo__vstore_header_crc(nh);
    int slot = 1 - vs->slot;
    int rc = elo_pwrite_all(vs->fd, nh, sizeof *nh, slot ? ELO__VSTORE_SLOT_B : 0);
    if (rc == ELO_OK)
        rc = sync_fd(vs->fd, vs->path);
    if (rc < 0)
        return rc;
    vs->h = *nh;
    vs->slot = slot;
    return ELO_OK;
}

static int recover_pending_delete(elo_vstore *vs)
{
    /* Stamps above seq were written by the interrupted deletion. */
    uint64_t zero = 0;
    for (uint64_t r = 0; r < vs->h.row_count; r++)
        if (vs->stamps[r] > vs->h.seq) {
            int rc = elo_pwrite_all(vs->fd, &zero, 8, vs->h.stamps_offset + r * 8);
            if (rc < 0)
                return rc;
        }
    int rc = sync_fd(vs->fd, vs->path);
    if (rc < 0)
        return rc;
    elo__vstore_header nh = vs->h;
    nh.flags &= ~ELO__VSTORE_FLAG_DELETE_PENDING;
    elo_info("%s: finished recovery of an interrupted deletion", vs->path);
    return write_header(vs, &nh);
}

/* Writes the store's live rows (or all, with room for `capacity`) to a
 * new file and renames it over the store; the handle then points at it. */
static int rewrite(elo_vstore *vs, uint64_t capacity, int live_only, uint64_t *kept_out)
{
    size_t plen = strlen(vs->path);
    char *tmp = elo_malloc(plen + 32);
    if (!tmp)
        return elo_seterr(ELO_NOMEM, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp-%ld", vs->path, (long)getpid());
    unlink(tmp);   /* a leftover of a crashed run of this pid */

    uint64_t kept = 0;
    for (uint64_t r = 0; r < vs->h.row_count; r++)
        kept += !live_only || elo__vstore_live(vs, r);
    elo__vstore_header nh = vs->h;
    nh.capacity = capacity < kept ? kept : capacity;
    nh.row_count = kept;
    nh.live_count = live_only ? kept : vs->h.live_count;
    nh.flags = 0;
    nh.seq = vs->h.seq + 1;
    int rc = elo__vstore_layout(&nh);
    int fd = -1;
    if (rc == ELO_OK)
        rc = write_new_file(tmp, &nh, &fd);
    if (rc < 0) {
        elo_free(tmp);
        return rc;
    }
    /* Copy in chunks of rows; stamps of kept rows: 0 if live (live_only),
     * else as they are. */
    size_t chunk = 4096;
    uint8_t *rowbuf = elo_malloc(chunk * vs->row_bytes);
    int64_t *idbuf = elo_malloc(chunk * 8);
    uint64_t *stbuf = elo_malloc(chunk * 8);
    if (!rowbuf || !idbuf || !stbuf)
        rc = elo_seterr(ELO_NOMEM, "out of memory");
    uint64_t out_row = 0;
    for (uint64_t r = 0; rc == ELO_OK && r < vs->h.row_count;) {
        size_t n = 0;
        for (; r < vs->h.row_count && n < chunk; r++) {
            int live = elo__vstore_live(vs, r);
            if (live_only && !live)
                continue;
            memcpy(rowbuf + n * vs->row_bytes, vs->rows + r * vs->row_bytes, vs->row_bytes);
            idbuf[n] = vs->ids[r];
            stbuf[n] = live ? 0 : vs->stamps[r];
            n++;
        }
        if (n == 0)
            break;
        rc = elo_pwrite_all(fd, rowbuf, n * vs->row_bytes, nh.rows_offset + out_row * vs->row_bytes);
        if (rc == ELO_OK)
            rc = elo_pwrite_all(fd, idbuf, n * 8, nh.ids_offset + out_row * 8);
        if (rc == ELO_OK)
            rc = elo_pwrite_all(fd, stbuf, n * 8, nh.stamps_offset + out_row * 8);
        out_row += n;
    }
    elo_free(rowbuf);
    elo_free(idbuf);
    elo_free(stbuf);
    if (rc == ELO_OK && fsync(fd) != 0)
        rc = elo_seterr(ELO_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (rc == ELO_OK && rename(tmp, vs->path) != 0)
        rc = elo_seterr(ELO_IO, "%s: rename: %s", vs->path, strerror(errno));
    if (rc == ELO_OK)
        rc = elo_fsync_dir_of(vs->path);
    if (rc < 0) {
        close(fd);
        unlink(tmp);
        elo_free(tmp);
        return rc;
    }
    elo_free(tmp);
    /* Switch the handle to the new file (already locked by us). */
    drop_gpu(vs);
    unmap_file(vs);
    close(vs->fd);
    vs->fd = fd;
    rc = map_file(vs);
    if (kept_out)
        *kept_out = kept;
    return rc;
}

/* ---- id sets ------------------------------------------------------------ */

typedef struct {
    int64_t *keys;     /* -1: empty */
    uint64_t *vals;
    size_t mask;
} idset;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int idset_init(idset *s, size_t count)
{
    size_t cap = 16;
    while (cap < count * 2)
        cap *= 2;
    s->keys = elo_malloc(cap * sizeof *s->keys);
    s->vals = elo_malloc(cap * sizeof *s->vals);
    if (!s->keys || !s->vals) {
        elo_free(s->keys);
        elo_free(s->vals);
        return elo_seterr(ELO_NOMEM, "out of memory for %zu ids", count);
    }
    memset(s->keys, 0xff, cap * sizeof *s->keys);
    s->mask = cap - 1;
    return ELO_OK;
}

static void idset_deinit(idset *s)
{
    elo_free(s->keys);
    elo_free(s->vals);
}

/* Inserts `key`; returns 1 when it was new, 0 (and *slot) when present. */
static int idset_put(idset *s, int64_t key, uint64_t val, size_t *slot)
{
    size_t i = mix64((uint64_t)key) & s->mask;
    while (s->keys[i] != -1) {
        if (s->keys[i] == key) {
            if (slot)
                *slot = i;
            return 0;
        }
        i = (i + 1) & s->mask;
    }
    s->keys[i] = key;
    s->vals[i] = val;
    if (slot)
        *slot = i;
    return 1;
}

static long idset_find(const idset *s, int64_t key)
{
    size_t i = mix64((uint64_t)key) & s->mask;
    while (s->keys[i] != -1) {
        if (s->keys[i] == key)
            return (long)i;
        i = (i + 1) & s->mask;
    }
    return -1;
}

/* ---- add ---------------------------------------------------------------- */

int elo_vstore_add(elo_vstore *vs, const float *rows, size_t count, int dim, const int64_t *ids)
{
    int rc = need_writable(vs);
    if (rc < 0)
        return rc;
    if (dim != (int)vs->h.dim)
        return elo_seterr(ELO_BADINPUT, "dimension mismatch: the vectors have %d, the store %u",
                          dim, vs->h.dim);
    if (count == 0)
        return ELO_OK;
    if (count > ((uint64_t)1 << 40))
        return elo_seterr(ELO_TOOBIG, "too many rows in one batch");
    rc = elo__vstore_check_finite(rows, count, dim, "vector");
    if (rc < 0)
        return rc;

    /* Ids: given ones must be >= 0, unique, and not live in the store. */
    int64_t *new_ids = elo_malloc(count * sizeof *new_ids);
    if (!new_ids)
        return elo_seterr(ELO_NOMEM, "out of memory");
    int64_t next_id = vs->h.next_id;
    for (size_t i = 0; i < count; i++) {
        if (ids) {
            if (ids[i] < 0) {
                elo_free(new_ids);
                return elo_seterr(ELO_BADINPUT, "id %lld (vector %zu) is negative",
                                  (long long)ids[i], i);
            }
            new_ids[i] = ids[i];
        } else {
            if (next_id > INT64_MAX - (int64_t)count) {
                elo_free(new_ids);
                return elo_seterr(ELO_RANGE, "ids would pass 2^63");
            }
            new_ids[i] = next_id + (int64_t)i;
        }
    }
    idset set;
    rc = idset_init(&set, vs->h.live_count + count);
    if (rc < 0) {
        elo_free(new_ids);
        return rc;
    }
    for (uint64_t r = 0; r < vs->h.row_count; r++)
        if (elo__vstore_live(vs, r))
            idset_put(&set, vs->ids[r], r, NULL);
    int64_t max_id = next_id - 1;
    for (size_t i = 0; i < count && rc == ELO_OK; i++) {
        size_t slot;
        if (!idset_put(&set, new_ids[i], vs->h.row_count + i, &slot)) {
            uint64_t other = set.vals[slot];
            if (other >= vs->h.row_count)
                rc = elo_seterr(ELO_BADINPUT, "duplicate id %lld (vectors %llu and %zu of the input)",
                                (long long)new_ids[i], (unsigned long long)(other - vs->h.row_count), i);
            else
                rc = elo_seterr(ELO_BADINPUT, "duplicate id %lld (vector %zu): already in the store",
                                (long long)new_ids[i], i);
        }
        if (new_ids[i] > max_id)
            max_id = new_ids[i];
    }
    idset_deinit(&set);
    if (rc == ELO_OK && max_id == INT64_MAX)
        rc = elo_seterr(ELO_RANGE, "id %lld leaves no next id", (long long)max_id);

    /* Convert (normalize for cosine, narrow for f16). */
    size_t row_bytes = vs->row_bytes;
    uint8_t *conv = NULL;
    float *norm = NULL;
    if (rc == ELO_OK) {
        conv = elo_malloc(count * row_bytes);
        norm = elo_malloc((size_t)dim * sizeof *norm);
        if (!conv || !norm)
            rc = elo_seterr(ELO_NOMEM, "out of memory for %zu vectors", count);
    }
    for (size_t i = 0; rc == ELO_OK && i < count; i++) {
        memcpy(norm, rows + i * (size_t)dim, (size_t)dim * sizeof *norm);
        if (vs->h.metric == ELO_VSTORE_COSINE)
            rc = elo__vstore_normalize(norm, 1, dim, i, "vector");
        if (rc < 0)
            break;
        if (vs->h.dtype == ELO_DTYPE_F16) {
            uint16_t *dst = (uint16_t *)(conv + i * row_bytes);
            for (int j = 0; j < dim; j++) {
                dst[j] = elo_f32_to_f16(norm[j]);
                if ((dst[j] & 0x7c00) == 0x7c00) {
                    rc = elo_seterr(ELO_RANGE, "vector %zu element %d (%g) overflows f16",
                                    i, j, (double)norm[j]);
                    break;
                }
            }
        } else {
            memcpy(conv + i * row_bytes, norm, row_bytes);
        }
    }
    elo_free(norm);
    if (rc < 0) {
        elo_free(conv);
        elo_free(new_ids);
        return rc;
    }

    if (vs->h.row_count + count > vs->h.capacity) {
        uint64_t cap = vs->h.capacity * 2;
        if (cap < vs->h.row_count + count)
            cap = vs->h.row_count + count;
        if (cap < DEFAULT_CAPACITY)
            cap = DEFAULT_CAPACITY;
        elo_info("%s: growing capacity %llu -> %llu rows", vs->path,
                 (unsigned long long)vs->h.capacity, (unsigned long long)cap);
        rc = rewrite(vs, cap, 0, NULL);
    }
    uint64_t first = vs->h.row_count;
    if (rc == ELO_OK)
        rc = elo_pwrite_all(vs->fd, conv, count * row_bytes, vs->h.rows_offset + first * row_bytes);
    if (rc == ELO_OK)
        rc = elo_pwrite_all(vs->fd, new_ids, count * 8, vs->h.ids_offset + first * 8);
    uint64_t *zeros = rc == ELO_OK ? elo_calloc(count, 8) : NULL;
    if (rc == ELO_OK && !zeros)
        rc = elo_seterr(ELO_NOMEM, "out of memory");
    if (rc == ELO_OK)
        rc = elo_pwrite_all(vs->fd, zeros, count * 8, vs->h.stamps_offset + first * 8);
    elo_free(zeros);
    if (rc == ELO_OK)
        rc = sync_fd(vs->fd, vs->path);
    if (rc == ELO_OK) {
        elo__vstore_header nh = vs->h;
        nh.row_count += count;
        nh.live_count += count;
        nh.next_id = max_id + 1;
        rc = write_header(vs, &nh);
    }
    if (rc == ELO_OK && vs->gpu) {
        if (!elo__vstore_cuda_append) {
            drop_gpu(vs);   /* no update path: reload on the next CUDA search */
        } else if (elo__vstore_cuda_append(vs->gpu, conv, new_ids, count) < 0) {
            elo_warn("%s: GPU copy dropped after a failed append (%s); it reloads on the next search",
                     vs->path, elo_errmsg());
            drop_gpu(vs);
        }
    }
    elo_free(conv);
    elo_free(new_ids);
    return rc;
}

/* ---- delete ------------------------------------------------------------- */

int elo_vstore_delete(elo_vstore *vs, const int64_t *ids, size_t count)
{
    int rc = need_writable(vs);
    if (rc < 0)
        return rc;
    if (count == 0)
        return 0;
    if (count > INT32_MAX)
        return elo_seterr(ELO_TOOBIG, "too many ids in one deletion");
    idset set;
    rc = idset_init(&set, count);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count && rc == ELO_OK; i++)
        if (!idset_put(&set, ids[i], UINT64_MAX, NULL))
            rc = elo_seterr(ELO_BADINPUT, "id %lld is listed twice", (long long)ids[i]);
    for (uint64_t r = 0; rc == ELO_OK && r < vs->h.row_count; r++) {
        if (!elo__vstore_live(vs, r))
            continue;
        long slot = idset_find(&set, vs->ids[r]);
        if (slot >= 0)
            set.vals[slot] = r;
    }
    size_t *row_index = rc == ELO_OK ? elo_malloc(count * sizeof *row_index) : NULL;
    if (rc == ELO_OK && !row_index)
        rc = elo_seterr(ELO_NOMEM, "out of memory");
    for (size_t i = 0; rc == ELO_OK && i < count; i++) {
        long slot = idset_find(&set, ids[i]);
        if (set.vals[slot] == UINT64_MAX)
            rc = elo_seterr(ELO_NOTFOUND, "id %lld is not in the store", (long long)ids[i]);
        else
            row_index[i] = (size_t)set.vals[slot];
    }
    idset_deinit(&set);
    if (rc < 0) {
        elo_free(row_index);
        return rc;
    }
    /* 1: announce, 2: stamp, 3: commit (see DESIGN). */
    elo__vstore_header nh = vs->h;
    nh.flags |= ELO__VSTORE_FLAG_DELETE_PENDING;
    rc = write_header(vs, &nh);
    uint64_t stamp = vs->h.seq + 1;
    for (size_t i = 0; rc == ELO_OK && i < count; i++)
        rc = elo_pwrite_all(vs->fd, &stamp, 8, vs->h.stamps_offset + row_index[i] * 8);
    if (rc == ELO_OK)
        rc = sync_fd(vs->fd, vs->path);
    if (rc == ELO_OK) {
        nh = vs->h;
        nh.flags &= ~ELO__VSTORE_FLAG_DELETE_PENDING;
        nh.live_count -= count;
        rc = write_header(vs, &nh);
    }
    if (rc == ELO_OK && vs->gpu && !elo__vstore_cuda_delete)
        drop_gpu(vs);       /* no update path: reload on the next CUDA search */
    else if (rc == ELO_OK && vs->gpu && elo__vstore_cuda_delete(vs->gpu, row_index, count) < 0) {
        elo_warn("%s: GPU copy dropped after a failed delete (%s)", vs->path, elo_errmsg());
        drop_gpu(vs);
    }
    elo_free(row_index);
    return rc < 0 ? rc : (int)count;
}

/* ---- compact ------------------------------------------------------------ */

int elo_vstore_compact(const char *path)
{
    elo_vstore *vs;
    int rc = elo_vstore_open(path, 1, &vs);
    if (rc < 0)
        return rc;
    uint64_t before = vs->h.row_count, kept = 0;
    rc = rewrite(vs, vs->h.live_count, 1, &kept);
    elo_vstore_free(vs);
    return rc < 0 ? rc : (int)(before - kept);
}

/* ---- search ------------------------------------------------------------- */

static int search_cuda(elo_vstore *vs, elo_backend *b, const float *queries, int query_count,
                       int k, int64_t *out_ids, float *out_scores)
{
    if (!elo__vstore_cuda_load || !elo__vstore_cuda_search || !elo__vstore_cuda_free)
        return elo_seterr(ELO_NODEVICE, "this build has no CUDA vector search");
    if (vs->gpu && vs->gpu_backend != b)
        drop_gpu(vs);
    if (!vs->gpu) {
        uint64_t n = vs->h.row_count;
        uint8_t *live = elo_malloc(n ? n : 1);
        if (!live)
            return elo_seterr(ELO_NOMEM, "out of memory");
        for (uint64_t r = 0; r < n; r++)
            live[r] = (uint8_t)elo__vstore_live(vs, r);
        int rc = elo__vstore_cuda_load(b, vs->rows, (elo_dtype)vs->h.dtype, (int)vs->h.dim,
                                       (int)vs->h.metric, n, vs->h.capacity, vs->ids, live,
                                       &vs->gpu);
        elo_free(live);
        if (rc < 0) {
            vs->gpu = NULL;
            return rc;
        }
        vs->gpu_backend = b;
    }
    return elo__vstore_cuda_search(vs->gpu, queries, query_count, k, out_ids, out_scores);
}

int elo_vstore_search(elo_vstore *vs, elo_backend *b, const float *queries, int query_count,
                      int dim, int k, int64_t *out_ids, float *out_scores)
{
    if (k < 1 || k > ELO_VSTORE_MAX_K)
        return elo_seterr(ELO_BADINPUT, "k must be 1..%d (got %d)", ELO_VSTORE_MAX_K, k);
    if (query_count < 1)
        return elo_seterr(ELO_BADINPUT, "no queries");
    int rc = elo_vstore_refresh(vs);
    if (rc < 0)
        return rc;
    if (dim != (int)vs->h.dim)
        return elo_seterr(ELO_BADINPUT, "dimension mismatch: the query has %d, the store %u",
                          dim, vs->h.dim);
    size_t qfloats = (size_t)query_count * (size_t)dim;
    float *q = elo_malloc(qfloats * sizeof *q);
    if (!q)
        return elo_seterr(ELO_NOMEM, "out of memory");
    memcpy(q, queries, qfloats * sizeof *q);
    rc = elo__vstore_check_finite(q, (size_t)query_count, dim, "query");
    if (rc == ELO_OK && vs->h.metric == ELO_VSTORE_COSINE)
        rc = elo__vstore_normalize(q, (size_t)query_count, dim, 0, "query");
    if (rc == ELO_OK) {
        if (vs->h.live_count == 0)
            rc = 0;
        else if (b && b->kind == ELO_DEVICE_CUDA)
            rc = search_cuda(vs, b, q, query_count, k, out_ids, out_scores);
        else
            rc = elo__vstore_search_cpu(vs, q, query_count, k, out_ids, out_scores);
    }
    elo_free(q);
    return rc;
}

/* ---- in-memory images ---------------------------------------------------- */

int elo__vstore_image_new(int dim, elo_dtype dtype, elo_vstore_metric metric, uint64_t count,
                          uint8_t **image, size_t *size)
{
    *image = NULL;
    *size = 0;
    if (dim < 1 || dim > ELO_VSTORE_MAX_DIM || (dtype != ELO_DTYPE_F32 && dtype != ELO_DTYPE_F16) ||
        (unsigned)metric > ELO_VSTORE_L2)
        return elo_seterr(ELO_BADINPUT, "bad store geometry");
    elo__vstore_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, ELO__VSTORE_MAGIC, 8);
    h.version = ELO__VSTORE_VERSION;
    h.header_bytes = ELO__VSTORE_HEADER_BYTES;
    h.dim = (uint32_t)dim;
    h.dtype = (uint32_t)dtype;
    h.metric = (uint32_t)metric;
    h.seq = 1;
    h.capacity = h.row_count = h.live_count = count;
    h.next_id = (int64_t)count;
    int rc = elo__vstore_layout(&h);
    if (rc < 0)
        return rc;
    uint8_t *img = elo_calloc(1, (size_t)h.file_bytes);
    if (!img)
        return elo_seterr(ELO_NOMEM, "out of memory for a %llu-byte store image",
                          (unsigned long long)h.file_bytes);
    h.crc = elo__vstore_header_crc(&h);
    memcpy(img, &h, sizeof h);
    int64_t *ids = (int64_t *)(img + h.ids_offset);
    for (uint64_t i = 0; i < count; i++)
        ids[i] = (int64_t)i;
    *image = img;
    *size = (size_t)h.file_bytes;
    return ELO_OK;
}
