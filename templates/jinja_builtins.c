/*
 * jinja_builtins: jinja2's global functions, filters and tests, and the Python methods of
 * str, dict and list that templates call, with the immutable sandbox's refusals (methods
 * that would modify a list or dict are unsafe). Each table maps a name to a function; the
 * parser resolves names to table indexes once, at compile time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"
#include "jinja_internal.h"
#include "jinja_pystr.h"

#define MAX_RANGE 100000 /* jinja2's sandbox refuses longer ranges */

/* ---- arguments ---- */

/* arg: positional argument i, or the keyword argument `name`; NULL when absent. */
static const struct jv *arg(const struct jargs *a, size_t i, const char *name)
{
    if (i < a->npos)
        return &a->pos[i];
    size_t n = name ? strlen(name) : 0;
    for (size_t k = 0; name && k < a->nkw; k++)
        if (a->lens[k] == n && memcmp(a->names[k], name, n) == 0)
            return &a->kw[k];
    return NULL;
}

static bool arg_bool(const struct jargs *a, size_t i, const char *name, bool def)
{
    const struct jv *v = arg(a, i, name);
    return v ? jv_truthy(v) : def;
}

static int arg_int(struct jinja_rt *rt, const struct jargs *a, size_t i, const char *name,
                   int64_t def, int64_t *out)
{
    const struct jv *v = arg(a, i, name);
    *out = def;
    if (!v || v->type == JV_NONE) {
        *out = def;
        return 0;
    }
    if (v->type == JV_INT || v->type == JV_BOOL) {
        *out = v->type == JV_INT ? v->u.i : v->u.b;
        return 0;
    }
    return jinja_fail(rt, "TypeError", "'%s' object cannot be interpreted as an integer",
                      jv_type_name(v));
}

static int arg_str(struct jinja_rt *rt, const struct jargs *a, size_t i, const char *name,
                   const char *def, struct jv *out)
{
    const struct jv *v = arg(a, i, name);
    if (!v) {
        *out = jv_str(def, strlen(def));
        return 0;
    }
    return jv_as_str(rt, v, out);
}

static int need_str(struct jinja_rt *rt, const struct jv *v, const char *what)
{
    if (v->type == JV_STR)
        return 0;
    if (v->type == JV_UNDEF)
        return jv_undef_raise(rt, v);
    return jinja_fail(rt, "TypeError", "%s must be str, not %s", what, jv_type_name(v));
}

/* attr_get: jinja2's make_attrgetter: "a.b.0" looked up item by item. */
static int attr_get(struct jinja_rt *rt, struct jv item, const struct jv *attr, struct jv *out)
{
    *out = item;
    if (!attr || attr->type == JV_NONE)
        return 0;
    if (attr->type == JV_INT)
        return jinja_getitem(rt, item, *attr, out);
    if (attr->type != JV_STR)
        return jinja_fail(rt, "TypeError", "attribute must be a string");
    const char *p = attr->u.s.p, *end = p + attr->u.s.n;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *e = dot ? dot : end;
        char *num_end;
        long long idx = strtoll(p, &num_end, 10);
        struct jv key = (e > p && num_end == e) ? jv_int(idx) : jv_str(p, (size_t)(e - p));
        int rc = jinja_getitem(rt, *out, key, out);
        if (rc)
            return rc;
        if (!dot)
            break;
        p = dot + 1;
    }
    return 0;
}

/* sort_key: the value sort/unique/min/max compare: the attribute, lower-cased when the
 * comparison is case-insensitive. */
static int sort_key(struct jinja_rt *rt, struct jv item, const struct jv *attr, bool case_sens,
                    struct jv *out)
{
    int rc = attr_get(rt, item, attr, out);
    if (rc == 0 && !case_sens && out->type == JV_STR)
        rc = pystr_case(rt, *out, PY_LOWER, out);
    return rc;
}

/* stable_sort: merge sort of idx[0..n) by keys, propagating comparison errors. */
static int stable_sort(struct jinja_rt *rt, size_t *idx, size_t n, const struct jv *keys,
                       bool reverse, size_t *tmp)
{
    if (n < 2)
        return 0;
    size_t h = n / 2;
    int rc = stable_sort(rt, idx, h, keys, reverse, tmp);
    if (rc == 0)
        rc = stable_sort(rt, idx + h, n - h, keys, reverse, tmp);
    size_t i = 0, j = h, o = 0;
    while (rc == 0 && i < h && j < n) {
        int r;
        rc = jv_cmp(rt, &keys[idx[j]], &keys[idx[i]], "<", &r);
        bool take_right = reverse ? (r > 0 && r != 2) : (r < 0);
        tmp[o++] = take_right ? idx[j++] : idx[i++];
    }
    while (i < h)
        tmp[o++] = idx[i++];
    while (j < n)
        tmp[o++] = idx[j++];
    if (rc == 0)
        memcpy(idx, tmp, n * sizeof *idx);
    return rc;
}

/* sorted_list: the items of `in` sorted by sort_key (for sort and dictsort). */
static int sorted_list(struct jinja_rt *rt, struct jv items, const struct jv *attr, bool case_sens,
                       bool reverse, struct jv *out)
{
    size_t n = items.u.l->n;
    struct jv *keys = jinja_alloc(rt, (n + 1) * sizeof *keys);
    size_t *idx = jinja_alloc(rt, (n + 1) * sizeof *idx),
           *tmp = jinja_alloc(rt, (n + 1) * sizeof *tmp);
    if (!keys || !idx || !tmp)
        return jinja_oom(rt);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        idx[i] = i;
        rc = sort_key(rt, items.u.l->v[i], attr, case_sens, &keys[i]);
    }
    if (rc == 0)
        rc = stable_sort(rt, idx, n, keys, reverse, tmp);
    if (rc == 0)
        rc = jv_list_new(rt, n, out);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = jv_list_push(rt, out->u.l, items.u.l->v[idx[i]]);
    return rc;
}

/* ---- filters ---- */

typedef int (*filter_fn)(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out);

static int f_default(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)rt;
    const struct jv *d = arg(a, 0, "default_value");
    bool boolean = arg_bool(a, 1, "boolean", false);
    if (in.type == JV_UNDEF || (boolean && !jv_truthy(&in)))
        *out = d ? *d : jv_str("", 0);
    else
        *out = in;
    return 0;
}

static int f_string(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    return jv_as_str(rt, &in, out);
}

static int f_length(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    size_t n;
    int rc = jv_len(rt, &in, &n);
    *out = jv_int((int64_t)n);
    return rc;
}

static int f_trim(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv s, chars;
    const struct jv *c = arg(a, 0, "chars");
    int rc = jv_as_str(rt, &in, &s);
    if (rc == 0 && c && c->type != JV_NONE)
        rc = jv_as_str(rt, c, &chars);
    if (rc == 0)
        *out = pystr_strip(s, c && c->type != JV_NONE ? &chars : NULL, true, true);
    return rc;
}

static int case_filter(struct jinja_rt *rt, struct jv in, enum pystr_case how, struct jv *out)
{
    struct jv s;
    int rc = jv_as_str(rt, &in, &s);
    return rc ? rc : pystr_case(rt, s, how, out);
}

static int f_upper(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    return case_filter(rt, in, PY_UPPER, out);
}

static int f_lower(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    return case_filter(rt, in, PY_LOWER, out);
}

static int f_capitalize(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    return case_filter(rt, in, PY_CAPITALIZE, out);
}

/* f_title: jinja2's title: words split by runs of - whitespace ( { [ < get their first
 * character upper-cased and the rest lower-cased. */
