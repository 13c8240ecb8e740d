/* png.c - frame export: RGBA8 pixels to a PNG file through libpng, written
 * to a temporary file and renamed so a failed write leaves no half file. */
#include "gpuos/gpuos-impl.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int elo_png_write_rgba(const char *path, const uint8_t *rgba, int width, int height)
{
    size_t len = strlen(path) + 16;
    char *tmp = elo_malloc(len);
    if (!tmp)
        return elo_seterr(ELO_NOMEM, "png: out of memory");
    snprintf(tmp, len, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = elo_seterr(ELO_IO, "%s: %s", path, strerror(errno));
        elo_free(tmp);
        return rc;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        elo_free(tmp);
        return elo_seterr(ELO_NOMEM, "png: cannot create the writer");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        elo_free(tmp);
        return elo_seterr(ELO_IO, "%s: PNG write failed", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGBA,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(rgba + (size_t)y * (size_t)width * 4));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        elo_free(tmp);
        return elo_seterr(ELO_IO, "%s: write failed", path);
    }
    if (rename(tmp, path) != 0) {
        int rc = elo_seterr(ELO_IO, "%s: %s", path, strerror(errno));
        unlink(tmp);
        elo_free(tmp);
        return rc;
    }
    elo_free(tmp);
    return ELO_OK;
}
