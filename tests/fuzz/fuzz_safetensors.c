/*
 * libFuzzer driver: .safetensors validation (st_open_memory, the parser st_open_file runs on
 * its map). Any bytes must open or fail with a one-line message, never crash or leak; a file
 * that opens must keep every tensor inside the input, findable by name, and not overlapping
 * another.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/safetensors.h"

/* check: the promises st_open_memory makes about an opened model. */
static void check(const struct st_model *m, const uint8_t *data, size_t size)
{
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < st_count(m); i++) {
        const struct st_tensor *t = st_at(m, i);
        const uint8_t *p = t->data;
        if (p < data || p > data + size || t->size > (size_t)(data + size - p) ||
            t->file_offset != (size_t)(p - data) || st_find(m, t->name) != t || t->n_dims < 0 ||
            t->n_dims > ST_MAX_DIMS || st_dtype_size(t->dtype) == 0)
            abort();
        size_t count = 1;
        for (int d = 0; d < t->n_dims; d++)
            count *= (size_t)t->shape[d];
        if (count * st_dtype_size(t->dtype) != t->size)
            abort();
        if (t->size) {
            sink ^= p[0];
            sink ^= p[t->size - 1];
        }
        if (i && strcmp(st_at(m, i - 1)->name, t->name) >= 0) /* sorted, distinct */
            abort();
        st_release(m, t);
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_model *m = NULL;
    char err[256];
    err[0] = '\0';
    if (st_open_memory(data, size, "fuzz.safetensors", &m, err, sizeof err) == 0) {
        check(m, data, size);
        st_model_free(m);
    } else if (m || !err[0] || strchr(err, '\n')) {
        abort();
    }
    return 0;
}
