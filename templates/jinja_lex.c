/*
 * jinja_lex: jinja2's lexer for transformers' environment. Newlines are normalized to \n
 * and one trailing newline is dropped (keep_trailing_newline=False). Text before a tag
 * loses its trailing whitespace with "{%-" / "{{-" / "{#-", and with lstrip_blocks the
 * spaces between a line's start and a "{%" or "{#" (not "{{"; "{%+" keeps them). After a
 * tag, "-%}" eats all whitespace and "%}" / "#}" one newline (trim_blocks).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"
#include "jinja_internal.h"

struct lexer {
    struct arena *a;
    const char *s;
    size_t n, pos;
    int line;
    bool line_starting;
    size_t tok;                /* where the token being lexed starts */
    size_t col_pos, col_chars; /* col_at's memo: characters from a line start to col_pos */
    struct jtokens *out;
    char *err;
    size_t errlen;
    char balance[256]; /* open brackets inside a tag */
    int nbal;
};

/* col_at: the 1-based column, in characters, of offset o of the source. Offsets asked for
 * mostly grow, so the memo keeps the scans linear over a whole template. */
static int col_at(struct lexer *L, size_t o)
{
    if (o > L->n)
        o = L->n;
    if (o < L->col_pos) /* behind the memo: restart from o's line */
        L->col_pos = 0, L->col_chars = 0;
    const char *s = L->s;
    const char *nl = o > L->col_pos ? memrchr(s + L->col_pos, '\n', o - L->col_pos) : NULL;
    size_t from = nl ? (size_t)(nl - s) + 1 : L->col_pos, chars = nl ? 0 : L->col_chars;
    for (size_t k = from; k < o; k++)
        chars += ((unsigned char)s[k] & 0xC0) != 0x80;
    L->col_pos = o;
    L->col_chars = chars;
    return chars < INT_MAX ? (int)chars + 1 : INT_MAX;
}

static int lex_fail(struct lexer *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int lex_fail(struct lexer *L, const char *fmt, ...)
{
    if (L->err && L->errlen) {
        int k = snprintf(L->err, L->errlen, "TemplateSyntaxError: ");
        va_list ap;
        va_start(ap, fmt);
        if (k >= 0 && (size_t)k < L->errlen)
            k += vsnprintf(L->err + k, L->errlen - (size_t)k, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < L->errlen)
            snprintf(L->err + k, L->errlen - (size_t)k, " (line %d, column %d)", L->line,
                     col_at(L, L->pos));
    }
    return ERR_PARSE;
}

static int push(struct lexer *L, struct jtoken t)
{
    struct jtokens *o = L->out;
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 256;
        struct jtoken *v = realloc(o->v, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        o->v = v;
        o->cap = c;
    }
    t.line = t.line ? t.line : L->line;
    t.col = t.col ? t.col : col_at(L, L->tok);
    o->v[o->n++] = t;
    return 0;
}

/* py_space_at: the length of a Python whitespace character (str.isspace) at s[i], or 0. */
static size_t py_space_at(const char *s, size_t n, size_t i)
{
    uint32_t cp;
    size_t l = utf8_decode(s + i, n - i, &cp);
    return l && jinja_py_isspace(cp) ? l : 0;
}

static size_t skip_space(const char *s, size_t n, size_t i)
{
    size_t l;
    while (i < n && (l = py_space_at(s, n, i)))
        i += l;
    return i;
}

/* rstrip_len: the length of s[0..n) without its trailing Python whitespace. */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t j = end - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        if (py_space_at(s, end, j) != end - j)
            break;
        end = j;
    }
    return end;
}

static int count_nl(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}

/* emit_data: text before a tag, with the tag's whitespace control applied. */
static int emit_data(struct lexer *L, const char *d, size_t n, char sign, bool lstrip_ok)
{
    size_t keep = n;
    if (sign == '-') {
        keep = rstrip_len(d, n);
    } else if (sign != '+' && lstrip_ok) {
        size_t l_pos = n;
        while (l_pos > 0 && d[l_pos - 1] != '\n')
            l_pos--;
        if ((l_pos > 0 || L->line_starting) && l_pos < n && skip_space(d, n, l_pos) == n)
            keep = l_pos;
    }
    L->tok = (size_t)(d - L->s);
    int rc = keep ? push(L, (struct jtoken){.type = T_DATA, .p = d, .n = keep}) : 0;
    L->line += count_nl(d, n);
    return rc;
}

