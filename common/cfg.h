/*
 * cfg: command-line flags described by a table, parsed into a caller's options struct.
 *
 * Each subcommand declares a static const array of struct cfg_flag, one per field of its
 * options struct; cfg_parse fills the struct from defaults and argv, and cfg_print_help
 * writes the help text from the same table, so the two cannot drift apart. Nothing is
 * allocated: string options point into argv or at the default literals, so argv must
 * outlive the options. No global state; safe from any thread on distinct structs.
 */
#ifndef KILN_CFG_H
#define KILN_CFG_H

#include <stddef.h>
#include <stdio.h>

/* cfg_parse's result when --help or -h was given (positive: not an error). */
#define CFG_HELP 1

enum cfg_type {
    CFG_BOOL,   /* bool */
    CFG_INT,    /* long long */
    CFG_DOUBLE, /* double */
    CFG_STRING, /* const char *, into argv or at `def`; NULL when def is NULL */
    CFG_ENUM    /* int: index of the value in `choices` */
};

struct cfg_flag {
    const char *name;    /* without dashes: "max-num-seqs" */
    enum cfg_type type;  /* the field's C type, see enum cfg_type */
    size_t offset;       /* offsetof(options struct, field) */
    const char *def;     /* default as text, parsed like a value; NULL: false/0/NULL/index 0 */
    double min, max;     /* bounds for CFG_INT and CFG_DOUBLE; none when min > max */
    const char *choices; /* CFG_ENUM: the values, "|"-separated: "cpu|cuda" */
    const char *help;    /* one line for cfg_print_help */
};

/*
 * cfg_parse: applies every flag's default to opts, then reads argv[0..argc) (the arguments
 * after the subcommand): "--name value", "--name=value", "--flag" / "--no-flag" /
 * "--flag=true|false|1|0" for booleans; "--" ends the flags. A value that would start with
 * "--" must use the "--name=value" form. Every argument not starting with "--" is a
 * positional argument, stored in positional[] (pointing into argv) up to max_positional;
 * *n_positional (when not NULL) receives the count. Later flags override earlier ones.
 *
 * Returns 0; CFG_HELP when "--help" or "-h" comes before any error and before "--"; or
 * ERR_INVAL with a one-line reason in err (when errlen > 0): an unknown flag, a missing,
 * malformed or out-of-range value, a value not among the choices, too many positional
 * arguments, or a default in the table that does not parse. Integers are decimal and must
 * fit in a long long; doubles must be finite. Allocates nothing.
 */
int cfg_parse(const struct cfg_flag *flags, size_t n_flags, void *opts, int argc, char **argv,
              char **positional, int max_positional, int *n_positional, char *err, size_t errlen);

/*
 * cfg_print_help: writes `usage` on its own line, then one aligned line per flag:
 * "  --name VALUE  help (default: X; range [min, max])", VALUE being N for integers, X for
 * doubles, S for strings, the choices for enums, and nothing for booleans.
 */
void cfg_print_help(FILE *out, const char *usage, const struct cfg_flag *flags, size_t n_flags);

#endif
