/* jinja_value: values with Python semantics (see jinja_value.h). */
#include "jinja_value.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/err.h"
#include "common/utf8.h"
#include "jinja_internal.h"

int jinja_fail(struct jinja_rt *rt, const char *cls, const char *fmt, ...)
{
    if (rt->err && rt->errlen && !rt->err[0]) {
        int n = snprintf(rt->err, rt->errlen, "%s: ", cls);
        if (n >= 0 && (size_t)n < rt->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(rt->err + n, rt->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return ERR_INVAL;
}

int jinja_oom(struct jinja_rt *rt)
{
    jinja_fail(rt, "MemoryError", "the render exceeded its memory limit");
    return ERR_LIMIT;
}

void *jinja_alloc(struct jinja_rt *rt, size_t n)
{
    return arena_alloc(rt->arena, n ? n : 1);
}

struct jv jv_undef_named(enum jv_undef_kind kind, const struct jv *obj, const char *name, size_t n)
{
    struct jv v = {.type = JV_UNDEF, .kind = (uint16_t)kind};
    v.flags = obj ? obj->type : JV_UNDEF;
    if (obj && obj->type == JV_LIST && (obj->flags & JV_F_TUPLE))
        v.pad = 1; /* the object was a tuple */
    v.u.s.p = name;
    v.u.s.n = n;
    return v;
}

struct jv jv_undef_elem(const struct jv *obj, int64_t index)
{
    struct jv v = jv_undef_named(JV_UNDEF_ELEM, obj, NULL, 0);
    v.u.i = index;
    return v;
}

int jv_str_copy(struct jinja_rt *rt, const char *p, size_t n, struct jv *out)
{
    char *d = jinja_alloc(rt, n);
    if (!d)
        return jinja_oom(rt);
    if (n)
        memcpy(d, p, n);
    *out = jv_str(d, n);
    return 0;
}

int jv_list_new(struct jinja_rt *rt, size_t cap, struct jv *out)
{
    struct jlist *l = jinja_alloc(rt, sizeof *l);
    struct jv *v = cap ? jinja_alloc(rt, cap * sizeof *v) : NULL;
    if (!l || (cap && !v))
        return jinja_oom(rt);
    *l = (struct jlist){0, cap, v};
    *out = (struct jv){.type = JV_LIST, .u.l = l};
    return 0;
}

int jv_list_push(struct jinja_rt *rt, struct jlist *l, struct jv v)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 8;
        struct jv *nv = arena_realloc(rt->arena, l->v, l->cap * sizeof *nv, c * sizeof *nv);
        if (!nv)
            return jinja_oom(rt);
        l->v = nv;
        l->cap = c;
    }
    l->v[l->n++] = v;
    return 0;
}

int jv_dict_new(struct jinja_rt *rt, size_t cap, struct jv *out)
{
    struct jdict *d = jinja_alloc(rt, sizeof *d);
    struct jv *k = cap ? jinja_alloc(rt, cap * sizeof *k) : NULL;
    struct jv *v = cap ? jinja_alloc(rt, cap * sizeof *v) : NULL;
    if (!d || (cap && (!k || !v)))
        return jinja_oom(rt);
    *d = (struct jdict){0, cap, k, v};
    *out = (struct jv){.type = JV_DICT, .u.d = d};
    return 0;
}

int jv_dict_append(struct jinja_rt *rt, struct jdict *d, struct jv key, struct jv val)
{
    if (d->n == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 8;
        struct jv *nk = arena_realloc(rt->arena, d->k, d->cap * sizeof *nk, c * sizeof *nk);
        struct jv *nv =
            nk ? arena_realloc(rt->arena, d->v, d->cap * sizeof *nv, c * sizeof *nv) : NULL;
        if (!nk || !nv)
            return jinja_oom(rt);
        d->k = nk;
        d->v = nv;
        d->cap = c;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
    return 0;
}

const struct jv *jv_dict_get(const struct jdict *d, struct jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(&d->k[i], &key))
            return &d->v[i];
    return NULL;
}

const struct jv *jv_dict_get_str(const struct jdict *d, const char *s, size_t n)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct jv *k = &d->k[i];
        if (k->type == JV_STR && k->u.s.n == n && memcmp(k->u.s.p, s, n) == 0)
            return &d->v[i];
    }
    return NULL;
}