/* find_tag: the next "{{", "{%" or "{#" at or after i; n when none. */
static size_t find_tag(const char *s, size_t n, size_t i)
{
    for (;;) {
        const char *p = memchr(s + i, '{', n - i);
        if (!p || (size_t)(p - s) + 1 >= n)
            return n;
        size_t k = (size_t)(p - s);
        if (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')
            return k;
        i = k + 1;
    }
}

/* match_word: whether s[i..] is `word` as a whole name. */
static bool match_word(const char *s, size_t n, size_t i, const char *word)
{
    size_t l = strlen(word);
    if (i + l > n || memcmp(s + i, word, l) != 0)
        return false;
    return i + l == n ||
           !(s[i + l] == '_' || (s[i + l] >= 'a' && s[i + l] <= 'z') ||
             (s[i + l] >= 'A' && s[i + l] <= 'Z') || (s[i + l] >= '0' && s[i + l] <= '9'));
}

/* tag_end_at: the length of a tag end at s[i], or 0. Blocks: "+%}", "-%}" and the
 * whitespace after it, "%}" and one newline (trim_blocks). Variables: "-}}" and the
 * whitespace after it, "}}". */
static size_t tag_end_at(const char *s, size_t n, size_t i, char close, bool block)
{
    if (i + 3 <= n && s[i + 1] == close && s[i + 2] == '}') {
        if (s[i] == '-')
            return skip_space(s, n, i + 3) - i;
        if (s[i] == '+' && block)
            return 3;
    }
    if (i + 2 <= n && s[i] == close && s[i + 1] == '}')
        return 2 + (block && i + 2 < n && s[i + 2] == '\n');
    return 0;
}

/* raw_begin_at: "{%[-+]?\s*raw\s*(-%}\s*|%})" at s[i]: its length, or 0. */
static size_t raw_begin_at(const char *s, size_t n, size_t i)
{
    size_t k = i + 2;
    if (k < n && (s[k] == '-' || s[k] == '+'))
        k++;
    k = skip_space(s, n, k);
    if (!match_word(s, n, k, "raw"))
        return 0;
    k = skip_space(s, n, k + 3);
    if (k + 3 <= n && s[k] == '-' && s[k + 1] == '%' && s[k + 2] == '}')
        return skip_space(s, n, k + 3) - i;
    if (k + 2 <= n && s[k] == '%' && s[k + 1] == '}')
        return k + 2 - i;
    return 0;
}

static int lex_raw(struct lexer *L, size_t start)
{
    const char *s = L->s;
    size_t n = L->n;
    size_t body = start;
    for (size_t i = body;; i++) {
        i = find_tag(s, n, i);
        if (i >= n)
            return lex_fail(L, "Missing end of raw directive");
        if (s[i + 1] != '%')
            continue;
        size_t k = i + 2;
        char sign = k < n && (s[k] == '-' || s[k] == '+') ? s[k++] : 0;
        k = skip_space(s, n, k);
        if (!match_word(s, n, k, "endraw"))
            continue;
        k = skip_space(s, n, k + 6);
        size_t e = tag_end_at(s, n, k, '%', true);
        if (!e)
            continue;
        int rc = emit_data(L, s + body, i - body, sign, true);
        L->pos = k + e;
        L->line += count_nl(s + i, k + e - i);
        L->line_starting = s[k + e - 1] == '\n';
        return rc;
    }
}

static int lex_comment(struct lexer *L, size_t i)
{
    const char *s = L->s;
    size_t n = L->n;
    for (; i + 1 < n; i++) {
        size_t e = 0;
        if ((s[i] == '+' || s[i] == '-') && i + 2 < n && s[i + 1] == '#' && s[i + 2] == '}')
            e = s[i] == '+' ? 3 : skip_space(s, n, i + 3) - i;
        else if (s[i] == '#' && s[i + 1] == '}')
            e = 2 + (i + 2 < n && s[i + 2] == '\n');
        if (e) {
            L->line += count_nl(s + L->pos, i + e - L->pos);
            L->pos = i + e;
            L->line_starting = s[i + e - 1] == '\n';
            return 0;
        }
    }
    return lex_fail(L, "Missing end of comment tag");
}

/* ---- inside {{ }} and {% %} ---- */

/* clang-format off */
static const struct {
    const char *s;
    uint8_t op;
} OPS[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GTEQ},
    {"<=", OP_LTEQ},     {"+", OP_ADD},  {"-", OP_SUB}, {"/", OP_DIV}, {"*", OP_MUL},
    {"%", OP_MOD},       {"~", OP_TILDE}, {"[", OP_LBRACKET}, {"]", OP_RBRACKET},
    {"(", OP_LPAREN},    {")", OP_RPAREN}, {"{", OP_LBRACE}, {"}", OP_RBRACE}, {">", OP_GT},
    {"<", OP_LT},        {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON}, {"|", OP_PIPE},
    {",", OP_COMMA},     {";", OP_SEMICOLON},
};
/* clang-format on */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* digits_at: the length of (\d+_)*\d+ at s[i], or 0. */
static size_t digits_at(const char *s, size_t n, size_t i)
{
    size_t k = i;
    while (k < n && is_digit(s[k])) {
        while (k < n && is_digit(s[k]))
            k++;
        if (k + 1 < n && s[k] == '_' && is_digit(s[k + 1]))
            k++;
    }
    return k - i;
}

