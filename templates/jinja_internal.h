/*
 * jinja_internal: what the interpreter's files share: tokens (jinja_lex.c), the syntax tree
 * (jinja_parse.c), the runtime objects (jinja_eval.c) and the builtins' entry points
 * (jinja_builtins.c). Only templates/jinja*.c include it.
 */
#ifndef KILN_JINJA_INTERNAL_H
#define KILN_JINJA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "jinja.h"
#include "jinja_value.h"

void *jinja_alloc(struct jinja_rt *rt, size_t n);
int jv_dict_append(struct jinja_rt *rt, struct jdict *d, struct jv key, struct jv val);

/* ---- tokens ---- */

enum jtok {
    T_EOF,
    T_DATA,        /* template text (already whitespace-controlled) */
    T_VAR_BEGIN,   /* {{ */
    T_VAR_END,     /* }} */
    T_BLOCK_BEGIN, /* {% */
    T_BLOCK_END,   /* %} */
    T_NAME,
    T_STRING, /* p/n: the decoded value */
    T_INT,
    T_FLOAT,
    T_OP,
    T_LEXERR, /* the lexer stopped here; p/n: its message (reported if parsing gets here) */
};

/* clang-format off */
enum jop {
    OP_ADD, OP_SUB, OP_DIV, OP_FLOORDIV, OP_MUL, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACKET, OP_RBRACKET, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GTEQ, OP_LT, OP_LTEQ, OP_ASSIGN, OP_DOT, OP_COLON, OP_PIPE,
    OP_COMMA, OP_SEMICOLON,
    /* comparison operators that are words */
    OP_IN, OP_NOTIN,
};
/* clang-format on */

struct jtoken {
    uint8_t type;
    uint8_t op;
    int line;
    int col;       /* 1-based, in characters */
    const char *p; /* T_NAME, T_STRING, T_DATA */
    size_t n;
    int64_t i; /* T_INT */
    double f;  /* T_FLOAT */
};

struct jtokens {
    struct jtoken *v;
    size_t n, cap;
};

/* jinja_lex: tokenizes src with jinja2's lexer rules under transformers' environment
 * (trim_blocks, lstrip_blocks, no trailing newline). Strings and names are allocated in a
 * (the template's). A syntax error becomes a final T_LEXERR token: jinja2 lexes lazily, so
 * a parse error before that point is the one it reports. ERR_NOMEM only. */
int jinja_lex(struct arena *a, const char *src, size_t n, struct jtokens *out, char *err,
              size_t errlen);

/* ---- syntax tree ---- */

enum jnode_kind {
    /* expressions */
    N_CONST,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_GETATTR,
    N_GETITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_BINOP,
    N_NEG,
    N_POS,
    N_NOT,
    N_AND,
    N_OR,
    N_COMPARE,
    N_COND,
    N_CONCAT,
    /* statements */
    S_DATA,
    S_PRINT,
    S_IF,
    S_FOR,
    S_SET,
    S_SET_NS,
    S_SET_BLOCK,
    S_MACRO,
    S_CALL_BLOCK,
    S_FILTER_BLOCK,
    S_BREAK,
    S_CONTINUE,
    S_WITH,
    S_BODY,
};

/* One node. Which fields are used depends on the kind (jinja_parse.c documents each). */
struct jnode {
    uint8_t kind;
    uint8_t op; /* N_BINOP: enum jop */
    bool flag;  /* N_TEST: negated; S_FOR: recursive */
    int line;
    int sym;         /* N_NAME, S_MACRO: the symbol; -1 none */
    int builtin;     /* N_FILTER, N_TEST: the builtin's id; N_NAME: the global's id or -1 */
    const char *str; /* N_NAME, N_GETATTR attribute, N_FILTER/N_TEST name, S_DATA text */
    size_t len;
    struct jv value; /* N_CONST */
    struct jnode *a, *b, *c, *d;
    struct jnode **items; /* list items, dict keys, positional args, body */
    size_t n;
    struct jnode **items2; /* dict values, keyword arg values, else body, defaults */
    size_t n2;
    const char **names; /* keyword argument names, macro parameters, with targets */
    size_t *lens;
    int *syms; /* the parameters' symbols */
    size_t n_names;
    uint8_t *ops; /* N_COMPARE: one operator per operand */
};

struct jinja_template {
    struct arena arena; /* the tree, its strings and constants */
    struct jnode **body;
    size_t n;
    const char **sym_names; /* symbol id -> name */
    size_t *sym_lens;
    int n_syms;
};

/* jinja_parse: builds the tree of tpl from its tokens. ERR_PARSE with err set. */
int jinja_parse(struct jinja_template *tpl, const struct jtokens *toks, char *err, size_t errlen);

