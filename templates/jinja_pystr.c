/* jinja_pystr: Python str semantics on UTF-8 (see jinja_pystr.h). */
#include "jinja_pystr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "common/err.h"
#include "common/utf8.h"

bool jinja_py_isspace(uint32_t cp)
{
    return uc_is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

/* next_cp: decodes the code point at s[*i] and advances; ill-formed bytes read as U+FFFD. */
static uint32_t next_cp(const char *s, size_t n, size_t *i)
{
    uint32_t cp;
    size_t l = utf8_decode(s + *i, n - *i, &cp);
    *i += l ? l : 1;
    return l ? cp : 0xFFFD;
}

static size_t prev_start(const char *s, size_t i)
{
    while (i > 0 && ((unsigned char)s[--i] & 0xC0) == 0x80)
        ;
    return i;
}

static bool in_chars(uint32_t cp, const struct jv *chars)
{
    if (!chars)
        return jinja_py_isspace(cp);
    for (size_t i = 0; i < chars->u.s.n;)
        if (next_cp(chars->u.s.p, chars->u.s.n, &i) == cp)
            return true;
    return false;
}

struct jv pystr_strip(struct jv s, const struct jv *chars, bool left, bool right)
{
    const char *p = s.u.s.p;
    size_t a = 0, b = s.u.s.n;
    while (left && a < b) {
        size_t k = a;
        if (!in_chars(next_cp(p, b, &k), chars))
            break;
        a = k;
    }
    while (right && b > a) {
        size_t k = prev_start(p, b), j = k;
        if (!in_chars(next_cp(p, b, &j), chars))
            break;
        b = k;
    }
    return jv_str(p + a, b - a);
}

static int push_str(struct jinja_rt *rt, struct jv *list, const char *p, size_t n)
{
    return jv_list_push(rt, list->u.l, jv_str(p, n));
}

/* split_ws: str.split() / rsplit() without a separator. */
static int split_ws(struct jinja_rt *rt, struct jv s, int64_t maxsplit, bool right, struct jv *out)
{
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    int rc = 0;
    if (!right) {
        size_t i = 0;
        for (int64_t k = 0; rc == 0;) {
            while (i < n) { /* skip whitespace */
                size_t j = i;
                if (!jinja_py_isspace(next_cp(p, n, &j)))
                    break;
                i = j;
            }
            if (i >= n)
                break;
            if (maxsplit >= 0 && k++ >= maxsplit) {
                rc = push_str(rt, out, p + i, n - i);
                break;
            }
            size_t start = i;
            while (i < n) {
                size_t j = i;
                if (jinja_py_isspace(next_cp(p, n, &j)))
                    break;
                i = j;
            }
            rc = push_str(rt, out, p + start, i - start);
        }
        return rc;
    }
    size_t end = n;
    for (int64_t k = 0; rc == 0;) {
        while (end > 0) {
            size_t j = prev_start(p, end), t = j;
            if (!jinja_py_isspace(next_cp(p, n, &t)))
                break;
            end = j;
        }
        if (end == 0)
            break;
        if (maxsplit >= 0 && k++ >= maxsplit) {
            rc = push_str(rt, out, p, end);
            break;
        }
        size_t start = end;
        while (start > 0) {
            size_t j = prev_start(p, start), t = j;
            if (jinja_py_isspace(next_cp(p, n, &t)))
                break;
            start = j;
        }
        rc = push_str(rt, out, p + start, end - start);
        end = start;
    }
    return rc;
}

static void reverse_list(struct jv *l)
{
    for (size_t i = 0, j = l->u.l->n; i + 1 < j; i++, j--) {
        struct jv t = l->u.l->v[i];
        l->u.l->v[i] = l->u.l->v[j - 1];
        l->u.l->v[j - 1] = t;
    }
}

int pystr_split(struct jinja_rt *rt, struct jv s, const struct jv *sep, int64_t maxsplit,
                bool from_right, struct jv *out)
{
    int rc = jv_list_new(rt, 4, out);
    if (rc)
        return rc;
    if (!sep || sep->type == JV_NONE) {
        rc = split_ws(rt, s, maxsplit, from_right, out);
    } else {
        if (sep->type != JV_STR)
            return jinja_fail(rt, "TypeError", "must be str or None, not %s", jv_type_name(sep));
        if (sep->u.s.n == 0)
            return jinja_fail(rt, "ValueError", "empty separator");
        const char *p = s.u.s.p, *q = sep->u.s.p;
        size_t n = s.u.s.n, m = sep->u.s.n;
        if (!from_right) {
            size_t i = 0;
            for (int64_t k = 0; rc == 0; k++) {
                const char *hit =
                    maxsplit >= 0 && k >= maxsplit ? NULL : memmem(p + i, n - i, q, m);
                if (!hit) {
                    rc = push_str(rt, out, p + i, n - i);
                    break;
                }
                rc = push_str(rt, out, p + i, (size_t)(hit - (p + i)));
                i = (size_t)(hit - p) + m;
            }
        } else {
            size_t end = n;
            for (int64_t k = 0; rc == 0; k++) {
                size_t hit = SIZE_MAX;
                for (size_t j = end; (maxsplit < 0 || k < maxsplit) && j >= m; j--)
                    if (memcmp(p + j - m, q, m) == 0) {
                        hit = j - m;
                        break;
                    }
                if (hit == SIZE_MAX) {
                    rc = push_str(rt, out, p, end);
                    break;
                }
                rc = push_str(rt, out, p + hit + m, end - hit - m);
                end = hit;
            }
        }
    }
    if (from_right)
        reverse_list(out);
    return rc;
}

int pystr_splitlines(struct jinja_rt *rt, struct jv s, bool keepends, struct jv *out)
{
    int rc = jv_list_new(rt, 4, out);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, start = 0;
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t at = i;
        uint32_t cp = next_cp(p, n, &i);
        bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C ||
                   cp == 0x1D || cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!brk)
            continue;
        if (cp == '\r' && i < n && p[i] == '\n')
            i++;
        rc = push_str(rt, out, p + start, (keepends ? i : at) - start);
        start = i;
    }
    if (rc == 0 && start < n)
        rc = push_str(rt, out, p + start, n - start);
    return rc;
}

