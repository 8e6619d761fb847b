/*
 * jinja_eval: renders a compiled template. Statements write to rt->out; expressions
 * produce struct jv values in the render's arena.
 *
 * Scopes follow what jinja2's compiled code does: the template's top level is one scope
 * (its `set`s are visible to later macros calls); every iteration of a for loop, every
 * macro call, call block, filter block, with block and {% generation %} body gets a fresh
 * child scope, so assignments in them do not leak out; if/elif/else do not make scopes. A
 * macro remembers the scope it was defined in and reads it when called.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/utf8.h"
#include "jinja_internal.h"

#define SIG_BREAK 1
#define SIG_CONTINUE 2

struct eval {
    const struct jinja_template *tpl;
    struct jinja_rt *rt;
    struct jscope root;
    int sym_loop, sym_varargs, sym_kwargs, sym_caller; /* -1 when the template never names them */
};

static int eval_expr(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out);
static int exec_body(struct eval *E, struct jscope *sc, struct jnode *const *items, size_t n);

static inline int step(struct eval *E, const struct jnode *n)
{
    struct jinja_rt *rt = E->rt;
    rt->line = n->line;
    if (++rt->steps > rt->max_steps) {
        jinja_fail(rt, "RuntimeError", "the template exceeded its evaluation step limit");
        return ERR_LIMIT;
    }
    return 0;
}

/* ---- scopes ---- */

static struct jscope *scope_new(struct eval *E, struct jscope *parent)
{
    struct jscope *s = jinja_alloc(E->rt, sizeof *s);
    if (s)
        *s = (struct jscope){.parent = parent};
    return s;
}

static int scope_set(struct eval *E, struct jscope *s, int sym, struct jv v)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->syms[i] == sym) {
            s->vals[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 4;
        struct arena *a = E->rt->arena;
        int *ns = arena_realloc(a, s->syms, s->cap * sizeof *ns, c * sizeof *ns);
        struct jv *nv = ns ? arena_realloc(a, s->vals, s->cap * sizeof *nv, c * sizeof *nv) : NULL;
        if (!ns || !nv)
            return jinja_oom(E->rt);
        s->syms = ns;
        s->vals = nv;
        s->cap = c;
    }
    s->syms[s->n] = sym;
    s->vals[s->n++] = v;
    return 0;
}

/* capture_scope: marks s and its ancestors as captured by a closure. */
static void capture_scope(struct jscope *s)
{
    for (; s && !s->captured; s = s->parent)
        s->captured = true;
}

static const struct jv *scope_get(const struct jscope *s, int sym)
{
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->syms[i] == sym)
                return &s->vals[i];
    return NULL;
}

/* ---- output capture ---- */