/* float_at: jinja2's float_re at s[i]: its length, or 0. */
static size_t float_at(const char *s, size_t n, size_t i)
{
    if (i > 0 && s[i - 1] == '.')
        return 0;
    size_t k = i + digits_at(s, n, i);
    if (k == i)
        return 0;
    size_t frac = 0;
    if (k < n && s[k] == '.' && (frac = digits_at(s, n, k + 1)))
        k += 1 + frac;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        size_t e = k + 1;
        if (e < n && (s[e] == '+' || s[e] == '-'))
            e++;
        size_t d = digits_at(s, n, e);
        if (d)
            return e + d - i;
    }
    return frac ? k - i : 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* int_at: jinja2's integer_re at s[i]: its length and value, or 0. */
static size_t int_at(const char *s, size_t n, size_t i, int64_t *val)
{
    int base = 10;
    size_t k = i;
    char pfx = k + 2 < n && s[k] == '0' ? (char)(s[k + 1] | 0x20) : 0;
    int pbase = pfx == 'b' ? 2 : pfx == 'o' ? 8 : pfx == 'x' ? 16 : 0;
    if (pbase && hexval(s[k + 2]) >= 0 && hexval(s[k + 2]) < pbase) {
        base = pbase;
        k += 2;
    } else if (k < n && s[k] == '0') { /* 0(_?0)* */
        k++;
        while (k < n && (s[k] == '0' || (s[k] == '_' && k + 1 < n && s[k + 1] == '0')))
            k++;
        *val = 0;
        return k - i;
    } else if (!(k < n && s[k] >= '1' && s[k] <= '9')) {
        return 0;
    }
    uint64_t v = 0;
    size_t start = k;
    bool overflow = false;
    while (k < n) {
        if (s[k] == '_' && k > start && k + 1 < n && hexval(s[k + 1]) >= 0 &&
            hexval(s[k + 1]) < base) {
            k++;
            continue;
        }
        int d = hexval(s[k]);
        if (d < 0 || d >= base)
            break;
        overflow |= v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base;
        v = v * (uint64_t)base + (uint64_t)d;
        k++;
    }
    if (k == start)
        return 0; /* "0x" with no digit */
    *val = overflow || v > INT64_MAX ? INT64_MAX : (int64_t)v;
    return k - i;
}

