#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define BUF_MAX (SIZE_MAX / 2)
#define BUF_MIN_CAP 32

/* What b->p points at before the first allocation; never written (cap == 0 guards it). */
static const char buf_empty[1] = "";

void buf_init(struct buf *b, size_t limit)
{
    b->p = (char *)buf_empty;
    b->n = 0;
    b->cap = 0;
    b->limit = limit == 0 || limit > BUF_MAX ? BUF_MAX : limit;
}

void buf_deinit(struct buf *b)
{
    if (b->cap)
        free(b->p);
    buf_init(b, b->limit);
}

void buf_reset(struct buf *b)
{
    b->n = 0;
    if (b->cap)
        b->p[0] = '\0';
}

int buf_reserve_grow(struct buf *b, size_t extra)
{
    if (extra > b->limit - b->n)
        return ERR_LIMIT;
    size_t need = b->n + extra + 1; /* <= limit + 1 <= BUF_MAX + 1: no overflow */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap < BUF_MIN_CAP / 2 ? BUF_MIN_CAP : b->cap * 2; /* cap < need */
    if (cap < need)
        cap = need;
    if (cap > b->limit + 1)
        cap = b->limit + 1;
    char *p = realloc(b->cap ? b->p : NULL, cap);
    if (!p)
        return ERR_NOMEM;
    if (!b->cap)
        p[0] = '\0';
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_append_grow(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

__attribute__((format(printf, 2, 0))) static int buf_vprintf(struct buf *b, const char *fmt,
                                                             va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->cap ? b->cap - b->n : 0; /* the NUL's byte included */
    int len = vsnprintf(room ? b->p + b->n : NULL, room, fmt, ap2);
    va_end(ap2);
    /* a fit within cap is within the limit too, since cap <= limit + 1 */
    int rc = len < 0 ? ERR_INVAL : 0;
    if (rc == 0 && (size_t)len >= room)
        rc = buf_reserve(b, (size_t)len);
    if (rc) {
        if (b->cap)
            b->p[b->n] = '\0'; /* undo a partial write past the end */
        return rc;
    }
    if ((size_t)len >= room)
        vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    b->n += (size_t)len;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *buf_detach(struct buf *b, size_t *n)
{
    char *p = b->p;
    size_t len = b->n;
    if (!b->cap) {
        p = malloc(1);
        if (!p)
            return NULL;
        p[0] = '\0';
    }
    buf_init(b, b->limit);
    if (n)
        *n = len;
    return p;
}
