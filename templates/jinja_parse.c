/*
 * jinja_parse: jinja2's grammar, by recursive descent over the tokens, into struct jnode
 * trees allocated in the template's arena. Expression precedence, from loosest:
 * conditional (a if b else c), or, and, not, comparisons (== != < <= > >= in, not in;
 * chained), + -, ~, * / // %, **, unary - +, then primary with postfix . [] () and
 * filters | and tests `is`. Filters and tests are resolved to builtins here: an unknown
 * one is a compile error, as in jinja2.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "jinja_internal.h"

#define MAX_NEST 100 /* parser recursion: nested expressions and blocks */

struct parser {
    struct jinja_template *tpl;
    const struct jtoken *t;
    size_t n, pos;
    char *err;
    size_t errlen;
    int depth;
    /* symbol table being built */
    const char **names;
    size_t *lens;
    int nsyms, capsyms;
};

/* A growable list of nodes, copied into the arena when complete. */
struct nodevec {
    struct jnode **v;
    size_t n, cap;
};

static int parse_failv(struct parser *P, const char *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int parse_fail(struct parser *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int parse_fail_cls(struct parser *P, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int parse_fail(struct parser *P, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = parse_failv(P, "TemplateSyntaxError", fmt, ap);
    va_end(ap);
    return rc;
}

static int parse_fail_cls(struct parser *P, const char *cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = parse_failv(P, cls, fmt, ap);
    va_end(ap);
    return rc;
}

static int parse_failv(struct parser *P, const char *cls, const char *fmt, va_list ap)
{
    if (P->err && P->errlen && !P->err[0]) {
        int k = snprintf(P->err, P->errlen, "%s: ", cls);
        if (k >= 0 && (size_t)k < P->errlen)
            k += vsnprintf(P->err + k, P->errlen - (size_t)k, fmt, ap);
        const struct jtoken *at = &P->t[P->pos < P->n ? P->pos : P->n - 1];
        if (k >= 0 && (size_t)k < P->errlen)
            snprintf(P->err + k, P->errlen - (size_t)k, " (line %d, column %d)", at->line,
                     at->col);
    }
    return ERR_PARSE;
}

static const struct jtoken *cur(struct parser *P)
{
    const struct jtoken *t = &P->t[P->pos];
    if (t->type == T_LEXERR && P->err && P->errlen && !P->err[0]) /* the lexer's error */
        snprintf(P->err, P->errlen, "%.*s", (int)t->n, t->p);
    return t;
}

static const struct jtoken *peek(struct parser *P, size_t k)
{
    return &P->t[P->pos + k < P->n ? P->pos + k : P->n - 1];
}

static void next(struct parser *P)
{
    if (P->pos + 1 < P->n)
        P->pos++;
}

static bool is_op(const struct jtoken *t, int op)
{
    return t->type == T_OP && t->op == op;
}

static bool is_name(const struct jtoken *t, const char *s)
{
    return t->type == T_NAME && t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static const char *describe(const struct jtoken *t, char *buf, size_t n)
{
    static const char *const ops[] = {
        "+", "-",  "/",  "//", "*",  "%", "**", "~", "[", "]", "(", ")", "{",
        "}", "==", "!=", ">",  ">=", "<", "<=", "=", ".", ":", "|", ",", ";"};
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_VAR_END: return "end of print statement";
    case T_BLOCK_END: return "end of statement block";
    case T_VAR_BEGIN: return "begin of print statement";
    case T_BLOCK_BEGIN: return "begin of statement block";
    case T_NAME: snprintf(buf, n, "%.*s", (int)(t->n > 40 ? 40 : t->n), t->p); return buf;
    case T_STRING: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    case T_OP: return t->op < sizeof ops / sizeof *ops ? ops[t->op] : "operator";
    default: return "template data";
    }
}

static int expect_op(struct parser *P, int op, const char *what)
{
    if (!is_op(cur(P), op)) {
        char b[48];
        return parse_fail(P, "expected token '%s', got '%s'", what, describe(cur(P), b, sizeof b));
    }
    next(P);
    return 0;
}

static int expect_type(struct parser *P, int type, const char *what)
{
    if (cur(P)->type != type) {
        char b[48];
        return parse_fail(P, "expected token '%s', got '%s'", what, describe(cur(P), b, sizeof b));
    }
    next(P);
    return 0;
}

static struct jnode *node_new(struct parser *P, int kind)
{
    struct jnode *n = arena_calloc(&P->tpl->arena, 1, sizeof *n);
    if (n) {
        n->kind = (uint8_t)kind;
        n->line = cur(P)->line;
        n->sym = -1;
        n->builtin = -1;
    }
    return n;
}

static int vec_push(struct nodevec *v, struct jnode *n)
{
    if (v->n == v->cap) {
        size_t c = v->cap ? v->cap * 2 : 8;
        struct jnode **nv = realloc(v->v, c * sizeof *nv);
        if (!nv)
            return ERR_NOMEM;
        v->v = nv;
        v->cap = c;
    }
    v->v[v->n++] = n;
    return 0;
}

/* vec_take: moves the list into the arena; *items and *n get it. Frees the vector. */
static int vec_take(struct parser *P, struct nodevec *v, struct jnode ***items, size_t *n)
{
    *items = NULL;
    *n = v->n;
    if (v->n) {
        *items = arena_alloc(&P->tpl->arena, v->n * sizeof **items);
        if (*items)
            memcpy(*items, v->v, v->n * sizeof **items);
    }
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
    return (*n && !*items) ? ERR_NOMEM : 0;
}

/* intern: the symbol id of a variable name. */
static int intern(struct parser *P, const char *s, size_t n)
{
    for (int i = 0; i < P->nsyms; i++)
        if (P->lens[i] == n && memcmp(P->names[i], s, n) == 0)
            return i;
    if (P->nsyms == P->capsyms) {
        int c = P->capsyms ? P->capsyms * 2 : 32;
        const char **nn = realloc(P->names, (size_t)c * sizeof *nn);
        if (nn)
            P->names = nn;
        size_t *nl = realloc(P->lens, (size_t)c * sizeof *nl);
        if (nl)
            P->lens = nl;
        if (!nn || !nl)
            return ERR_NOMEM;
        P->capsyms = c;
    }
    P->names[P->nsyms] = s;
    P->lens[P->nsyms] = n;
    return P->nsyms++;
}

static int name_node(struct parser *P, const struct jtoken *t, struct jnode **out)
{
    struct jnode *n = node_new(P, N_NAME);
    if (!n)
        return ERR_NOMEM;
    n->str = t->p;
    n->len = t->n;
    n->sym = intern(P, t->p, t->n);
    n->builtin = jinja_global_id(t->p, t->n);
    *out = n;
    return n->sym < 0 ? ERR_NOMEM : 0;
}

/* ---- expressions ---- */

static int parse_expression(struct parser *P, bool with_condexpr, struct jnode **out);
static int parse_unary(struct parser *P, bool with_filter, struct jnode **out);
static int parse_primary(struct parser *P, struct jnode **out);
static int parse_postfix(struct parser *P, struct jnode **node);
static int parse_filter_expr(struct parser *P, struct jnode **node);
static int parse_filter(struct parser *P, struct jnode *in, bool start_inline, struct jnode **out);

/* tuple_end: the tokens that end a tuple: }} %} ) and the caller's extra keyword. */
static bool tuple_end(struct parser *P, const char *extra)
{
    const struct jtoken *t = cur(P);
    return t->type == T_VAR_END || t->type == T_BLOCK_END || t->type == T_EOF ||
           is_op(t, OP_RPAREN) || (extra && is_name(t, extra));
}

/* parse_tuple: jinja2's parse_tuple: one expression, or several separated by commas (a
 * tuple). simplified: primaries only (assignment targets). */
static int parse_tuple(struct parser *P, bool simplified, bool with_condexpr, const char *extra,
                       bool explicit_parens, struct jnode **out)
{
    struct nodevec args = {0};
    bool is_tuple = false;
    int rc = 0;
    for (;;) {
        if (args.n && (rc = expect_op(P, OP_COMMA, ",")))
            break;
        if (tuple_end(P, extra))
            break;
        struct jnode *e;
        rc = simplified ? parse_primary(P, &e) : parse_expression(P, with_condexpr, &e);
        if (rc || (rc = vec_push(&args, e)))
            break;
        if (is_op(cur(P), OP_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (rc == 0 && !is_tuple && args.n) {
        *out = args.v[0];
        free(args.v);
        return 0;
    }
    if (rc == 0 && !is_tuple && !explicit_parens) {
        char b[48];
        rc = parse_fail(P, "Expected an expression, got '%s'", describe(cur(P), b, sizeof b));
    }
    if (rc) {
        free(args.v);
        return rc;
    }
    struct jnode *t = node_new(P, N_TUPLE);
    if (!t)
        return ERR_NOMEM;
    *out = t;
    return vec_take(P, &args, &t->items, &t->n);
}

static int parse_list_or_dict(struct parser *P, bool dict, struct jnode **out)
{
    struct jnode *node = node_new(P, dict ? N_DICT : N_LIST);
    struct nodevec keys = {0}, vals = {0};
    int close = dict ? OP_RBRACE : OP_RBRACKET;
    int rc = node ? 0 : ERR_NOMEM;
    next(P); /* [ or { */
    while (rc == 0 && !is_op(cur(P), close)) {
        if (keys.n && (rc = expect_op(P, OP_COMMA, ",")))
            break;
        if (is_op(cur(P), close))
            break;
        struct jnode *k, *v;
        rc = parse_expression(P, true, &k);
        if (rc == 0)
            rc = vec_push(&keys, k);
        if (rc == 0 && dict && (rc = expect_op(P, OP_COLON, ":")) == 0 &&
            (rc = parse_expression(P, true, &v)) == 0)
            rc = vec_push(&vals, v);
    }
    if (rc == 0)
        rc = expect_op(P, close, dict ? "}" : "]");
    if (rc == 0)
        rc = vec_take(P, &keys, &node->items, &node->n);
    if (rc == 0)
        rc = vec_take(P, &vals, &node->items2, &node->n2);
    free(keys.v);
    free(vals.v);
    *out = node;
    return rc;
}

static int parse_primary(struct parser *P, struct jnode **out)
{
    if (++P->depth > MAX_NEST)
        return parse_fail(P, "expression nested too deeply");
    const struct jtoken *t = cur(P);
    int rc = 0;
    struct jnode *n = NULL;
    if (t->type == T_NAME) {
        bool T = is_name(t, "true") || is_name(t, "True");
        bool F = is_name(t, "false") || is_name(t, "False");
        bool N = is_name(t, "none") || is_name(t, "None");
        if (T || F || N) {
            n = node_new(P, N_CONST);
            if (n)
                n->value = N ? jv_none() : jv_bool(T);
        } else {
            rc = name_node(P, t, &n);
        }
        next(P);
    } else if (t->type == T_STRING) {
        n = node_new(P, N_CONST);
        size_t total = 0, k = 0;
        for (; peek(P, k)->type == T_STRING; k++) /* adjacent strings concatenate */
            total += peek(P, k)->n;
        char *buf = arena_alloc(&P->tpl->arena, total + 1);
        if (!n || !buf)
            return ERR_NOMEM;
        size_t o = 0;
        for (; cur(P)->type == T_STRING; next(P)) {
            memcpy(buf + o, cur(P)->p, cur(P)->n);
            o += cur(P)->n;
        }
        n->value = jv_str(buf, o);
    } else if (t->type == T_INT || t->type == T_FLOAT) {
        n = node_new(P, N_CONST);
        if (n)
            n->value = t->type == T_INT ? jv_int(t->i) : jv_float(t->f);
        next(P);
    } else if (is_op(t, OP_LPAREN)) {
        next(P);
        rc = parse_tuple(P, false, true, NULL, true, &n);
        if (rc == 0)
            rc = expect_op(P, OP_RPAREN, ")");
    } else if (is_op(t, OP_LBRACKET) || is_op(t, OP_LBRACE)) {
        rc = parse_list_or_dict(P, is_op(t, OP_LBRACE), &n);
    } else {
        char b[48];
        rc = parse_fail(P, "unexpected '%s'", describe(t, b, sizeof b));
    }
    P->depth--;
    if (rc == 0 && !n)
        rc = ERR_NOMEM;
    *out = n;
    return rc;
}

/* parse_call_args: ( positional, name=value, *args, **kwargs ) into node. */
static int parse_call_args(struct parser *P, struct jnode *node)
{
    struct nodevec pos = {0}, kwv = {0};
    const char *names[64];
    size_t lens[64], nk = 0;
    int rc = expect_op(P, OP_LPAREN, "(");
    while (rc == 0 && !is_op(cur(P), OP_RPAREN)) {
        if ((pos.n || nk || node->b || node->c) && (rc = expect_op(P, OP_COMMA, ",")))
            break;
        if (is_op(cur(P), OP_RPAREN))
            break;
        if (is_op(cur(P), OP_MUL) || is_op(cur(P), OP_POW)) {
            bool kw = is_op(cur(P), OP_POW);
            next(P);
            rc = parse_expression(P, true, kw ? &node->c : &node->b);
        } else if (cur(P)->type == T_NAME && is_op(peek(P, 1), OP_ASSIGN)) {
            if (nk == 64) {
                rc = parse_fail(P, "too many keyword arguments");
                break;
            }
            names[nk] = cur(P)->p;
            lens[nk++] = cur(P)->n;
            next(P);
            next(P);
            struct jnode *v;
            if ((rc = parse_expression(P, true, &v)) == 0)
                rc = vec_push(&kwv, v);
        } else {
            if (nk || node->b || node->c) {
                rc = parse_fail(P, "invalid syntax for function call expression");
                break;
            }
            struct jnode *v;
            if ((rc = parse_expression(P, true, &v)) == 0)
                rc = vec_push(&pos, v);
        }
    }
    if (rc == 0)
        rc = expect_op(P, OP_RPAREN, ")");
    if (rc == 0 && nk) {
        node->names = arena_alloc(&P->tpl->arena, nk * sizeof *node->names);
        node->lens = arena_alloc(&P->tpl->arena, nk * sizeof *node->lens);
        if (!node->names || !node->lens)
            rc = ERR_NOMEM;
        else {
            memcpy(node->names, names, nk * sizeof *names);
            memcpy(node->lens, lens, nk * sizeof *lens);
            node->n_names = nk;
        }
    }
    if (rc == 0)
        rc = vec_take(P, &pos, &node->items, &node->n);
    if (rc == 0)
        rc = vec_take(P, &kwv, &node->items2, &node->n2);
    free(pos.v);
    free(kwv.v);
    return rc;
}

/* parse_subscribed: an index or a slice inside [ ]. */
static int parse_subscribed(struct parser *P, struct jnode **out)
{
    struct jnode *parts[3] = {NULL, NULL, NULL};
    int rc = 0;
    if (is_op(cur(P), OP_COLON)) {
        next(P);
    } else {
        rc = parse_expression(P, true, &parts[0]);
        if (rc || !is_op(cur(P), OP_COLON)) {
            *out = parts[0];
            return rc;
        }
        next(P);
    }
    if (!is_op(cur(P), OP_RBRACKET) && !is_op(cur(P), OP_COMMA) && !is_op(cur(P), OP_COLON))
        rc = parse_expression(P, true, &parts[1]);
    if (rc == 0 && is_op(cur(P), OP_COLON)) {
        next(P);
        if (!is_op(cur(P), OP_RBRACKET) && !is_op(cur(P), OP_COMMA))
            rc = parse_expression(P, true, &parts[2]);
    }
    struct jnode *s = node_new(P, N_SLICE);
    if (!s)
        return ERR_NOMEM;
    s->b = parts[0];
    s->c = parts[1];
    s->d = parts[2];
    *out = s;
    return rc;
}

static int parse_subscript(struct parser *P, struct jnode **node)
{
    if (is_op(cur(P), OP_DOT)) {
        next(P);
        const struct jtoken *t = cur(P);
        struct jnode *n = node_new(P, t->type == T_NAME ? N_GETATTR : N_GETITEM);
        if (!n)
            return ERR_NOMEM;
        n->a = *node;
        if (t->type == T_NAME) {
            n->str = t->p;
            n->len = t->n;
            n->builtin = jinja_is_method_name(t->p, t->n); /* see jinja_getattr_hint */
        } else if (t->type == T_INT) {
            n->b = node_new(P, N_CONST);
            if (!n->b)
                return ERR_NOMEM;
            n->b->value = jv_int(t->i);
        } else {
            return parse_fail(P, "expected name or number");
        }
        next(P);
        *node = n;
        return 0;
    }
    next(P); /* [ */
    struct nodevec args = {0};
    int rc = 0;
    while (rc == 0 && !is_op(cur(P), OP_RBRACKET)) {
        if (args.n && (rc = expect_op(P, OP_COMMA, ",")))
            break;
        struct jnode *a;
        if ((rc = parse_subscribed(P, &a)) == 0)
            rc = vec_push(&args, a);
    }
    if (rc == 0)
        rc = expect_op(P, OP_RBRACKET, "]");
    struct jnode *idx = NULL;
    for (size_t i = 0; rc == 0 && args.n > 1 && i < args.n; i++)
        if (args.v[i]->kind == N_SLICE)
            rc = parse_fail(P, "slices inside a tuple index are not supported");
    if (rc == 0 && args.n == 1) {
        idx = args.v[0];
    } else if (rc == 0) {
        idx = node_new(P, N_TUPLE);
        rc = idx ? vec_take(P, &args, &idx->items, &idx->n) : ERR_NOMEM;
    }
    free(args.v);
    if (rc)
        return rc;
    struct jnode *n = node_new(P, idx->kind == N_SLICE ? N_SLICE : N_GETITEM);
    if (!n)
        return ERR_NOMEM;
    if (idx->kind == N_SLICE)
        *n = *idx;
    else
        n->b = idx;
    n->a = *node;
    *node = n;
    return 0;
}

static int parse_postfix(struct parser *P, struct jnode **node)
{
    for (;;) {
        int rc = 0;
        if (is_op(cur(P), OP_DOT) || is_op(cur(P), OP_LBRACKET)) {
            rc = parse_subscript(P, node);
        } else if (is_op(cur(P), OP_LPAREN)) {
            struct jnode *c = node_new(P, N_CALL);
            if (!c)
                return ERR_NOMEM;
            c->a = *node;
            rc = parse_call_args(P, c);
            *node = c;
        } else {
            return 0;
        }
        if (rc)
            return rc;
    }
}

/* dotted_name: NAME ('.' NAME)* (filter and test names). */
static int dotted_name(struct parser *P, const char **s, size_t *n)
{
    if (cur(P)->type != T_NAME)
        return expect_type(P, T_NAME, "name");
    const char *start = cur(P)->p;
    const char *end = start + cur(P)->n;
    next(P);
    while (is_op(cur(P), OP_DOT) && peek(P, 1)->type == T_NAME) {
        next(P);
        end = cur(P)->p + cur(P)->n;
        next(P);
    }
    *s = start;
    *n = (size_t)(end - start);
    return 0;
}

static int parse_filter(struct parser *P, struct jnode *in, bool start_inline, struct jnode **out)
{
    *out = in;
    while (is_op(cur(P), OP_PIPE) || start_inline) {
        if (!start_inline)
            next(P);
        start_inline = false;
        struct jnode *f = node_new(P, N_FILTER);
        if (!f)
            return ERR_NOMEM;
        size_t name_at = P->pos;
        int rc = dotted_name(P, &f->str, &f->len);
        if (rc)
            return rc;
        f->builtin = jinja_filter_id(f->str, f->len);
        if (f->builtin < 0) {
            P->pos = name_at; /* the error points at the name */
            return parse_fail_cls(P, "TemplateAssertionError", "No filter named '%.*s'.",
                                  (int)f->len, f->str);
        }
        if (is_op(cur(P), OP_LPAREN) && (rc = parse_call_args(P, f)))
            return rc;
        f->a = *out;
        *out = f;
    }
    return 0;
}

static int parse_test(struct parser *P, struct jnode **node)
{
    next(P); /* is */
    bool negated = false;
    if (is_name(cur(P), "not")) {
        next(P);
        negated = true;
    }
    struct jnode *t = node_new(P, N_TEST);
    if (!t)
        return ERR_NOMEM;
    size_t name_at = P->pos;
    int rc = dotted_name(P, &t->str, &t->len);
    if (rc)
        return rc;
    t->builtin = jinja_test_id(t->str, t->len);
    if (t->builtin < 0) {
        P->pos = name_at; /* the error points at the name */
        return parse_fail_cls(P, "TemplateAssertionError", "No test named '%.*s'.", (int)t->len,
                              t->str);
    }
    t->flag = negated;
    t->a = *node;
    const struct jtoken *c = cur(P);
    if (is_op(c, OP_LPAREN)) {
        rc = parse_call_args(P, t);
    } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT ||
                c->type == T_FLOAT || is_op(c, OP_LPAREN) || is_op(c, OP_LBRACKET) ||
                is_op(c, OP_LBRACE)) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is"))
            return parse_fail(P, "You cannot chain multiple tests with is");
        struct jnode *arg;
        rc = parse_primary(P, &arg);
        if (rc == 0)
            rc = parse_postfix(P, &arg);
        if (rc == 0) {
            t->items = arena_alloc(&P->tpl->arena, sizeof *t->items);
            if (!t->items)
                return ERR_NOMEM;
            t->items[0] = arg;
            t->n = 1;
        }
    }
    *node = t;
    return rc;
}

static int parse_filter_expr(struct parser *P, struct jnode **node)
{
    for (;;) {
        int rc;
        if (is_op(cur(P), OP_PIPE)) {
            rc = parse_filter(P, *node, false, node);
        } else if (is_name(cur(P), "is")) {
            rc = parse_test(P, node);
        } else if (is_op(cur(P), OP_LPAREN)) {
            struct jnode *c = node_new(P, N_CALL);
            if (!c)
                return ERR_NOMEM;
            c->a = *node;
            rc = parse_call_args(P, c);
            *node = c;
        } else {
            return 0;
        }
        if (rc)
            return rc;
    }
}

static int parse_unary(struct parser *P, bool with_filter, struct jnode **out)
{
    int rc;
    if (is_op(cur(P), OP_SUB) || is_op(cur(P), OP_ADD)) {
        struct jnode *n = node_new(P, is_op(cur(P), OP_SUB) ? N_NEG : N_POS);
        if (!n)
            return ERR_NOMEM;
        next(P);
        if (++P->depth > MAX_NEST)
            return parse_fail(P, "expression nested too deeply");
        rc = parse_unary(P, false, &n->a);
        P->depth--;
        *out = n;
    } else {
        rc = parse_primary(P, out);
    }
    if (rc == 0)
        rc = parse_postfix(P, out);
    if (rc == 0 && with_filter)
        rc = parse_filter_expr(P, out);
    return rc;
}

static int binary(struct parser *P, int kind, int op, struct jnode *a, struct jnode *b,
                  struct jnode **out)
{
    struct jnode *n = node_new(P, kind);
    if (!n)
        return ERR_NOMEM;
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    *out = n;
    return 0;
}

static int parse_pow(struct parser *P, struct jnode **out)
{
    int rc = parse_unary(P, true, out);
    while (rc == 0 && is_op(cur(P), OP_POW)) {
        next(P);
        struct jnode *r;
        if ((rc = parse_unary(P, true, &r)) == 0)
            rc = binary(P, N_BINOP, OP_POW, *out, r, out);
    }
    return rc;
}

static int parse_math2(struct parser *P, struct jnode **out)
{
    int rc = parse_pow(P, out);
    while (rc == 0 && cur(P)->type == T_OP &&
           (cur(P)->op == OP_MUL || cur(P)->op == OP_DIV || cur(P)->op == OP_FLOORDIV ||
            cur(P)->op == OP_MOD)) {
        int op = cur(P)->op;
        next(P);
        struct jnode *r;
        if ((rc = parse_pow(P, &r)) == 0)
            rc = binary(P, N_BINOP, op, *out, r, out);
    }
    return rc;
}

static int parse_concat(struct parser *P, struct jnode **out)
{
    int rc = parse_math2(P, out);
    if (rc || !is_op(cur(P), OP_TILDE))
        return rc;
    struct nodevec args = {0};
    rc = vec_push(&args, *out);
    while (rc == 0 && is_op(cur(P), OP_TILDE)) {
        next(P);
        struct jnode *r;
        if ((rc = parse_math2(P, &r)) == 0)
            rc = vec_push(&args, r);
    }
    struct jnode *n = rc ? NULL : node_new(P, N_CONCAT);
    if (rc == 0 && !n)
        rc = ERR_NOMEM;
    if (rc == 0)
        rc = vec_take(P, &args, &n->items, &n->n);
    free(args.v);
    *out = n;
    return rc;
}

static int parse_math1(struct parser *P, struct jnode **out)
{
    int rc = parse_concat(P, out);
    while (rc == 0 && (is_op(cur(P), OP_ADD) || is_op(cur(P), OP_SUB))) {
        int op = cur(P)->op;
        next(P);
        struct jnode *r;
        if ((rc = parse_concat(P, &r)) == 0)
            rc = binary(P, N_BINOP, op, *out, r, out);
    }
    return rc;
}

static int compare_op(struct parser *P)
{
    const struct jtoken *t = cur(P);
    if (t->type == T_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT ||
                            t->op == OP_LTEQ || t->op == OP_GT || t->op == OP_GTEQ)) {
        next(P);
        return t->op;
    }
    if (is_name(t, "in")) {
        next(P);
        return OP_IN;
    }
    if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
        next(P);
        next(P);
        return OP_NOTIN;
    }
    return -1;
}

static int parse_compare(struct parser *P, struct jnode **out)
{
    struct jnode *first;
    int rc = parse_math1(P, &first);
    if (rc)
        return rc;
    struct nodevec operands = {0};
    uint8_t ops[64];
    int op;
    while ((op = compare_op(P)) >= 0) {
        struct jnode *r;
        if (operands.n == 64)
            rc = parse_fail(P, "comparison chain too long");
        if (rc == 0)
            rc = parse_math1(P, &r);
        if (rc == 0)
            rc = vec_push(&operands, r);
        if (rc)
            break;
        ops[operands.n - 1] = (uint8_t)op;
    }
    if (rc || operands.n == 0) {
        free(operands.v);
        *out = first;
        return rc;
    }
    struct jnode *n = node_new(P, N_COMPARE);
    if (!n)
        return ERR_NOMEM;
    n->a = first;
    n->ops = arena_alloc(&P->tpl->arena, operands.n);
    if (!n->ops)
        return ERR_NOMEM;
    memcpy(n->ops, ops, operands.n);
    *out = n;
    return vec_take(P, &operands, &n->items, &n->n);
}

static int parse_not(struct parser *P, struct jnode **out)
{
    if (is_name(cur(P), "not")) {
        next(P);
        struct jnode *n = node_new(P, N_NOT);
        if (!n)
            return ERR_NOMEM;
        if (++P->depth > MAX_NEST)
            return parse_fail(P, "expression nested too deeply");
        int rc = parse_not(P, &n->a);
        P->depth--;
        *out = n;
        return rc;
    }
    return parse_compare(P, out);
}

static int parse_and(struct parser *P, struct jnode **out)
{
    int rc = parse_not(P, out);
    while (rc == 0 && is_name(cur(P), "and")) {
        next(P);
        struct jnode *r;
        if ((rc = parse_not(P, &r)) == 0)
            rc = binary(P, N_AND, 0, *out, r, out);
    }
    return rc;
}

static int parse_or(struct parser *P, struct jnode **out)
{
    int rc = parse_and(P, out);
    while (rc == 0 && is_name(cur(P), "or")) {
        next(P);
        struct jnode *r;
        if ((rc = parse_and(P, &r)) == 0)
            rc = binary(P, N_OR, 0, *out, r, out);
    }
    return rc;
}

static int parse_expression(struct parser *P, bool with_condexpr, struct jnode **out)
{
    if (++P->depth > MAX_NEST)
        return parse_fail(P, "expression nested too deeply");
    int rc = parse_or(P, out);
    while (rc == 0 && with_condexpr && is_name(cur(P), "if")) {
        next(P);
        struct jnode *n = node_new(P, N_COND);
        if (!n)
            return ERR_NOMEM;
        n->a = *out;
        rc = parse_or(P, &n->b);
        if (rc == 0 && is_name(cur(P), "else")) {
            next(P);
            rc = parse_expression(P, true, &n->c);
        }
        *out = n;
    }
    P->depth--;
    return rc;
}

/* ---- statements ---- */

static int parse_body(struct parser *P, const char *const *ends, struct jnode ***items, size_t *n);

/* block_end: expects %}. */
static int block_end(struct parser *P)
{
    return expect_type(P, T_BLOCK_END, "end of statement block");
}

/* end_tag: after parse_body stopped at {% name %}: consumes the tag's name (the caller
 * checked which it is); the caller then reads the rest of the tag. */
static const struct jtoken *end_tag(struct parser *P)
{
    next(P); /* {% */
    const struct jtoken *t = cur(P);
    next(P);
    return t;
}

/* assign_target: a name, a tuple of names, or (with_ns) name.attr. */
static int assign_target(struct parser *P, bool with_ns, const char *extra, struct jnode **out)
{
    if (with_ns && cur(P)->type == T_NAME && is_op(peek(P, 1), OP_DOT) &&
        peek(P, 2)->type == T_NAME) {
        struct jnode *ns;
        int rc = name_node(P, cur(P), &ns);
        if (rc)
            return rc;
        next(P);
        next(P);
        struct jnode *n = node_new(P, N_GETATTR);
        if (!n)
            return ERR_NOMEM;
        n->a = ns;
        n->str = cur(P)->p;
        n->len = cur(P)->n;
        next(P);
        *out = n;
        return 0;
    }
    int rc = parse_tuple(P, true, true, extra, false, out);
    if (rc)
        return rc;
    struct jnode *t = *out;
    bool ok = t->kind == N_NAME;
    if (t->kind == N_TUPLE) {
        ok = true;
        for (size_t i = 0; i < t->n; i++)
            ok = ok && t->items[i]->kind == N_NAME;
    }
    if (!ok)
        return parse_fail(P, "can't assign to '%s'", t->kind == N_CONST ? "const" : "expression");
    return 0;
}

static int parse_for(struct parser *P, struct jnode *n)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const ends2[] = {"endfor", NULL};
    int rc = assign_target(P, false, "in", &n->a);
    if (rc == 0 && !is_name(cur(P), "in"))
        rc = parse_fail(P, "expected token 'in'");
    if (rc)
        return rc;
    next(P);
    rc = parse_tuple(P, false, false, "recursive", false, &n->b);
    if (rc == 0 && is_name(cur(P), "if")) {
        next(P);
        rc = parse_expression(P, true, &n->c);
    }
    if (rc == 0 && is_name(cur(P), "recursive")) {
        next(P);
        n->flag = true;
    }
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    if (is_name(end_tag(P), "else")) {
        if ((rc = block_end(P)) || (rc = parse_body(P, ends2, &n->items2, &n->n2)))
            return rc;
        end_tag(P);
    }
    return block_end(P);
}

static int parse_if(struct parser *P, struct jnode *n)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends2[] = {"endif", NULL};
    int rc = parse_tuple(P, false, false, NULL, false, &n->a);
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    const struct jtoken *t = end_tag(P);
    if (is_name(t, "elif")) { /* an elif is an if in the else branch */
        struct jnode *e = node_new(P, S_IF);
        n->items2 = arena_alloc(&P->tpl->arena, sizeof *n->items2);
        if (!e || !n->items2)
            return ERR_NOMEM;
        n->items2[0] = e;
        n->n2 = 1;
        return parse_if(P, e);
    }
    if (is_name(t, "else")) {
        if ((rc = block_end(P)) || (rc = parse_body(P, ends2, &n->items2, &n->n2)))
            return rc;
        end_tag(P);
    }
    return block_end(P);
}

