/*
 * jinja_pyfmt: Python's str.format, the % operator on strings, and strftime_now.
 * str.format supports fields {} {0} {name} with .attr / [key] lookups, !r / !s, and format
 * specs [[fill]align][sign][0][width][.precision][type] for s, d, f, e, g, %, x, o, b.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/utf8.h"
#include "jinja_internal.h"
#include "jinja_pystr.h"

#define MAX_WIDTH 100000 /* format widths and precisions above this are refused */

struct spec {
    char fill, align, sign, type;
    bool zero, alt;
    int width, prec;
};

static const char *parse_spec(const char *p, const char *end, struct spec *s)
{
    *s = (struct spec){.fill = ' ', .prec = -1};
    if (end - p >= 2 && strchr("<>^=", p[1]) && p[1]) {
        s->fill = p[0];
        s->align = p[1];
        p += 2;
    } else if (p < end && strchr("<>^=", *p) && *p) {
        s->align = *p++;
    }
    if (p < end && (*p == '+' || *p == '-' || *p == ' '))
        s->sign = *p++;
    if (p < end && *p == '#') {
        s->alt = true;
        p++;
    }
    if (p < end && *p == '0') {
        s->zero = true;
        p++;
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++) /* capped: a larger width is an error */
        s->width = s->width > MAX_WIDTH ? MAX_WIDTH + 1 : s->width * 10 + (*p - '0');
    if (p < end && *p == '.') {
        s->prec = 0;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++)
            s->prec = s->prec > MAX_WIDTH ? MAX_WIDTH + 1 : s->prec * 10 + (*p - '0');
    }
    if (p < end)
        s->type = *p++;
    return p;
}

/* pad_to: writes body padded to the spec's width (numbers default right, strings left). */
static int pad_to(struct buf *out, const char *body, size_t n, const struct spec *s, bool number)
{
    size_t len = utf8_count(body, n);
    size_t w = s->width > 0 ? (size_t)s->width : 0;
    size_t pad = w > len ? w - len : 0;
    char align = s->align ? s->align : number ? '>' : '<';
    char fill = s->zero && !s->align ? '0' : s->fill;
    size_t left = align == '>' ? pad : align == '^' ? pad / 2 : 0;
    if (s->zero && !s->align && number && n && (body[0] == '-' || body[0] == '+')) {
        int rc = buf_append(out, body, 1);
        for (size_t i = 0; rc == 0 && i < pad; i++)
            rc = buf_append_byte(out, '0');
        return rc ? rc : buf_append(out, body + 1, n - 1);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < left; i++)
        rc = buf_append_byte(out, fill);
    if (rc == 0)
        rc = buf_append(out, body, n);
    for (size_t i = left; rc == 0 && i < pad; i++)
        rc = buf_append_byte(out, fill);
    return rc;
}