/* ---- runtime objects ---- */

struct jscope {
    struct jscope *parent;
    int *syms;
    struct jv *vals;
    size_t n, cap;
    bool captured; /* a macro closes over it (or a scope below it): it must not be reused */
};

struct jmacro {
    const struct jnode *def; /* S_MACRO, or S_CALL_BLOCK for a `caller` */
    struct jscope *closure;  /* the scope it was defined in */
    struct jv caller;        /* the caller passed to it by a call block, or undefined */
};

struct jfunc {
    int id;         /* enum jbuiltin */
    struct jv self; /* bound methods: the object */
};

struct jloop {
    size_t index0;
    struct jv items; /* the list iterated */
    struct jloop *parent;
    int depth0;
    struct jv last_changed; /* loop.changed() */
    bool changed_init;
    const struct jnode *node; /* the S_FOR, for recursive loops */
    struct jscope *scope;     /* the scope the loop runs in */
};

/* Builtin ids: globals, filters, tests, methods (jinja_builtins.c). */
enum jbuiltin {
    B_NONE = -1,
    /* globals */
    G_RANGE,
    G_NAMESPACE,
    G_DICT,
    G_CYCLER,
    G_JOINER,
    G_RAISE,
    G_STRFTIME,
    G_LIPSUM,
    G_COUNT_,
};

/* jinja_global_id: the global function named s, or -1. */
int jinja_global_id(const char *s, size_t n);
/* jinja_filter_id / jinja_test_id: the filter or test named s, or -1. */
int jinja_filter_id(const char *s, size_t n);
int jinja_test_id(const char *s, size_t n);

/* Arguments of a builtin call, already evaluated. */
struct jargs {
    struct jv *pos;
    size_t npos;
    const char **names; /* keyword names */
    size_t *lens;
    struct jv *kw;
    size_t nkw;
};

/* jinja_call_global / jinja_call_filter / jinja_call_test / jinja_call_method: run a
 * builtin. The filter and test receive their input as `in`. */
int jinja_call_global(struct jinja_rt *rt, int id, struct jargs *args, struct jv *out);
int jinja_call_filter(struct jinja_rt *rt, int id, struct jv in, struct jargs *args,
                      struct jv *out);
int jinja_call_test(struct jinja_rt *rt, int id, struct jv in, struct jargs *args, bool *out);
int jinja_call_method(struct jinja_rt *rt, int id, struct jv self, struct jargs *args,
                      struct jv *out);
/* jinja_method_id: the method `name` of values of obj's type (a bound method when found);
 * -2 when the immutable sandbox forbids it (list.append ...); -1 when there is none. */
int jinja_method_id(const struct jv *obj, const char *name, size_t n);

/* Evaluator services the builtins use (jinja_eval.c). */
int jinja_call_value(struct jinja_rt *rt, struct jv fn, struct jargs *args, struct jv *out);
int jinja_getattr(struct jinja_rt *rt, struct jv obj, const char *name, size_t n, struct jv *out);
/* jinja_getattr_hint: the same, where may_be_method false says no type has a method of
 * that name (the parser knows it for `x.name`), which skips the method lookup. */
int jinja_getattr_hint(struct jinja_rt *rt, struct jv obj, const char *name, size_t n,
                       bool may_be_method, struct jv *out);
/* jinja_is_method_name: whether some type has a method called s. */
bool jinja_is_method_name(const char *s, size_t n);
int jinja_getitem(struct jinja_rt *rt, struct jv obj, struct jv key, struct jv *out);
size_t jinja_loop_length(const struct jv *loop);
int jinja_loop_items(struct jinja_rt *rt, const struct jv *loop, struct jv *out);
int jinja_print_object(struct jinja_rt *rt, const struct jv *v, struct buf *out);
int jinja_binop(struct jinja_rt *rt, int op, struct jv a, struct jv b, struct jv *out);

/* jinja_html_escape: markupsafe's escape of the str s (& < > " ' become entities), as a new
 * plain str in *out (the caller marks it Markup where it is one). */
int jinja_html_escape(struct jinja_rt *rt, struct jv s, struct jv *out);

/* Python-compatible string services (jinja_pystr.c). */
int jinja_str_format(struct jinja_rt *rt, struct jv fmt, struct jargs *args, struct jv *out);
int jinja_percent_format(struct jinja_rt *rt, struct jv fmt, struct jv args, struct jv *out);
int jinja_strftime(struct jinja_rt *rt, struct jv fmt, struct jv *out);
bool jinja_py_isspace(uint32_t cp);

#endif