/* capture: runs the body with its output going to a string value. */
static int capture(struct eval *E, struct jscope *sc, struct jnode *const *items, size_t n,
                   struct jv *out)
{
    struct jinja_rt *rt = E->rt;
    struct buf b, *saved = rt->out;
    buf_init(&b, rt->max_out);
    rt->out = &b;
    int rc = exec_body(E, sc, items, n);
    rt->out = saved;
    if (rc == ERR_LIMIT && !rt->err[0])
        jinja_fail(rt, "RuntimeError", "the template's output exceeded its limit");
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

static int emit(struct eval *E, const char *p, size_t n)
{
    int rc = buf_append(E->rt->out, p, n);
    if (rc == ERR_LIMIT)
        jinja_fail(E->rt, "RuntimeError", "the template's output exceeded its limit");
    return rc;
}

/* ---- calls ---- */

/* eval_args: evaluates a call's arguments (positional, keyword, *args, **kwargs). */
static int eval_args(struct eval *E, struct jscope *sc, const struct jnode *n, struct jargs *a)
{
    struct jinja_rt *rt = E->rt;
    struct jv star = jv_undef(), dstar = jv_undef();
    int rc = 0;
    if (n->b && (rc = eval_expr(E, sc, n->b, &star)) == 0)
        rc = jv_iter_list(rt, &star, &star);
    if (rc == 0 && n->c && (rc = eval_expr(E, sc, n->c, &dstar)) == 0 && dstar.type != JV_DICT)
        rc = jinja_fail(rt, "TypeError", "argument after ** must be a mapping");
    if (rc)
        return rc;
    size_t np = n->n + (n->b ? star.u.l->n : 0), nk = n->n2 + (n->c ? dstar.u.d->n : 0);
    *a = (struct jargs){0};
    /* one allocation: the positional values, the keyword values, names and lengths */
    char *block = jinja_alloc(rt, (np + nk + 2) * sizeof(struct jv) +
                                      (nk + 1) * (sizeof *a->names + sizeof *a->lens));
    if (!block)
        return jinja_oom(rt);
    a->pos = (struct jv *)block;
    a->kw = a->pos + np + 1;
    a->names = (const char **)(a->kw + nk + 1);
    a->lens = (size_t *)(a->names + nk + 1);
    for (size_t i = 0; rc == 0 && i < n->n; i++)
        rc = eval_expr(E, sc, n->items[i], &a->pos[a->npos++]);
    for (size_t i = 0; rc == 0 && n->b && i < star.u.l->n; i++)
        a->pos[a->npos++] = star.u.l->v[i];
    for (size_t i = 0; rc == 0 && i < n->n2; i++) {
        a->names[a->nkw] = n->names[i];
        a->lens[a->nkw] = n->lens[i];
        rc = eval_expr(E, sc, n->items2[i], &a->kw[a->nkw++]);
    }
    for (size_t i = 0; rc == 0 && n->c && i < dstar.u.d->n; i++) {
        const struct jv *k = &dstar.u.d->k[i];
        if (k->type != JV_STR)
            return jinja_fail(rt, "TypeError", "keywords must be strings");
        a->names[a->nkw] = k->u.s.p;
        a->lens[a->nkw] = k->u.s.n;
        a->kw[a->nkw++] = dstar.u.d->v[i];
    }
    return rc;
}

static int call_macro(struct eval *E, const struct jv *mv, struct jargs *a, struct jv *out)
{
    struct jinja_rt *rt = E->rt;
    const struct jmacro *m = mv->u.m;
    const struct jnode *def = m->def;
    if (++rt->depth > rt->max_depth) {
        rt->depth--;
        return jinja_fail(rt, "RecursionError", "maximum recursion depth exceeded");
    }
    struct jscope *sc = scope_new(E, m->closure);
    struct jv varargs, kwargs;
    int rc = sc ? 0 : jinja_oom(rt);
    if (rc == 0)
        rc = jv_list_new(rt, a->npos > def->n_names ? a->npos - def->n_names : 0, &varargs);
    if (rc == 0)
        rc = jv_dict_new(rt, 0, &kwargs);
    varargs.flags = JV_F_TUPLE;
    bool *given = jinja_alloc(rt, def->n_names + 1);
    if (rc == 0 && !given)
        rc = jinja_oom(rt);
    for (size_t i = 0; rc == 0 && i < def->n_names; i++)
        given[i] = false;
    for (size_t i = 0; rc == 0 && i < a->npos; i++) {
        if (i < def->n_names) {
            rc = scope_set(E, sc, def->syms[i], a->pos[i]);
            given[i] = true;
        } else {
            rc = jv_list_push(rt, varargs.u.l, a->pos[i]);
        }
    }
    for (size_t k = 0; rc == 0 && k < a->nkw; k++) {
        size_t i = 0;
        while (i < def->n_names &&
               !(def->lens[i] == a->lens[k] && memcmp(def->names[i], a->names[k], a->lens[k]) == 0))
            i++;
        if (i < def->n_names && given[i])
            rc = jinja_fail(rt, "TypeError", "macro '%.*s' got multiple values for argument '%.*s'",
                            (int)def->len, def->str, (int)a->lens[k], a->names[k]);
        else if (i < def->n_names) {
            rc = scope_set(E, sc, def->syms[i], a->kw[k]);
            given[i] = true;
        } else {
            rc = jv_dict_append(rt, kwargs.u.d, jv_str(a->names[k], a->lens[k]), a->kw[k]);
        }
    }
    for (size_t i = 0; rc == 0 && i < def->n_names; i++) {
        if (given[i])
            continue;
        struct jv d = jv_undef_named(JV_UNDEF_NAME, NULL, def->names[i], def->lens[i]);
        if (def->items2 && def->items2[i])
            rc = eval_expr(E, sc, def->items2[i], &d);
        if (rc == 0)
            rc = scope_set(E, sc, def->syms[i], d);
    }
    if (rc == 0 && E->sym_varargs >= 0)
        rc = scope_set(E, sc, E->sym_varargs, varargs);
    if (rc == 0 && E->sym_kwargs >= 0)
        rc = scope_set(E, sc, E->sym_kwargs, kwargs);
    if (rc == 0 && E->sym_caller >= 0 && def->kind == S_MACRO)
        rc = scope_set(E, sc, E->sym_caller, m->caller);
    if (rc == 0)
        rc = capture(E, sc, def->items, def->n, out);
    rt->depth--;
    return rc;
}

static int run_loop(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv items,
                    struct jloop *parent);

int jinja_call_value(struct jinja_rt *rt, struct jv fn, struct jargs *args, struct jv *out)
{
    struct eval *E = rt->ctx;
    switch (fn.type) {
    case JV_MACRO: return call_macro(E, &fn, args, out);
    case JV_FUNC:
        if (fn.u.fn->self.type == JV_UNDEF && fn.u.fn->id < G_COUNT_)
            return jinja_call_global(rt, fn.u.fn->id, args, out);
        return jinja_call_method(rt, fn.u.fn->id, fn.u.fn->self, args, out);
    case JV_LOOP: { /* recursive loop: loop(children) */
        struct jloop *l = fn.u.loop;
        if (args->npos != 1 || !l->node || !l->node->flag)
            return jinja_fail(rt, "TypeError", "'LoopContext' object is not callable");
        struct jv items;
        int rc = jv_iter_list(rt, &args->pos[0], &items);
        struct jinja_rt *r = rt;
        struct buf b, *saved = r->out;
        buf_init(&b, r->max_out);
        r->out = &b;
        if (rc == 0)
            rc = run_loop(E, l->scope, l->node, items, l);
        r->out = saved;
        if (rc == 0)
            rc = jv_str_copy(r, b.p, b.n, out);
        buf_deinit(&b);
        return rc;
    }
    case JV_CYCLER:
    case JV_JOINER: return jinja_call_method(rt, -1, fn, args, out);
    case JV_UNDEF: return jv_undef_raise(rt, &fn);
    default: return jinja_fail(rt, "TypeError", "'%s' object is not callable", jv_type_name(&fn));
    }
}

/* ---- attributes, items, slices ---- */

static struct jv func_value(struct jinja_rt *rt, int id, struct jv self)
{
    struct jfunc *f = jinja_alloc(rt, sizeof *f);
    if (!f)
        return jv_undef();
    f->id = id;
    f->self = self;
    return (struct jv){.type = JV_FUNC, .u.fn = f};
}

static int loop_attr(struct jinja_rt *rt, struct jv obj, const char *name, size_t n, struct jv *out)
{
    const struct jloop *l = obj.u.loop;
    size_t len = l->items.u.l->n, i = l->index0;
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
    if (IS("index"))
        *out = jv_int((int64_t)i + 1);
    else if (IS("index0"))
        *out = jv_int((int64_t)i);
    else if (IS("revindex"))
        *out = jv_int((int64_t)(len - i));
    else if (IS("revindex0"))
        *out = jv_int((int64_t)(len - i - 1));
    else if (IS("first"))
        *out = jv_bool(i == 0);
    else if (IS("last"))
        *out = jv_bool(i + 1 == len);
    else if (IS("length"))
        *out = jv_int((int64_t)len);
    else if (IS("depth"))
        *out = jv_int(l->depth0 + 1);
    else if (IS("depth0"))
        *out = jv_int(l->depth0);
    else if (IS("previtem"))
        *out = i > 0 ? l->items.u.l->v[i - 1] : jv_undef_named(JV_UNDEF_PLAIN, NULL, "", 0);
    else if (IS("nextitem"))
        *out = i + 1 < len ? l->items.u.l->v[i + 1] : jv_undef_named(JV_UNDEF_PLAIN, NULL, "", 0);
    else {
        int id = jinja_method_id(&obj, name, n);
        *out = id >= 0 ? func_value(rt, id, obj) : jv_undef_named(JV_UNDEF_ATTR, &obj, name, n);
        return out->type == JV_UNDEF && id >= 0 ? jinja_oom(rt) : 0;
    }
#undef IS
    return 0;
}

int jinja_getattr(struct jinja_rt *rt, struct jv obj, const char *name, size_t n, struct jv *out)
{
    return jinja_getattr_hint(rt, obj, name, n, true, out);
}

int jinja_getattr_hint(struct jinja_rt *rt, struct jv obj, const char *name, size_t n,
                       bool may_be_method, struct jv *out)
{
    if (obj.type == JV_UNDEF)
        return jv_undef_raise(rt, &obj);
    if (obj.type == JV_LOOP)
        return loop_attr(rt, obj, name, n, out);
    if (n > 0 && name[0] == '_') { /* the sandbox hides private attributes */
        *out = jv_undef_named(JV_UNDEF_UNSAFE, &obj, name, n);
        return 0;
    }
    int id = may_be_method ? jinja_method_id(&obj, name, n) : -1;
    if (id == -2) {
        *out = jv_undef_named(JV_UNDEF_UNSAFE, &obj, name, n);
        return 0;
    }
    if (id >= 0) {
        *out = func_value(rt, id, obj);
        return out->type == JV_FUNC ? 0 : jinja_oom(rt);
    }
    const struct jv *v = NULL;
    if (obj.type == JV_DICT)
        v = jv_dict_get_str(obj.u.d, name, n);
    else if (obj.type == JV_NS)
        v = jv_dict_get_str(&obj.u.ns->attrs, name, n);
    *out = v ? *v : jv_undef_named(JV_UNDEF_ATTR, &obj, name, n);
    return 0;
}

/* char_offset: the byte offset of code point k of s (k <= count). */
static size_t char_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        k--;
    }
    return i;
}