static int f_title(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    struct jv s;
    int rc = jv_as_str(rt, &in, &s);
    struct buf b;
    buf_init(&b, rt->max_out);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    while (rc == 0 && i < n) {
        size_t start = i;
        bool sep = false;
        uint32_t cp;
        while (i < n) { /* one item: a run of separators, or a run of other characters */
            size_t l = utf8_decode(p + i, n - i, &cp);
            l = l ? l : 1;
            bool is_sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' ||
                          jinja_py_isspace(cp);
            if (i == start)
                sep = is_sep;
            else if (is_sep != sep)
                break;
            i += l;
        }
        if (sep) {
            rc = buf_append(&b, p + start, i - start);
            continue;
        }
        size_t l = utf8_decode(p + start, n - start, &cp);
        l = l ? l : 1;
        struct jv first, rest;
        rc = pystr_case(rt, jv_str(p + start, l), PY_UPPER, &first);
        if (rc == 0)
            rc = pystr_case(rt, jv_str(p + start + l, i - start - l), PY_LOWER, &rest);
        if (rc == 0)
            rc = buf_append(&b, first.u.s.p, first.u.s.n);
        if (rc == 0)
            rc = buf_append(&b, rest.u.s.p, rest.u.s.n);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

static int f_tojson(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv_json_opts o = {.ensure_ascii = arg_bool(a, 1, "ensure_ascii", false),
                             .sort_keys = arg_bool(a, 4, "sort_keys", false)};
    const struct jv *ind = arg(a, 0, "indent"), *seps = arg(a, 3, "separators");
    char spaces[64];
    if (ind && (ind->type == JV_INT || ind->type == JV_BOOL)) {
        int64_t k = ind->type == JV_INT ? ind->u.i : ind->u.b;
        k = k < 0 ? 0 : k > 63 ? 63 : k;
        memset(spaces, ' ', (size_t)k);
        o.indent = spaces;
        o.indent_n = (size_t)k;
        o.indent_spaces = true;
    } else if (ind && ind->type == JV_STR) {
        o.indent = ind->u.s.p;
        o.indent_n = ind->u.s.n;
        o.indent_spaces = true;
        for (size_t i = 0; i < o.indent_n; i++)
            o.indent_spaces = o.indent_spaces && o.indent[i] == ' ';
    }
    char isep[32] = "", ksep[32] = "";
    if (seps && seps->type == JV_LIST && seps->u.l->n == 2 && seps->u.l->v[0].type == JV_STR &&
        seps->u.l->v[1].type == JV_STR && seps->u.l->v[0].u.s.n < 32 &&
        seps->u.l->v[1].u.s.n < 32) {
        memcpy(isep, seps->u.l->v[0].u.s.p, seps->u.l->v[0].u.s.n);
        memcpy(ksep, seps->u.l->v[1].u.s.p, seps->u.l->v[1].u.s.n);
        o.item_sep = isep;
        o.key_sep = ksep;
    }
    struct buf *b = rt->scratch;
    buf_reset(b);
    int rc = jv_tojson(rt, &in, &o, b);
    if (rc == 0)
        rc = jv_str_copy(rt, b->p, b->n, out);
    return rc;
}

static int f_list(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    struct jv l;
    int rc = jv_iter_list(rt, &in, &l);
    if (rc)
        return rc;
    rc = jv_list_new(rt, l.u.l->n, out); /* a new list (never a tuple) */
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i++)
        rc = jv_list_push(rt, out->u.l, l.u.l->v[i]);
    return rc;
}

static int items_list(struct jinja_rt *rt, const struct jdict *d, struct jv *out)
{
    int rc = jv_list_new(rt, d->n, out);
    for (size_t i = 0; rc == 0 && i < d->n; i++) {
        struct jv t;
        rc = jv_list_new(rt, 2, &t);
        if (rc == 0) {
            t.flags = JV_F_TUPLE;
            jv_list_push(rt, t.u.l, d->k[i]);
            jv_list_push(rt, t.u.l, d->v[i]);
            rc = jv_list_push(rt, out->u.l, t);
        }
    }
    return rc;
}

static int f_items(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    if (in.type == JV_UNDEF)
        return jv_list_new(rt, 0, out);
    if (in.type != JV_DICT)
        return jinja_fail(rt, "TypeError", "Can only get item pairs from a mapping.");
    return items_list(rt, in.u.d, out);
}

static int f_join(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv sep, l;
    const struct jv *attr = arg(a, 1, "attribute");
    int rc = arg_str(rt, a, 0, "d", "", &sep);
    if (rc == 0)
        rc = jv_iter_list(rt, &in, &l);
    struct buf b;
    buf_init(&b, rt->max_out);
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i++) {
        struct jv it;
        if (i)
            rc = buf_append(&b, sep.u.s.p, sep.u.s.n);
        if (rc == 0)
            rc = attr_get(rt, l.u.l->v[i], attr, &it);
        if (rc == 0)
            rc = jv_to_str(rt, &it, &b);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    if (rc == ERR_LIMIT)
        rc = jinja_oom(rt);
    buf_deinit(&b);
    return rc;
}

static int f_first_last(struct jinja_rt *rt, struct jv in, bool last, struct jv *out)
{
    struct jv l;
    int rc = jv_iter_list(rt, &in, &l);
    if (rc)
        return rc;
    if (l.u.l->n == 0)
        *out = jv_undef_named(JV_UNDEF_PLAIN, NULL, "", 0);
    else
        *out = l.u.l->v[last ? l.u.l->n - 1 : 0];
    return 0;
}

static int f_first(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    return f_first_last(rt, in, false, out);
}

static int f_last(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    return f_first_last(rt, in, true, out);
}

static int f_reverse(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    struct jv l;
    int rc = jv_iter_list(rt, &in, &l);
    if (rc == 0)
        rc = jv_list_new(rt, l.u.l->n, out);
    for (size_t i = l.u.l->n; rc == 0 && i-- > 0;)
        rc = jv_list_push(rt, out->u.l, l.u.l->v[i]);
    if (rc || in.type != JV_STR)
        return rc;
    struct jv sep = jv_str("", 0);
    return pystr_join(rt, sep, *out, out);
}

static int f_int(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    int64_t def, base;
    int rc = arg_int(rt, a, 0, "default", 0, &def);
    if (rc == 0)
        rc = arg_int(rt, a, 1, "base", 10, &base);
    if (rc)
        return rc;
    switch (in.type) {
    case JV_INT: *out = in; return 0;
    case JV_BOOL: *out = jv_int(in.u.b); return 0;
    case JV_FLOAT: *out = isfinite(in.u.f) ? jv_int((int64_t)in.u.f) : jv_int(def); return 0;
    case JV_STR: {
        char tmp[128];
        struct jv t = pystr_strip(in, NULL, true, true);
        size_t n = t.u.s.n < sizeof tmp - 1 ? t.u.s.n : sizeof tmp - 1;
        memcpy(tmp, t.u.s.p, n);
        tmp[n] = 0;
        char *end;
        long long v = n ? strtoll(tmp, &end, (int)base) : 0;
        if (n && *end == 0) {
            *out = jv_int(v);
            return 0;
        }
        double f = n ? strtod(tmp, &end) : 0;
        *out = n && *end == 0 && isfinite(f) ? jv_int((int64_t)f) : jv_int(def);
        return 0;
    }
    default: *out = jv_int(def); return 0;
    }
}

static int f_float(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)rt;
    const struct jv *d = arg(a, 0, "default");
    struct jv def = d ? *d : jv_float(0.0);
    if (in.type == JV_FLOAT || in.type == JV_INT || in.type == JV_BOOL) {
        *out = jv_float(in.type == JV_FLOAT ? in.u.f : in.type == JV_INT ? (double)in.u.i : in.u.b);
        return 0;
    }
    if (in.type == JV_STR) {
        char tmp[128], *end;
        struct jv t = pystr_strip(in, NULL, true, true);
        size_t n = t.u.s.n < sizeof tmp - 1 ? t.u.s.n : sizeof tmp - 1;
        memcpy(tmp, t.u.s.p, n);
        tmp[n] = 0;
        double f = strtod(tmp, &end);
        *out = n && *end == 0 ? jv_float(f) : def;
        return 0;
    }
    *out = def;
    return 0;
}

static int f_abs(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    if (in.type == JV_INT || in.type == JV_BOOL)
        *out = jv_int(llabs(in.type == JV_INT ? in.u.i : in.u.b));
    else if (in.type == JV_FLOAT)
        *out = jv_float(fabs(in.u.f));
    else
        return jinja_fail(rt, "TypeError", "bad operand type for abs(): '%s'", jv_type_name(&in));
    return 0;
}