/* parse_signature: (a, b=default, ...) of a macro or call block. */
static int parse_signature(struct parser *P, struct jnode *n)
{
    const char *names[64];
    size_t lens[64];
    int syms[64];
    struct jnode *defs[64];
    size_t k = 0;
    int rc = expect_op(P, OP_LPAREN, "(");
    while (rc == 0 && !is_op(cur(P), OP_RPAREN)) {
        if (k && (rc = expect_op(P, OP_COMMA, ",")))
            break;
        if (is_op(cur(P), OP_RPAREN))
            break;
        if (k == 64 || cur(P)->type != T_NAME) {
            rc = k == 64 ? parse_fail(P, "too many parameters") : expect_type(P, T_NAME, "name");
            break;
        }
        names[k] = cur(P)->p;
        lens[k] = cur(P)->n;
        syms[k] = intern(P, cur(P)->p, cur(P)->n);
        defs[k] = NULL;
        next(P);
        if (is_op(cur(P), OP_ASSIGN)) {
            next(P);
            rc = parse_expression(P, true, &defs[k]);
        } else if (k && defs[k - 1]) {
            rc = parse_fail(P, "non-default argument follows default argument");
        }
        k++;
    }
    if (rc == 0)
        rc = expect_op(P, OP_RPAREN, ")");
    if (rc || k == 0)
        return rc;
    struct arena *a = &P->tpl->arena;
    n->names = arena_alloc(a, k * sizeof *n->names);
    n->lens = arena_alloc(a, k * sizeof *n->lens);
    n->syms = arena_alloc(a, k * sizeof *n->syms);
    n->items2 = arena_alloc(a, k * sizeof *n->items2);
    if (!n->names || !n->lens || !n->syms || !n->items2)
        return ERR_NOMEM;
    memcpy(n->names, names, k * sizeof *names);
    memcpy(n->lens, lens, k * sizeof *lens);
    memcpy(n->syms, syms, k * sizeof *syms);
    memcpy(n->items2, defs, k * sizeof *defs);
    n->n_names = n->n2 = k;
    return 0;
}