static bool as_index(const struct jv *k, int64_t *i)
{
    if (k->type == JV_INT)
        *i = k->u.i;
    else if (k->type == JV_BOOL)
        *i = k->u.b;
    else
        return false;
    return true;
}

int jinja_getitem(struct jinja_rt *rt, struct jv obj, struct jv key, struct jv *out)
{
    if (obj.type == JV_UNDEF)
        return jv_undef_raise(rt, &obj);
    int64_t i;
    if (obj.type == JV_DICT) {
        const struct jv *v = jv_dict_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
    } else if ((obj.type == JV_LIST || obj.type == JV_STR) && as_index(&key, &i)) {
        size_t len = obj.type == JV_LIST ? obj.u.l->n : utf8_count(obj.u.s.p, obj.u.s.n);
        int64_t j = i < 0 ? i + (int64_t)len : i;
        if (j >= 0 && (size_t)j < len) {
            if (obj.type == JV_LIST) {
                *out = obj.u.l->v[j];
            } else {
                size_t a = char_offset(obj.u.s.p, obj.u.s.n, (size_t)j);
                size_t b = char_offset(obj.u.s.p, obj.u.s.n, (size_t)j + 1);
                *out = jv_str(obj.u.s.p + a, b - a);
            }
            return 0;
        }
        *out = jv_undef_elem(&obj, i);
        return 0;
    }
    if (key.type == JV_STR) /* obj['name'] falls back to the attribute */
        return jinja_getattr(rt, obj, key.u.s.p, key.u.s.n, out);
    *out = jv_undef_elem(&obj, key.type == JV_INT ? key.u.i : 0);
    return 0;
}

/* slice_bounds: Python's slice.indices(len) for start/stop/step (NULL: default). */
static int slice_bounds(struct jinja_rt *rt, const struct jv *parts[3], int64_t len, int64_t *start,
                        int64_t *stop, int64_t *stepv)
{
    int64_t v[3];
    bool given[3];
    for (int k = 0; k < 3; k++) {
        given[k] = parts[k] && parts[k]->type != JV_NONE;
        if (given[k] && !as_index(parts[k], &v[k]))
            return jinja_fail(rt, "TypeError", "slice indices must be integers or None");
    }
    int64_t st = given[2] ? v[2] : 1;
    if (st == 0)
        return jinja_fail(rt, "ValueError", "slice step cannot be zero");
    int64_t lo = st < 0 ? -1 : 0, hi = st < 0 ? len - 1 : len;
    for (int k = 0; k < 2; k++) {
        int64_t x;
        if (!given[k]) {
            x = k == 0 ? (st < 0 ? hi : lo) : (st < 0 ? lo : hi);
        } else {
            x = v[k] < 0 ? v[k] + len : v[k];
            x = x < lo ? lo : x > hi ? hi : x;
        }
        *(k == 0 ? start : stop) = x;
    }
    *stepv = st;
    return 0;
}

