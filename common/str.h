/*
 * str: a borrowed byte string, pointer and length together.
 *
 * A struct str never owns its bytes and need not be NUL-terminated; it is valid as long as
 * whatever it points into is. The helpers are pure inline functions, safe from any thread.
 * A str with n == 0 may have p == NULL.
 */
#ifndef KILN_STR_H
#define KILN_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct str {
    const char *p;
    size_t n;
};

/* str_from_cstr: a str over the NUL-terminated s (without the NUL); NULL gives {NULL, 0}. */
static inline struct str str_from_cstr(const char *s)
{
    return (struct str){s, s ? strlen(s) : 0};
}

/* str_eq: whether a and b hold the same bytes. */
static inline bool str_eq(struct str a, struct str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* str_eq_cstr: whether a holds exactly the bytes of the NUL-terminated s. */
static inline bool str_eq_cstr(struct str a, const char *s)
{
    return str_eq(a, str_from_cstr(s));
}

/* str_starts_with: whether s begins with prefix (always true for an empty prefix). */
static inline bool str_starts_with(struct str s, struct str prefix)
{
    return s.n >= prefix.n && (prefix.n == 0 || memcmp(s.p, prefix.p, prefix.n) == 0);
}

/* str_ends_with: whether s ends with suffix (always true for an empty suffix). */
static inline bool str_ends_with(struct str s, struct str suffix)
{
    return s.n >= suffix.n &&
           (suffix.n == 0 || memcmp(s.p + s.n - suffix.n, suffix.p, suffix.n) == 0);
}

/* str_find_byte: the index of the first c in s, or s.n when s has none. */
static inline size_t str_find_byte(struct str s, char c)
{
    const char *hit = s.n ? memchr(s.p, c, s.n) : NULL;
    return hit ? (size_t)(hit - s.p) : s.n;
}

#endif