static int parse_macro(struct parser *P, struct jnode *n)
{
    static const char *const ends[] = {"endmacro", NULL};
    if (cur(P)->type != T_NAME)
        return expect_type(P, T_NAME, "name");
    n->str = cur(P)->p;
    n->len = cur(P)->n;
    n->sym = intern(P, n->str, n->len);
    next(P);
    int rc = parse_signature(P, n);
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    end_tag(P);
    if (cur(P)->type == T_NAME) /* {% endmacro name %} */
        next(P);
    return block_end(P);
}

static int parse_call_block(struct parser *P, struct jnode *n)
{
    static const char *const ends[] = {"endcall", NULL};
    int rc = is_op(cur(P), OP_LPAREN) ? parse_signature(P, n) : 0;
    if (rc == 0)
        rc = parse_expression(P, true, &n->a);
    if (rc == 0 && n->a->kind != N_CALL)
        rc = parse_fail(P, "expected call");
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    end_tag(P);
    return block_end(P);
}

static int parse_set(struct parser *P, struct jnode *n)
{
    static const char *const ends[] = {"endset", NULL};
    int rc = assign_target(P, true, NULL, &n->a);
    if (rc)
        return rc;
    if (n->a->kind == N_GETATTR) { /* set ns.attr = value */
        n->kind = S_SET_NS;
        rc = expect_op(P, OP_ASSIGN, "=");
        if (rc == 0)
            rc = parse_tuple(P, false, true, NULL, false, &n->b);
        return rc ? rc : block_end(P);
    }
    if (is_op(cur(P), OP_ASSIGN)) {
        next(P);
        rc = parse_tuple(P, false, true, NULL, false, &n->b);
        return rc ? rc : block_end(P);
    }
    if (n->a->kind != N_NAME)
        return parse_fail(P, "expected token '='");
    n->kind = S_SET_BLOCK; /* {% set x %}...{% endset %}, optionally | filters */
    rc = parse_filter(P, NULL, false, &n->c);
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    end_tag(P);
    return block_end(P);
}