int jv_dict_set(struct jinja_rt *rt, struct jdict *d, struct jv key, struct jv val)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(&d->k[i], &key)) {
            d->v[i] = val;
            return 0;
        }
    return jv_dict_append(rt, d, key, val);
}

/* ---- Python semantics ---- */

const char *jv_type_name(const struct jv *v)
{
    switch (v->type) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return (v->flags & JV_F_TUPLE) ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_FUNC: return "builtin_function_or_method";
    case JV_LOOP: return "LoopContext";
    case JV_CYCLER: return "Cycler";
    case JV_JOINER: return "Joiner";
    }
    return "object";
}

bool jv_truthy(const struct jv *v)
{
    switch (v->type) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0.0;
    case JV_STR: return v->u.s.n > 0;
    case JV_LIST: return v->u.l->n > 0;
    case JV_DICT: return v->u.d->n > 0;
    default: return true;
    }
}

static bool is_num(const struct jv *v)
{
    return v->type == JV_BOOL || v->type == JV_INT || v->type == JV_FLOAT;
}

static double num_f(const struct jv *v)
{
    return v->type == JV_FLOAT ? v->u.f : v->type == JV_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t num_i(const struct jv *v)
{
    return v->type == JV_INT ? v->u.i : (int64_t)v->u.b;
}

bool jv_eq(const struct jv *a, const struct jv *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT)
            return num_i(a) == num_i(b);
        return num_f(a) == num_f(b);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case JV_LIST:
        if ((a->flags & JV_F_TUPLE) != (b->flags & JV_F_TUPLE) || a->u.l->n != b->u.l->n)
            return false;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!jv_eq(&a->u.l->v[i], &b->u.l->v[i]))
                return false;
        return true;
    case JV_DICT:
        if (a->u.d->n != b->u.d->n)
            return false;
        for (size_t i = 0; i < a->u.d->n; i++) {
            const struct jv *o = jv_dict_get(b->u.d, a->u.d->k[i]);
            if (!o || !jv_eq(&a->u.d->v[i], o))
                return false;
        }
        return true;
    default: return memcmp(&a->u, &b->u, sizeof a->u) == 0; /* identity */
    }
}

int jv_cmp(struct jinja_rt *rt, const struct jv *a, const struct jv *b, const char *op, int *r)
{
    if (is_num(a) && is_num(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT) {
            int64_t x = num_i(a), y = num_i(b);
            *r = x < y ? -1 : x > y;
        } else {
            double x = num_f(a), y = num_f(b);
            *r = x < y ? -1 : x > y ? 1 : 0; /* NaN compares as neither */
            if (isnan(x) || isnan(y))
                *r = 2; /* all of <, <=, >, >= false */
        }
        return 0;
    }
    if (a->type == JV_STR && b->type == JV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int c = memcmp(a->u.s.p, b->u.s.p, n); /* UTF-8 byte order is code point order */
        *r = c ? (c < 0 ? -1 : 1) : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
        return 0;
    }
    if (a->type == JV_LIST && b->type == JV_LIST &&
        (a->flags & JV_F_TUPLE) == (b->flags & JV_F_TUPLE)) {
        size_t n = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_eq(&a->u.l->v[i], &b->u.l->v[i]))
                continue;
            return jv_cmp(rt, &a->u.l->v[i], &b->u.l->v[i], op, r);
        }
        *r = (a->u.l->n > b->u.l->n) - (a->u.l->n < b->u.l->n);
        return 0;
    }
    if (a->type == JV_UNDEF)
        return jv_undef_raise(rt, a);
    if (b->type == JV_UNDEF)
        return jv_undef_raise(rt, b);
    return jinja_fail(rt, "TypeError", "'%s' not supported between instances of '%s' and '%s'", op,
                      jv_type_name(a), jv_type_name(b));
}

int jv_len(struct jinja_rt *rt, const struct jv *v, size_t *n)
{
    switch (v->type) {
    case JV_UNDEF: *n = 0; return 0;
    case JV_STR: *n = utf8_count(v->u.s.p, v->u.s.n); return 0;
    case JV_LIST: *n = v->u.l->n; return 0;
    case JV_DICT: *n = v->u.d->n; return 0;
    case JV_LOOP: *n = jinja_loop_length(v); return 0;
    default:
        return jinja_fail(rt, "TypeError", "object of type '%s' has no len()", jv_type_name(v));
    }
}

/* ---- printing ---- */

