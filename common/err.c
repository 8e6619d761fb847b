#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK: return "ERR_OK";
    case ERR_NOMEM: return "ERR_NOMEM";
    case ERR_INVAL: return "ERR_INVAL";
    case ERR_LIMIT: return "ERR_LIMIT";
    case ERR_IO: return "ERR_IO";
    case ERR_PARSE: return "ERR_PARSE";
    case ERR_UNSUPPORTED: return "ERR_UNSUPPORTED";
    case ERR_NOTFOUND: return "ERR_NOTFOUND";
    case ERR_RANGE: return "ERR_RANGE";
    case ERR_STATE: return "ERR_STATE";
    default: return "ERR_UNKNOWN";
    }
}

int err_http_status(int code)
{
    switch (code) {
    case ERR_OK: return 200;
    case ERR_INVAL:
    case ERR_PARSE:
    case ERR_RANGE: return 400;
    case ERR_LIMIT: return 413;
    case ERR_NOTFOUND: return 404;
    case ERR_UNSUPPORTED: return 501;
    case ERR_STATE: return 409;
    case ERR_NOMEM: return 503;
    default: return 500;
    }
}

int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
