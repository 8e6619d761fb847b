#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"
#include "common/err.h"
#include "tests/test.h"

struct opts {
    bool verbose;
    bool trust;
    long long port;
    long long seed;
    double temperature;
    double scale;
    const char *model;
    const char *chat_template;
    int device;
};

static const struct cfg_flag flags[] = {
    {"verbose", CFG_BOOL, offsetof(struct opts, verbose), NULL, 1, 0, NULL, "log more"},
    {"trust-remote-code", CFG_BOOL, offsetof(struct opts, trust), "true", 1, 0, NULL,
     "trust the checkpoint"},
    {"port", CFG_INT, offsetof(struct opts, port), "8000", 1, 65535, NULL, "TCP port"},
    {"seed", CFG_INT, offsetof(struct opts, seed), NULL, 1, 0, NULL, "random seed"},
    {"temperature", CFG_DOUBLE, offsetof(struct opts, temperature), "0.7", 0, 2, NULL,
     "sampling temperature"},
    {"scale", CFG_DOUBLE, offsetof(struct opts, scale), "1.5", 1, 0, NULL, "a scale"},
    {"model", CFG_STRING, offsetof(struct opts, model), NULL, 1, 0, NULL, "model path"},
    {"chat-template", CFG_STRING, offsetof(struct opts, chat_template), "auto", 1, 0, NULL,
     "template name"},
    {"device", CFG_ENUM, offsetof(struct opts, device), "cpu", 1, 0, "cpu|cuda", "backend"},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

/* Parses a NULL-terminated argument list; positionals land in pos[0..2). */
struct parsed {
    struct opts o;
    char *pos[2];
    int n_pos;
    char err[128];
    int rc;
};

static struct parsed parse(char **argv)
{
    struct parsed p;
    memset(&p, 0x5a, sizeof p); /* garbage: defaults must overwrite every field */
    p.err[0] = '\0';
    int argc = 0;
    while (argv[argc])
        argc++;
    p.rc = cfg_parse(flags, N_FLAGS, &p.o, argc, argv, p.pos, 2, &p.n_pos, p.err, sizeof p.err);
    return p;
}

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})

TEST(defaults_applied)
{
    char *none[] = {NULL};
    struct parsed p = parse(none);
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.verbose, false);
    CHECK_EQ(p.o.trust, true);
    CHECK_EQ(p.o.port, 8000);
    CHECK_EQ(p.o.seed, 0);
    CHECK(p.o.temperature == 0.7);
    CHECK(p.o.scale == 1.5);
    CHECK(p.o.model == NULL);
    CHECK_STREQ(p.o.chat_template, "auto");
    CHECK_EQ(p.o.device, 0);
    CHECK_EQ(p.n_pos, 0);
}

TEST(each_type_space_form)
{
    struct parsed p =
        parse(ARGS("--verbose", "--port", "9000", "--seed", "-12", "--temperature", "1.25",
                   "--model", "/m/llama", "--device", "cuda", "--trust-remote-code", "false"));
    /* a boolean never takes the next argument: "false" is positional */
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.verbose, true);
    CHECK_EQ(p.o.port, 9000);
    CHECK_EQ(p.o.seed, -12);
    CHECK(p.o.temperature == 1.25);
    CHECK_STREQ(p.o.model, "/m/llama");
    CHECK_EQ(p.o.device, 1);
    CHECK_EQ(p.o.trust, true);
    REQUIRE(p.n_pos == 1);
    CHECK_STREQ(p.pos[0], "false");
}

TEST(each_type_equals_form)
{
    struct parsed p =
        parse(ARGS("--verbose=true", "--port=1", "--seed=+5", "--temperature=2", "--scale=-1e3",
                   "--model=a=b", "--chat-template=", "--device=cpu", "--trust-remote-code=0"));
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.verbose, true);
    CHECK_EQ(p.o.port, 1);
    CHECK_EQ(p.o.seed, 5);
    CHECK(p.o.temperature == 2.0);
    CHECK(p.o.scale == -1000.0);
    CHECK_STREQ(p.o.model, "a=b");
    CHECK_STREQ(p.o.chat_template, "");
    CHECK_EQ(p.o.device, 0);
    CHECK_EQ(p.o.trust, false);
    p = parse(ARGS("--verbose=1", "--trust-remote-code=false"));
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.verbose, true);
    CHECK_EQ(p.o.trust, false);
}