static int do_slice(struct eval *E, struct jv obj, const struct jv *parts[3], struct jv *out)
{
    struct jinja_rt *rt = E->rt;
    if (obj.type == JV_UNDEF)
        return jv_undef_raise(rt, &obj);
    bool str = obj.type == JV_STR;
    if (!str && obj.type != JV_LIST) {
        *out = jv_undef_named(JV_UNDEF_PLAIN, NULL, "", 0);
        return 0;
    }
    struct jv items = obj;
    int rc = str ? jv_iter_list(rt, &obj, &items) : 0;
    int64_t start = 0, stop = 0, st = 1, len = (int64_t)items.u.l->n;
    if (rc || (rc = slice_bounds(rt, parts, len, &start, &stop, &st)))
        return rc;
    struct jv res;
    if ((rc = jv_list_new(rt, 0, &res)))
        return rc;
    for (int64_t i = start; rc == 0 && (st > 0 ? i < stop : i > stop); i += st)
        rc = jv_list_push(rt, res.u.l, items.u.l->v[i]);
    if (rc || !str) {
        res.flags = obj.flags & JV_F_TUPLE;
        *out = res;
        return rc;
    }
    struct buf b;
    buf_init(&b, rt->max_out);
    for (size_t i = 0; rc == 0 && i < res.u.l->n; i++)
        rc = buf_append(&b, res.u.l->v[i].u.s.p, res.u.l->v[i].u.s.n);
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

/* ---- operators ---- */

static bool numeric(const struct jv *v)
{
    return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
}

static double fval(const struct jv *v)
{
    return v->type == JV_FLOAT ? v->u.f : v->type == JV_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t ival(const struct jv *v)
{
    return v->type == JV_INT ? v->u.i : (int64_t)v->u.b;
}

static const char *op_sym(int op)
{
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_FLOORDIV: return "//";
    case OP_MOD: return "%";
    default: return "** or pow()";
    }
}

static int unsupported(struct jinja_rt *rt, int op, const struct jv *a, const struct jv *b)
{
    return jinja_fail(rt, "TypeError", "unsupported operand type(s) for %s: '%s' and '%s'",
                      op_sym(op), jv_type_name(a), jv_type_name(b));
}

static int repeat(struct jinja_rt *rt, struct jv seq, int64_t times, struct jv *out)
{
    size_t k = times > 0 ? (size_t)times : 0;
    if (seq.type == JV_STR) {
        if (k && seq.u.s.n > rt->max_out / k)
            return jinja_oom(rt);
        char *d = jinja_alloc(rt, seq.u.s.n * k);
        if (!d)
            return jinja_oom(rt);
        for (size_t i = 0; i < k; i++)
            memcpy(d + i * seq.u.s.n, seq.u.s.p, seq.u.s.n);
        *out = jv_str(d, seq.u.s.n * k);
        return 0;
    }
    if (k && seq.u.l->n > (rt->max_out / sizeof(struct jv)) / k)
        return jinja_oom(rt);
    int rc = jv_list_new(rt, seq.u.l->n * k, out);
    for (size_t i = 0; rc == 0 && i < k; i++)
        for (size_t j = 0; rc == 0 && j < seq.u.l->n; j++)
            rc = jv_list_push(rt, out->u.l, seq.u.l->v[j]);
    out->flags = seq.flags & JV_F_TUPLE;
    return rc;
}

static int int_arith(struct jinja_rt *rt, int op, int64_t x, int64_t y, struct jv *out)
{
    int64_t r;
    switch (op) {
    case OP_ADD:
        if (__builtin_add_overflow(x, y, &r))
            break;
        *out = jv_int(r);
        return 0;
    case OP_SUB:
        if (__builtin_sub_overflow(x, y, &r))
            break;
        *out = jv_int(r);
        return 0;
    case OP_MUL:
        if (__builtin_mul_overflow(x, y, &r))
            break;
        *out = jv_int(r);
        return 0;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0)
            return jinja_fail(rt, "ZeroDivisionError",
                              op == OP_MOD ? "integer modulo by zero"
                                           : "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1)
            break;
        if (op == OP_MOD) { /* Python's modulo takes the divisor's sign */
            r = x % y;
            *out = jv_int(r != 0 && ((r < 0) != (y < 0)) ? r + y : r);
            return 0;
        }
        r = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0)))
            r--; /* floor */
        *out = jv_int(r);
        return 0;
    case OP_POW:
        if (y < 0) {
            *out = jv_float(pow((double)x, (double)y));
            return 0;
        }
        r = 1;
        for (int64_t i = 0; i < y; i++)
            if (__builtin_mul_overflow(r, x, &r))
                return jinja_fail(rt, "OverflowError", "integer too large");
        *out = jv_int(r);
        return 0;
    }
    return jinja_fail(rt, "OverflowError", "integer result too large");
}

static int float_arith(struct jinja_rt *rt, int op, double x, double y, struct jv *out)
{
    switch (op) {
    case OP_ADD: *out = jv_float(x + y); return 0;
    case OP_SUB: *out = jv_float(x - y); return 0;
    case OP_MUL: *out = jv_float(x * y); return 0;
    case OP_DIV:
        if (y == 0)
            return jinja_fail(rt, "ZeroDivisionError", "division by zero");
        *out = jv_float(x / y);
        return 0;
    case OP_FLOORDIV:
    case OP_MOD: {
        if (y == 0)
            return jinja_fail(rt, "ZeroDivisionError",
                              op == OP_MOD ? "float modulo" : "float floor division by zero");
        double m = fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0)))
            m += y; /* Python's modulo takes the divisor's sign */
        *out = jv_float(op == OP_MOD ? m : (x - m) / y);
        return 0;
    }
    default: *out = jv_float(pow(x, y)); return 0;
    }
}

int jinja_html_escape(struct jinja_rt *rt, struct jv s, struct jv *out)
{
    struct buf b;
    buf_init(&b, rt->max_out);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s.u.s.n; i++) {
        char c = s.u.s.p[i];
        const char *e = c == '&'    ? "&amp;"
                        : c == '<'  ? "&lt;"
                        : c == '>'  ? "&gt;"
                        : c == '"'  ? "&#34;"
                        : c == '\'' ? "&#39;"
                                    : NULL;
        rc = e ? buf_append_str(&b, e) : buf_append_byte(&b, c);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc == ERR_LIMIT ? jinja_oom(rt) : rc;
}

static int concat_seq(struct jinja_rt *rt, struct jv a, struct jv b, struct jv *out)
{
    if (a.type == JV_STR && ((a.flags | b.flags) & JV_F_SAFE)) {
        /* Markup + str (or str + Markup): the plain side is HTML-escaped; Markup results */
        int rc = 0;
        if (!(a.flags & JV_F_SAFE))
            rc = jinja_html_escape(rt, a, &a);
        if (rc == 0 && !(b.flags & JV_F_SAFE))
            rc = jinja_html_escape(rt, b, &b);
        a.flags = b.flags = 0;
        if (rc == 0)
            rc = concat_seq(rt, a, b, out);
        out->flags = JV_F_SAFE;
        return rc;
    }
    if (a.type == JV_STR) {
        char *d = jinja_alloc(rt, a.u.s.n + b.u.s.n);
        if (!d)
            return jinja_oom(rt);
        memcpy(d, a.u.s.p, a.u.s.n);
        memcpy(d + a.u.s.n, b.u.s.p, b.u.s.n);
        *out = jv_str(d, a.u.s.n + b.u.s.n);
        return 0;
    }
    int rc = jv_list_new(rt, a.u.l->n + b.u.l->n, out);
    for (size_t i = 0; rc == 0 && i < a.u.l->n; i++)
        rc = jv_list_push(rt, out->u.l, a.u.l->v[i]);
    for (size_t i = 0; rc == 0 && i < b.u.l->n; i++)
        rc = jv_list_push(rt, out->u.l, b.u.l->v[i]);
    out->flags = a.flags & JV_F_TUPLE;
    return rc;
}

