/*
 * tok_regex: tokenizer.json patterns on PCRE2.
 *
 * Hugging Face compiles Split and Replace regexes with Oniguruma (Ruby syntax). PCRE2 reads
 * the same syntax for everything these files use, except a few escapes whose meaning
 * differs; those are rewritten to explicit classes before compiling:
 *   \s  Oniguruma: U+0009-000D, U+0085, Zs, Zl, Zp   (PCRE2's also has U+180E)
 *   \w  Oniguruma: Alphabetic, Mark, Nd, Pc; outside a class also the Latin-1 No characters
 *       (superscripts, fractions), which its single-byte fast path counts as word
 *       characters                                   (PCRE2's: L, N and "_")
 *   \h  Oniguruma: a hex digit                        (PCRE2's: horizontal space)
 *   \uHHHH -> \x{HHHH};  (?m) (Ruby: dot matches newline) -> (?s)
 * and ^/$ match at line boundaries, as they always do in Ruby syntax (PCRE2_MULTILINE).
 * These were checked character by character against HF (tests/tokenizer). Known gap: the
 * negated escapes \S, \W, \H inside a character class keep PCRE2's meaning, and (?i) does not
 * apply Oniguruma's multi-character case folds ("ss" matching "ß"; no real pattern needs it).
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define WS_CLASS "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}"
#define WORD_CLASS "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}"
#define WORD_LATIN1_NO "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}"
#define HEX_CLASS "0-9a-fA-F"

/* rewrite_escape: appends the translation of the escape "\c" (c = s[i]) to o; returns the
 * pattern bytes consumed after the backslash. Append failures are or-ed into *rc. */
static size_t rewrite_escape(struct buf *o, const char *s, size_t n, size_t i, bool in_class,
                             int *rc)
{
    char c = s[i];
    const char *cls = c == 's' || c == 'S'   ? WS_CLASS
                      : c == 'w' || c == 'W' ? WORD_CLASS
                      : c == 'h' || c == 'H' ? HEX_CLASS
                                             : NULL;
    bool neg = c == 'S' || c == 'W' || c == 'H';
    if (cls && !in_class) {
        *rc |= buf_append_str(o, neg ? "[^" : "[");
        *rc |= buf_append_str(o, cls);
        if (c == 'w' || c == 'W')
            *rc |= buf_append_str(o, WORD_LATIN1_NO);
        *rc |= buf_append_byte(o, ']');
        return 1;
    }
    if (cls && !neg) {
        *rc |= buf_append_str(o, cls);
        return 1;
    }
    if (c == 'u' && i + 4 < n) {
        size_t k = 1;
        while (k <= 4 && s[i + k] && strchr("0123456789abcdefABCDEF", s[i + k]))
            k++;
        if (k == 5) {
            *rc |= buf_append_str(o, "\\x{");
            *rc |= buf_append(o, s + i + 1, 4);
            *rc |= buf_append_byte(o, '}');
            return 5;
        }
    }
    *rc |= buf_append_byte(o, '\\');
    *rc |= buf_append_byte(o, c);
    return 1;
}

/* translate: Oniguruma pattern -> PCRE2 pattern (see the header comment). */
static int translate(const char *s, size_t n, struct buf *o)
{
    bool in_class = false;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            i += rewrite_escape(o, s, n, i + 1, in_class, &rc);
        } else if (!in_class && c == '[') {
            in_class = true;
            rc |= buf_append_byte(o, c);
            if (i + 1 < n && s[i + 1] == '^')
                rc |= buf_append_byte(o, s[++i]);
            if (i + 1 < n && s[i + 1] == ']')
                rc |= buf_append_byte(o, s[++i]); /* a leading ] is literal */
        } else if (in_class && c == '[' && i + 1 < n && s[i + 1] == ':') {
            const char *end = memmem(s + i, n - i, ":]", 2); /* POSIX class */
            size_t l = end ? (size_t)(end - (s + i)) + 2 : 1;
            rc |= buf_append(o, s + i, l);
            i += l - 1;
        } else if (in_class && c == ']') {
            in_class = false;
            rc |= buf_append_byte(o, c);
        } else if (!in_class && c == '(' && i + 2 < n && s[i + 1] == '?') {
            size_t k = i + 2;
            while (k < n && s[k] && strchr("imx-", s[k]))
                k++;
            bool flags = k > i + 2 && k < n && (s[k] == ':' || s[k] == ')');
            rc |= buf_append_str(o, "(?");
            for (size_t j = i + 2; j < k; j++)
                rc |= buf_append_byte(o, flags && s[j] == 'm' ? 's' : s[j]);
            i = k - 1;
        } else {
            rc |= buf_append_byte(o, c);
        }
    }
    return rc ? ERR_NOMEM : 0;
}

