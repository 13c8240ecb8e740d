/* kernel-trace.c - a CUPTI injection library that records the start and end
 * of every kernel, memcpy and memset the process runs on the GPU, with no
 * change to the program (nsys is not on every GPU machine).
 *
 *   CUDA_INJECTION64_PATH=libkernel-trace.so ELOHIM_TRACE_OUT=trace.tsv prog...
 *
 * Writes one line per activity: kind, start ns, end ns, grid size, block
 * size, dynamic shared memory, name. bench/trace/summary.py turns that into
 * per-kernel times and the idle gaps between consecutive activities. Built
 * on the GPU machine by bench/trace/build.sh (CUPTI's headers live there). */
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KREC
#define KREC CUpti_ActivityKernel9
#endif
#ifndef MREC
#define MREC CUpti_ActivityMemcpy5
#endif
#ifndef SREC
#define SREC CUpti_ActivityMemset4
#endif

#define BUF_SIZE (16u << 20)

static FILE *out;

static void CUPTIAPI buffer_requested(uint8_t **buf, size_t *size, size_t *max_records)
{
    *buf = aligned_alloc(8, BUF_SIZE);
    *size = *buf ? BUF_SIZE : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size,
                                      size_t valid)
{
    (void)ctx;
    (void)stream;
    (void)size;
    CUpti_Activity *r = NULL;
    while (out && cuptiActivityGetNextRecord(buf, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL ||
            r->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const KREC *k = (const KREC *)r;
            fprintf(out, "K\t%llu\t%llu\t%d\t%d\t%d\t%s\n", (unsigned long long)k->start,
                    (unsigned long long)k->end, k->gridX * k->gridY * k->gridZ,
                    k->blockX * k->blockY * k->blockZ, (int)k->dynamicSharedMemory,
                    k->name ? k->name : "?");
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const MREC *m = (const MREC *)r;
            fprintf(out, "C\t%llu\t%llu\t0\t0\t0\tmemcpy kind %d %llu bytes\n",
                    (unsigned long long)m->start, (unsigned long long)m->end, (int)m->copyKind,
                    (unsigned long long)m->bytes);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const SREC *m = (const SREC *)r;
            fprintf(out, "S\t%llu\t%llu\t0\t0\t0\tmemset %llu bytes\n",
                    (unsigned long long)m->start, (unsigned long long)m->end,
                    (unsigned long long)m->bytes);
        }
    }
    free(buf);
}

static void flush_at_exit(void)
{
    cuptiActivityFlushAll(1);
    if (out)
        fclose(out);
    out = NULL;
}

int InitializeInjection(void)
{
    const char *path = getenv("ELOHIM_TRACE_OUT");
    out = fopen(path ? path : "kernel-trace.tsv", "w");
    if (!out)
        return 0;
    if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        fprintf(stderr, "kernel-trace: CUPTI refused the activity buffers\n");
        return 0;
    }
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
    atexit(flush_at_exit);
    return 1;
}