static int parse_with(struct parser *P, struct jnode *n)
{
    static const char *const ends[] = {"endwith", NULL};
    struct nodevec targets = {0}, values = {0};
    int rc = 0;
    while (rc == 0 && cur(P)->type != T_BLOCK_END) {
        if (targets.n && (rc = expect_op(P, OP_COMMA, ",")))
            break;
        struct jnode *t, *v;
        if ((rc = assign_target(P, false, NULL, &t)) == 0 &&
            (rc = expect_op(P, OP_ASSIGN, "=")) == 0 && (rc = parse_expression(P, true, &v)) == 0) {
            rc = vec_push(&targets, t);
            if (rc == 0)
                rc = vec_push(&values, v);
        }
    }
    struct jnode **tv;
    size_t tn;
    if (rc == 0)
        rc = vec_take(P, &targets, &tv, &tn);
    if (rc == 0) { /* targets in a, as a tuple node; values in items2 */
        n->a = node_new(P, N_TUPLE);
        if (!n->a)
            rc = ERR_NOMEM;
        else {
            n->a->items = tv;
            n->a->n = tn;
        }
    }
    if (rc == 0)
        rc = vec_take(P, &values, &n->items2, &n->n2);
    free(targets.v);
    free(values.v);
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    end_tag(P);
    return block_end(P);
}

