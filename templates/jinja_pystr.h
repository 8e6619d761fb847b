/*
 * jinja_pystr: Python's str operations that templates call (strip, split, case mapping,
 * str.format, % formatting, strftime), on UTF-8 strings, for the interpreter's builtins.
 * Results are allocated in the render's arena.
 */
#ifndef KILN_JINJA_PYSTR_H
#define KILN_JINJA_PYSTR_H

#include "jinja_internal.h"

/* pystr_strip: str.strip/lstrip/rstrip(chars); chars NULL strips whitespace. */
struct jv pystr_strip(struct jv s, const struct jv *chars, bool left, bool right);
/* pystr_split: str.split / str.rsplit(sep=None, maxsplit=-1). */
int pystr_split(struct jinja_rt *rt, struct jv s, const struct jv *sep, int64_t maxsplit,
                bool from_right, struct jv *out);
/* pystr_splitlines: str.splitlines(keepends). */
int pystr_splitlines(struct jinja_rt *rt, struct jv s, bool keepends, struct jv *out);
/* pystr_case: upper, lower, title, capitalize, swapcase. */
enum pystr_case { PY_UPPER, PY_LOWER, PY_TITLE, PY_CAPITALIZE, PY_SWAPCASE };
int pystr_case(struct jinja_rt *rt, struct jv s, enum pystr_case how, struct jv *out);
/* pystr_replace: str.replace(old, new, count < 0: all). */
int pystr_replace(struct jinja_rt *rt, struct jv s, struct jv old, struct jv new_, int64_t count,
                  struct jv *out);
/* pystr_find: str.find / rfind as a code point index, -1 when absent. */
int64_t pystr_find(struct jv s, struct jv sub, bool from_right);
/* pystr_count: str.count(sub). */
int64_t pystr_count(struct jv s, struct jv sub);
/* pystr_join: sep.join(items); TypeError for a non-string item. */
int pystr_join(struct jinja_rt *rt, struct jv sep, struct jv items, struct jv *out);
/* pystr_is: str.isdigit / isalpha / ... by name letter: 'd','a','n'(alnum),'s','l','u'. */
bool pystr_is(struct jv s, char what);
/* pystr_pad: str.center / ljust / rjust (where: 'c','l','r') with a fill character. */
int pystr_pad(struct jinja_rt *rt, struct jv s, int64_t width, char where, struct jv *out);
/* pystr_python_word: a character Python's re counts as \w. */
bool pystr_python_word(uint32_t cp);

#endif
