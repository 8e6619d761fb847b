#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Flags whose "--name VALUE" is wider than this do not widen the help's first column. */
#define CFG_HELP_COL_MAX 40

/* Writes the one-line reason into err (when there is room) and returns ERR_INVAL. */
__attribute__((format(printf, 3, 4))) static int cfg_fail(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ERR_INVAL;
}

static void *cfg_field(void *opts, const struct cfg_flag *f)
{
    return (char *)opts + f->offset;
}

static bool cfg_has_range(const struct cfg_flag *f)
{
    return (f->type == CFG_INT || f->type == CFG_DOUBLE) && f->min <= f->max;
}

/* "--name: VALUE is out of range [min, max]", or without the bounds when it has none. */
static int cfg_fail_range(const struct cfg_flag *f, const char *val, char *err, size_t errlen)
{
    if (!cfg_has_range(f))
        return cfg_fail(err, errlen, "--%s: %s is out of range", f->name, val);
    if (f->type == CFG_INT)
        return cfg_fail(err, errlen, "--%s: %s is out of range [%.0f, %.0f]", f->name, val, f->min,
                        f->max);
    return cfg_fail(err, errlen, "--%s: %s is out of range [%g, %g]", f->name, val, f->min, f->max);
}

static int cfg_set_bool(const struct cfg_flag *f, void *opts, const char *val, char *err,
                        size_t errlen)
{
    bool *out = cfg_field(opts, f);
    if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
        *out = true;
    else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
        *out = false;
    else
        return cfg_fail(err, errlen, "--%s: '%s' is not true, false, 1 or 0", f->name, val);
    return 0;
}

static int cfg_set_int(const struct cfg_flag *f, void *opts, const char *val, char *err,
                       size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (end == val || *end || isspace((unsigned char)val[0]))
        return cfg_fail(err, errlen, "--%s: '%s' is not an integer", f->name, val);
    if (errno == ERANGE || (cfg_has_range(f) && (v < f->min || v > f->max)))
        return cfg_fail_range(f, val, err, errlen);
    *(long long *)cfg_field(opts, f) = v;
    return 0;
}

static int cfg_set_double(const struct cfg_flag *f, void *opts, const char *val, char *err,
                          size_t errlen)
{
    char *end;
    double v = strtod(val, &end);
    if (end == val || *end || isspace((unsigned char)val[0]))
        return cfg_fail(err, errlen, "--%s: '%s' is not a number", f->name, val);
    if (!isfinite(v))
        return cfg_fail(err, errlen, "--%s: '%s' is not a finite number", f->name, val);
    if (cfg_has_range(f) && (v < f->min || v > f->max))
        return cfg_fail_range(f, val, err, errlen);
    *(double *)cfg_field(opts, f) = v;
    return 0;
}