/* parse_wrapper: {% name args %} body {% endname %} for filter, generation and block. */
static int parse_wrapper(struct parser *P, struct jnode *n, const char *end)
{
    const char *ends[] = {end, NULL};
    int rc = 0;
    if (n->kind == S_FILTER_BLOCK) {
        rc = parse_filter(P, NULL, true, &n->c);
    } else if (strcmp(end, "endblock") == 0) {
        if (cur(P)->type != T_NAME)
            return expect_type(P, T_NAME, "name");
        while (cur(P)->type == T_NAME) /* the name, and scoped / required */
            next(P);
    }
    if (rc || (rc = block_end(P)) || (rc = parse_body(P, ends, &n->items, &n->n)))
        return rc;
    end_tag(P);
    if (strcmp(end, "endblock") == 0 && cur(P)->type == T_NAME)
        next(P);
    return block_end(P);
}

static int parse_statement(struct parser *P, struct jnode **out)
{
    const struct jtoken *t = cur(P);
    if (t->type != T_NAME)
        return parse_fail(P, "tag name expected");
    static const struct {
        const char *name;
        int kind;
    } tags[] = {{"for", S_FOR},         {"if", S_IF},
                {"set", S_SET},         {"macro", S_MACRO},
                {"call", S_CALL_BLOCK}, {"filter", S_FILTER_BLOCK},
                {"break", S_BREAK},     {"continue", S_CONTINUE},
                {"with", S_WITH},       {"generation", S_BODY},
                {"block", S_BODY}};
    int kind = -1;
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
        if (is_name(t, tags[i].name))
            kind = tags[i].kind;
    if (kind < 0)
        return parse_fail(P, "Encountered unknown tag '%.*s'.", (int)(t->n > 40 ? 40 : t->n), t->p);
    struct jnode *n = node_new(P, kind);
    if (!n)
        return ERR_NOMEM;
    *out = n;
    bool block = is_name(t, "block");
    next(P);
    if (++P->depth > MAX_NEST)
        return parse_fail(P, "blocks nested too deeply");
    int rc;
    switch (kind) {
    case S_FOR: rc = parse_for(P, n); break;
    case S_IF: rc = parse_if(P, n); break;
    case S_SET: rc = parse_set(P, n); break;
    case S_MACRO: rc = parse_macro(P, n); break;
    case S_CALL_BLOCK: rc = parse_call_block(P, n); break;
    case S_WITH: rc = parse_with(P, n); break;
    case S_FILTER_BLOCK: rc = parse_wrapper(P, n, "endfilter"); break;
    case S_BODY: rc = parse_wrapper(P, n, block ? "endblock" : "endgeneration"); break;
    default: rc = block_end(P); break; /* break, continue */
    }
    P->depth--;
    return rc;
}