/* append_int: a decimal integer, without printf. */
static int append_int(struct buf *out, int64_t v)
{
    char tmp[24];
    int k = 24;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        tmp[--k] = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        tmp[--k] = '-';
    return buf_append(out, tmp + k, (size_t)(24 - k));
}

int jv_float_repr(double f, struct buf *out)
{
    if (isnan(f))
        return buf_append_str(out, "nan");
    if (isinf(f))
        return buf_append_str(out, f < 0 ? "-inf" : "inf");
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) { /* the shortest decimal that reads back as f */
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp is [-]d[.ddd]e[+-]xx: split digits and exponent */
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int decpt = exp10 + 1; /* f = 0.digits * 10^decpt */
    char res[64];
    size_t r = 0;
    if (neg)
        res[r++] = '-';
    if (decpt <= -4 || decpt > 16) { /* Python's repr switches to exponent notation here */
        res[r++] = digits[0];
        if (nd > 1) {
            res[r++] = '.';
            for (size_t i = 1; i < nd; i++)
                res[r++] = digits[i];
        }
        r += (size_t)snprintf(res + r, sizeof res - r, "e%c%02d", exp10 < 0 ? '-' : '+',
                              exp10 < 0 ? -exp10 : exp10);
    } else if (decpt <= 0) {
        res[r++] = '0';
        res[r++] = '.';
        for (int i = 0; i < -decpt; i++)
            res[r++] = '0';
        for (size_t i = 0; i < nd; i++)
            res[r++] = digits[i];
    } else {
        for (int i = 0; i < decpt || (size_t)i < nd; i++) {
            if (i == decpt)
                res[r++] = '.';
            res[r++] = (size_t)i < nd ? digits[i] : '0';
        }
        if ((size_t)decpt >= nd) {
            res[r++] = '.';
            res[r++] = '0';
        }
    }
    return buf_append(out, res, r);
}

static bool py_printable(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 0x20 && cp < 0x7F;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return !(c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
             c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_ZL ||
             c == UTF8PROC_CATEGORY_ZP || c == UTF8PROC_CATEGORY_ZS);
}

/* str_repr: Python's repr of a str. */
static int str_repr(const char *s, size_t n, struct buf *out)
{
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    int rc = buf_append_byte(out, q);
    uint32_t cp;
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l) { /* cannot happen for strings from JSON or templates; keep the byte */
            rc = buf_printf(out, "\\x%02x", (unsigned char)s[i++]);
            continue;
        }
        if (cp == (uint32_t)q || cp == '\\') {
            char esc[2] = {'\\', (char)cp};
            rc = buf_append(out, esc, 2);
        } else if (cp == '\n')
            rc = buf_append_str(out, "\\n");
        else if (cp == '\r')
            rc = buf_append_str(out, "\\r");
        else if (cp == '\t')
            rc = buf_append_str(out, "\\t");
        else if (py_printable(cp))
            rc = buf_append(out, s + i, l);
        else if (cp < 0x100)
            rc = buf_printf(out, "\\x%02x", cp);
        else if (cp < 0x10000)
            rc = buf_printf(out, "\\u%04x", cp);
        else
            rc = buf_printf(out, "\\U%08x", cp);
        i += l;
    }
    return rc ? rc : buf_append_byte(out, q);
}

static int print_value(struct jinja_rt *rt, const struct jv *v, struct buf *out, bool repr);

static int print_seq(struct jinja_rt *rt, const struct jv *v, struct buf *out)
{
    bool tuple = v->flags & JV_F_TUPLE, items = v->flags & JV_F_ITEMS;
    int rc = buf_append_str(out, items ? "dict_items([" : tuple ? "(" : "[");
    for (size_t i = 0; rc == 0 && i < v->u.l->n; i++) {
        if (i)
            rc = buf_append_str(out, ", ");
        if (rc == 0)
            rc = print_value(rt, &v->u.l->v[i], out, true);
    }
    if (rc == 0 && tuple && v->u.l->n == 1)
        rc = buf_append_byte(out, ',');
    return rc ? rc : buf_append_str(out, items ? "])" : tuple ? ")" : "]");
}

static int print_dict(struct jinja_rt *rt, const struct jdict *d, struct buf *out)
{
    int rc = buf_append_byte(out, '{');
    for (size_t i = 0; rc == 0 && i < d->n; i++) {
        if (i)
            rc = buf_append_str(out, ", ");
        if (rc == 0)
            rc = print_value(rt, &d->k[i], out, true);
        if (rc == 0)
            rc = buf_append_str(out, ": ");
        if (rc == 0)
            rc = print_value(rt, &d->v[i], out, true);
    }
    return rc ? rc : buf_append_byte(out, '}');
}