/* The index of val among the "|"-separated choices, or -1. */
static int cfg_choice_index(const char *choices, const char *val)
{
    size_t vn = strlen(val);
    const char *p = choices;
    for (int i = 0; p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vn && memcmp(p, val, n) == 0)
            return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

static int cfg_set_enum(const struct cfg_flag *f, void *opts, const char *val, char *err,
                        size_t errlen)
{
    int i = cfg_choice_index(f->choices, val);
    if (i < 0)
        return cfg_fail(err, errlen, "--%s: '%s' is not one of %s", f->name, val,
                        f->choices ? f->choices : "");
    *(int *)cfg_field(opts, f) = i;
    return 0;
}

/* Parses val by f's type and stores it in opts. Returns 0 or ERR_INVAL with err set. */
static int cfg_set(const struct cfg_flag *f, void *opts, const char *val, char *err, size_t errlen)
{
    switch (f->type) {
    case CFG_BOOL: return cfg_set_bool(f, opts, val, err, errlen);
    case CFG_INT: return cfg_set_int(f, opts, val, err, errlen);
    case CFG_DOUBLE: return cfg_set_double(f, opts, val, err, errlen);
    case CFG_STRING: *(const char **)cfg_field(opts, f) = val; return 0;
    case CFG_ENUM: return cfg_set_enum(f, opts, val, err, errlen);
    }
    return cfg_fail(err, errlen, "--%s: unknown flag type %d", f->name, (int)f->type);
}

static int cfg_apply_defaults(const struct cfg_flag *flags, size_t n_flags, void *opts, char *err,
                              size_t errlen)
{
    for (size_t i = 0; i < n_flags; i++) {
        const struct cfg_flag *f = &flags[i];
        void *field = cfg_field(opts, f);
        if (f->def) {
            int rc = cfg_set(f, opts, f->def, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        switch (f->type) {
        case CFG_BOOL: *(bool *)field = false; break;
        case CFG_INT: *(long long *)field = 0; break;
        case CFG_DOUBLE: *(double *)field = 0.0; break;
        case CFG_STRING: *(const char **)field = NULL; break;
        case CFG_ENUM: *(int *)field = 0; break;
        }
    }
    return 0;
}

static const struct cfg_flag *cfg_find(const struct cfg_flag *flags, size_t n_flags,
                                       const char *name, size_t n)
{
    for (size_t i = 0; i < n_flags; i++)
        if (strlen(flags[i].name) == n && memcmp(flags[i].name, name, n) == 0)
            return &flags[i];
    return NULL;
}

/* "--no-NAME" for a boolean NAME: sets it false. Returns 1 when it was not such a flag. */
static int cfg_parse_negated(const struct cfg_flag *flags, size_t n_flags, void *opts,
                             const char *name, size_t n, bool has_val, char *err, size_t errlen)
{
    if (n <= 3 || memcmp(name, "no-", 3) != 0)
        return 1;
    const struct cfg_flag *f = cfg_find(flags, n_flags, name + 3, n - 3);
    if (!f || f->type != CFG_BOOL)
        return 1;
    if (has_val)
        return cfg_fail(err, errlen, "--%.*s does not take a value", (int)n, name);
    *(bool *)cfg_field(opts, f) = false;
    return 0;
}

/* Parses the flag at argv[*i], consuming argv[*i + 1] too when it is the flag's value. */
static int cfg_parse_flag(const struct cfg_flag *flags, size_t n_flags, void *opts, int argc,
                          char **argv, int *i, char *err, size_t errlen)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    const char *val = eq ? eq + 1 : NULL;
    const struct cfg_flag *f = cfg_find(flags, n_flags, name, n);
    if (!f) {
        int rc = cfg_parse_negated(flags, n_flags, opts, name, n, val != NULL, err, errlen);
        if (rc <= 0)
            return rc;
        return cfg_fail(err, errlen, "unknown flag --%.*s", (int)n, name);
    }
    if (!val && f->type == CFG_BOOL) {
        *(bool *)cfg_field(opts, f) = true;
        return 0;
    }
    if (!val) {
        if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
            return cfg_fail(err, errlen, "--%s needs a value", f->name);
        val = argv[++*i];
    }
    return cfg_set(f, opts, val, err, errlen);
}

static int cfg_add_positional(char *arg, char **positional, int max_positional, int *count,
                              char *err, size_t errlen)
{
    if (*count >= max_positional) {
        if (max_positional <= 0)
            return cfg_fail(err, errlen, "unexpected argument '%s'", arg);
        return cfg_fail(err, errlen, "too many arguments at '%s' (at most %d)", arg,
                        max_positional);
    }
    positional[(*count)++] = arg;
    return 0;
}

int cfg_parse(const struct cfg_flag *flags, size_t n_flags, void *opts, int argc, char **argv,
              char **positional, int max_positional, int *n_positional, char *err, size_t errlen)
{
    int count = 0, rc = cfg_apply_defaults(flags, n_flags, opts, err, errlen);
    bool flags_done = false;
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *arg = argv[i];
        if (!flags_done && strcmp(arg, "--") == 0)
            flags_done = true;
        else if (!flags_done && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0))
            rc = CFG_HELP;
        else if (!flags_done && strncmp(arg, "--", 2) == 0)
            rc = cfg_parse_flag(flags, n_flags, opts, argc, argv, &i, err, errlen);
        else
            rc = cfg_add_positional(argv[i], positional, max_positional, &count, err, errlen);
    }
    if (n_positional)
        *n_positional = count;
    return rc;
}

static const char *cfg_placeholder(const struct cfg_flag *f)
{
    switch (f->type) {
    case CFG_INT: return "N";
    case CFG_DOUBLE: return "X";
    case CFG_STRING: return "S";
    case CFG_ENUM: return f->choices ? f->choices : "";
    case CFG_BOOL: return "";
    }
    return "";
}

/* The width of "--name VALUE". */
static size_t cfg_left_width(const struct cfg_flag *f)
{
    size_t ph = strlen(cfg_placeholder(f));
    return 2 + strlen(f->name) + (ph ? 1 + ph : 0);
}

static void cfg_print_flag(FILE *out, const struct cfg_flag *f, size_t width)
{
    const char *ph = cfg_placeholder(f);
    size_t left = cfg_left_width(f);
    int pad = (int)(width > left ? width - left : 0);
    fprintf(out, "  --%s%s%s%*s  %s", f->name, *ph ? " " : "", ph, pad, "", f->help ? f->help : "");
    bool has_range = cfg_has_range(f);
    if (f->def || has_range) {
        fputs(f->help && *f->help ? " (" : "(", out);
        if (f->def)
            fprintf(out, "default: %s%s", f->def, has_range ? "; " : "");
        if (has_range && f->type == CFG_INT)
            fprintf(out, "range [%.0f, %.0f]", f->min, f->max);
        else if (has_range)
            fprintf(out, "range [%g, %g]", f->min, f->max);
        fputc(')', out);
    }
    fputc('\n', out);
}

void cfg_print_help(FILE *out, const char *usage, const struct cfg_flag *flags, size_t n_flags)
{
    if (usage)
        fprintf(out, "%s\n", usage);
    size_t width = 0;
    for (size_t i = 0; i < n_flags; i++) {
        size_t w = cfg_left_width(&flags[i]);
        if (w <= CFG_HELP_COL_MAX && w > width)
            width = w;
    }
    for (size_t i = 0; i < n_flags; i++)
        cfg_print_flag(out, &flags[i], width);
}
