/*
 * arena: a bump allocator with a byte limit and deferred cleanups, one per request (or one
 * per worker step, reset every iteration).
 *
 * Memory comes from a list of malloc'd chunks: the first of `first_chunk` bytes, each later
 * one twice the previous, never more than the limit leaves room for; an allocation larger
 * than the next chunk gets a chunk of its own. Every pointer handed out is 16-byte aligned
 * and lives until arena_reset or arena_deinit; nothing is freed one by one. `limit` caps
 * the bytes reserved from malloc (chunk headers included), so a client that asks for too
 * much gets NULL and ERR_LIMIT, never a crash. arena_defer registers cleanups (closing a
 * file, freeing a library object) that run, newest first, on reset and deinit.
 *
 * An arena belongs to one thread at a time; no call takes a lock.
 */
#ifndef KILN_ARENA_H
#define KILN_ARENA_H

#include <stddef.h>

#define ARENA_ALIGN 16
#define ARENA_FIRST_CHUNK_DEFAULT 4096

struct arena_chunk;
struct arena_cleanup;

struct arena {
    struct arena_chunk *head;       /* chunk small allocations come from; NULL until needed */
    struct arena_chunk *first;      /* the first chunk made; kept by arena_reset */
    struct arena_cleanup *cleanups; /* newest first */
    struct arena_chunk *last_chunk; /* chunk of the newest allocation (for arena_realloc) */
    void *last;                     /* the newest allocation, NULL when none */
    size_t limit;                   /* cap on `reserved` */
    size_t first_chunk;             /* usable bytes of the first chunk */
    size_t next_chunk;              /* usable bytes of the next ordinary chunk */
    size_t used;                    /* bytes handed out (requested sizes, no padding) */
    size_t reserved;                /* bytes obtained from malloc, chunk headers included */
    int err;                        /* why the most recent call failed: 0 or ERR_* */
};

/*
 * arena_init: sets up an empty arena in caller storage; allocates nothing yet.
 * limit == 0 means no limit; first_chunk == 0 means ARENA_FIRST_CHUNK_DEFAULT.
 */
void arena_init(struct arena *a, size_t limit, size_t first_chunk);

/*
 * arena_deinit: runs the deferred cleanups, newest first, and frees every chunk. Every
 * pointer from the arena becomes invalid. The arena is left empty, as after arena_init
 * with the same limit and first chunk size: calling arena_deinit again is harmless.
 */
void arena_deinit(struct arena *a);

/*
 * arena_reset: runs the deferred cleanups, newest first, frees every chunk but the first,
 * and rewinds the first for reuse. Every pointer from the arena becomes invalid; the
 * error is cleared. For per-step scratch memory.
 */
void arena_reset(struct arena *a);

/*
 * arena_alloc: n bytes (uninitialised), 16-byte aligned, valid until reset or deinit;
 * n == 0 still gives a distinct pointer. Returns NULL on failure and sets a->err to
 * ERR_LIMIT (the limit would be exceeded) or ERR_NOMEM (malloc failed); the arena stays
 * usable. The arena owns the memory.
 */
void *arena_alloc(struct arena *a, size_t n);

/* arena_calloc: like arena_alloc for count * size zeroed bytes; an overflowing product
 * returns NULL with ERR_LIMIT. */
void *arena_calloc(struct arena *a, size_t count, size_t size);

/* arena_strndup: a copy of s[0..n) followed by a NUL (s need not be NUL-terminated).
 * NULL with ERR_LIMIT or ERR_NOMEM in a->err on failure. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

/*
 * arena_realloc: resizes p (an arena block of old_n bytes, or NULL) to new_n bytes keeping
 * the first min(old_n, new_n) bytes. Grows or shrinks in place when p is the newest
 * allocation and its chunk has room; otherwise copies to a new block (the old one stays
 * allocated until reset). On failure returns NULL, sets a->err, and p is untouched.
 */
void *arena_realloc(struct arena *a, void *p, size_t old_n, size_t new_n);

/*
 * arena_defer: registers fn(p) to run on the next arena_reset or arena_deinit, after
 * cleanups registered later (LIFO), exactly once. The record comes from the arena.
 * Returns 0, ERR_LIMIT or ERR_NOMEM (then fn is not registered: the caller still owns p).
 * A cleanup must not use the arena.
 */
int arena_defer(struct arena *a, void (*fn)(void *), void *p);

/* arena_error: why the most recent failed call failed (ERR_LIMIT, ERR_NOMEM), or 0 when
 * nothing failed since init or reset. */
int arena_error(const struct arena *a);

/* arena_used: bytes handed out since init or reset (requested sizes; blocks left behind by
 * arena_realloc still count). */
size_t arena_used(const struct arena *a);

#endif