TEST(bool_negation_and_last_wins)
{
    struct parsed p = parse(
        ARGS("--no-trust-remote-code", "--verbose", "--no-verbose", "--port", "1", "--port=2"));
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.trust, false);
    CHECK_EQ(p.o.verbose, false);
    CHECK_EQ(p.o.port, 2);
}

TEST(positionals_and_double_dash)
{
    struct parsed p = parse(ARGS("model.gguf", "--port", "80", "-"));
    REQUIRE(p.rc == 0);
    REQUIRE(p.n_pos == 2);
    CHECK_STREQ(p.pos[0], "model.gguf");
    CHECK_STREQ(p.pos[1], "-");
    p = parse(ARGS("--verbose", "--", "--port", "-h"));
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.verbose, true);
    CHECK_EQ(p.o.port, 8000);
    REQUIRE(p.n_pos == 2);
    CHECK_STREQ(p.pos[0], "--port");
    CHECK_STREQ(p.pos[1], "-h");
    p = parse(ARGS("--seed", "-5"));
    REQUIRE(p.rc == 0);
    CHECK_EQ(p.o.seed, -5);
    CHECK_EQ(p.n_pos, 0);
}

TEST(positionals_pointer_into_argv)
{
    char a0[] = "x", a1[] = "--model=m";
    char *argv[] = {a0, a1, NULL};
    struct parsed p = parse(argv);
    REQUIRE(p.rc == 0);
    CHECK(p.pos[0] == a0);
    CHECK(p.o.model == a1 + 8);
}

static void check_error(char **argv, const char *msg)
{
    struct parsed p = parse(argv);
    CHECK_EQ(p.rc, ERR_INVAL);
    CHECK_STREQ(p.err, msg);
}

TEST(error_messages)
{
    check_error(ARGS("--foo"), "unknown flag --foo");
    check_error(ARGS("--foo=1"), "unknown flag --foo");
    check_error(ARGS("--no-port"), "unknown flag --no-port");
    check_error(ARGS("--no-verbose=1"), "--no-verbose does not take a value");
    check_error(ARGS("--port"), "--port needs a value");
    check_error(ARGS("--port", "--verbose"), "--port needs a value");
    check_error(ARGS("--port", "abc"), "--port: 'abc' is not an integer");
    check_error(ARGS("--port=12x"), "--port: '12x' is not an integer");
    check_error(ARGS("--port="), "--port: '' is not an integer");
    check_error(ARGS("--port", " 5"), "--port: ' 5' is not an integer");
    check_error(ARGS("--port", "70000"), "--port: 70000 is out of range [1, 65535]");
    check_error(ARGS("--port=0"), "--port: 0 is out of range [1, 65535]");
    check_error(ARGS("--seed", "99999999999999999999"),
                "--seed: 99999999999999999999 is out of range");
    check_error(ARGS("--temperature", "hot"), "--temperature: 'hot' is not a number");
    check_error(ARGS("--temperature", "0.5x"), "--temperature: '0.5x' is not a number");
    check_error(ARGS("--temperature", "nan"), "--temperature: 'nan' is not a finite number");
    check_error(ARGS("--scale=inf"), "--scale: 'inf' is not a finite number");
    check_error(ARGS("--scale=1e999"), "--scale: '1e999' is not a finite number");
    check_error(ARGS("--temperature", "2.5"), "--temperature: 2.5 is out of range [0, 2]");
    check_error(ARGS("--device", "tpu"), "--device: 'tpu' is not one of cpu|cuda");
    check_error(ARGS("--device=cu"), "--device: 'cu' is not one of cpu|cuda");
    check_error(ARGS("--verbose=yes"), "--verbose: 'yes' is not true, false, 1 or 0");
    check_error(ARGS("a", "b", "c"), "too many arguments at 'c' (at most 2)");
}

TEST(no_positionals_allowed)
{
    struct opts o;
    char err[64] = "";
    int n = -1;
    char *argv[] = {"extra"};
    CHECK_EQ(cfg_parse(flags, N_FLAGS, &o, 1, argv, NULL, 0, &n, err, sizeof err), ERR_INVAL);
    CHECK_STREQ(err, "unexpected argument 'extra'");
    CHECK_EQ(n, 0);
}