/* The C formats below are built from a fixed set of conversion letters, never from input. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int format_number(struct jinja_rt *rt, const struct jv *v, const struct spec *s,
                         struct buf *out)
{
    char tmp[512], cfmt[32];
    char type = s->type ? s->type : v->type == JV_FLOAT ? 'r' : 'd';
    double f = v->type == JV_FLOAT ? v->u.f : v->type == JV_INT ? (double)v->u.i : v->u.b;
    const char *sign = s->sign == '+' ? "+" : s->sign == ' ' ? " " : "";
    int n;
    if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b') {
        if (v->type == JV_FLOAT)
            return jinja_fail(rt, "ValueError",
                              "Unknown format code '%c' for object of type 'float'", type);
        long long iv = v->type == JV_INT ? (long long)v->u.i : v->u.b;
        if (type == 'b') {
            char bits[70];
            int k = 0;
            unsigned long long u = iv < 0 ? (unsigned long long)(-iv) : (unsigned long long)iv;
            do
                bits[k++] = (char)('0' + (u & 1));
            while (u >>= 1);
            n = snprintf(tmp, sizeof tmp, "%s%s", iv < 0 ? "-" : sign, s->alt ? "0b" : "");
            while (k > 0 && n < (int)sizeof tmp - 1)
                tmp[n++] = bits[--k];
            tmp[n] = 0;
        } else {
            snprintf(cfmt, sizeof cfmt, "%%%s%sll%c", sign, s->alt ? "#" : "",
                     type == 'd' ? 'd' : type);
            n = snprintf(tmp, sizeof tmp, cfmt, iv);
        }
    } else if (type == 'r') {
        struct buf b;
        buf_init(&b, 0);
        int rc = buf_append_str(&b, sign);
        if (rc == 0)
            rc = jv_float_repr(f, &b);
        if (rc == 0)
            rc = pad_to(out, b.p, b.n, s, true);
        buf_deinit(&b);
        return rc;
    } else if (strchr("fFeEgG%", type)) {
        int prec = s->prec >= 0 ? s->prec : 6;
        double x = type == '%' ? f * 100 : f;
        snprintf(cfmt, sizeof cfmt, "%%%s.%d%c%s", sign, prec > 300 ? 300 : prec,
                 type == '%' ? 'f' : type, type == '%' ? "%%" : "");
        n = snprintf(tmp, sizeof tmp, cfmt, x);
    } else {
        return jinja_fail(rt, "ValueError", "Unknown format code '%c' for object of type '%s'",
                          type, jv_type_name(v));
    }
    if (n < 0 || n >= (int)sizeof tmp)
        return jinja_fail(rt, "ValueError", "format result too long");
    return pad_to(out, tmp, (size_t)n, s, true);
}
#pragma GCC diagnostic pop

/* format_value: format(v, spec) into out. */
static int format_value(struct jinja_rt *rt, const struct jv *v, const char *sp, size_t sn,
                        struct buf *out)
{
    struct spec s;
    parse_spec(sp, sp + sn, &s);
    if (s.width > MAX_WIDTH || s.prec > MAX_WIDTH)
        return jinja_fail(rt, "ValueError", "Too many decimal digits in format string");
    bool num = v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
    if (num && (s.type != 's' || !s.type) && !(v->type == JV_BOOL && !s.type))
        return format_number(rt, v, &s, out);
    struct buf b;
    buf_init(&b, rt->max_out);
    int rc = jv_to_str(rt, v, &b);
    size_t n = b.n;
    if (rc == 0 && s.prec >= 0) { /* precision truncates strings */
        size_t k = 0, i = 0;
        while (i < b.n && k < (size_t)s.prec) {
            i++;
            while (i < b.n && ((unsigned char)b.p[i] & 0xC0) == 0x80)
                i++;
            k++;
        }
        n = i;
    }
    if (rc == 0)
        rc = pad_to(out, b.p, n, &s, false);
    buf_deinit(&b);
    return rc;
}