static int f_round(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    int64_t prec;
    struct jv method;
    int rc = arg_int(rt, a, 0, "precision", 0, &prec);
    if (rc == 0)
        rc = arg_str(rt, a, 1, "method", "common", &method);
    if (rc)
        return rc;
    if (in.type != JV_FLOAT && in.type != JV_INT && in.type != JV_BOOL)
        return jinja_fail(rt, "TypeError", "type %s doesn't define __round__ method",
                          jv_type_name(&in));
    double x = in.type == JV_FLOAT ? in.u.f : in.type == JV_INT ? (double)in.u.i : in.u.b;
    double m = pow(10.0, (double)prec);
    if (method.u.s.n == 4 && memcmp(method.u.s.p, "ceil", 4) == 0) {
        *out = jv_float(ceil(x * m) / m);
    } else if (method.u.s.n == 5 && memcmp(method.u.s.p, "floor", 5) == 0) {
        *out = jv_float(floor(x * m) / m);
    } else if (method.u.s.n == 6 && memcmp(method.u.s.p, "common", 6) == 0) {
        char tmp[512]; /* Python's round: correctly rounded, ties to even */
        snprintf(tmp, sizeof tmp, "%.*f", prec < 0 ? 0 : prec > 300 ? 300 : (int)prec, x);
        *out = jv_float(prec < 0 ? rint(x / pow(10.0, (double)-prec)) * pow(10.0, (double)-prec)
                                 : strtod(tmp, NULL));
    } else {
        return jinja_fail(rt, "FilterArgumentError", "method must be common, ceil or floor");
    }
    return 0;
}

static int f_replace(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv s, old, new_;
    int64_t count;
    int rc = jv_as_str(rt, &in, &s);
    if (rc == 0)
        rc = arg_str(rt, a, 0, "old", "", &old);
    if (rc == 0)
        rc = arg_str(rt, a, 1, "new", "", &new_);
    if (rc == 0)
        rc = arg_int(rt, a, 2, "count", -1, &count);
    return rc ? rc : pystr_replace(rt, s, old, new_, count, out);
}

static int f_indent(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    const struct jv *w = arg(a, 0, "width");
    bool first = arg_bool(a, 1, "first", false), blank = arg_bool(a, 2, "blank", false);
    struct jv s, ind, lines;
    int rc = jv_as_str(rt, &in, &s);
    if (rc == 0 && w && w->type == JV_STR) {
        ind = *w;
    } else if (rc == 0) {
        int64_t k;
        rc = arg_int(rt, a, 0, "width", 4, &k);
        char *sp = rc ? NULL : jinja_alloc(rt, k > 0 ? (size_t)k : 1);
        if (rc == 0 && !sp)
            return jinja_oom(rt);
        if (sp)
            memset(sp, ' ', k > 0 ? (size_t)k : 0);
        ind = jv_str(sp, k > 0 ? (size_t)k : 0);
    }
    struct jv nl = jv_str("\n", 1), with_nl;
    if (rc == 0)
        rc = jinja_binop(rt, OP_ADD, s, nl, &with_nl); /* jinja2 adds a newline first */
    if (rc == 0)
        rc = pystr_splitlines(rt, with_nl, false, &lines);
    struct buf b;
    buf_init(&b, rt->max_out);
    if (rc == 0 && first)
        rc = buf_append(&b, ind.u.s.p, ind.u.s.n);
    for (size_t i = 0; rc == 0 && i < lines.u.l->n; i++) {
        const struct jv *l = &lines.u.l->v[i];
        if (i)
            rc = buf_append_byte(&b, '\n');
        if (rc == 0 && i && (blank || l->u.s.n))
            rc = buf_append(&b, ind.u.s.p, ind.u.s.n);
        if (rc == 0)
            rc = buf_append(&b, l->u.s.p, l->u.s.n);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    if (rc == ERR_LIMIT)
        rc = jinja_oom(rt);
    buf_deinit(&b);
    return rc;
}

static int f_sum(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    const struct jv *attr = arg(a, 0, "attribute"), *start = arg(a, 1, "start");
    struct jv l, acc = start ? *start : jv_int(0);
    int rc = jv_iter_list(rt, &in, &l);
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i++) {
        struct jv it;
        if ((rc = attr_get(rt, l.u.l->v[i], attr, &it)) == 0) {
            if (it.type == JV_STR)
                return jinja_fail(rt, "TypeError",
                                  "unsupported operand type(s) for +: '%s' and 'str'",
                                  jv_type_name(&acc));
            rc = jinja_binop(rt, OP_ADD, acc, it, &acc);
        }
    }
    *out = acc;
    return rc;
}

static int f_minmax(struct jinja_rt *rt, struct jv in, struct jargs *a, bool max, struct jv *out)
{
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const struct jv *attr = arg(a, 1, "attribute");
    struct jv l, best_key;
    int rc = jv_iter_list(rt, &in, &l);
    if (rc)
        return rc;
    if (l.u.l->n == 0) {
        *out = jv_undef_named(JV_UNDEF_PLAIN, NULL, "", 0);
        return 0;
    }
    size_t best = 0;
    rc = sort_key(rt, l.u.l->v[0], attr, cs, &best_key);
    for (size_t i = 1; rc == 0 && i < l.u.l->n; i++) {
        struct jv k;
        int r;
        if ((rc = sort_key(rt, l.u.l->v[i], attr, cs, &k)) == 0 &&
            (rc = jv_cmp(rt, &k, &best_key, max ? ">" : "<", &r)) == 0 && r != 2 &&
            (max ? r > 0 : r < 0)) {
            best = i;
            best_key = k;
        }
    }
    *out = l.u.l->v[best];
    return rc;
}

static int f_min(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    return f_minmax(rt, in, a, false, out);
}

static int f_max(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    return f_minmax(rt, in, a, true, out);
}

static int f_unique(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const struct jv *attr = arg(a, 1, "attribute");
    struct jv l, seen;
    int rc = jv_iter_list(rt, &in, &l);
    if (rc == 0)
        rc = jv_list_new(rt, 0, out);
    if (rc == 0)
        rc = jv_list_new(rt, 0, &seen);
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i++) {
        struct jv k;
        bool dup = false;
        if ((rc = sort_key(rt, l.u.l->v[i], attr, cs, &k)))
            break;
        for (size_t j = 0; j < seen.u.l->n && !dup; j++)
            dup = jv_eq(&seen.u.l->v[j], &k);
        if (!dup && (rc = jv_list_push(rt, seen.u.l, k)) == 0)
            rc = jv_list_push(rt, out->u.l, l.u.l->v[i]);
    }
    return rc;
}

static int f_sort(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    bool rev = arg_bool(a, 0, "reverse", false), cs = arg_bool(a, 1, "case_sensitive", false);
    struct jv l;
    int rc = jv_iter_list(rt, &in, &l);
    return rc ? rc : sorted_list(rt, l, arg(a, 2, "attribute"), cs, rev, out);
}

static int f_dictsort(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    bool cs = arg_bool(a, 0, "case_sensitive", false), rev = arg_bool(a, 2, "reverse", false);
    struct jv by, items;
    int rc = arg_str(rt, a, 1, "by", "key", &by);
    if (rc == 0 && in.type != JV_DICT)
        rc = jinja_fail(rt, "TypeError", "dictsort needs a mapping");
    bool value = rc == 0 && by.u.s.n == 5 && memcmp(by.u.s.p, "value", 5) == 0;
    if (rc == 0 && !value && !(by.u.s.n == 3 && memcmp(by.u.s.p, "key", 3) == 0))
        rc = jinja_fail(rt, "FilterArgumentError",
                        "You can only sort by either \"key\" or \"value\"");
    if (rc == 0)
        rc = items_list(rt, in.u.d, &items);
    struct jv pos = jv_int(value ? 1 : 0);
    return rc ? rc : sorted_list(rt, items, &pos, cs, rev, out);
}