static int print_value(struct jinja_rt *rt, const struct jv *v, struct buf *out, bool repr)
{
    if (++rt->depth > rt->max_depth) {
        rt->depth--;
        return jinja_fail(rt, "RecursionError", "maximum recursion depth exceeded");
    }
    int rc = 0;
    switch (v->type) {
    case JV_UNDEF: rc = repr ? buf_append_str(out, "Undefined") : 0; break;
    case JV_NONE: rc = buf_append_str(out, "None"); break;
    case JV_BOOL: rc = buf_append_str(out, v->u.b ? "True" : "False"); break;
    case JV_INT: rc = append_int(out, v->u.i); break;
    case JV_FLOAT: rc = jv_float_repr(v->u.f, out); break;
    case JV_STR:
        rc = repr ? str_repr(v->u.s.p, v->u.s.n, out) : buf_append(out, v->u.s.p, v->u.s.n);
        break;
    case JV_LIST: rc = print_seq(rt, v, out); break;
    case JV_DICT: rc = print_dict(rt, v->u.d, out); break;
    case JV_NS:
        rc = buf_append_str(out, "<Namespace ");
        if (rc == 0)
            rc = print_dict(rt, &v->u.ns->attrs, out);
        if (rc == 0)
            rc = buf_append_byte(out, '>');
        break;
    default: rc = jinja_print_object(rt, v, out); break;
    }
    rt->depth--;
    if (rc == ERR_LIMIT)
        return jinja_oom(rt);
    return rc;
}

int jv_to_str(struct jinja_rt *rt, const struct jv *v, struct buf *out)
{
    return print_value(rt, v, out, false);
}

int jv_repr(struct jinja_rt *rt, const struct jv *v, struct buf *out)
{
    return print_value(rt, v, out, true);
}

int jv_as_str(struct jinja_rt *rt, const struct jv *v, struct jv *out)
{
    if (v->type == JV_STR) {
        *out = *v;
        return 0;
    }
    struct buf b;
    buf_init(&b, rt->max_out);
    int rc = jv_to_str(rt, v, &b);
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

int jv_iter_list(struct jinja_rt *rt, const struct jv *v, struct jv *out)
{
    switch (v->type) {
    case JV_LIST: *out = *v; return 0;
    case JV_UNDEF: return jv_list_new(rt, 0, out);
    case JV_DICT: {
        int rc = jv_list_new(rt, v->u.d->n, out);
        for (size_t i = 0; rc == 0 && i < v->u.d->n; i++)
            rc = jv_list_push(rt, out->u.l, v->u.d->k[i]);
        return rc;
    }
    case JV_STR: {
        int rc = jv_list_new(rt, v->u.s.n, out);
        uint32_t cp;
        for (size_t i = 0; rc == 0 && i < v->u.s.n;) {
            size_t l = utf8_decode(v->u.s.p + i, v->u.s.n - i, &cp);
            l = l ? l : 1;
            rc = jv_list_push(rt, out->u.l, jv_str(v->u.s.p + i, l));
            i += l;
        }
        return rc;
    }
    case JV_LOOP: return jinja_loop_items(rt, v, out);
    default: return jinja_fail(rt, "TypeError", "'%s' object is not iterable", jv_type_name(v));
    }
}

/* ---- JSON ---- */

/* JSON_ESC[c]: the escape json.dumps writes for byte c ("" when c stands for itself). */
static const char *const JSON_ESC[32] = {
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
};

/* JSON_SPECIAL[c]: 1 for a byte json.dumps escapes (controls, '"', '\\'); 2 for the bytes
 * that only ensure_ascii escapes (non-ASCII). */
static const uint8_t JSON_SPECIAL[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* json_escape: writes the escape of the special byte (or, under ensure_ascii, the non-ASCII
 * character) at s[*i], advances *i past it and returns the new end of output. */
static __attribute__((noinline)) char *json_escape(const unsigned char *s, size_t n, size_t *i,
                                                   char *o)
{
    unsigned char c = s[*i];
    if (c < 0x20) {
        size_t l = strlen(JSON_ESC[c]);
        memcpy(o, JSON_ESC[c], l);
        *i += 1;
        return o + l;
    }
    if (c == '"' || c == '\\') {
        *o++ = '\\';
        *o++ = (char)c;
        *i += 1;
        return o;
    }
    uint32_t cp; /* ensure_ascii: \uXXXX, with a surrogate pair above U+FFFF */
    size_t l = utf8_decode((const char *)s + *i, n - *i, &cp);
    if (!l)
        cp = 0xFFFD, l = 1;
    *i += l;
    if (cp >= 0x10000)
        return o + sprintf(o, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                           0xDC00 + ((cp - 0x10000) & 0x3FF));
    return o + sprintf(o, "\\u%04x", cp);
}

static int json_str(const char *s, size_t n, bool ascii, struct buf *out)
{
    if (n > (SIZE_MAX - 2) / 12)
        return ERR_LIMIT;
    int rc = buf_reserve(out, 2 + 12 * n); /* the worst case: \uXXXX\uXXXX for 4 bytes */
    if (rc)
        return rc;
    char *o = out->p + out->n;
    const unsigned char *u = (const unsigned char *)s;
    uint8_t stop = ascii ? 3 : 1;
    *o++ = '"';
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    /* eight plain bytes at a time: no byte below 0x20, no '"', no '\\', and (ensure_ascii) no
     * byte above 0x7F; the word tests are exact for "is there such a byte" */
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, u + i, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t bad = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b);
        if ((bad | (ascii ? w : 0)) & highs) { /* byte by byte through this word */
            for (size_t end = i + 8; i < end;)
                if (!(JSON_SPECIAL[u[i]] & stop))
                    *o++ = (char)u[i++];
                else
                    o = json_escape(u, n, &i, o);
            continue;
        }
        memcpy(o, &w, 8);
        o += 8;
        i += 8;
    }
    while (i < n)
        if (!(JSON_SPECIAL[u[i]] & stop))
            *o++ = (char)u[i++];
        else
            o = json_escape(u, n, &i, o);
    *o++ = '"';
    out->n = (size_t)(o - out->p);
    out->p[out->n] = '\0';
    return 0;
}