int tok_pattern_compile(struct tok_pattern *p, const char *s, size_t n, bool is_regex, char *err,
                        size_t errlen)
{
    p->re = NULL;
    if (!is_regex && n == 0)
        return 0;
    struct buf pat;
    buf_init(&pat, 0);
    uint32_t opts = PCRE2_UTF;
    int rc = 0;
    if (is_regex) {
        opts |= PCRE2_UCP | PCRE2_MULTILINE;
        rc = translate(s, n, &pat);
    } else {
        opts |= PCRE2_LITERAL;
        rc = buf_append(&pat, s, n);
    }
    if (rc) {
        buf_deinit(&pat);
        return rc;
    }
    int ecode;
    PCRE2_SIZE eoff;
    p->re = pcre2_compile((PCRE2_SPTR)pat.p, pat.n, opts, &ecode, &eoff, NULL);
    buf_deinit(&pat);
    if (!p->re) {
        char msg[160];
        pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof msg);
        snprintf(err, errlen, "%s (near offset %zu)", msg, (size_t)eoff);
        return ERR_PARSE;
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* without JIT, pcre2_match interprets */
    return 0;
}

void tok_pattern_deinit(struct tok_pattern *p)
{
    pcre2_code_free(p->re);
    p->re = NULL;
}

int tok_rx_init(struct tok_rx *rx)
{
    /* no JIT stack yet: PCRE2's default 32 KiB on the machine stack is enough for nearly
     * every match, and creating one costs an mmap and a munmap (7 of each per request in
     * the frontend before); rx_grow_stack makes one when a match needs it */
    rx->md = pcre2_match_data_create(1, NULL);
    rx->mc = pcre2_match_context_create(NULL);
    rx->js = NULL;
    if (!rx->md || !rx->mc) {
        tok_rx_deinit(rx);
        return ERR_NOMEM;
    }
    return 0;
}

/* rx_grow_stack: rx's own JIT stack (up to 4 MiB), for a match the default stack could not
 * hold. Returns 0, ERR_LIMIT when it already had one, ERR_NOMEM. */
static int rx_grow_stack(struct tok_rx *rx)
{
    if (rx->js)
        return ERR_LIMIT;
    rx->js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (!rx->js)
        return ERR_NOMEM;
    pcre2_jit_stack_assign(rx->mc, NULL, rx->js);
    return 0;
}

void tok_rx_deinit(struct tok_rx *rx)
{
    pcre2_match_data_free(rx->md);
    pcre2_match_context_free(rx->mc);
    pcre2_jit_stack_free(rx->js);
    rx->md = NULL;
    rx->mc = NULL;
    rx->js = NULL;
}

int tok_spans_push(struct tok_spans *sp, uint32_t start, uint32_t end, bool match)
{
    if (sp->n == sp->cap) {
        size_t c = sp->cap ? sp->cap * 2 : 64;
        struct tok_span *v = realloc(sp->v, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        sp->v = v;
        sp->cap = c;
    }
    sp->v[sp->n++] = (struct tok_span){start, end, match};
    return 0;
}

static size_t char_len(const char *s, size_t n, size_t i)
{
    size_t k = i + 1;
    while (k < n && ((unsigned char)s[k] & 0xC0) == 0x80)
        k++;
    return k - i;
}

int tok_pattern_find(const struct tok_pattern *p, struct tok_rx *rx, const char *s, size_t n,
                     struct tok_spans *out)
{
    out->n = 0;
    if (n == 0)
        return tok_spans_push(out, 0, 0, false);
    size_t pos = 0, prev = 0;
    size_t last_end = SIZE_MAX; /* end of the previous match, none yet */
    while (p->re && pos <= n) {
        /* (pcre2_match runs the JIT code; measured faster than calling pcre2_jit_match) */
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, rx->md, rx->mc);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && rx_grow_stack(rx) == 0)
            continue; /* the same position again, with a larger stack */
        if (rc < 0)
            return ERR_LIMIT; /* match or JIT stack limit: pathological input */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(rx->md);
        size_t ms = ov[0], me = ov[1];
        if (ms == me && me == last_end) {
            pos += pos < n ? char_len(s, n, pos) : 1;
            continue;
        }
        if (prev != ms && tok_spans_push(out, (uint32_t)prev, (uint32_t)ms, false))
            return ERR_NOMEM;
        if (tok_spans_push(out, (uint32_t)ms, (uint32_t)me, true))
            return ERR_NOMEM;
        prev = me;
        pos = me;
        last_end = me;
    }
    if (prev != n && tok_spans_push(out, (uint32_t)prev, (uint32_t)n, false))
        return ERR_NOMEM;
    return 0;
}
