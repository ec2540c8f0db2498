/* Counts the heap allocations the predict path makes. Linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign against the static library, so every
 * allocation call in the model's and the kernels' code goes through these counters. */
#include <stdio.h>
#include <stdlib.h>

#include "alpha.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);

static long allocations;
void *__wrap_malloc(size_t n) { allocations++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { allocations++; return __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { allocations++; return __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { allocations++; return __real_posix_memalign(p, a, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { allocations++; return __real_aligned_alloc(a, n); }

#define BATCH 4
static float x[BATCH * ALPHA_INPUT0_SAMPLE_ELEMENTS], y[BATCH * ALPHA_OUTPUT0_SAMPLE_ELEMENTS];

int main(void)
{
    size_t bytes = alpha_workspace_size(BATCH);
    unsigned char *raw = (unsigned char *)malloc(bytes + ALPHA_WORKSPACE_ALIGN);
    unsigned char *ws = raw + (ALPHA_WORKSPACE_ALIGN - (size_t)raw % ALPHA_WORKSPACE_ALIGN) % ALPHA_WORKSPACE_ALIGN;
    const void *in[1];
    void *out[1];
    long before;
    int i, rc = 0;
    in[0] = x;
    out[0] = y;
    if (!raw) return 1;
    /* the wrapper itself must count: the malloc above went through it */
    printf("setup allocations: %ld\n", allocations);
    before = allocations;
    for (i = 0; i < 5; i++) rc |= alpha_predict(NULL, BATCH, in, out, ws, bytes);
    printf("predict allocations: %ld (status %d)\n", allocations - before, rc);
    before = allocations;
    rc |= alpha_predict_alloc(NULL, BATCH, in, out);
    printf("predict_alloc allocations: %ld\n", allocations - before);
    free(raw);
    return rc;
}
