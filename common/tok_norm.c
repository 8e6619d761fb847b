/*
 * tok_norm: normalizers (NFC/NFD/NFKC/NFKD via utf8proc, Lowercase, Strip, StripAccents,
 * Prepend, Replace), applied in sequence as HF's normalizers::Sequence does.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "err.h"
#include "utf8.h"

static int unicode_form(enum tok_norm_type type, const char *s, size_t n, struct buf *out)
{
    int opt = UTF8PROC_STABLE;
    switch (type) {
    case TOK_NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TOK_NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TOK_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (n == 0)
        return 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                        (utf8proc_option_t)opt);
    if (len < 0)
        return len == UTF8PROC_ERROR_NOMEM ? ERR_NOMEM : ERR_INVAL;
    int rc = buf_append(out, dst, (size_t)len);
    free(dst);
    return rc;
}

/* lowercase: Rust's char::to_lowercase per character (U+0130 is the one character whose
 * full lowercase mapping is two characters). */
static int lowercase(const char *s, size_t n, struct buf *out)
{
    uint32_t cp;
    char enc[4];
    for (size_t i = 0; i < n;) {
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l)
            return ERR_INVAL;
        i += l;
        int rc;
        if (cp == 0x130) {
            rc = buf_append(out, "i\xCC\x87", 3);
        } else {
            uint32_t lc = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
            rc = buf_append(out, enc, utf8_encode(lc, enc));
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int strip(const struct tok_norm *nm, const char *s, size_t n, struct buf *out)
{
    size_t a = 0, b = n;
    uint32_t cp;
    while (nm->left && a < b) {
        size_t l = utf8_decode(s + a, b - a, &cp);
        if (!l || !uc_is_white_space(cp))
            break;
        a += l;
    }
    while (nm->right && b > a) {
        size_t j = b - 1;
        while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        if (!utf8_decode(s + j, b - j, &cp) || !uc_is_white_space(cp))
            break;
        b = j;
    }
    return buf_append(out, s + a, b - a);
}

static int strip_accents(const char *s, size_t n, struct buf *out)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l)
            return ERR_INVAL;
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (c < UTF8PROC_CATEGORY_MN || c > UTF8PROC_CATEGORY_ME) { /* not a combining mark */
            int rc = buf_append(out, s + i, l);
            if (rc)
                return rc;
        }
        i += l;
    }
    return 0;
}

static int replace(const struct tok_norm *nm, struct tok_rx *rx, const char *s, size_t n,
                   struct buf *out, struct tok_spans *spans)
{
    int rc = tok_pattern_find(&nm->pat, rx, s, n, spans);
    for (size_t k = 0; rc == 0 && k < spans->n; k++) {
        const struct tok_span *sp = &spans->v[k];
        if (sp->match)
            rc = buf_append(out, nm->str, nm->str_n);
        else
            rc = buf_append(out, s + sp->start, sp->end - sp->start);
    }
    return rc;
}

static int apply(const struct tok_norm *nm, struct tok_rx *rx, const char *s, size_t n,
                 struct buf *out, struct tok_spans *spans)
{
    switch (nm->type) {
    case TOK_NORM_NFC:
    case TOK_NORM_NFD:
    case TOK_NORM_NFKC:
    case TOK_NORM_NFKD: return unicode_form(nm->type, s, n, out);
    case TOK_NORM_LOWERCASE: return lowercase(s, n, out);
    case TOK_NORM_STRIP: return strip(nm, s, n, out);
    case TOK_NORM_STRIP_ACCENTS: return strip_accents(s, n, out);
    case TOK_NORM_PREPEND:
        if (n == 0)
            return 0;
        if (buf_append(out, nm->str, nm->str_n))
            return ERR_NOMEM;
        return buf_append(out, s, n);
    case TOK_NORM_REPLACE: return replace(nm, rx, s, n, out, spans);
    }
    return ERR_INVAL;
}

int tok_normalize(const struct tokenizer *t, struct tok_rx *rx, const char *s, size_t n,
                  struct buf *out, struct buf *work, struct tok_spans *spans)
{
    buf_reset(out);
    int rc = buf_append(out, s, n);
    for (size_t i = 0; rc == 0 && i < t->n_norms; i++) {
        buf_reset(work);
        rc = apply(&t->norms[i], rx, out->p, out->n, work, spans);
        if (rc == 0) {
            struct buf tmp = *out; /* swap: the result becomes the input of the next step */
            *out = *work;
            *work = tmp;
        }
    }
    return rc;
}