int jinja_binop(struct jinja_rt *rt, int op, struct jv a, struct jv b, struct jv *out)
{
    if (a.type == JV_UNDEF)
        return jv_undef_raise(rt, &a);
    if (b.type == JV_UNDEF)
        return jv_undef_raise(rt, &b);
    if (numeric(&a) && numeric(&b)) {
        if (a.type != JV_FLOAT && b.type != JV_FLOAT && op != OP_DIV)
            return int_arith(rt, op, ival(&a), ival(&b), out);
        return float_arith(rt, op, fval(&a), fval(&b), out);
    }
    bool seq_a = a.type == JV_STR || a.type == JV_LIST;
    if (op == OP_ADD && seq_a) {
        if (a.type == b.type && (a.flags & JV_F_TUPLE) == (b.flags & JV_F_TUPLE))
            return concat_seq(rt, a, b, out);
        const char *kind = jv_type_name(&a);
        return jinja_fail(rt, "TypeError", "can only concatenate %s (not \"%s\") to %s", kind,
                          jv_type_name(&b), kind);
    }
    if (op == OP_MUL && seq_a && (b.type == JV_INT || b.type == JV_BOOL))
        return repeat(rt, a, ival(&b), out);
    if (op == OP_MUL && (a.type == JV_INT || a.type == JV_BOOL) &&
        (b.type == JV_STR || b.type == JV_LIST))
        return repeat(rt, b, ival(&a), out);
    if (op == OP_MUL && (seq_a || b.type == JV_STR || b.type == JV_LIST))
        return jinja_fail(rt, "TypeError", "can't multiply sequence by non-int of type '%s'",
                          jv_type_name(seq_a ? &b : &a));
    if (op == OP_MOD && a.type == JV_STR)
        return jinja_percent_format(rt, a, b, out);
    return unsupported(rt, op, &a, &b);
}

/* contains: Python's `needle in hay`. */
static int contains(struct jinja_rt *rt, struct jv needle, struct jv hay, bool *out)
{
    *out = false;
    switch (hay.type) {
    case JV_STR:
        if (needle.type != JV_STR)
            return jinja_fail(rt, "TypeError",
                              "'in <string>' requires string as left operand, not %s",
                              jv_type_name(&needle));
        *out =
            needle.u.s.n == 0 || memmem(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
        return 0;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n && !*out; i++)
            *out = jv_eq(&needle, &hay.u.l->v[i]);
        return 0;
    case JV_DICT: *out = jv_dict_get(hay.u.d, needle) != NULL; return 0;
    case JV_UNDEF: return 0; /* iterates as empty */
    default:
        return jinja_fail(rt, "TypeError", "argument of type '%s' is not iterable",
                          jv_type_name(&hay));
    }
}

static int compare(struct jinja_rt *rt, int op, struct jv a, struct jv b, bool *out)
{
    int r;
    switch (op) {
    case OP_EQ: *out = jv_eq(&a, &b); return 0;
    case OP_NE: *out = !jv_eq(&a, &b); return 0;
    case OP_IN: return contains(rt, a, b, out);
    case OP_NOTIN: {
        int rc = contains(rt, a, b, out);
        *out = !*out;
        return rc;
    }
    default: break;
    }
    const char *sym = op == OP_LT ? "<" : op == OP_LTEQ ? "<=" : op == OP_GT ? ">" : ">=";
    int rc = jv_cmp(rt, &a, &b, sym, &r);
    if (rc)
        return rc;
    *out = r != 2 && (op == OP_LT ? r < 0 : op == OP_LTEQ ? r <= 0 : op == OP_GT ? r > 0 : r >= 0);
    return 0;
}

/* ---- expressions ---- */

static int eval_name(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    const struct jv *v = scope_get(sc, n->sym);
    if (v) {
        *out = *v;
        return 0;
    }
    if (n->builtin >= 0) {
        *out = func_value(E->rt, n->builtin, jv_undef());
        return out->type == JV_FUNC ? 0 : jinja_oom(E->rt);
    }
    *out = jv_undef_named(JV_UNDEF_NAME, NULL, n->str, n->len);
    return 0;
}

static int eval_seq(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jinja_rt *rt = E->rt;
    int rc = n->kind == N_DICT ? jv_dict_new(rt, n->n, out) : jv_list_new(rt, n->n, out);
    for (size_t i = 0; rc == 0 && i < n->n; i++) {
        struct jv k, v;
        rc = eval_expr(E, sc, n->items[i], &k);
        if (rc == 0 && n->kind == N_DICT && (rc = eval_expr(E, sc, n->items2[i], &v)) == 0)
            rc = jv_dict_set(rt, out->u.d, k, v);
        else if (rc == 0 && n->kind != N_DICT)
            rc = jv_list_push(rt, out->u.l, k);
    }
    if (n->kind == N_TUPLE)
        out->flags = JV_F_TUPLE;
    return rc;
}

static int eval_call(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jv fn;
    struct jargs a;
    int rc = eval_expr(E, sc, n->a, &fn);
    if (rc == 0)
        rc = eval_args(E, sc, n, &a);
    return rc ? rc : jinja_call_value(E->rt, fn, &a, out);
}

static int eval_filter(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv in,
                       struct jv *out)
{
    struct jargs a;
    int rc = eval_args(E, sc, n, &a);
    return rc ? rc : jinja_call_filter(E->rt, n->builtin, in, &a, out);
}

static int eval_compare(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jv left, right;
    bool ok = true;
    int rc = eval_expr(E, sc, n->a, &left);
    for (size_t i = 0; rc == 0 && ok && i < n->n; i++) {
        if ((rc = eval_expr(E, sc, n->items[i], &right)))
            break;
        rc = compare(E->rt, n->ops[i], left, right, &ok);
        left = right;
    }
    *out = jv_bool(ok);
    return rc;
}

static int eval_unary(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jv v;
    int rc = eval_expr(E, sc, n->a, &v);
    if (rc)
        return rc;
    if (n->kind == N_NOT) {
        *out = jv_bool(!jv_truthy(&v));
        return 0;
    }
    if (v.type == JV_UNDEF)
        return jv_undef_raise(E->rt, &v);
    bool neg = n->kind == N_NEG;
    if (v.type == JV_FLOAT)
        *out = jv_float(neg ? -v.u.f : v.u.f);
    else if (v.type == JV_INT || v.type == JV_BOOL)
        *out = jv_int(neg ? -ival(&v) : ival(&v));
    else
        return jinja_fail(E->rt, "TypeError", "bad operand type for unary %c: '%s'",
                          neg ? '-' : '+', jv_type_name(&v));
    return 0;
}

static int eval_concat(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jinja_rt *rt = E->rt;
    struct buf b;
    buf_init(&b, rt->max_out);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n->n; i++) {
        struct jv v;
        if ((rc = eval_expr(E, sc, n->items[i], &v)) == 0)
            rc = jv_to_str(rt, &v, &b);
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    buf_deinit(&b);
    return rc;
}

static int eval_getattr(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jv obj, key = jv_undef();
    int rc = eval_expr(E, sc, n->a, &obj);
    if (rc == 0 && n->kind == N_GETITEM)
        rc = eval_expr(E, sc, n->b, &key);
    if (rc)
        return rc;
    if (n->kind == N_GETATTR) /* n->builtin: 1 when some type has a method of this name */
        return jinja_getattr_hint(E->rt, obj, n->str, n->len, n->builtin == 1, out);
    return jinja_getitem(E->rt, obj, key, out);
}

