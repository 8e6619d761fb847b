/* err and log: names, HTTP statuses, level parsing, and the one-line event format. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "tests/test.h"

TEST(err_names_are_distinct)
{
    for (int a = ERR_OK; a > ERR_MIN_; a--) {
        CHECK(strcmp(err_name(a), "ERR_UNKNOWN") != 0);
        for (int b = a - 1; b > ERR_MIN_; b--)
            CHECK(strcmp(err_name(a), err_name(b)) != 0);
    }
    CHECK_STREQ(err_name(ERR_LIMIT), "ERR_LIMIT");
    CHECK_STREQ(err_name(-999), "ERR_UNKNOWN");
}

TEST(err_http_status)
{
    CHECK_EQ(err_http_status(ERR_INVAL), 400);
    CHECK_EQ(err_http_status(ERR_PARSE), 400);
    CHECK_EQ(err_http_status(ERR_LIMIT), 413);
    CHECK_EQ(err_http_status(ERR_UNSUPPORTED), 501);
    CHECK_EQ(err_http_status(ERR_IO), 500);
}

TEST(log_level_parse)
{
    enum log_level l;
    CHECK_EQ(log_level_parse("debug", &l), 0);
    CHECK_EQ(l, LOG_DEBUG);
    CHECK_EQ(log_level_parse("warn", &l), 0);
    CHECK_EQ(l, LOG_WARN);
    CHECK_EQ(log_level_parse("loud", &l), ERR_INVAL);
}

static int arg_evaluations;
static int counted(void)
{
    return ++arg_evaluations;
}

TEST(log_one_line_per_event_and_lazy_arguments)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    struct log_config saved = log_config;
    log_config.fd = fds[1];
    log_config.level = LOG_INFO;
    log_info("request %s done\nsecond line", "r-1");
    log_debug("not shown %d", counted()); /* above the level: arguments not evaluated */
    log_config = saved;
    close(fds[1]);
    char buf[4096] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    REQUIRE(n > 0);
    CHECK_EQ(arg_evaluations, 0);
    CHECK(strstr(buf, " info  test_err_log.c:") != NULL);
    CHECK(strstr(buf, "request r-1 done second line\n") != NULL);
    CHECK(strchr(buf, '\n') == buf + n - 1); /* exactly one line */
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