static int f_batch(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    int64_t k;
    const struct jv *fill = arg(a, 1, "fill_with");
    struct jv l, cur;
    int rc = arg_int(rt, a, 0, "linecount", 1, &k);
    if (rc == 0 && k <= 0)
        rc = jinja_fail(rt, "ValueError", "batch size must be positive");
    if (rc == 0)
        rc = jv_iter_list(rt, &in, &l);
    if (rc == 0)
        rc = jv_list_new(rt, 0, out);
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i += (size_t)k) {
        if ((rc = jv_list_new(rt, (size_t)k, &cur)))
            break;
        for (size_t j = i; rc == 0 && j < i + (size_t)k; j++)
            if (j < l.u.l->n)
                rc = jv_list_push(rt, cur.u.l, l.u.l->v[j]);
            else if (fill && fill->type != JV_NONE)
                rc = jv_list_push(rt, cur.u.l, *fill);
        if (rc == 0)
            rc = jv_list_push(rt, out->u.l, cur);
    }
    return rc;
}

/* shift_args: the arguments after the first n positional ones (map/select's own). */
static struct jargs shift_args(const struct jargs *a, size_t n)
{
    struct jargs r = *a;
    r.pos = a->pos + (a->npos < n ? a->npos : n);
    r.npos = a->npos > n ? a->npos - n : 0;
    return r;
}

static int f_map(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv l;
    if (!jv_truthy(&in)) /* jinja2: `if value:` - a falsy input (None too) maps to nothing */
        return jv_list_new(rt, 0, out);
    int rc = jv_iter_list(rt, &in, &l);
    if (rc == 0)
        rc = jv_list_new(rt, l.u.l->n, out);
    if (rc)
        return rc;
    if (a->npos == 0) { /* map(attribute='x', default=...) */
        const struct jv *attr = arg(a, 99, "attribute"), *def = arg(a, 99, "default");
        for (size_t i = 0; rc == 0 && i < l.u.l->n; i++) {
            struct jv v;
            if ((rc = attr_get(rt, l.u.l->v[i], attr, &v)) == 0) {
                if (v.type == JV_UNDEF && def)
                    v = *def;
                rc = jv_list_push(rt, out->u.l, v);
            }
        }
        return rc;
    }
    if (a->pos[0].type != JV_STR)
        return jinja_fail(rt, "TypeError", "map needs a filter name");
    int id = jinja_filter_id(a->pos[0].u.s.p, a->pos[0].u.s.n);
    if (id < 0)
        return jinja_fail(rt, "TemplateRuntimeError", "No filter named '%.*s'",
                          (int)a->pos[0].u.s.n, a->pos[0].u.s.p);
    struct jargs rest = shift_args(a, 1);
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i++) {
        struct jv v;
        if ((rc = jinja_call_filter(rt, id, l.u.l->v[i], &rest, &v)) == 0)
            rc = jv_list_push(rt, out->u.l, v);
    }
    return rc;
}

/* select_common: select / reject / selectattr / rejectattr. */
static int select_common(struct jinja_rt *rt, struct jv in, struct jargs *a, bool want,
                         bool by_attr, struct jv *out)
{
    struct jv l;
    if (!jv_truthy(&in)) /* jinja2: `if value:` - a falsy input (None too) selects nothing */
        return jv_list_new(rt, 0, out);
    int rc = jv_iter_list(rt, &in, &l);
    if (rc == 0)
        rc = jv_list_new(rt, 0, out);
    const struct jv *attr = by_attr ? arg(a, 0, "attribute") : NULL;
    size_t ti = by_attr ? 1 : 0; /* the test name's position */
    int id = -1;
    if (rc == 0 && a->npos > ti) {
        if (a->pos[ti].type != JV_STR)
            return jinja_fail(rt, "TypeError", "the test name must be a string");
        id = jinja_test_id(a->pos[ti].u.s.p, a->pos[ti].u.s.n);
        if (id < 0)
            return jinja_fail(rt, "TemplateRuntimeError", "No test named '%.*s'",
                              (int)a->pos[ti].u.s.n, a->pos[ti].u.s.p);
    }
    struct jargs rest = shift_args(a, ti + 1);
    for (size_t i = 0; rc == 0 && i < l.u.l->n; i++) {
        struct jv v;
        bool ok;
        if ((rc = attr_get(rt, l.u.l->v[i], attr, &v)))
            break;
        if (id >= 0)
            rc = jinja_call_test(rt, id, v, &rest, &ok);
        else
            ok = jv_truthy(&v);
        if (rc == 0 && ok == want)
            rc = jv_list_push(rt, out->u.l, l.u.l->v[i]);
    }
    return rc;
}

static int f_select(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    return select_common(rt, in, a, true, false, out);
}

static int f_reject(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    return select_common(rt, in, a, false, false, out);
}

static int f_selectattr(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    return select_common(rt, in, a, true, true, out);
}

static int f_rejectattr(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    return select_common(rt, in, a, false, true, out);
}

static int f_safe(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    int rc = jv_as_str(rt, &in, out);
    out->flags = JV_F_SAFE;
    return rc;
}

/* escape (e): markupsafe.escape: Markup passes unchanged, anything else is converted to str
 * and escaped. */
static int f_escape(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    if (in.type == JV_STR && (in.flags & JV_F_SAFE)) {
        *out = in;
        return 0;
    }
    struct jv s;
    int rc = jv_as_str(rt, &in, &s);
    if (rc == 0)
        rc = jinja_html_escape(rt, s, out);
    out->flags = JV_F_SAFE;
    return rc;
}

/* forceescape: escapes even Markup. */
static int f_forceescape(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    if (in.type == JV_STR)
        in.flags &= (uint8_t)~JV_F_SAFE;
    return f_escape(rt, in, a, out);
}

static int f_center(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    int64_t w;
    struct jv s;
    int rc = arg_int(rt, a, 0, "width", 80, &w);
    if (rc == 0)
        rc = jv_as_str(rt, &in, &s);
    return rc ? rc : pystr_pad(rt, s, w, 'c', out);
}

static int f_wordcount(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    struct jv s;
    int rc = jv_as_str(rt, &in, &s);
    int64_t words = 0;
    bool inword = false;
    for (size_t i = 0; rc == 0 && i < s.u.s.n;) {
        uint32_t cp;
        size_t l = utf8_decode(s.u.s.p + i, s.u.s.n - i, &cp);
        bool w = l && pystr_python_word(cp);
        words += w && !inword;
        inword = w;
        i += l ? l : 1;
    }
    *out = jv_int(words);
    return rc;
}

static int f_truncate(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    int64_t length, leeway;
    struct jv s, end;
    bool kill = arg_bool(a, 1, "killwords", false);
    int rc = arg_int(rt, a, 0, "length", 255, &length);
    if (rc == 0)
        rc = arg_str(rt, a, 2, "end", "...", &end);
    if (rc == 0)
        rc = arg_int(rt, a, 3, "leeway", 5, &leeway);
    if (rc == 0)
        rc = jv_as_str(rt, &in, &s);
    if (rc)
        return rc;
    int64_t len = (int64_t)utf8_count(s.u.s.p, s.u.s.n),
            elen = (int64_t)utf8_count(end.u.s.p, end.u.s.n);
    if (length < elen)
        return jinja_fail(rt, "AssertionError", "expected length >= %lld, got %lld",
                          (long long)elen, (long long)length);
    if (len <= length + leeway) {
        *out = s;
        return 0;
    }
    struct jv head, parts;
    /* s[:length - len(end)] */
    size_t i = 0, c = 0;
    while (i < s.u.s.n && (int64_t)c < length - elen) {
        i++;
        while (i < s.u.s.n && ((unsigned char)s.u.s.p[i] & 0xC0) == 0x80)
            i++;
        c++;
    }
    head = jv_str(s.u.s.p, i);
    if (!kill) { /* .rsplit(" ", 1)[0] */
        struct jv sp = jv_str(" ", 1);
        if ((rc = pystr_split(rt, head, &sp, 1, true, &parts)))
            return rc;
        head = parts.u.l->v[0];
    }
    return jinja_binop(rt, OP_ADD, head, end, out);
}