static int eval_slice(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jv obj, parts[3];
    const struct jv *pp[3] = {NULL, NULL, NULL};
    const struct jnode *pn[3] = {n->b, n->c, n->d};
    int rc = eval_expr(E, sc, n->a, &obj);
    for (int k = 0; rc == 0 && k < 3; k++)
        if (pn[k] && (rc = eval_expr(E, sc, pn[k], &parts[k])) == 0)
            pp[k] = &parts[k];
    return rc ? rc : do_slice(E, obj, pp, out);
}

static int eval_expr(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv *out)
{
    struct jinja_rt *rt = E->rt;
    if (!n)
        return jinja_fail(rt, "RuntimeError", "empty expression");
    int rc = step(E, n);
    if (rc)
        return rc;
    if (++rt->depth > rt->max_depth) {
        rt->depth--;
        return jinja_fail(rt, "RecursionError", "maximum recursion depth exceeded");
    }
    struct jv a, b;
    bool t = false;
    switch (n->kind) {
    case N_CONST: *out = n->value; break;
    case N_NAME: rc = eval_name(E, sc, n, out); break;
    case N_LIST:
    case N_TUPLE:
    case N_DICT: rc = eval_seq(E, sc, n, out); break;
    case N_GETATTR:
    case N_GETITEM: rc = eval_getattr(E, sc, n, out); break;
    case N_SLICE: rc = eval_slice(E, sc, n, out); break;
    case N_CALL: rc = eval_call(E, sc, n, out); break;
    case N_FILTER:
        if ((rc = eval_expr(E, sc, n->a, &a)) == 0)
            rc = eval_filter(E, sc, n, a, out);
        break;
    case N_TEST: {
        struct jargs args;
        if ((rc = eval_expr(E, sc, n->a, &a)) == 0 && (rc = eval_args(E, sc, n, &args)) == 0)
            rc = jinja_call_test(rt, n->builtin, a, &args, &t);
        *out = jv_bool(n->flag ? !t : t);
        break;
    }
    case N_BINOP:
        if ((rc = eval_expr(E, sc, n->a, &a)) == 0 && (rc = eval_expr(E, sc, n->b, &b)) == 0)
            rc = jinja_binop(rt, n->op, a, b, out);
        break;
    case N_NEG:
    case N_POS:
    case N_NOT: rc = eval_unary(E, sc, n, out); break;
    case N_AND:
    case N_OR:
        rc = eval_expr(E, sc, n->a, out);
        if (rc == 0 && jv_truthy(out) == (n->kind == N_AND))
            rc = eval_expr(E, sc, n->b, out);
        break;
    case N_COMPARE: rc = eval_compare(E, sc, n, out); break;
    case N_COND:
        rc = eval_expr(E, sc, n->b, &a);
        if (rc == 0 && jv_truthy(&a))
            rc = eval_expr(E, sc, n->a, out);
        else if (rc == 0 && n->c)
            rc = eval_expr(E, sc, n->c, out);
        else if (rc == 0)
            *out = jv_undef_named(JV_UNDEF_PLAIN, NULL, "", 0);
        break;
    case N_CONCAT: rc = eval_concat(E, sc, n, out); break;
    default: rc = jinja_fail(rt, "RuntimeError", "not an expression");
    }
    rt->depth--;
    return rc;
}

/* ---- statements ---- */

/* bind: assigns v to a target: a name, or a tuple of names (unpacking v). */
static int bind(struct eval *E, struct jscope *sc, const struct jnode *target, struct jv v)
{
    struct jinja_rt *rt = E->rt;
    if (target->kind == N_NAME)
        return scope_set(E, sc, target->sym, v);
    struct jv items;
    int rc = jv_iter_list(rt, &v, &items);
    if (rc)
        return rc;
    if (items.u.l->n != target->n)
        return jinja_fail(rt, "ValueError",
                          items.u.l->n > target->n ? "too many values to unpack (expected %zu)"
                                                   : "not enough values to unpack (expected %zu)",
                          target->n);
    for (size_t i = 0; rc == 0 && i < target->n; i++)
        rc = scope_set(E, sc, target->items[i]->sym, items.u.l->v[i]);
    return rc;
}

/* apply_filters: a filter chain whose innermost input is `in` (set/filter blocks). */
static int apply_filters(struct eval *E, struct jscope *sc, const struct jnode *f, struct jv in,
                         struct jv *out)
{
    if (!f) {
        *out = in;
        return 0;
    }
    struct jv v;
    int rc = apply_filters(E, sc, f->a, in, &v);
    return rc ? rc : eval_filter(E, sc, f, v, out);
}

static int run_loop(struct eval *E, struct jscope *sc, const struct jnode *n, struct jv items,
                    struct jloop *parent)
{
    struct jinja_rt *rt = E->rt;
    struct jloop *l = jinja_alloc(rt, sizeof *l);
    if (!l)
        return jinja_oom(rt);
    *l = (struct jloop){.items = items,
                        .parent = parent,
                        .node = n,
                        .scope = sc,
                        .depth0 = parent ? parent->depth0 + 1 : 0};
    struct jv lv = {.type = JV_LOOP, .u.loop = l};
    int rc = 0;
    struct jscope *it = NULL;
    for (size_t i = 0; rc == 0 && i < items.u.l->n; i++) {
        l->index0 = i;
        if ((rc = step(E, n)))
            break;
        if (it && !it->captured) { /* a fresh, empty scope each iteration; reuse its memory */
            it->n = 0;
        } else if (!(it = scope_new(E, sc))) {
            return jinja_oom(rt);
        }
        rc = bind(E, it, n->a, items.u.l->v[i]);
        if (rc == 0 && E->sym_loop >= 0)
            rc = scope_set(E, it, E->sym_loop, lv);
        if (rc == 0)
            rc = exec_body(E, it, n->items, n->n);
        if (rc == SIG_CONTINUE)
            rc = 0;
    }
    return rc == SIG_BREAK ? 0 : rc;
}