/* A json.dumps writer: the options, and the separators prepared for word-sized stores. */
struct json_writer {
    struct jinja_rt *rt;
    const struct jv_json_opts *o;
    struct buf *out;
    const char *isep, *ksep; /* item and key separators */
    size_t isep_n, ksep_n;
    char isep_w[8], ksep_w[8]; /* the separators NUL-padded to 8 bytes, when they fit */
    bool fast;                 /* separators fit in 8 bytes; indentation (if any) is spaces */
};

/* json_newline: a newline and the indentation of `level` (any indent string). */
static int json_newline(const struct jv_json_opts *o, int level, struct buf *out)
{
    size_t need = 1 + o->indent_n * (size_t)level;
    int rc = buf_reserve(out, need);
    if (rc)
        return rc;
    char *p = out->p + out->n;
    *p = '\n';
    for (size_t i = 1; i < need; i += o->indent_n)
        memcpy(p + i, o->indent, o->indent_n);
    out->n += need;
    out->p[out->n] = '\0';
    return 0;
}

/* json_item_prefix: what goes before a container's item: the item separator (not before the
 * first item) and, with indentation, a newline and the item's indentation. */
static inline __attribute__((always_inline)) int json_item_prefix(const struct json_writer *w,
                                                                  bool first, int level)
{
    const struct jv_json_opts *o = w->o;
    struct buf *out = w->out;
    if (!w->fast) {
        int rc = first ? 0 : buf_append(out, w->isep, w->isep_n);
        return rc || !o->indent ? rc : json_newline(o, level, out);
    }
    size_t ind = o->indent ? o->indent_n * (size_t)level : 0;
    int rc = buf_reserve(out, 8 + 1 + ind + 8); /* + 8: stores are whole words */
    if (rc)
        return rc;
    char *p = out->p + out->n;
    if (!first) {
        memcpy(p, w->isep_w, 8);
        p += w->isep_n;
    }
    if (o->indent) {
        *p++ = '\n';
        for (size_t i = 0; i < ind; i += 8)
            memcpy(p + i, "        ", 8);
        p += ind;
    }
    out->n = (size_t)(p - out->p);
    out->p[out->n] = '\0';
    return 0;
}

static int json_value(const struct json_writer *w, const struct jv *v, int level);