static int f_format(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv s, args;
    int rc = jv_as_str(rt, &in, &s);
    if (rc)
        return rc;
    if (a->npos && a->nkw)
        return jinja_fail(rt, "FilterArgumentError",
                          "can't handle positional and keyword arguments at the same time");
    if (a->nkw) {
        rc = jv_dict_new(rt, a->nkw, &args);
        for (size_t i = 0; rc == 0 && i < a->nkw; i++)
            rc = jv_dict_append(rt, args.u.d, jv_str(a->names[i], a->lens[i]), a->kw[i]);
    } else {
        rc = jv_list_new(rt, a->npos, &args);
        for (size_t i = 0; rc == 0 && i < a->npos; i++)
            rc = jv_list_push(rt, args.u.l, a->pos[i]);
        args.flags = JV_F_TUPLE;
    }
    return rc ? rc : jinja_percent_format(rt, s, args, out);
}

static int f_attr(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    struct jv name;
    int rc = arg_str(rt, a, 0, "name", "", &name);
    if (rc)
        return rc;
    if (in.type == JV_DICT) { /* attr does not fall back to items */
        int id = jinja_method_id(&in, name.u.s.p, name.u.s.n);
        if (id < 0) {
            *out = jv_undef_named(JV_UNDEF_ATTR, &in, name.u.s.p, name.u.s.n);
            return 0;
        }
    }
    return jinja_getattr(rt, in, name.u.s.p, name.u.s.n, out);
}

static int f_pprint(struct jinja_rt *rt, struct jv in, struct jargs *a, struct jv *out)
{
    (void)a;
    struct buf b;
    buf_init(&b, rt->max_out);
    int rc = jv_repr(rt, &in, &b);
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

/* clang-format off */
static const struct {
    const char *name;
    filter_fn fn;
} FILTERS[] = {
    {"abs", f_abs},         {"attr", f_attr},         {"batch", f_batch},
    {"capitalize", f_capitalize}, {"center", f_center}, {"count", f_length},
    {"d", f_default},       {"default", f_default},   {"dictsort", f_dictsort},
    {"e", f_escape},        {"escape", f_escape},     {"first", f_first},
    {"float", f_float},     {"forceescape", f_forceescape}, {"format", f_format},
    {"indent", f_indent},   {"int", f_int},           {"items", f_items},
    {"join", f_join},       {"last", f_last},         {"length", f_length},
    {"list", f_list},       {"lower", f_lower},       {"map", f_map},
    {"max", f_max},         {"min", f_min},           {"pprint", f_pprint},
    {"reject", f_reject},   {"rejectattr", f_rejectattr}, {"replace", f_replace},
    {"reverse", f_reverse}, {"round", f_round},       {"safe", f_safe},
    {"select", f_select},   {"selectattr", f_selectattr}, {"sort", f_sort},
    {"string", f_string},   {"sum", f_sum},           {"title", f_title},
    {"tojson", f_tojson},   {"trim", f_trim},         {"truncate", f_truncate},
    {"unique", f_unique},   {"upper", f_upper},       {"wordcount", f_wordcount},
};
/* clang-format on */

int jinja_filter_id(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof FILTERS / sizeof *FILTERS; i++)
        if (strlen(FILTERS[i].name) == n && memcmp(FILTERS[i].name, s, n) == 0)
            return (int)i;
    return -1;
}

int jinja_call_filter(struct jinja_rt *rt, int id, struct jv in, struct jargs *args, struct jv *out)
{
    if (id < 0 || (size_t)id >= sizeof FILTERS / sizeof *FILTERS)
        return jinja_fail(rt, "TemplateRuntimeError", "no such filter");
    return FILTERS[id].fn(rt, in, args, out);
}

/* ---- tests ---- */

typedef int (*test_fn)(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out);

#define SIMPLE_TEST(name, expr)                                                                    \
    static int name(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)                 \
    {                                                                                              \
        (void)rt;                                                                                  \
        (void)a;                                                                                   \
        (void)in;                                                                                  \
        *out = (expr);                                                                             \
        return 0;                                                                                  \
    }

SIMPLE_TEST(t_defined, in.type != JV_UNDEF)
SIMPLE_TEST(t_undefined, in.type == JV_UNDEF)
SIMPLE_TEST(t_none, in.type == JV_NONE)
SIMPLE_TEST(t_boolean, in.type == JV_BOOL)
SIMPLE_TEST(t_false, in.type == JV_BOOL && !in.u.b)
SIMPLE_TEST(t_true, in.type == JV_BOOL && in.u.b)
SIMPLE_TEST(t_integer, in.type == JV_INT)
SIMPLE_TEST(t_float, in.type == JV_FLOAT)
SIMPLE_TEST(t_number, in.type == JV_INT || in.type == JV_FLOAT || in.type == JV_BOOL)
SIMPLE_TEST(t_string, in.type == JV_STR)
SIMPLE_TEST(t_mapping, in.type == JV_DICT)
SIMPLE_TEST(t_iterable, in.type == JV_STR || in.type == JV_LIST || in.type == JV_DICT ||
                            in.type == JV_UNDEF || in.type == JV_LOOP)
SIMPLE_TEST(t_sequence,
            in.type == JV_STR || in.type == JV_LIST || in.type == JV_DICT || in.type == JV_UNDEF)
SIMPLE_TEST(t_callable, in.type == JV_MACRO || in.type == JV_FUNC || in.type == JV_JOINER ||
                            (in.type == JV_LOOP && in.u.loop->node && in.u.loop->node->flag))
SIMPLE_TEST(t_escaped, false)
SIMPLE_TEST(t_lower, in.type == JV_STR && pystr_is(in, 'l'))
SIMPLE_TEST(t_upper, in.type == JV_STR && pystr_is(in, 'u'))

static int num_arg(struct jinja_rt *rt, const struct jv *v, const char *what)
{
    if (v->type == JV_INT || v->type == JV_BOOL || v->type == JV_FLOAT)
        return 0;
    if (v->type == JV_UNDEF)
        return jv_undef_raise(rt, v);
    return jinja_fail(rt, "TypeError", "%s: not a number: '%s'", what, jv_type_name(v));
}

static int t_even_odd(struct jinja_rt *rt, struct jv in, bool odd, bool *out)
{
    struct jv r;
    int rc = num_arg(rt, &in, "even/odd");
    if (rc == 0)
        rc = jinja_binop(rt, OP_MOD, in, jv_int(2), &r);
    *out = rc == 0 && (jv_truthy(&r) == odd);
    return rc;
}

static int t_even(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    (void)a;
    return t_even_odd(rt, in, false, out);
}

static int t_odd(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    (void)a;
    return t_even_odd(rt, in, true, out);
}

static int t_divisibleby(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    const struct jv *d = arg(a, 0, "num");
    struct jv r;
    if (!d)
        return jinja_fail(rt, "TypeError", "divisibleby needs a number");
    int rc = jinja_binop(rt, OP_MOD, in, *d, &r);
    *out = rc == 0 && !jv_truthy(&r);
    return rc;
}

static int t_cmp(struct jinja_rt *rt, struct jv in, struct jargs *a, int op, bool *out)
{
    const struct jv *o = arg(a, 0, "other");
    if (!o)
        return jinja_fail(rt, "TypeError", "the test needs a value to compare with");
    int r;
    if (op == OP_EQ || op == OP_NE) {
        *out = jv_eq(&in, o) == (op == OP_EQ);
        return 0;
    }
    const char *sym = op == OP_LT ? "<" : op == OP_LTEQ ? "<=" : op == OP_GT ? ">" : ">=";
    int rc = jv_cmp(rt, &in, o, sym, &r);
    *out = rc == 0 && r != 2 &&
           (op == OP_LT     ? r < 0
            : op == OP_LTEQ ? r <= 0
            : op == OP_GT   ? r > 0
                            : r >= 0);
    return rc;
}

#define CMP_TEST(name, op)                                                                         \
    static int name(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)                 \
    {                                                                                              \
        return t_cmp(rt, in, a, op, out);                                                          \
    }
CMP_TEST(t_eq, OP_EQ)
CMP_TEST(t_ne, OP_NE)
CMP_TEST(t_lt, OP_LT)
CMP_TEST(t_le, OP_LTEQ)
CMP_TEST(t_gt, OP_GT)
CMP_TEST(t_ge, OP_GTEQ)