/* unescape: Python's unicode-escape decoding of a string literal's body. */
static int unescape(struct lexer *L, const char *s, size_t n, const char **out, size_t *outn)
{
    char *d = arena_alloc(L->a, n + 1);
    if (!d)
        return ERR_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            d[o++] = s[i];
            continue;
        }
        char c = s[++i];
        static const char from[] = "\\'\"abfnrtv\n", to[] = "\\'\"\a\b\f\n\r\t\v";
        const char *simple = c ? strchr(from, c) : NULL;
        if (simple) {
            if (c != '\n') /* backslash-newline is a line continuation */
                d[o++] = to[simple - from];
            continue;
        }
        int width = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
        if (c >= '0' && c <= '7') {
            uint32_t v = 0;
            size_t k = 0;
            for (; k < 3 && i + k < n && s[i + k] >= '0' && s[i + k] <= '7'; k++)
                v = v * 8 + (uint32_t)(s[i + k] - '0');
            i += k - 1;
            char enc[4];
            size_t l = utf8_encode(v, enc);
            memcpy(d + o, enc, l);
            o += l;
            continue;
        }
        if (!width) { /* unknown escape: kept as written */
            d[o++] = '\\';
            d[o++] = c;
            continue;
        }
        uint32_t v = 0;
        for (int k = 1; k <= width; k++) {
            int h = i + (size_t)k < n ? hexval(s[i + (size_t)k]) : -1;
            if (h < 0)
                return lex_fail(L, "truncated \\%cXX escape", c);
            v = v * 16 + (uint32_t)h;
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return lex_fail(L, "illegal Unicode character");
        i += (size_t)width;
        char enc[4];
        size_t l = utf8_encode(v, enc);
        memcpy(d + o, enc, l);
        o += l;
    }
    *out = d;
    *outn = o;
    return 0;
}

/* string_at: a quoted string at s[i]: its length including the quotes, or 0 if unclosed. */
static size_t string_at(const char *s, size_t n, size_t i)
{
    char q = s[i];
    for (size_t k = i + 1; k < n; k++) {
        if (s[k] == '\\')
            k++;
        else if (s[k] == q)
            return k + 1 - i;
    }
    return 0;
}

static size_t name_at(const char *s, size_t n, size_t i)
{
    size_t k = i;
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (k > i && c >= '0' && c <= '9')) {
            k++;
            continue;
        }
        uint32_t cp;
        size_t l = c >= 0x80 ? utf8_decode(s + k, n - k, &cp) : 0;
        if (!l || !uc_is_word(cp))
            break;
        k += l;
    }
    return k - i;
}

static int balance(struct lexer *L, uint8_t op)
{
    static const char open[] = "([{", close[] = ")]}";
    char c = op == OP_LPAREN     ? '('
             : op == OP_LBRACKET ? '['
             : op == OP_LBRACE   ? '{'
             : op == OP_RPAREN   ? ')'
             : op == OP_RBRACKET ? ']'
             : op == OP_RBRACE   ? '}'
                                 : 0;
    if (!c)
        return 0;
    const char *o = strchr(open, c);
    if (o) {
        if (L->nbal >= (int)sizeof L->balance)
            return lex_fail(L, "brackets nested too deeply");
        L->balance[L->nbal++] = close[o - open];
        return 0;
    }
    if (!L->nbal)
        return lex_fail(L, "unexpected '%c'", c);
    char want = L->balance[--L->nbal];
    if (want != c)
        return lex_fail(L, "unexpected '%c', expected '%c'", c, want);
    return 0;
}

/* lex_token: one token inside a tag at L->pos. */
static int lex_token(struct lexer *L)
{
    const char *s = L->s;
    size_t n = L->n, i = L->pos, l;
    int64_t iv = 0;
    L->tok = i;
    if ((l = float_at(s, n, i))) {
        char tmp[128];
        size_t t = 0;
        for (size_t k = i; k < i + l && t + 1 < sizeof tmp; k++)
            if (s[k] != '_')
                tmp[t++] = s[k];
        tmp[t] = 0;
        L->pos += l;
        return push(L, (struct jtoken){.type = T_FLOAT, .f = strtod(tmp, NULL)});
    }
    if ((l = int_at(s, n, i, &iv))) {
        L->pos += l;
        return push(L, (struct jtoken){.type = T_INT, .i = iv});
    }
    if ((l = name_at(s, n, i))) {
        L->pos += l;
        return push(L, (struct jtoken){.type = T_NAME, .p = s + i, .n = l});
    }
    if (s[i] == '\'' || s[i] == '"') {
        l = string_at(s, n, i);
        if (!l)
            return lex_fail(L, "unexpected char '%c' at %zu", s[i], i);
        struct jtoken t = {.type = T_STRING, .line = L->line};
        int rc = unescape(L, s + i + 1, l - 2, &t.p, &t.n);
        L->line += count_nl(s + i, l);
        L->pos += l;
        return rc ? rc : push(L, t);
    }
    for (size_t k = 0; k < sizeof OPS / sizeof *OPS; k++) {
        size_t ol = strlen(OPS[k].s);
        if (i + ol <= n && memcmp(s + i, OPS[k].s, ol) == 0) {
            int rc = balance(L, OPS[k].op);
            L->pos += ol;
            return rc ? rc : push(L, (struct jtoken){.type = T_OP, .op = OPS[k].op});
        }
    }
    return lex_fail(L, "unexpected char '%c' at %zu", s[i], i);
}

