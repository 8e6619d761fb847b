#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* A chunk: this header, padded to ARENA_ALIGN, then the usable bytes. */
struct arena_chunk {
    struct arena_chunk *prev; /* older chunk, NULL for the oldest */
    char *pos;                /* next free byte */
    char *end;                /* one past the last usable byte */
    size_t size;              /* bytes obtained from malloc, header included */
};

struct arena_cleanup {
    struct arena_cleanup *next; /* registered before this one */
    void (*fn)(void *);
    void *p;
};

#define CHUNK_HDR ((sizeof(struct arena_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

/* malloc's alignment plus a padded header make every chunk's first usable byte aligned. */
_Static_assert(alignof(max_align_t) >= ARENA_ALIGN, "malloc must align to ARENA_ALIGN");

void arena_init(struct arena *a, size_t limit, size_t first_chunk)
{
    memset(a, 0, sizeof *a);
    a->limit = limit ? limit : SIZE_MAX;
    a->first_chunk = first_chunk ? first_chunk : ARENA_FIRST_CHUNK_DEFAULT;
    a->next_chunk = a->first_chunk;
}

static void arena_run_cleanups(struct arena *a)
{
    while (a->cleanups) {
        struct arena_cleanup *c = a->cleanups;
        a->cleanups = c->next; /* unlink first: each cleanup runs exactly once */
        c->fn(c->p);
    }
}

/* Frees every chunk except `keep` (which may be NULL). */
static void arena_free_chunks(struct arena *a, struct arena_chunk *keep)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *prev = c->prev;
        if (c != keep) {
            a->reserved -= c->size;
            free(c);
        }
        c = prev;
    }
}

static size_t arena_grown(size_t n)
{
    return n <= SIZE_MAX / 4 ? n * 2 : SIZE_MAX / 2;
}

void arena_deinit(struct arena *a)
{
    arena_run_cleanups(a);
    arena_free_chunks(a, NULL);
    arena_init(a, a->limit == SIZE_MAX ? 0 : a->limit, a->first_chunk);
}

void arena_reset(struct arena *a)
{
    arena_run_cleanups(a);
    arena_free_chunks(a, a->first);
    a->head = a->first;
    if (a->first) {
        a->first->prev = NULL;
        a->first->pos = (char *)a->first + CHUNK_HDR;
        a->next_chunk = arena_grown(a->first_chunk);
    }
    a->last = NULL;
    a->last_chunk = NULL;
    a->used = 0;
    a->err = 0;
}

/* The aligned start of an n-byte block in c, or NULL when c lacks room. */
static char *arena_chunk_fit(const struct arena_chunk *c, size_t n)
{
    uintptr_t pos = (uintptr_t)c->pos;
    uintptr_t p = (pos + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    if (p > (uintptr_t)c->end || (uintptr_t)c->end - p < n)
        return NULL;
    return c->pos + (p - pos);
}

/* A new unlinked chunk with `usable` bytes, or NULL with a->err set. */
static struct arena_chunk *arena_chunk_new(struct arena *a, size_t usable)
{
    if (usable > SIZE_MAX - CHUNK_HDR || CHUNK_HDR + usable > a->limit - a->reserved) {
        a->err = ERR_LIMIT;
        return NULL;
    }
    size_t size = CHUNK_HDR + usable;
    struct arena_chunk *c = malloc(size);
    if (!c) {
        a->err = ERR_NOMEM;
        return NULL;
    }
    c->prev = NULL;
    c->pos = (char *)c + CHUNK_HDR;
    c->end = c->pos + usable;
    c->size = size;
    a->reserved += size;
    return c;
}

/*
 * Makes room for an n-byte block that the head chunk cannot hold and returns the chunk it
 * fits in. A block larger than the next ordinary chunk gets a chunk of its own, linked
 * behind the head so the head keeps serving small blocks; otherwise a new ordinary chunk,
 * clamped to what the limit leaves, becomes the head.
 */
static struct arena_chunk *arena_grow(struct arena *a, size_t n)
{
    size_t left = a->limit - a->reserved;
    size_t room = left > CHUNK_HDR ? left - CHUNK_HDR : 0;
    size_t planned = a->head ? a->next_chunk : a->first_chunk;
    size_t usable = n > planned ? n : (planned < room ? planned : room);
    struct arena_chunk *c = arena_chunk_new(a, usable < n ? n : usable);
    if (!c)
        return NULL;
    if (a->head && n > planned) {
        c->prev = a->head->prev;
        a->head->prev = c;
    } else {
        c->prev = a->head;
        a->head = c;
        a->next_chunk = arena_grown(planned);
    }
    if (!a->first)
        a->first = c;
    return c;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = n ? n : 1;
    struct arena_chunk *c = a->head;
    char *p = c ? arena_chunk_fit(c, need) : NULL;
    if (!p) {
        c = arena_grow(a, need);
        if (!c)
            return NULL;
        p = arena_chunk_fit(c, need);
    }
    c->pos = p + need;
    a->last = p;
    a->last_chunk = c;
    a->used += n;
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        a->err = ERR_LIMIT;
        return NULL;
    }
    void *p = arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX) {
        a->err = ERR_LIMIT;
        return NULL;
    }
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *arena_realloc(struct arena *a, void *p, size_t old_n, size_t new_n)
{
    if (!p)
        return arena_alloc(a, new_n);
    if (p == a->last) {
        struct arena_chunk *c = a->last_chunk;
        size_t need = new_n ? new_n : 1;
        if ((size_t)(c->end - (char *)p) >= need) {
            c->pos = (char *)p + need;
            a->used = a->used - old_n + new_n;
            return p;
        }
    }
    if (new_n <= old_n)
        return p;
    void *q = arena_alloc(a, new_n);
    if (!q)
        return NULL;
    memcpy(q, p, old_n);
    return q;
}

int arena_defer(struct arena *a, void (*fn)(void *), void *p)
{
    struct arena_cleanup *c = arena_alloc(a, sizeof *c);
    if (!c)
        return a->err;
    c->fn = fn;
    c->p = p;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

int arena_error(const struct arena *a)
{
    return a->err;
}

size_t arena_used(const struct arena *a)
{
    return a->used;
}
