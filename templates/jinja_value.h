/*
 * jinja_value: the values a Jinja2 template computes with, with Python's semantics (what
 * jinja2 delegates to Python): str/repr printing, ==, <, truthiness, +, *, JSON in (from
 * jansson) and out (json.dumps, as transformers' tojson).
 *
 * A struct jv is a small value passed by copy. Everything it points to lives in the render's
 * arena (struct jinja_rt) and is freed with it; values are immutable after construction
 * except namespaces (`set ns.x = ...`), as in jinja2's immutable sandbox. One render, one
 * thread.
 */
#ifndef KILN_JINJA_VALUE_H
#define KILN_JINJA_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"

enum jv_type {
    JV_UNDEF, /* jinja2's Undefined: prints as "", iterates as empty, fails on most use */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* list, or tuple with JV_F_TUPLE */
    JV_DICT, /* insertion-ordered */
    JV_NS,   /* namespace() */
    JV_MACRO,
    JV_FUNC, /* a builtin function or a bound method */
    JV_LOOP, /* the `loop` object of a for loop */
    JV_CYCLER,
    JV_JOINER,
};

#define JV_F_TUPLE 1u /* JV_LIST printed as a tuple */
#define JV_F_ITEMS 2u /* JV_LIST printed as dict_items([...]) */
#define JV_F_SAFE 4u  /* JV_STR that is markupsafe's Markup (the `safe` filter's result) */

/* How an undefined value came about (for jinja2's error message). */
enum jv_undef_kind {
    JV_UNDEF_PLAIN,
    JV_UNDEF_NAME,   /* 'x' is undefined */
    JV_UNDEF_ATTR,   /* 'dict object' has no attribute 'x' */
    JV_UNDEF_ELEM,   /* list object has no element 5 */
    JV_UNDEF_UNSAFE, /* the sandbox forbids the attribute: SecurityError when used */
};

struct jlist;
struct jdict;
struct jns;
struct jmacro;
struct jfunc;
struct jloop;
struct jcycler;

struct jv {
    uint8_t type;
    uint8_t flags; /* JV_F_*; for JV_UNDEF the type of the object looked into */
    uint16_t kind; /* JV_UNDEF: enum jv_undef_kind */
    uint32_t pad;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s; /* JV_STR; JV_UNDEF: the missing name */
        struct jlist *l;
        struct jdict *d;
        struct jns *ns;
        struct jmacro *m;
        struct jfunc *fn;
        struct jloop *loop;
        struct jcycler *cy;
    } u;
};

struct jlist {
    size_t n, cap;
    struct jv *v;
};

struct jdict {
    size_t n, cap;
    struct jv *k, *v;
};

struct jns {
    struct jdict attrs;
};

struct jcycler {
    struct jlist items;
    size_t pos;
    struct jv sep; /* joiner: the separator; used once called */
    bool used;
};

/* ---- the render's runtime: allocation, errors, limits ---- */

struct jinja_rt {
    struct arena *arena;
    char *err; /* "ExceptionClass: message" of the first error */
    size_t errlen;
    int line; /* template line of the node being evaluated */
    uint64_t steps, max_steps;
    int depth, max_depth;
    size_t max_out;
    const char *now;     /* "YYYY-MM-DDTHH:MM:SS" for strftime_now, or NULL: the real clock */
    struct buf *out;     /* where output goes now */
    struct buf *scratch; /* reused by builtins that build a string (tojson) */
    void *ctx;           /* the evaluator's state (jinja_eval.c) */
};

