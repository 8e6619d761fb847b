/*
 * err: the project's error codes.
 *
 * Every fallible function returns 0 on success or one of the negative ERR_* codes below;
 * results travel through pointer parameters. err_name() gives the stable symbolic name
 * (for logs and tests); err_http_status() maps a code to the HTTP status a frontend answers.
 * Pure functions, safe from any thread.
 */
#ifndef KILN_ERR_H
#define KILN_ERR_H

#include <stddef.h>

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,       /* an allocation failed */
    ERR_INVAL = -2,       /* an argument or input is malformed */
    ERR_LIMIT = -3,       /* a size, count or depth limit was reached */
    ERR_IO = -4,          /* a read, write or open failed (see errno) */
    ERR_PARSE = -5,       /* a file or message does not parse */
    ERR_UNSUPPORTED = -6, /* well formed, but uses a feature kiln does not implement */
    ERR_NOTFOUND = -7,    /* a named thing does not exist */
    ERR_RANGE = -8,       /* a number is outside its allowed range */
    ERR_STATE = -9,       /* the call is not valid in the object's current state */
    ERR_MIN_ = -10
};

/* err_name: the code's symbolic name ("ERR_LIMIT"); "ERR_UNKNOWN" for anything else. */
const char *err_name(int code);

/* err_set: writes the printf-formatted reason into err (when err is not NULL and errlen > 0;
 * cut to fit) and returns code, for `return err_set(err, errlen, ERR_PARSE, "...", ...);`. */
__attribute__((format(printf, 4, 5))) int err_set(char *err, size_t errlen, int code,
                                                  const char *fmt, ...);

/* err_http_status: the HTTP status a client sees for this code (400, 413, 500, 501, ...). */
int err_http_status(int code);

#endif