static int exec_for(struct eval *E, struct jscope *sc, const struct jnode *n)
{
    struct jinja_rt *rt = E->rt;
    struct jv iter, items;
    int rc = eval_expr(E, sc, n->b, &iter);
    if (rc == 0)
        rc = jv_iter_list(rt, &iter, &items);
    if (rc == 0 && n->c) { /* {% for x in xs if cond %}: filter first; loop.* counts the rest */
        struct jv kept;
        rc = jv_list_new(rt, 0, &kept);
        for (size_t i = 0; rc == 0 && i < items.u.l->n; i++) {
            struct jscope *it = scope_new(E, sc);
            struct jv c;
            rc = it ? bind(E, it, n->a, items.u.l->v[i]) : jinja_oom(rt);
            if (rc == 0 && (rc = eval_expr(E, it, n->c, &c)) == 0 && jv_truthy(&c))
                rc = jv_list_push(rt, kept.u.l, items.u.l->v[i]);
        }
        items = kept;
    }
    if (rc)
        return rc;
    if (items.u.l->n == 0) {
        struct jscope *es = n->n2 ? scope_new(E, sc) : sc;
        return es ? exec_body(E, es, n->items2, n->n2) : jinja_oom(rt);
    }
    return run_loop(E, sc, n, items, NULL); /* loop.depth counts recursive loop() calls */
}

static int exec_set(struct eval *E, struct jscope *sc, const struct jnode *n)
{
    struct jinja_rt *rt = E->rt;
    struct jv v;
    int rc;
    switch (n->kind) {
    case S_SET: rc = eval_expr(E, sc, n->b, &v); return rc ? rc : bind(E, sc, n->a, v);
    case S_SET_NS: {
        const struct jv *ns = scope_get(sc, n->a->a->sym);
        if (!ns || ns->type != JV_NS)
            return jinja_fail(rt, "TemplateRuntimeError",
                              "cannot assign attribute on non-namespace object");
        if ((rc = eval_expr(E, sc, n->b, &v)))
            return rc;
        struct jv key;
        rc = jv_str_copy(rt, n->a->str, n->a->len, &key);
        return rc ? rc : jv_dict_set(rt, &ns->u.ns->attrs, key, v);
    }
    default: { /* S_SET_BLOCK */
        struct jv body;
        rc = capture(E, sc, n->items, n->n, &body);
        if (rc == 0)
            rc = apply_filters(E, sc, n->c, body, &v);
        return rc ? rc : bind(E, sc, n->a, v);
    }
    }
}

static int exec_call_block(struct eval *E, struct jscope *sc, const struct jnode *n)
{
    struct jinja_rt *rt = E->rt;
    struct jv fn, res;
    struct jargs a;
    int rc = eval_expr(E, sc, n->a->a, &fn);
    if (rc == 0)
        rc = eval_args(E, sc, n->a, &a);
    if (rc)
        return rc;
    if (fn.type != JV_MACRO)
        return jinja_fail(rt, "TypeError", "a call block needs a macro, not '%s'",
                          jv_type_name(&fn));
    struct jmacro *caller = jinja_alloc(rt, sizeof *caller), *m = jinja_alloc(rt, sizeof *m);
    if (!caller || !m)
        return jinja_oom(rt);
    *caller = (struct jmacro){.def = n, .closure = sc, .caller = jv_undef()};
    capture_scope(sc);
    *m = *fn.u.m;
    m->caller = (struct jv){.type = JV_MACRO, .u.m = caller};
    struct jv mv = {.type = JV_MACRO, .u.m = m};
    rc = call_macro(E, &mv, &a, &res);
    return rc ? rc : emit(E, res.u.s.p, res.u.s.n);
}

/* plain_str: a str that is not Markup (so '+' just joins it). */
static bool plain_str(const struct jv *v)
{
    return v->type == JV_STR && !(v->flags & JV_F_SAFE);
}

/*
 * print_sum: prints `a + b + c ...` (a left-nested chain of '+'). While the operands are plain
 * strings it keeps them as pieces and writes them one after another instead of building each
 * intermediate string; at the first operand that is not, it joins the pieces so far and goes
 * on with the ordinary '+'. Operands are evaluated in the chain's order and each '+' is
 * checked before the next operand is evaluated, as Python does.
 */
static int print_sum(struct eval *E, struct jscope *sc, const struct jnode *n)
{
    enum { MAX_CHAIN = 32 };
    const struct jnode *chain[MAX_CHAIN];
    size_t k = 0;
    for (; n->kind == N_BINOP && n->op == OP_ADD && k < MAX_CHAIN; n = n->a)
        chain[k++] = n;
    struct jv acc, pieces[MAX_CHAIN + 1];
    size_t np = 0, total = 0;
    int rc = eval_expr(E, sc, n, &acc); /* the leftmost operand (or the sum below the cap) */
    bool joining = rc == 0 && plain_str(&acc);
    if (joining)
        pieces[np++] = acc, total = acc.u.s.n;
    for (size_t i = k; rc == 0 && i-- > 0;) {
        struct jv b;
        if ((rc = eval_expr(E, sc, chain[i]->b, &b)))
            break;
        if (joining && plain_str(&b)) {
            pieces[np++] = b;
            total += b.u.s.n;
            continue;
        }
        if (joining) { /* the pieces so far become one string, and '+' takes over */
            char *d = jinja_alloc(E->rt, total);
            if (!d)
                return jinja_oom(E->rt);
            for (size_t j = 0, at = 0; j < np; at += pieces[j++].u.s.n)
                memcpy(d + at, pieces[j].u.s.p, pieces[j].u.s.n);
            acc = jv_str(d, total);
            joining = false;
        }
        rc = jinja_binop(E->rt, OP_ADD, acc, b, &acc);
    }
    if (rc)
        return rc;
    for (size_t j = 0; joining && j < np; j++)
        if ((rc = emit(E, pieces[j].u.s.p, pieces[j].u.s.n)))
            return rc;
    if (joining)
        return 0;
    if (acc.type == JV_STR)
        return emit(E, acc.u.s.p, acc.u.s.n);
    rc = jv_to_str(E->rt, &acc, E->rt->out);
    if (rc == ERR_LIMIT)
        jinja_fail(E->rt, "RuntimeError", "the template's output exceeded its limit");
    return rc;
}