static int t_in(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    const struct jv *seq = arg(a, 0, "seq");
    if (!seq)
        return jinja_fail(rt, "TypeError", "the in test needs a sequence");
    struct jv hay = *seq; /* the same as the `in` operator */
    bool found = false;
    if (hay.type == JV_STR && in.type == JV_STR)
        found = in.u.s.n == 0 || memmem(hay.u.s.p, hay.u.s.n, in.u.s.p, in.u.s.n);
    else if (hay.type == JV_LIST)
        for (size_t i = 0; i < hay.u.l->n && !found; i++)
            found = jv_eq(&in, &hay.u.l->v[i]);
    else if (hay.type == JV_DICT)
        found = jv_dict_get(hay.u.d, in) != NULL;
    else if (hay.type != JV_UNDEF)
        return jinja_fail(rt, "TypeError", "argument of type '%s' is not iterable",
                          jv_type_name(&hay));
    *out = found;
    return 0;
}

static int t_sameas(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    const struct jv *o = arg(a, 0, "other");
    if (!o)
        return jinja_fail(rt, "TypeError", "sameas needs a value");
    if (in.type != o->type)
        *out = false;
    else if (in.type == JV_NONE || in.type == JV_UNDEF)
        *out = true;
    else if (in.type == JV_BOOL || in.type == JV_INT)
        *out = jv_eq(&in, o);
    else
        *out = memcmp(&in.u, &o->u, sizeof in.u) == 0;
    return 0;
}

static int t_filter_test(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out, bool filter)
{
    (void)rt;
    (void)a;
    *out = in.type == JV_STR &&
           (filter ? jinja_filter_id(in.u.s.p, in.u.s.n) : jinja_test_id(in.u.s.p, in.u.s.n)) >= 0;
    return 0;
}

static int t_filter(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    return t_filter_test(rt, in, a, out, true);
}

static int t_test(struct jinja_rt *rt, struct jv in, struct jargs *a, bool *out)
{
    return t_filter_test(rt, in, a, out, false);
}

/* clang-format off */
static const struct {
    const char *name;
    test_fn fn;
} TESTS[] = {
    {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},
    {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq},
    {"escaped", t_escaped}, {"even", t_even}, {"false", t_false}, {"filter", t_filter},
    {"float", t_float}, {"ge", t_ge}, {">=", t_ge}, {"gt", t_gt}, {"greaterthan", t_gt},
    {">", t_gt}, {"in", t_in}, {"integer", t_integer}, {"iterable", t_iterable},
    {"le", t_le}, {"<=", t_le}, {"lessthan", t_lt}, {"lower", t_lower}, {"lt", t_lt},
    {"<", t_lt}, {"mapping", t_mapping}, {"ne", t_ne}, {"!=", t_ne}, {"none", t_none},
    {"number", t_number}, {"odd", t_odd}, {"sameas", t_sameas}, {"sequence", t_sequence},
    {"string", t_string}, {"test", t_test}, {"true", t_true}, {"undefined", t_undefined},
    {"upper", t_upper},
};
/* clang-format on */

int jinja_test_id(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof TESTS / sizeof *TESTS; i++)
        if (strlen(TESTS[i].name) == n && memcmp(TESTS[i].name, s, n) == 0)
            return (int)i;
    return -1;
}

int jinja_call_test(struct jinja_rt *rt, int id, struct jv in, struct jargs *args, bool *out)
{
    *out = false;
    if (id < 0 || (size_t)id >= sizeof TESTS / sizeof *TESTS)
        return jinja_fail(rt, "TemplateRuntimeError", "no such test");
    return TESTS[id].fn(rt, in, args, out);
}

/* ---- globals ---- */

static int g_range(struct jinja_rt *rt, struct jargs *a, struct jv *out)
{
    int64_t v[3] = {0, 0, 1};
    if (a->npos < 1 || a->npos > 3)
        return jinja_fail(rt, "TypeError", "range expected at most 3 arguments, got %zu", a->npos);
    for (size_t i = 0; i < a->npos; i++) {
        int rc = arg_int(rt, a, i, NULL, 0, &v[a->npos == 1 ? 1 : i]);
        if (rc)
            return rc;
    }
    if (v[2] == 0)
        return jinja_fail(rt, "ValueError", "range() arg 3 must not be zero");
    int64_t n = v[2] > 0 ? (v[1] > v[0] ? (v[1] - v[0] + v[2] - 1) / v[2] : 0)
                         : (v[0] > v[1] ? (v[0] - v[1] - v[2] - 1) / -v[2] : 0);
    if (n > MAX_RANGE)
        return jinja_fail(rt, "OverflowError",
                          "Range too big. The sandbox blocks ranges larger "
                          "than MAX_RANGE (%d).",
                          MAX_RANGE);
    int rc = jv_list_new(rt, (size_t)n, out);
    for (int64_t i = 0; rc == 0 && i < n; i++)
        rc = jv_list_push(rt, out->u.l, jv_int(v[0] + i * v[2]));
    return rc;
}

/* kw_dict: a dict of a positional mapping (if any) and the keyword arguments. */
static int kw_dict(struct jinja_rt *rt, struct jargs *a, struct jdict *d)
{
    int rc = 0;
    if (a->npos > 1)
        return jinja_fail(rt, "TypeError", "expected at most 1 argument, got %zu", a->npos);
    if (a->npos == 1) {
        if (a->pos[0].type != JV_DICT)
            return jinja_fail(rt, "TypeError", "'%s' object is not a mapping",
                              jv_type_name(&a->pos[0]));
        for (size_t i = 0; rc == 0 && i < a->pos[0].u.d->n; i++)
            rc = jv_dict_set(rt, d, a->pos[0].u.d->k[i], a->pos[0].u.d->v[i]);
    }
    for (size_t i = 0; rc == 0 && i < a->nkw; i++)
        rc = jv_dict_set(rt, d, jv_str(a->names[i], a->lens[i]), a->kw[i]);
    return rc;
}

static int g_dict(struct jinja_rt *rt, struct jargs *a, struct jv *out)
{
    int rc = jv_dict_new(rt, a->nkw, out);
    return rc ? rc : kw_dict(rt, a, out->u.d);
}

static int g_namespace(struct jinja_rt *rt, struct jargs *a, struct jv *out)
{
    struct jns *ns = jinja_alloc(rt, sizeof *ns);
    if (!ns)
        return jinja_oom(rt);
    *ns = (struct jns){0};
    *out = (struct jv){.type = JV_NS, .u.ns = ns};
    return kw_dict(rt, a, &ns->attrs);
}

static int g_cycler(struct jinja_rt *rt, struct jargs *a, struct jv *out, bool joiner)
{
    struct jcycler *c = jinja_alloc(rt, sizeof *c);
    if (!c)
        return jinja_oom(rt);
    *c = (struct jcycler){0};
    if (joiner) {
        const struct jv *sep = arg(a, 0, "sep");
        c->sep = sep ? *sep : jv_str(", ", 2);
    } else {
        if (a->npos == 0)
            return jinja_fail(rt, "RuntimeError", "at least one item has to be provided");
        c->items = (struct jlist){a->npos, a->npos, a->pos};
    }
    *out = (struct jv){.type = joiner ? JV_JOINER : JV_CYCLER, .u.cy = c};
    return 0;
}

static int g_raise(struct jinja_rt *rt, struct jargs *a, struct jv *out)
{
    (void)out;
    struct buf b;
    buf_init(&b, 4096);
    if (a->npos)
        jv_to_str(rt, &a->pos[0], &b);
    jinja_fail(rt, "TemplateError", "%s", b.p);
    buf_deinit(&b);
    return ERR_INVAL;
}

static int g_strftime(struct jinja_rt *rt, struct jargs *a, struct jv *out)
{
    const struct jv *f = arg(a, 0, "format");
    if (!f || f->type != JV_STR)
        return jinja_fail(rt, "TypeError", "strftime_now() needs a format string");
    return jinja_strftime(rt, *f, out);
}