static int json_key(const struct json_writer *w, const struct jv *k)
{
    struct buf *out = w->out;
    switch (k->type) {
    case JV_STR: return json_str(k->u.s.p, k->u.s.n, w->o->ensure_ascii, out);
    case JV_NONE: return buf_append_str(out, "\"null\"");
    case JV_BOOL: return buf_append_str(out, k->u.b ? "\"true\"" : "\"false\"");
    case JV_INT: return buf_printf(out, "\"%lld\"", (long long)k->u.i);
    case JV_FLOAT: {
        int rc = buf_append_byte(out, '"');
        if (rc == 0)
            rc = json_value(w, k, 0);
        return rc ? rc : buf_append_byte(out, '"');
    }
    default:
        return jinja_fail(w->rt, "TypeError", "keys must be str, int, float, bool or None, not %s",
                          jv_type_name(k));
    }
}

/* json_key_sep: the key separator, after a key. */
static inline int json_key_sep(const struct json_writer *w)
{
    struct buf *out = w->out;
    if (!w->fast)
        return buf_append(out, w->ksep, w->ksep_n);
    int rc = buf_reserve(out, 8);
    if (rc)
        return rc;
    memcpy(out->p + out->n, w->ksep_w, 8);
    out->n += w->ksep_n;
    out->p[out->n] = '\0';
    return 0;
}

/* key_order: the order to write a dict's keys in (sort_keys sorts them). */
static int key_order(struct jinja_rt *rt, const struct jdict *d, bool sort, size_t **order)
{
    *order = jinja_alloc(rt, (d->n + 1) * sizeof **order);
    if (!*order)
        return jinja_oom(rt);
    for (size_t i = 0; i < d->n; i++)
        (*order)[i] = i;
    for (size_t i = 1; sort && i < d->n; i++) { /* insertion sort: stable, errors propagate */
        size_t x = (*order)[i], j = i;
        while (j > 0) {
            int r;
            int rc = jv_cmp(rt, &d->k[x], &d->k[(*order)[j - 1]], "<", &r);
            if (rc)
                return rc;
            if (r >= 0)
                break;
            (*order)[j] = (*order)[j - 1];
            j--;
        }
        (*order)[j] = x;
    }
    return 0;
}

static int json_container(const struct json_writer *w, const struct jv *v, int level)
{
    bool dict = v->type == JV_DICT;
    size_t n = dict ? v->u.d->n : v->u.l->n, *order = NULL;
    int rc = dict && w->o->sort_keys ? key_order(w->rt, v->u.d, true, &order) : 0;
    if (rc == 0)
        rc = buf_append_byte(w->out, dict ? '{' : '[');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t k = order ? order[i] : i;
        rc = json_item_prefix(w, i == 0, level + 1);
        if (rc == 0 && dict && (rc = json_key(w, &v->u.d->k[k])) == 0)
            rc = json_key_sep(w);
        const struct jv *item = dict ? &v->u.d->v[k] : &v->u.l->v[k];
        if (rc == 0 && item->type == JV_STR) /* the common leaf, without the call */
            rc = json_str(item->u.s.p, item->u.s.n, w->o->ensure_ascii, w->out);
        else if (rc == 0)
            rc = json_value(w, item, level + 1);
    }
    if (rc == 0 && n && w->o->indent)
        rc = json_item_prefix(w, true, level);
    return rc ? rc : buf_append_byte(w->out, dict ? '}' : ']');
}

static int json_value(const struct json_writer *w, const struct jv *v, int level)
{
    struct buf *out = w->out;
    if (level > w->rt->max_depth)
        return jinja_fail(w->rt, "RecursionError", "maximum recursion depth exceeded");
    switch (v->type) {
    case JV_NONE: return buf_append_str(out, "null");
    case JV_BOOL: return buf_append_str(out, v->u.b ? "true" : "false");
    case JV_INT: return append_int(out, v->u.i);
    case JV_FLOAT:
        if (isnan(v->u.f))
            return buf_append_str(out, "NaN");
        if (isinf(v->u.f))
            return buf_append_str(out, v->u.f < 0 ? "-Infinity" : "Infinity");
        return jv_float_repr(v->u.f, out);
    case JV_STR: return json_str(v->u.s.p, v->u.s.n, w->o->ensure_ascii, out);
    case JV_LIST:
    case JV_DICT: return json_container(w, v, level);
    default:
        return jinja_fail(w->rt, "TypeError", "Object of type %s is not JSON serializable",
                          jv_type_name(v));
    }
}