/* parse_body: statements until {% <one of ends> %} (left unconsumed) or, when ends is
 * NULL, the end of the template. */
static int parse_body(struct parser *P, const char *const *ends, struct jnode ***items, size_t *n)
{
    struct nodevec body = {0};
    int rc = 0;
    for (;;) {
        const struct jtoken *t = cur(P);
        struct jnode *s = NULL;
        if (t->type == T_EOF) {
            if (ends) {
                char want[128] = "";
                for (size_t i = 0; ends[i]; i++)
                    snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'",
                             i ? " or " : "", ends[i]);
                rc = parse_fail(P,
                                "Unexpected end of template. Jinja was looking for the "
                                "following tags: %s.",
                                want);
            }
            break;
        }
        if (t->type == T_DATA) {
            s = node_new(P, S_DATA);
            if (s) {
                s->str = t->p;
                s->len = t->n;
            }
            next(P);
        } else if (t->type == T_VAR_BEGIN) {
            next(P);
            s = node_new(P, S_PRINT);
            if (s && (rc = parse_tuple(P, false, true, NULL, false, &s->a)) == 0)
                rc = expect_type(P, T_VAR_END, "end of print statement");
        } else if (t->type == T_BLOCK_BEGIN) {
            const struct jtoken *name = peek(P, 1);
            bool is_end = false;
            for (size_t i = 0; ends && ends[i]; i++)
                is_end = is_end || is_name(name, ends[i]);
            if (is_end)
                break;
            next(P);
            rc = parse_statement(P, &s);
        } else {
            char b[48];
            rc = parse_fail(P, "unexpected '%s'", describe(t, b, sizeof b));
        }
        if (rc == 0 && !s)
            rc = ERR_NOMEM;
        if (rc || (rc = vec_push(&body, s)))
            break;
    }
    if (rc == 0)
        rc = vec_take(P, &body, items, n);
    free(body.v);
    return rc;
}

int jinja_parse(struct jinja_template *tpl, const struct jtokens *toks, char *err, size_t errlen)
{
    struct parser P = {.tpl = tpl, .t = toks->v, .n = toks->n, .err = err, .errlen = errlen};
    int rc = parse_body(&P, NULL, &tpl->body, &tpl->n);
    if (rc == 0 && P.nsyms) {
        tpl->sym_names = arena_alloc(&tpl->arena, (size_t)P.nsyms * sizeof *tpl->sym_names);
        tpl->sym_lens = arena_alloc(&tpl->arena, (size_t)P.nsyms * sizeof *tpl->sym_lens);
        if (!tpl->sym_names || !tpl->sym_lens) {
            rc = ERR_NOMEM;
        } else {
            memcpy(tpl->sym_names, P.names, (size_t)P.nsyms * sizeof *P.names);
            memcpy(tpl->sym_lens, P.lens, (size_t)P.nsyms * sizeof *P.lens);
        }
    }
    tpl->n_syms = P.nsyms;
    free(P.names);
    free(P.lens);
    if (rc == ERR_NOMEM && err && errlen && !err[0])
        snprintf(err, errlen, "MemoryError: template too large");
    return rc;
}