/* lex_tag: the tokens of a {{ }} or {% %} tag; L->pos is after its opening. */
static int lex_tag(struct lexer *L, bool block)
{
    const char *s = L->s;
    size_t n = L->n;
    int rc = push(L, (struct jtoken){.type = block ? T_BLOCK_BEGIN : T_VAR_BEGIN});
    L->nbal = 0;
    while (rc == 0) {
        if (L->pos >= n)
            return lex_fail(L, "unexpected end of template, expected end of %s",
                            block ? "statement block" : "print statement");
        size_t e = L->nbal ? 0 : tag_end_at(s, n, L->pos, block ? '%' : '}', block);
        if (e) {
            L->tok = L->pos;
            L->line += count_nl(s + L->pos, e);
            L->pos += e;
            L->line_starting = s[L->pos - 1] == '\n';
            return push(L, (struct jtoken){.type = block ? T_BLOCK_END : T_VAR_END});
        }
        size_t w = skip_space(s, n, L->pos);
        if (w > L->pos) {
            L->line += count_nl(s + L->pos, w - L->pos);
            L->pos = w;
            continue;
        }
        rc = lex_token(L);
    }
    return rc;
}

/* normalize: newlines to \n, one trailing newline dropped. */
static int normalize(struct arena *a, const char *src, size_t n, const char **out, size_t *outn)
{
    char *d = arena_alloc(a, n + 1);
    if (!d)
        return ERR_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            d[o++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n')
                i++;
        } else {
            d[o++] = src[i];
        }
    }
    if (o > 0 && d[o - 1] == '\n')
        o--;
    *out = d;
    *outn = o;
    return 0;
}

int jinja_lex(struct arena *a, const char *src, size_t n, struct jtokens *out, char *err,
              size_t errlen)
{
    struct lexer L = {
        .a = a, .line = 1, .line_starting = true, .out = out, .err = err, .errlen = errlen};
    int rc = normalize(a, src, n, &L.s, &L.n);
    while (rc == 0 && L.pos < L.n) {
        size_t t = find_tag(L.s, L.n, L.pos);
        if (t >= L.n) {
            rc = emit_data(&L, L.s + L.pos, L.n - L.pos, 0, false);
            L.pos = L.n;
            break;
        }
        char kind = L.s[t + 1];
        char sign = t + 2 < L.n && (L.s[t + 2] == '-' || L.s[t + 2] == '+') ? L.s[t + 2] : 0;
        size_t raw = kind == '%' ? raw_begin_at(L.s, L.n, t) : 0;
        rc = emit_data(&L, L.s + L.pos, t - L.pos, sign, kind != '{');
        L.pos = t + 2 + (sign != 0);
        L.tok = t;
        L.line_starting = false;
        if (rc)
            break;
        if (raw)
            rc = lex_raw(&L, t + raw);
        else if (kind == '#')
            rc = lex_comment(&L, L.pos);
        else
            rc = lex_tag(&L, kind == '%');
    }
    if (rc == ERR_PARSE) { /* hand the message to the parser as a token */
        size_t mn = strlen(L.err ? L.err : "");
        char *m = arena_alloc(a, mn + 1);
        if (!m)
            return ERR_NOMEM;
        memcpy(m, L.err ? L.err : "", mn + 1);
        if (L.err && L.errlen)
            L.err[0] = 0;
        L.tok = L.pos;
        rc = push(&L, (struct jtoken){.type = T_LEXERR, .p = m, .n = mn});
    }
    L.tok = L.n;
    if (rc == 0)
        rc = push(&L, (struct jtoken){.type = T_EOF});
    return rc;
}
