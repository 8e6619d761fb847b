/*
 * log: levelled, one-line-per-event logging to stderr.
 *
 * The level lives in one process-wide struct (log_config), set once at start-up by the
 * process's main before threads start; the macros read it and evaluate their arguments only
 * when the level is enabled. Each event is written with a single write(2), so lines from
 * different threads do not interleave. Only frontend/, worker/ and cli/ log; libraries
 * return codes instead.
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

struct log_config {
    enum log_level level; /* events above this level are dropped */
    int fd;               /* where lines go; 2 (stderr) by default */
};

extern struct log_config log_config;

/* log_level_parse: "error"|"warn"|"info"|"debug" -> *out. Returns 0 or ERR_INVAL. */
int log_level_parse(const char *s, enum log_level *out);

/* log_write: formats one line "<time> <level> <file>:<line> <message>\n" and writes it. */
void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_config.level)                                                             \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