/* jinja_fail: records "cls: message" (first error wins) and returns ERR_INVAL. */
int jinja_fail(struct jinja_rt *rt, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* jinja_oom: the arena is exhausted: records a MemoryError and returns ERR_LIMIT. */
int jinja_oom(struct jinja_rt *rt);

/* ---- constructors ---- */

static inline struct jv jv_undef(void)
{
    return (struct jv){.type = JV_UNDEF};
}
static inline struct jv jv_none(void)
{
    return (struct jv){.type = JV_NONE};
}
static inline struct jv jv_bool(bool b)
{
    return (struct jv){.type = JV_BOOL, .u.b = b};
}
static inline struct jv jv_int(int64_t i)
{
    return (struct jv){.type = JV_INT, .u.i = i};
}
static inline struct jv jv_float(double f)
{
    return (struct jv){.type = JV_FLOAT, .u.f = f};
}
static inline struct jv jv_str(const char *p, size_t n)
{
    return (struct jv){.type = JV_STR, .u.s = {p, n}};
}
/* jv_undef_named: an undefined for a missing name, attribute (obj given) or element. */
struct jv jv_undef_named(enum jv_undef_kind kind, const struct jv *obj, const char *name, size_t n);
struct jv jv_undef_elem(const struct jv *obj, int64_t index);

/* jv_str_copy: a string value owning a copy of p[0..n) in the arena. */
int jv_str_copy(struct jinja_rt *rt, const char *p, size_t n, struct jv *out);
/* jv_list_new / jv_dict_new: empty containers with room for cap items. */
int jv_list_new(struct jinja_rt *rt, size_t cap, struct jv *out);
int jv_dict_new(struct jinja_rt *rt, size_t cap, struct jv *out);
/* jv_list_push: appends (while the list is being built). */
int jv_list_push(struct jinja_rt *rt, struct jlist *l, struct jv v);
/* jv_dict_set: sets key (Python equality: 1 and 1.0 and True are one key). */
int jv_dict_set(struct jinja_rt *rt, struct jdict *d, struct jv key, struct jv val);
/* jv_dict_get: the value of key, or NULL. */
const struct jv *jv_dict_get(const struct jdict *d, struct jv key);
const struct jv *jv_dict_get_str(const struct jdict *d, const char *s, size_t n);

/* ---- Python semantics ---- */

/* jv_type_name: Python's type name ("str", "NoneType", "dict", ...). */
const char *jv_type_name(const struct jv *v);
/* jv_truthy: Python bool(v). */
bool jv_truthy(const struct jv *v);
/* jv_eq: Python ==. */
bool jv_eq(const struct jv *a, const struct jv *b);
/* jv_cmp: Python <, <=, >, >= as -1/0/1 in *r; a TypeError when not comparable. */
int jv_cmp(struct jinja_rt *rt, const struct jv *a, const struct jv *b, const char *op, int *r);
/* jv_len: Python len(); TypeError for values without one. Undefined has length 0. */
int jv_len(struct jinja_rt *rt, const struct jv *v, size_t *n);
/* jv_to_str: appends Python str(v) (undefined: nothing). */
int jv_to_str(struct jinja_rt *rt, const struct jv *v, struct buf *out);
/* jv_repr: appends Python repr(v). */
int jv_repr(struct jinja_rt *rt, const struct jv *v, struct buf *out);
/* jv_as_str: str(v) as a string value (no copy when v is already a string). */
int jv_as_str(struct jinja_rt *rt, const struct jv *v, struct jv *out);
/* jv_float_repr: Python repr of a float ("1.0", "1e+16", "0.30000000000000004"). */
int jv_float_repr(double f, struct buf *out);
/* jv_iter_list: the items iterating v yields (str: characters; dict: keys; undefined:
 * none), as a list; TypeError when v is not iterable. */
int jv_iter_list(struct jinja_rt *rt, const struct jv *v, struct jv *out);

/* json.dumps options. */
struct jv_json_opts {
    const char *indent; /* NULL: None (one line); else the string repeated per level */
    size_t indent_n;
    bool indent_spaces;   /* indent is all spaces (written a word at a time) */
    const char *item_sep; /* NULL: ", " without indent, "," with */
    const char *key_sep;  /* NULL: ": " */
    bool sort_keys;
    bool ensure_ascii;
};

/* jv_tojson: appends json.dumps(v, **opts) (transformers' tojson: ensure_ascii=False). */
int jv_tojson(struct jinja_rt *rt, const struct jv *v, const struct jv_json_opts *opts,
              struct buf *out);

/* jv_from_json: converts a jansson value (objects keep their key order). */
struct json_t;
int jv_from_json(struct jinja_rt *rt, const struct json_t *j, struct jv *out);

/* jv_undef_raise: the UndefinedError for using v (an undefined) where a value is needed. */
int jv_undef_raise(struct jinja_rt *rt, const struct jv *v);

#endif