int jinja_global_id(const char *s, size_t n)
{
    static const char *const names[G_COUNT_] = {"range",        "namespace", "dict",
                                                "cycler",       "joiner",    "raise_exception",
                                                "strftime_now", "lipsum"};
    for (int i = 0; i < G_COUNT_; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return i == G_LIPSUM ? -1 : i;
    return -1;
}

int jinja_call_global(struct jinja_rt *rt, int id, struct jargs *args, struct jv *out)
{
    switch (id) {
    case G_RANGE: return g_range(rt, args, out);
    case G_NAMESPACE: return g_namespace(rt, args, out);
    case G_DICT: return g_dict(rt, args, out);
    case G_CYCLER: return g_cycler(rt, args, out, false);
    case G_JOINER: return g_cycler(rt, args, out, true);
    case G_RAISE: return g_raise(rt, args, out);
    case G_STRFTIME: return g_strftime(rt, args, out);
    default: return jinja_fail(rt, "TypeError", "not callable");
    }
}

/* ---- methods ---- */

typedef int (*method_fn)(struct jinja_rt *rt, struct jv self, struct jargs *a, struct jv *out);

static int m_strip_common(struct jinja_rt *rt, struct jv self, struct jargs *a, bool l, bool r,
                          struct jv *out)
{
    const struct jv *c = arg(a, 0, "chars");
    if (c && c->type != JV_NONE && c->type != JV_STR)
        return need_str(rt, c, "strip arg");
    *out = pystr_strip(self, c && c->type == JV_STR ? c : NULL, l, r);
    return 0;
}

static int m_strip(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_strip_common(rt, s, a, true, true, o);
}
static int m_lstrip(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_strip_common(rt, s, a, true, false, o);
}
static int m_rstrip(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_strip_common(rt, s, a, false, true, o);
}

static int m_split_common(struct jinja_rt *rt, struct jv self, struct jargs *a, bool right,
                          struct jv *out)
{
    int64_t maxsplit;
    int rc = arg_int(rt, a, 1, "maxsplit", -1, &maxsplit);
    return rc ? rc : pystr_split(rt, self, arg(a, 0, "sep"), maxsplit, right, out);
}

static int m_split(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_split_common(rt, s, a, false, o);
}
static int m_rsplit(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_split_common(rt, s, a, true, o);
}

static int m_splitlines(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return pystr_splitlines(rt, s, arg_bool(a, 0, "keepends", false), o);
}

static int m_case(struct jinja_rt *rt, struct jv s, enum pystr_case how, struct jv *o)
{
    return pystr_case(rt, s, how, o);
}

static int m_upper(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_case(rt, s, PY_UPPER, o);
}
static int m_lower(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_case(rt, s, PY_LOWER, o);
}
static int m_title(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_case(rt, s, PY_TITLE, o);
}
static int m_capitalize(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_case(rt, s, PY_CAPITALIZE, o);
}
static int m_swapcase(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_case(rt, s, PY_SWAPCASE, o);
}

/* affix_match: str.startswith / endswith with a str or a tuple of str. */
static int m_affix(struct jinja_rt *rt, struct jv s, struct jargs *a, bool end, struct jv *out)
{
    const struct jv *p = arg(a, 0, end ? "suffix" : "prefix");
    if (!p)
        return jinja_fail(rt, "TypeError", "%s() takes at least 1 argument (0 given)",
                          end ? "endswith" : "startswith");
    size_t n = p->type == JV_LIST ? p->u.l->n : 1;
    bool hit = false;
    for (size_t i = 0; i < n && !hit; i++) {
        const struct jv *x = p->type == JV_LIST ? &p->u.l->v[i] : p;
        if (x->type != JV_STR)
            return jinja_fail(rt, "TypeError", "%s first arg must be str or a tuple of str, not %s",
                              end ? "endswith" : "startswith", jv_type_name(x));
        hit = x->u.s.n <= s.u.s.n &&
              memcmp(end ? s.u.s.p + s.u.s.n - x->u.s.n : s.u.s.p, x->u.s.p, x->u.s.n) == 0;
    }
    *out = jv_bool(hit);
    return 0;
}

static int m_startswith(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_affix(rt, s, a, false, o);
}
static int m_endswith(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_affix(rt, s, a, true, o);
}

static int m_find_common(struct jinja_rt *rt, struct jv s, struct jargs *a, bool right, bool raise,
                         struct jv *out)
{
    const struct jv *sub = arg(a, 0, "sub");
    int rc = sub ? need_str(rt, sub, "substring") : jinja_fail(rt, "TypeError", "missing argument");
    if (rc)
        return rc;
    int64_t k = pystr_find(s, *sub, right);
    if (k < 0 && raise)
        return jinja_fail(rt, "ValueError", "substring not found");
    *out = jv_int(k);
    return 0;
}

static int m_find(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_find_common(rt, s, a, false, false, o);
}
static int m_rfind(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_find_common(rt, s, a, true, false, o);
}
static int m_index_str(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_find_common(rt, s, a, false, true, o);
}
static int m_rindex(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_find_common(rt, s, a, true, true, o);
}

static int m_count_str(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *out)
{
    const struct jv *sub = arg(a, 0, "sub");
    int rc = sub ? need_str(rt, sub, "substring") : jinja_fail(rt, "TypeError", "missing argument");
    if (rc == 0)
        *out = jv_int(pystr_count(s, *sub));
    return rc;
}

static int m_replace(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *out)
{
    const struct jv *old = arg(a, 0, "old"), *new_ = arg(a, 1, "new");
    int64_t count;
    int rc = old && new_ ? 0 : jinja_fail(rt, "TypeError", "replace expected at least 2 arguments");
    if (rc == 0 && (rc = need_str(rt, old, "replace() argument 1")) == 0)
        rc = need_str(rt, new_, "replace() argument 2");
    if (rc == 0)
        rc = arg_int(rt, a, 2, "count", -1, &count);
    return rc ? rc : pystr_replace(rt, s, *old, *new_, count, out);
}

static int m_join(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *out)
{
    const struct jv *items = arg(a, 0, "iterable");
    if (!items)
        return jinja_fail(rt, "TypeError", "join() takes exactly one argument (0 given)");
    return pystr_join(rt, s, *items, out);
}

static int m_format(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *out)
{
    return jinja_str_format(rt, s, a, out);
}

#define IS_METHOD(name, what)                                                                      \
    static int name(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *out)             \
    {                                                                                              \
        (void)rt;                                                                                  \
        (void)a;                                                                                   \
        *out = jv_bool(pystr_is(s, what));                                                         \
        return 0;                                                                                  \
    }
IS_METHOD(m_isdigit, 'd')
IS_METHOD(m_isalpha, 'a')
IS_METHOD(m_isalnum, 'n')
IS_METHOD(m_isspace, 's')
IS_METHOD(m_islower, 'l')
IS_METHOD(m_isupper, 'u')

static int m_pad(struct jinja_rt *rt, struct jv s, struct jargs *a, char where, struct jv *out)
{
    int64_t w;
    int rc = arg_int(rt, a, 0, "width", 0, &w);
    return rc ? rc : pystr_pad(rt, s, w, where, out);
}

static int m_center(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_pad(rt, s, a, 'c', o);
}
static int m_ljust(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_pad(rt, s, a, 'l', o);
}
static int m_rjust(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_pad(rt, s, a, 'r', o);
}

static int m_removeaffix(struct jinja_rt *rt, struct jv s, struct jargs *a, bool suffix,
                         struct jv *out)
{
    const struct jv *x = arg(a, 0, NULL);
    int rc = x ? need_str(rt, x, "argument") : jinja_fail(rt, "TypeError", "missing argument");
    if (rc)
        return rc;
    bool hit = x->u.s.n <= s.u.s.n &&
               memcmp(suffix ? s.u.s.p + s.u.s.n - x->u.s.n : s.u.s.p, x->u.s.p, x->u.s.n) == 0;
    *out = hit ? jv_str(s.u.s.p + (suffix ? 0 : x->u.s.n), s.u.s.n - x->u.s.n) : s;
    return 0;
}

static int m_removeprefix(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_removeaffix(rt, s, a, false, o);
}
static int m_removesuffix(struct jinja_rt *rt, struct jv s, struct jargs *a, struct jv *o)
{
    return m_removeaffix(rt, s, a, true, o);
}

/* dict */

static int m_get(struct jinja_rt *rt, struct jv d, struct jargs *a, struct jv *out)
{
    const struct jv *k = arg(a, 0, NULL), *def = arg(a, 1, NULL);
    if (!k)
        return jinja_fail(rt, "TypeError", "get expected at least 1 argument, got 0");
    const struct jv *v = jv_dict_get(d.u.d, *k);
    *out = v ? *v : def ? *def : jv_none();
    return 0;
}

static int m_items(struct jinja_rt *rt, struct jv d, struct jargs *a, struct jv *out)
{
    (void)a;
    int rc = items_list(rt, d.u.d, out);
    out->flags = JV_F_ITEMS;
    return rc;
}

static int m_keys_values(struct jinja_rt *rt, struct jv d, bool values, struct jv *out)
{
    int rc = jv_list_new(rt, d.u.d->n, out);
    for (size_t i = 0; rc == 0 && i < d.u.d->n; i++)
        rc = jv_list_push(rt, out->u.l, values ? d.u.d->v[i] : d.u.d->k[i]);
    return rc;
}

static int m_keys(struct jinja_rt *rt, struct jv d, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_keys_values(rt, d, false, o);
}
static int m_values(struct jinja_rt *rt, struct jv d, struct jargs *a, struct jv *o)
{
    (void)a;
    return m_keys_values(rt, d, true, o);
}

static int m_copy(struct jinja_rt *rt, struct jv v, struct jargs *a, struct jv *out)
{
    (void)a;
    if (v.type == JV_DICT) {
        int rc = jv_dict_new(rt, v.u.d->n, out);
        for (size_t i = 0; rc == 0 && i < v.u.d->n; i++)
            rc = jv_dict_append(rt, out->u.d, v.u.d->k[i], v.u.d->v[i]);
        return rc;
    }
    return f_list(rt, v, a, out);
}

/* list */

static int m_list_index(struct jinja_rt *rt, struct jv l, struct jargs *a, struct jv *out)
{
    const struct jv *x = arg(a, 0, NULL);
    for (size_t i = 0; x && i < l.u.l->n; i++)
        if (jv_eq(&l.u.l->v[i], x)) {
            *out = jv_int((int64_t)i);
            return 0;
        }
    return jinja_fail(rt, "ValueError", "value is not in list");
}

static int m_list_count(struct jinja_rt *rt, struct jv l, struct jargs *a, struct jv *out)
{
    (void)rt;
    const struct jv *x = arg(a, 0, NULL);
    int64_t k = 0;
    for (size_t i = 0; x && i < l.u.l->n; i++)
        k += jv_eq(&l.u.l->v[i], x);
    *out = jv_int(k);
    return 0;
}

/* loop, cycler */

static int m_cycle(struct jinja_rt *rt, struct jv l, struct jargs *a, struct jv *out)
{
    if (a->npos == 0)
        return jinja_fail(rt, "TypeError", "no items for cycling given");
    *out = a->pos[l.u.loop->index0 % a->npos];
    return 0;
}

static int m_changed(struct jinja_rt *rt, struct jv l, struct jargs *a, struct jv *out)
{
    struct jloop *lp = l.u.loop;
    struct jv now;
    int rc = jv_list_new(rt, a->npos, &now);
    for (size_t i = 0; rc == 0 && i < a->npos; i++)
        rc = jv_list_push(rt, now.u.l, a->pos[i]);
    bool changed = !lp->changed_init || !jv_eq(&now, &lp->last_changed);
    lp->last_changed = now;
    lp->changed_init = true;
    *out = jv_bool(changed);
    return rc;
}

static int m_next(struct jinja_rt *rt, struct jv c, struct jargs *a, struct jv *out)
{
    (void)rt;
    (void)a;
    struct jcycler *cy = c.u.cy;
    *out = cy->items.v[cy->pos];
    cy->pos = (cy->pos + 1) % cy->items.n;
    return 0;
}

static int m_reset(struct jinja_rt *rt, struct jv c, struct jargs *a, struct jv *out)
{
    (void)rt;
    (void)a;
    c.u.cy->pos = 0;
    *out = jv_none();
    return 0;
}

/* clang-format off */
static const struct {
    uint8_t type;
    uint8_t len;
    const char *name;
    method_fn fn; /* NULL: forbidden by the immutable sandbox */
} METHODS[] = {
#define M(t, name, fn) {t, sizeof(name) - 1, name, fn}
    M(JV_STR, "strip", m_strip), M(JV_STR, "lstrip", m_lstrip), M(JV_STR, "rstrip", m_rstrip),
    M(JV_STR, "split", m_split), M(JV_STR, "rsplit", m_rsplit), M(JV_STR, "splitlines", m_splitlines),
    M(JV_STR, "upper", m_upper), M(JV_STR, "lower", m_lower), M(JV_STR, "title", m_title),
    M(JV_STR, "capitalize", m_capitalize), M(JV_STR, "swapcase", m_swapcase),
    M(JV_STR, "startswith", m_startswith), M(JV_STR, "endswith", m_endswith),
    M(JV_STR, "find", m_find), M(JV_STR, "rfind", m_rfind), M(JV_STR, "index", m_index_str),
    M(JV_STR, "rindex", m_rindex), M(JV_STR, "count", m_count_str), M(JV_STR, "replace", m_replace),
    M(JV_STR, "join", m_join), M(JV_STR, "format", m_format), M(JV_STR, "isdigit", m_isdigit),
    M(JV_STR, "isalpha", m_isalpha), M(JV_STR, "isalnum", m_isalnum), M(JV_STR, "isspace", m_isspace),
    M(JV_STR, "islower", m_islower), M(JV_STR, "isupper", m_isupper), M(JV_STR, "center", m_center),
    M(JV_STR, "ljust", m_ljust), M(JV_STR, "rjust", m_rjust),
    M(JV_STR, "removeprefix", m_removeprefix), M(JV_STR, "removesuffix", m_removesuffix),
    M(JV_DICT, "get", m_get), M(JV_DICT, "items", m_items), M(JV_DICT, "keys", m_keys),
    M(JV_DICT, "values", m_values), M(JV_DICT, "copy", m_copy), M(JV_DICT, "clear", NULL),
    M(JV_DICT, "pop", NULL), M(JV_DICT, "popitem", NULL), M(JV_DICT, "setdefault", NULL),
    M(JV_DICT, "update", NULL),
    M(JV_LIST, "index", m_list_index), M(JV_LIST, "count", m_list_count), M(JV_LIST, "copy", m_copy),
    M(JV_LIST, "append", NULL), M(JV_LIST, "clear", NULL), M(JV_LIST, "extend", NULL),
    M(JV_LIST, "insert", NULL), M(JV_LIST, "pop", NULL), M(JV_LIST, "remove", NULL),
    M(JV_LIST, "reverse", NULL), M(JV_LIST, "sort", NULL),
    M(JV_LOOP, "cycle", m_cycle), M(JV_LOOP, "changed", m_changed),
    M(JV_CYCLER, "next", m_next), M(JV_CYCLER, "reset", m_reset),
#undef M
};
/* clang-format on */

bool jinja_is_method_name(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof METHODS / sizeof *METHODS; i++)
        if (METHODS[i].len == n && memcmp(METHODS[i].name, s, n) == 0)
            return true;
    return false;
}

int jinja_method_id(const struct jv *obj, const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof METHODS / sizeof *METHODS; i++)
        if (METHODS[i].type == obj->type && METHODS[i].len == n &&
            memcmp(METHODS[i].name, name, n) == 0)
            return METHODS[i].fn ? G_COUNT_ + (int)i : -2;
    return -1;
}

int jinja_call_method(struct jinja_rt *rt, int id, struct jv self, struct jargs *args,
                      struct jv *out)
{
    if (self.type == JV_JOINER && id < 0) { /* calling a joiner: "" first, then the separator */
        struct jcycler *j = self.u.cy;
        *out = j->used ? j->sep : jv_str("", 0);
        j->used = true;
        return 0;
    }
    size_t k = (size_t)(id - G_COUNT_);
    if (id < G_COUNT_ || k >= sizeof METHODS / sizeof *METHODS || !METHODS[k].fn)
        return jinja_fail(rt, "TypeError", "'%s' object is not callable", jv_type_name(&self));
    return METHODS[k].fn(rt, self, args, out);
}
