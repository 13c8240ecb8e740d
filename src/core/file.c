/* file.c - memory maps, whole-file reads, atomic writes and durable
 * positional I/O. Every error message names the path. */
#include "elohim/core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int elo_mmap_open(elo_mmap *m, const char *path, int writable)
{
    memset(m, 0, sizeof *m);
    m->fd = -1;
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return elo_seterr(errno == ENOENT ? ELO_NOTFOUND : ELO_IO,
                          "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return elo_seterr(ELO_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return elo_seterr(ELO_BADINPUT, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size,
                       PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return elo_seterr(ELO_IO, "%s: mmap: %s", path, strerror(e));
        }
        m->data = p;
    }
    m->size = (size_t)st.st_size;
    m->fd = fd;
    m->writable = writable;
    return ELO_OK;
}

void elo_mmap_close(elo_mmap *m)
{
    if (m->data)
        munmap(m->data, m->size);
    if (m->fd >= 0)
        close(m->fd);
    memset(m, 0, sizeof *m);
    m->fd = -1;
}

int elo_read_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return elo_seterr(errno == ENOENT ? ELO_NOTFOUND : ELO_IO,
                          "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return elo_seterr(ELO_IO, "%s: not a readable regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return elo_seterr(ELO_TOOBIG, "%s: %lld bytes is over the limit of %zu",
                          path, (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = elo_malloc(size + 1);
    if (!buf) {
        close(fd);
        return elo_seterr(ELO_NOMEM, "%s: out of memory", path);
    }
    int rc = elo_pread_all(fd, buf, size, 0);
    close(fd);
    if (rc < 0) {
        elo_free(buf);
        return elo_seterr(rc, "%s: read failed", path);
    }
    buf[size] = '\0';
    *out = buf;
    if (len)
        *len = size;
    return ELO_OK;
}

int elo_pwrite_all(int fd, const void *data, size_t len, uint64_t offset)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return elo_seterr(ELO_IO, "write: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return ELO_OK;
}

int elo_pread_all(int fd, void *data, size_t len, uint64_t offset)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return elo_seterr(ELO_IO, "read: %s", strerror(errno));
        }
        if (n == 0)
            return elo_seterr(ELO_IO, "read: unexpected end of file");
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return ELO_OK;
}

int elo_fsync_dir_of(const char *path)
{
    char *copy = elo_strdup(path);
    if (!copy)
        return ELO_NOMEM;
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = ELO_OK;
    if (fd < 0 || fsync(fd) != 0)
        rc = elo_seterr(ELO_IO, "%s: fsync: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    elo_free(copy);
    return rc;
}

int elo_write_file_atomic(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = elo_malloc(plen + 32);
    if (!tmp)
        return ELO_NOMEM;
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = elo_seterr(ELO_IO, "%s: %s", tmp, strerror(errno));
        elo_free(tmp);
        return rc;
    }
    int rc = elo_pwrite_all(fd, data, len, 0);
    if (rc == ELO_OK && fsync(fd) != 0)
        rc = elo_seterr(ELO_IO, "%s: fsync: %s", tmp, strerror(errno));
    close(fd);
    if (rc == ELO_OK && rename(tmp, path) != 0)
        rc = elo_seterr(ELO_IO, "%s: rename: %s", path, strerror(errno));
    if (rc != ELO_OK)
        unlink(tmp);
    else
        rc = elo_fsync_dir_of(path);
    elo_free(tmp);
    return rc;
}

int elo_mkdirs(const char *path, unsigned mode)
{
    char *copy = elo_strdup(path);
    if (!copy)
        return ELO_NOMEM;
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, mode) != 0 && errno != EEXIST) {
                int rc = elo_seterr(ELO_IO, "%s: mkdir: %s", copy, strerror(errno));
                elo_free(copy);
                return rc;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    elo_free(copy);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return elo_seterr(ELO_IO, "%s: not a directory", path);
    return ELO_OK;
}
