/*
 * buf: a growable byte buffer with a byte limit, for building responses, prompts and
 * messages whose size a client controls.
 *
 * b->p[0..b->n) holds the bytes and b->p[b->n] is always '\0', so b->p can be used as a C
 * string (a buffer that has never grown points at a shared read-only "", which must not be
 * written). `limit` caps b->n; a call that would pass it fails with ERR_LIMIT and leaves the
 * buffer as it was. The buffer owns b->p until buf_deinit or buf_detach. One thread at a
 * time per buffer; no call takes a lock.
 */
#ifndef KILN_BUF_H
#define KILN_BUF_H

#include <stddef.h>
#include <string.h>

struct buf {
    char *p;      /* the bytes, NUL-terminated */
    size_t n;     /* bytes held, the NUL not counted */
    size_t cap;   /* bytes allocated at p, the NUL's byte included; 0 when nothing is */
    size_t limit; /* most bytes b->n may reach */
};

/* buf_init: an empty buffer in caller storage; allocates nothing. limit == 0 means
 * SIZE_MAX / 2. */
void buf_init(struct buf *b, size_t limit);

/* buf_deinit: frees the bytes and leaves b empty (as after buf_init with the same limit). */
void buf_deinit(struct buf *b);

/* buf_reset: makes b empty (n = 0) but keeps its memory for reuse. */
void buf_reset(struct buf *b);

/* buf_reserve_grow: buf_reserve's out-of-line path. */
int buf_reserve_grow(struct buf *b, size_t extra);

/* buf_reserve: ensures `extra` more bytes can be appended without allocating.
 * Returns 0, ERR_LIMIT (n + extra would pass the limit) or ERR_NOMEM; b is unchanged on
 * failure. */
static inline int buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap && extra < b->cap - b->n && extra <= b->limit - b->n)
        return 0;
    return buf_reserve_grow(b, extra);
}

/* buf_append_grow: buf_append's out-of-line path, when b must grow (or refuse). */
int buf_append_grow(struct buf *b, const void *p, size_t n);

/* buf_append: appends p[0..n) (p may be NULL when n == 0).
 * Returns 0, ERR_LIMIT or ERR_NOMEM; b is unchanged on failure. Inline when it fits. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n && b->cap && n < b->cap - b->n && n <= b->limit - b->n) {
        memcpy(b->p + b->n, p, n);
        b->n += n;
        b->p[b->n] = '\0';
        return 0;
    }
    return buf_append_grow(b, p, n);
}

/* buf_append_byte: appends one byte. Returns 0, ERR_LIMIT or ERR_NOMEM. */
static inline int buf_append_byte(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

/* buf_append_str: appends the NUL-terminated s (without its NUL).
 * Returns 0, ERR_LIMIT or ERR_NOMEM. */
static inline int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/* buf_printf: appends printf-formatted text. Returns 0, ERR_LIMIT, ERR_NOMEM or ERR_INVAL
 * (the format failed to convert); b is unchanged on failure. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * buf_detach: hands over the bytes as a malloc'd NUL-terminated string and leaves b empty
 * (its limit kept). *n (when n is not NULL) receives the length. The caller frees the
 * result with free(). Returns NULL only when b was empty and allocating "" failed.
 */
char *buf_detach(struct buf *b, size_t *n);

#endif