TEST(error_message_truncated_to_errlen)
{
    struct opts o;
    char err[8];
    char *argv[] = {"--unknown-flag"};
    CHECK_EQ(cfg_parse(flags, N_FLAGS, &o, 1, argv, NULL, 0, NULL, err, sizeof err), ERR_INVAL);
    CHECK_STREQ(err, "unknown");
    CHECK_EQ(cfg_parse(flags, N_FLAGS, &o, 1, argv, NULL, 0, NULL, NULL, 0), ERR_INVAL);
}

TEST(help_returns_cfg_help)
{
    CHECK_EQ(parse(ARGS("--help")).rc, CFG_HELP);
    CHECK_EQ(parse(ARGS("--port", "1", "-h")).rc, CFG_HELP);
    CHECK_EQ(parse(ARGS("-h", "--bogus")).rc, CFG_HELP);
    CHECK(CFG_HELP > 0);
}

TEST(bad_default_is_reported)
{
    struct o1 {
        long long n;
    } o;
    static const struct cfg_flag bad[] = {
        {"n", CFG_INT, offsetof(struct o1, n), "ten", 1, 0, NULL, "n"},
    };
    char err[64] = "";
    CHECK_EQ(cfg_parse(bad, 1, &o, 0, NULL, NULL, 0, NULL, err, sizeof err), ERR_INVAL);
    CHECK_STREQ(err, "--n: 'ten' is not an integer");
}

/* Returns the help text as a malloc'd string. */
static char *help_text(void)
{
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    cfg_print_help(f, "usage: kiln serve [flags] MODEL", flags, N_FLAGS);
    long n = ftell(f);
    char *s = n >= 0 ? calloc(1, (size_t)n + 1) : NULL;
    rewind(f);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

/* The line of s that contains needle, copied into line (or "" when none). */
static void find_line(const char *s, const char *needle, char *line, size_t cap)
{
    line[0] = '\0';
    const char *hit = strstr(s, needle);
    if (!hit)
        return;
    while (hit > s && hit[-1] != '\n')
        hit--;
    size_t n = strcspn(hit, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(line, hit, n);
    line[n] = '\0';
}

TEST(help_lists_every_flag)
{
    char *s = help_text();
    REQUIRE(s != NULL);
    CHECK(strncmp(s, "usage: kiln serve [flags] MODEL\n", 32) == 0);
    char line[200];
    find_line(s, "--port", line, sizeof line);
    CHECK(strstr(line, "  --port N ") == line);
    CHECK(strstr(line, "TCP port (default: 8000; range [1, 65535])") != NULL);
    find_line(s, "--temperature", line, sizeof line);
    CHECK(strstr(line, "--temperature X ") != NULL);
    CHECK(strstr(line, "sampling temperature (default: 0.7; range [0, 2])") != NULL);
    find_line(s, "--scale", line, sizeof line);
    CHECK(strstr(line, "a scale (default: 1.5)") != NULL);
    CHECK(strstr(line, "range") == NULL);
    find_line(s, "--seed", line, sizeof line);
    CHECK(strstr(line, "--seed N ") != NULL);
    CHECK(strstr(line, "random seed") != NULL);
    CHECK(strstr(line, "(") == NULL);
    find_line(s, "--model", line, sizeof line);
    CHECK(strstr(line, "--model S ") != NULL);
    find_line(s, "--chat-template", line, sizeof line);
    CHECK(strstr(line, "template name (default: auto)") != NULL);
    find_line(s, "--device", line, sizeof line);
    CHECK(strstr(line, "--device cpu|cuda ") != NULL);
    CHECK(strstr(line, "backend (default: cpu)") != NULL);
    find_line(s, "--verbose", line, sizeof line);
    CHECK(strstr(line, "  --verbose ") == line);
    find_line(s, "--trust-remote-code", line, sizeof line);
    CHECK(strstr(line, "trust the checkpoint (default: true)") != NULL);
    free(s);
}

TEST(help_columns_align)
{
    char *s = help_text();
    REQUIRE(s != NULL);
    const char *helps[] = {"log more", "TCP port", "sampling temperature", "backend"};
    char line[200];
    long col = -1;
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        find_line(s, helps[i], line, sizeof line);
        const char *h = strstr(line, helps[i]);
        REQUIRE(h != NULL);
        if (col < 0)
            col = h - line;
        CHECK_EQ(h - line, col);
    }
    free(s);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