int jv_tojson(struct jinja_rt *rt, const struct jv *v, const struct jv_json_opts *opts,
              struct buf *out)
{
    static const struct jv_json_opts none = {0};
    const struct jv_json_opts *o = opts ? opts : &none;
    struct json_writer w = {.rt = rt, .o = o, .out = out};
    w.isep = o->item_sep ? o->item_sep : o->indent ? "," : ", ";
    w.ksep = o->key_sep ? o->key_sep : ": ";
    w.isep_n = strlen(w.isep);
    w.ksep_n = strlen(w.ksep);
    w.fast = w.isep_n <= 8 && w.ksep_n <= 8 && (!o->indent || o->indent_spaces);
    if (w.fast) {
        memcpy(w.isep_w, w.isep, w.isep_n);
        memcpy(w.ksep_w, w.ksep, w.ksep_n);
    }
    int rc = json_value(&w, v, 0);
    if (rc == ERR_LIMIT)
        return jinja_oom(rt);
    return rc;
}

int jv_from_json(struct jinja_rt *rt, const json_t *j, struct jv *out)
{
    switch (json_typeof(j)) {
    case JSON_NULL: *out = jv_none(); return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_INTEGER: *out = jv_int(json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_STRING: *out = jv_str(json_string_value(j), json_string_length(j)); return 0;
    case JSON_ARRAY: { /* one allocation: the list and its items */
        size_t n = json_array_size(j);
        struct jlist *l = jinja_alloc(rt, sizeof *l + n * sizeof(struct jv));
        if (!l)
            return jinja_oom(rt);
        *l = (struct jlist){0, n, (struct jv *)(l + 1)};
        *out = (struct jv){.type = JV_LIST, .u.l = l};
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = jv_from_json(rt, json_array_get(j, i), &l->v[l->n++]);
        return rc;
    }
    case JSON_OBJECT: { /* one allocation: the dict, its keys and its values */
        size_t n = json_object_size(j);
        struct jdict *d = jinja_alloc(rt, sizeof *d + 2 * n * sizeof(struct jv));
        if (!d)
            return jinja_oom(rt);
        *d = (struct jdict){0, n, (struct jv *)(d + 1), (struct jv *)(d + 1) + n};
        *out = (struct jv){.type = JV_DICT, .u.d = d};
        int rc = 0;
        for (void *it = json_object_iter((json_t *)j); rc == 0 && it && d->n < n;
             it = json_object_iter_next((json_t *)j, it)) {
            d->k[d->n] = jv_str(json_object_iter_key(it), json_object_iter_key_len(it));
            rc = jv_from_json(rt, json_object_iter_value(it), &d->v[d->n++]);
        }
        return rc;
    }
    }
    return ERR_INVAL;
}

/* object_type_repr: jinja2's description of an object in undefined messages. */
static void object_type_repr(const struct jv *u, char *out, size_t n)
{
    struct jv probe = {.type = u->flags, .flags = u->pad ? JV_F_TUPLE : 0};
    if (u->flags == JV_NONE)
        snprintf(out, n, "None");
    else
        snprintf(out, n, "%s object", jv_type_name(&probe));
}

int jv_undef_raise(struct jinja_rt *rt, const struct jv *v)
{
    char obj[48];
    object_type_repr(v, obj, sizeof obj);
    switch (v->kind) {
    case JV_UNDEF_NAME:
        return jinja_fail(rt, "UndefinedError", "'%.*s' is undefined", (int)v->u.s.n, v->u.s.p);
    case JV_UNDEF_ATTR:
        return jinja_fail(rt, "UndefinedError", "'%s' has no attribute '%.*s'", obj, (int)v->u.s.n,
                          v->u.s.p);
    case JV_UNDEF_ELEM:
        return jinja_fail(rt, "UndefinedError", "%s has no element %lld", obj, (long long)v->u.i);
    case JV_UNDEF_UNSAFE: {
        struct jv probe = {.type = v->flags, .flags = v->pad ? JV_F_TUPLE : 0};
        return jinja_fail(rt, "SecurityError",
                          "access to attribute '%.*s' of '%s' object is unsafe.", (int)v->u.s.n,
                          v->u.s.p, jv_type_name(&probe));
    }
    default: return jinja_fail(rt, "UndefinedError", "None is undefined");
    }
}
