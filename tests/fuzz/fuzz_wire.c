/*
 * libFuzzer driver: the wire decoder (wire_iter over one buffer, as an engine or a frontend
 * reads one ZeroMQ message). Any bytes must decode or fail with a one-line message, never
 * crash or read out of bounds. Every decoded message is re-encoded: the encoding is
 * canonical, so the bytes must be the ones decoded; the re-encoding must decode again and
 * encode to the same bytes once more.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/wire.h"

/* recheck: m was decoded from p[0..n): its encoding must be p[0..n), and decode again. */
static void recheck(const struct wire_msg *m, const uint8_t *p, size_t n)
{
    struct buf b, b2;
    buf_init(&b, 0);
    buf_init(&b2, 0);
    char err[256];
    if (wire_encode(&b, m, err, sizeof err) != 0 || b.n != n || memcmp(b.p, p, n) != 0)
        abort();
    struct arena a;
    arena_init(&a, 256u << 20, 0);
    struct wire_msg again;
    size_t used = 0;
    if (wire_decode((const uint8_t *)b.p, b.n, &used, &again, &a, err, sizeof err) != 0 ||
        used != n || again.type != m->type)
        abort();
    if (wire_encode(&b2, &again, err, sizeof err) != 0 || b2.n != n || memcmp(b2.p, p, n))
        abort();
    arena_deinit(&a);
    buf_deinit(&b2);
    buf_deinit(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    arena_init(&a, 64u << 20, 0);
    struct wire_iter it;
    wire_iter_init(&it, data, size);
    struct wire_msg m;
    char err[256];
    for (;;) {
        size_t start = it.off;
        err[0] = '\0';
        int rc = wire_iter_next(&it, &m, &a, err, sizeof err);
        if (rc == 1) {
            if (it.off <= start || it.off > size)
                abort();
            recheck(&m, data + start, it.off - start);
            continue;
        }
        if (rc < 0 && (!err[0] || strchr(err, '\n')))
            abort();
        break;
    }
    arena_deinit(&a);
    return 0;
}