static bool cased(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

/* map_case: one code point's mapping; Python's full mappings for the common specials. */
static int map_case(struct buf *b, uint32_t cp, int how)
{
    char enc[4];
    if (how == PY_UPPER && cp == 0xDF)
        return buf_append_str(b, "SS");
    if (how == PY_TITLE && cp == 0xDF)
        return buf_append_str(b, "Ss");
    if (how == PY_LOWER && cp == 0x130)
        return buf_append(b, "i\xCC\x87", 3);
    uint32_t m = how == PY_UPPER   ? (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp)
                 : how == PY_LOWER ? (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp)
                                   : (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp);
    return buf_append(b, enc, utf8_encode(m, enc));
}

int pystr_case(struct jinja_rt *rt, struct jv s, enum pystr_case how, struct jv *out)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = 0;
    bool prev_cased = false, first = true;
    for (size_t i = 0; rc == 0 && i < s.u.s.n; first = false) {
        uint32_t cp = next_cp(s.u.s.p, s.u.s.n, &i);
        int m = how;
        if (how == PY_TITLE)
            m = prev_cased ? PY_LOWER : PY_TITLE;
        else if (how == PY_CAPITALIZE)
            m = first ? PY_TITLE : PY_LOWER;
        else if (how == PY_SWAPCASE)
            m = utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LU   ? PY_LOWER
                : utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LL ? PY_UPPER
                                                                                  : -1;
        if (m < 0) {
            char enc[4];
            rc = buf_append(&b, enc, utf8_encode(cp, enc));
        } else {
            rc = map_case(&b, cp, m);
        }
        prev_cased = cased(cp);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

int pystr_replace(struct jinja_rt *rt, struct jv s, struct jv old, struct jv new_, int64_t count,
                  struct jv *out)
{
    struct buf b;
    buf_init(&b, rt->max_out);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    int rc = 0;
    int64_t done = 0;
    if (old.u.s.n == 0) { /* the empty string matches between all characters */
        while (rc == 0 && (count < 0 || done < count)) {
            rc = buf_append(&b, new_.u.s.p, new_.u.s.n);
            done++;
            if (i >= n)
                break;
            size_t j = i;
            next_cp(p, n, &j);
            if (rc == 0)
                rc = buf_append(&b, p + i, j - i);
            i = j;
        }
    } else {
        while (rc == 0 && (count < 0 || done < count)) {
            const char *hit = memmem(p + i, n - i, old.u.s.p, old.u.s.n);
            if (!hit)
                break;
            rc = buf_append(&b, p + i, (size_t)(hit - (p + i)));
            if (rc == 0)
                rc = buf_append(&b, new_.u.s.p, new_.u.s.n);
            i = (size_t)(hit - p) + old.u.s.n;
            done++;
        }
    }
    if (rc == 0)
        rc = buf_append(&b, p + i, n - i);
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    if (rc == ERR_LIMIT)
        rc = jinja_oom(rt);
    buf_deinit(&b);
    return rc;
}

int64_t pystr_find(struct jv s, struct jv sub, bool from_right)
{
    const char *p = s.u.s.p, *q = sub.u.s.p;
    size_t n = s.u.s.n, m = sub.u.s.n;
    size_t at = SIZE_MAX;
    if (!from_right) {
        const char *hit = m ? memmem(p, n, q, m) : p;
        at = hit ? (size_t)(hit - p) : SIZE_MAX;
    } else {
        for (size_t j = n + 1; j-- > m;)
            if (memcmp(p + j - m, q, m) == 0) {
                at = j - m;
                break;
            }
    }
    return at == SIZE_MAX ? -1 : (int64_t)utf8_count(p, at);
}

int64_t pystr_count(struct jv s, struct jv sub)
{
    if (sub.u.s.n == 0)
        return (int64_t)utf8_count(s.u.s.p, s.u.s.n) + 1;
    int64_t k = 0;
    for (size_t i = 0;;) {
        const char *hit = memmem(s.u.s.p + i, s.u.s.n - i, sub.u.s.p, sub.u.s.n);
        if (!hit)
            return k;
        k++;
        i = (size_t)(hit - s.u.s.p) + sub.u.s.n;
    }
}

int pystr_join(struct jinja_rt *rt, struct jv sep, struct jv items, struct jv *out)
{
    struct jv list;
    int rc = jv_iter_list(rt, &items, &list);
    struct buf b;
    buf_init(&b, rt->max_out);
    for (size_t i = 0; rc == 0 && i < list.u.l->n; i++) {
        const struct jv *it = &list.u.l->v[i];
        if (it->type != JV_STR) {
            rc = jinja_fail(rt, "TypeError", "sequence item %zu: expected str instance, %s found",
                            i, jv_type_name(it));
            break;
        }
        if (i)
            rc = buf_append(&b, sep.u.s.p, sep.u.s.n);
        if (rc == 0)
            rc = buf_append(&b, it->u.s.p, it->u.s.n);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    if (rc == ERR_LIMIT)
        rc = jinja_oom(rt);
    buf_deinit(&b);
    return rc;
}

bool pystr_python_word(uint32_t cp)
{
    if (cp == '_')
        return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

bool pystr_is(struct jv s, char what)
{
    if (s.u.s.n == 0)
        return false;
    bool any_cased = false;
    for (size_t i = 0; i < s.u.s.n;) {
        uint32_t cp = next_cp(s.u.s.p, s.u.s.n, &i);
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        bool alpha = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
        bool digit = c == UTF8PROC_CATEGORY_ND;
        bool num = c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
        switch (what) {
        case 'd':
            if (!digit)
                return false;
            break;
        case 'a':
            if (!alpha)
                return false;
            break;
        case 'n':
            if (!alpha && !num)
                return false;
            break;
        case 's':
            if (!jinja_py_isspace(cp))
                return false;
            break;
        case 'l':
            if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT)
                return false;
            any_cased |= c == UTF8PROC_CATEGORY_LL;
            break;
        case 'u':
            if (c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)
                return false;
            any_cased |= c == UTF8PROC_CATEGORY_LU;
            break;
        }
    }
    return what == 'l' || what == 'u' ? any_cased : true;
}

int pystr_pad(struct jinja_rt *rt, struct jv s, int64_t width, char where, struct jv *out)
{
    int64_t len = (int64_t)utf8_count(s.u.s.p, s.u.s.n);
    if (width <= len) {
        *out = s;
        return 0;
    }
    if (width > (int64_t)rt->max_out)
        return jinja_oom(rt);
    size_t pad = (size_t)(width - len), left = where == 'l' ? 0 : where == 'r' ? pad : pad / 2;
    if (where == 'c') /* CPython: marg / 2 + (marg & width & 1) */
        left += pad & (size_t)width & 1;
    char *d = jinja_alloc(rt, s.u.s.n + pad);
    if (!d)
        return jinja_oom(rt);
    memset(d, ' ', left);
    memcpy(d + left, s.u.s.p, s.u.s.n);
    memset(d + left + s.u.s.n, ' ', pad - left);
    *out = jv_str(d, s.u.s.n + pad);
    return 0;
}