static int exec_stmt(struct eval *E, struct jscope *sc, const struct jnode *n)
{
    struct jinja_rt *rt = E->rt;
    int rc = step(E, n);
    if (rc)
        return rc;
    struct jv v;
    struct jscope *child;
    switch (n->kind) {
    case S_DATA: return emit(E, n->str, n->len);
    case S_PRINT:
        if (n->a->kind == N_BINOP && n->a->op == OP_ADD)
            return print_sum(E, sc, n->a);
        if ((rc = eval_expr(E, sc, n->a, &v)))
            return rc;
        if (v.type == JV_STR)
            return emit(E, v.u.s.p, v.u.s.n);
        rc = jv_to_str(rt, &v, rt->out);
        if (rc == ERR_LIMIT)
            jinja_fail(rt, "RuntimeError", "the template's output exceeded its limit");
        return rc;
    case S_IF:
        if ((rc = eval_expr(E, sc, n->a, &v)))
            return rc;
        return jv_truthy(&v) ? exec_body(E, sc, n->items, n->n)
                             : exec_body(E, sc, n->items2, n->n2);
    case S_FOR: return exec_for(E, sc, n);
    case S_SET:
    case S_SET_NS:
    case S_SET_BLOCK: return exec_set(E, sc, n);
    case S_MACRO: {
        struct jmacro *m = jinja_alloc(rt, sizeof *m);
        if (!m)
            return jinja_oom(rt);
        *m = (struct jmacro){.def = n, .closure = sc, .caller = jv_undef()};
        capture_scope(sc);
        return scope_set(E, sc, n->sym, (struct jv){.type = JV_MACRO, .u.m = m});
    }
    case S_CALL_BLOCK: return exec_call_block(E, sc, n);
    case S_FILTER_BLOCK:
        if (!(child = scope_new(E, sc)))
            return jinja_oom(rt);
        if ((rc = capture(E, child, n->items, n->n, &v)) ||
            (rc = apply_filters(E, sc, n->c, v, &v)))
            return rc;
        return v.type == JV_STR ? emit(E, v.u.s.p, v.u.s.n) : jv_to_str(rt, &v, rt->out);
    case S_WITH:
        if (!(child = scope_new(E, sc)))
            return jinja_oom(rt);
        for (size_t i = 0; i < n->n2; i++) /* values are evaluated in the outer scope */
            if ((rc = eval_expr(E, sc, n->items2[i], &v)) ||
                (rc = bind(E, child, n->a->items[i], v)))
                return rc;
        return exec_body(E, child, n->items, n->n);
    case S_BODY:
        if (!(child = scope_new(E, sc)))
            return jinja_oom(rt);
        return exec_body(E, child, n->items, n->n);
    case S_BREAK: return SIG_BREAK;
    case S_CONTINUE: return SIG_CONTINUE;
    default: return jinja_fail(rt, "RuntimeError", "not a statement");
    }
}

static int exec_body(struct eval *E, struct jscope *sc, struct jnode *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = exec_stmt(E, sc, items[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- objects that print specially ---- */

int jinja_print_object(struct jinja_rt *rt, const struct jv *v, struct buf *out)
{
    switch (v->type) {
    case JV_MACRO:
        if (v->u.m->def->kind == S_CALL_BLOCK)
            return buf_append_str(out, "<Macro 'caller'>");
        return buf_printf(out, "<Macro '%.*s'>", (int)v->u.m->def->len, v->u.m->def->str);
    case JV_LOOP:
        return buf_printf(out, "<LoopContext %zu/%zu>", v->u.loop->index0 + 1,
                          v->u.loop->items.u.l->n);
    case JV_FUNC: return buf_append_str(out, "<built-in method>");
    default: (void)rt; return buf_printf(out, "<jinja2.utils.%s object>", jv_type_name(v));
    }
}

size_t jinja_loop_length(const struct jv *loop)
{
    return loop->u.loop->items.u.l->n;
}

int jinja_loop_items(struct jinja_rt *rt, const struct jv *loop, struct jv *out)
{
    (void)rt;
    *out = loop->u.loop->items;
    return 0;
}

/* ---- entry ---- */

static int find_sym(const struct jinja_template *t, const char *s)
{
    size_t n = strlen(s);
    for (int i = 0; i < t->n_syms; i++)
        if (t->sym_lens[i] == n && memcmp(t->sym_names[i], s, n) == 0)
            return i;
    return -1;
}

static int find_symn(const struct jinja_template *t, const char *s, size_t n)
{
    for (int i = 0; i < t->n_syms; i++)
        if (t->sym_lens[i] == n && memcmp(t->sym_names[i], s, n) == 0)
            return i;
    return -1;
}

int jinja_render(const struct jinja_template *t, const struct json_t *vars, const char *now,
                 const struct jinja_limits *limits, struct buf *out, char *err, size_t errlen)
{
    struct jinja_limits lim = limits ? *limits : (struct jinja_limits){0};
    struct arena arena;
    arena_init(&arena, lim.max_memory ? lim.max_memory : (size_t)64 << 20, 64 << 10);
    if (err && errlen)
        err[0] = 0;
    char dummy[1] = {0};
    struct jinja_rt rt = {.arena = &arena,
                          .err = err && errlen ? err : dummy,
                          .errlen = err && errlen ? errlen : 1,
                          .max_steps = lim.max_steps ? lim.max_steps : 10000000,
                          .max_depth = lim.max_depth ? lim.max_depth : 200,
                          .max_out = lim.max_output ? lim.max_output : (size_t)16 << 20,
                          .now = now,
                          .out = out};
    struct eval E = {.tpl = t,
                     .rt = &rt,
                     .sym_loop = find_sym(t, "loop"),
                     .sym_varargs = find_sym(t, "varargs"),
                     .sym_kwargs = find_sym(t, "kwargs"),
                     .sym_caller = find_sym(t, "caller")};
    rt.ctx = &E;
    struct buf scratch;
    buf_init(&scratch, rt.max_out);
    rt.scratch = &scratch;
    size_t limit_saved = out->limit;
    if (!out->limit || out->limit > out->n + rt.max_out)
        out->limit = out->n + rt.max_out;
    int rc = 0;
    for (void *it = json_object_iter((json_t *)vars); rc == 0 && it;
         it = json_object_iter_next((json_t *)vars, it)) {
        int sym = find_symn(t, json_object_iter_key(it), json_object_iter_key_len(it));
        struct jv v;
        if (sym >= 0 && (rc = jv_from_json(&rt, json_object_iter_value(it), &v)) == 0)
            rc = scope_set(&E, &E.root, sym, v);
    }
    if (rc == 0)
        rc = exec_body(&E, &E.root, t->body, t->n);
    if (rc == SIG_BREAK || rc == SIG_CONTINUE)
        rc = 0;
    if (rc && !rt.err[0])
        jinja_fail(&rt, rc == ERR_LIMIT ? "RuntimeError" : "RuntimeError",
                   rc == ERR_LIMIT ? "a render limit was exceeded" : "render failed");
    out->limit = limit_saved;
    buf_deinit(&scratch);
    arena_deinit(&arena);
    return rc;
}