/* field_value: the value a replacement field names: arg index or keyword, then .attr/[key]. */
static int field_value(struct jinja_rt *rt, const char *p, const char *end, struct jargs *a,
                       size_t *auto_idx, struct jv *out)
{
    const char *q = p;
    while (q < end && *q != '.' && *q != '[')
        q++;
    if (q == p) {
        if (*auto_idx >= a->npos)
            return jinja_fail(rt, "IndexError",
                              "Replacement index %zu out of range for positional args tuple",
                              *auto_idx);
        *out = a->pos[(*auto_idx)++];
    } else if (*p >= '0' && *p <= '9') {
        size_t k = (size_t)strtoul(p, NULL, 10);
        if (k >= a->npos)
            return jinja_fail(rt, "IndexError",
                              "Replacement index %zu out of range for positional args tuple", k);
        *out = a->pos[k];
    } else {
        size_t k = 0;
        while (k < a->nkw &&
               !(a->lens[k] == (size_t)(q - p) && memcmp(a->names[k], p, a->lens[k]) == 0))
            k++;
        if (k == a->nkw)
            return jinja_fail(rt, "KeyError", "'%.*s'", (int)(q - p), p);
        *out = a->kw[k];
    }
    while (q < end) { /* .attr and [key] */
        bool dot = *q == '.';
        const char *s = ++q;
        while (q < end && *q != '.' && *q != '[' && *q != ']')
            q++;
        int rc;
        if (dot) {
            rc = jinja_getattr(rt, *out, s, (size_t)(q - s), out);
        } else {
            char *e;
            long long idx = strtoll(s, &e, 10);
            struct jv key = e == q ? jv_int(idx) : jv_str(s, (size_t)(q - s));
            rc = jinja_getitem(rt, *out, key, out);
            if (q < end && *q == ']')
                q++;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int jinja_str_format(struct jinja_rt *rt, struct jv fmt, struct jargs *a, struct jv *out)
{
    struct buf b;
    buf_init(&b, rt->max_out);
    const char *p = fmt.u.s.p, *end = p + fmt.u.s.n;
    size_t auto_idx = 0;
    int rc = 0;
    while (rc == 0 && p < end) {
        if ((*p == '{' || *p == '}') && p + 1 < end && p[1] == *p) {
            rc = buf_append_byte(&b, *p);
            p += 2;
            continue;
        }
        if (*p == '}') {
            rc = jinja_fail(rt, "ValueError", "Single '}' encountered in format string");
            break;
        }
        if (*p != '{') {
            rc = buf_append_byte(&b, *p++);
            continue;
        }
        const char *close = memchr(p, '}', (size_t)(end - p));
        if (!close) {
            rc = jinja_fail(rt, "ValueError", "Single '{' encountered in format string");
            break;
        }
        const char *f = p + 1, *conv = NULL, *spec = close;
        for (const char *k = f; k < close; k++)
            if (*k == '!' && !conv && spec == close)
                conv = k;
            else if (*k == ':' && spec == close)
                spec = k;
        const char *name_end = conv ? conv : spec;
        struct jv v;
        rc = field_value(rt, f, name_end, a, &auto_idx, &v);
        if (rc == 0 && conv && conv + 1 < close && conv[1] == 'r') {
            struct buf r;
            buf_init(&r, rt->max_out);
            rc = jv_repr(rt, &v, &r);
            if (rc == 0)
                rc = jv_str_copy(rt, r.p, r.n, &v);
            buf_deinit(&r);
        }
        if (rc == 0)
            rc = format_value(rt, &v, spec < close ? spec + 1 : close,
                              spec < close ? (size_t)(close - spec - 1) : 0, &b);
        p = close + 1;
    }
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    if (rc == ERR_LIMIT)
        rc = jinja_oom(rt);
    buf_deinit(&b);
    return rc;
}

/* ---- "..." % args ---- */

static int percent_one(struct jinja_rt *rt, char conv, const struct spec *s, const struct jv *v,
                       struct buf *out)
{
    if (conv == 's' || conv == 'r' || conv == 'a') {
        struct buf t;
        buf_init(&t, rt->max_out);
        int rc = conv == 's' ? jv_to_str(rt, v, &t) : jv_repr(rt, v, &t);
        struct spec s2 = *s;
        s2.align = s->align == '<' ? '<' : '>';
        size_t n = t.n;
        if (rc == 0 && s->prec >= 0 && (size_t)s->prec < utf8_count(t.p, t.n)) {
            size_t k = 0, i = 0;
            while (i < t.n && k < (size_t)s->prec) {
                i++;
                while (i < t.n && ((unsigned char)t.p[i] & 0xC0) == 0x80)
                    i++;
                k++;
            }
            n = i;
        }
        if (rc == 0)
            rc = pad_to(out, t.p, n, &s2, false);
        buf_deinit(&t);
        return rc;
    }
    if (v->type != JV_INT && v->type != JV_FLOAT && v->type != JV_BOOL)
        return jinja_fail(rt, "TypeError", "%%%c format: a real number is required, not %s", conv,
                          jv_type_name(v));
    struct spec s2 = *s;
    s2.align = s->align == '<' ? '<' : '>';
    struct jv num = *v;
    if (conv == 'd' || conv == 'i' || conv == 'u') {
        if (v->type == JV_FLOAT)
            num = jv_int((int64_t)v->u.f);
        s2.type = 'd';
    } else {
        s2.type = conv;
        if (s2.prec < 0)
            s2.prec = 6;
        if (v->type != JV_FLOAT)
            num = jv_float(v->type == JV_INT ? (double)v->u.i : v->u.b);
        if (conv == 'x' || conv == 'X' || conv == 'o') {
            num = *v;
            s2.prec = -1;
        }
    }
    return format_number(rt, &num, &s2, out);
}

int jinja_percent_format(struct jinja_rt *rt, struct jv fmt, struct jv args, struct jv *out)
{
    struct buf b;
    buf_init(&b, rt->max_out);
    bool tuple = args.type == JV_LIST && (args.flags & JV_F_TUPLE);
    size_t ai = 0;
    const char *p = fmt.u.s.p, *end = p + fmt.u.s.n;
    int rc = 0;
    while (rc == 0 && p < end) {
        if (*p != '%') {
            rc = buf_append_byte(&b, *p++);
            continue;
        }
        if (++p >= end) {
            rc = jinja_fail(rt, "ValueError", "incomplete format");
            break;
        }
        struct jv v = args;
        bool named = false;
        if (*p == '(') { /* %(name)s */
            const char *close = memchr(p, ')', (size_t)(end - p));
            if (!close || args.type != JV_DICT) {
                rc = jinja_fail(rt, "TypeError", "format requires a mapping");
                break;
            }
            const struct jv *hit = jv_dict_get_str(args.u.d, p + 1, (size_t)(close - p - 1));
            if (!hit) {
                rc = jinja_fail(rt, "KeyError", "'%.*s'", (int)(close - p - 1), p + 1);
                break;
            }
            v = *hit;
            named = true;
            p = close + 1;
        }
        struct spec s = {.fill = ' ', .prec = -1};
        for (; p < end && strchr("-+ #0", *p) && *p; p++)
            if (*p == '-')
                s.align = '<';
            else if (*p == '0')
                s.zero = true;
            else if (*p == '+' || *p == ' ')
                s.sign = *p;
            else
                s.alt = true;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            s.width = s.width > MAX_WIDTH ? MAX_WIDTH + 1 : s.width * 10 + (*p - '0');
        if (p < end && *p == '.')
            for (s.prec = 0, p++; p < end && *p >= '0' && *p <= '9'; p++)
                s.prec = s.prec > MAX_WIDTH ? MAX_WIDTH + 1 : s.prec * 10 + (*p - '0');
        if (s.width > MAX_WIDTH || s.prec > MAX_WIDTH) {
            rc = jinja_fail(rt, "OverflowError", "width or precision too big");
            break;
        }
        if (p >= end) {
            rc = jinja_fail(rt, "ValueError", "incomplete format");
            break;
        }
        char conv = *p++;
        if (conv == '%') {
            rc = buf_append_byte(&b, '%');
            continue;
        }
        if (!strchr("sradiufFeEgGxXoc", conv)) {
            rc = jinja_fail(rt, "ValueError", "unsupported format character '%c'", conv);
            break;
        }
        if (!named && tuple) {
            if (ai >= args.u.l->n) {
                rc = jinja_fail(rt, "TypeError", "not enough arguments for format string");
                break;
            }
            v = args.u.l->v[ai++];
        } else if (!named && ai++ > 0) {
            rc = jinja_fail(rt, "TypeError", "not enough arguments for format string");
            break;
        }
        rc = percent_one(rt, conv, &s, &v, &b);
    }
    if (rc == 0 && tuple && ai < args.u.l->n)
        rc = jinja_fail(rt, "TypeError", "not all arguments converted during string formatting");
    if (rc == 0)
        rc = jv_str_copy(rt, b.p, b.n, out);
    if (rc == ERR_LIMIT)
        rc = jinja_oom(rt);
    buf_deinit(&b);
    return rc;
}

/* ---- strftime_now ---- */

int jinja_strftime(struct jinja_rt *rt, struct jv fmt, struct jv *out)
{
    struct tm tm = {0};
    if (rt->now) {
        int Y, M, D, h = 0, m = 0, s = 0;
        if (sscanf(rt->now, "%d-%d-%dT%d:%d:%d", &Y, &M, &D, &h, &m, &s) < 3)
            return jinja_fail(rt, "ValueError", "Invalid isoformat string: '%s'", rt->now);
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = s;
        time_t t = timegm(&tm); /* fills in the weekday and the day of the year */
        gmtime_r(&t, &tm);
    } else {
        time_t t = time(NULL);
        localtime_r(&t, &tm);
    }
    char cfmt[256], res[512];
    if (fmt.u.s.n >= sizeof cfmt)
        return jinja_fail(rt, "ValueError", "format too long");
    memcpy(cfmt, fmt.u.s.p, fmt.u.s.n);
    cfmt[fmt.u.s.n] = 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = fmt.u.s.n ? strftime(res, sizeof res, cfmt, &tm) : 0; /* the template's format */
#pragma GCC diagnostic pop
    return jv_str_copy(rt, res, n, out);
}
