/*
 * The template interpreter's limits and robustness: every limit ends a render with an error
 * (never a crash or a hang), compiled templates are shared by threads, and regressions found
 * by fuzzing stay fixed. Rendering semantics are tested against Python's jinja2 in
 * test_chat_templates.py.
 */
#include <jansson.h>
#include <pthread.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "templates/chat_template.h"
#include "templates/jinja.h"
#include "tests/test.h"

static int render(const char *src, const char *vars_json, const struct jinja_limits *lim,
                  struct buf *out, char *err, size_t errlen)
{
    struct jinja_template *t;
    int rc = jinja_compile(src, strlen(src), &t, err, errlen);
    if (rc)
        return rc;
    json_t *vars = json_loads(vars_json ? vars_json : "{}", 0, NULL);
    rc = jinja_render(t, vars, NULL, lim, out, err, errlen);
    json_decref(vars);
    jinja_free(t);
    return rc;
}

static void expect_error(const char *src, const struct jinja_limits *lim, int code,
                         const char *needle)
{
    struct buf out;
    char err[512] = "";
    buf_init(&out, 0);
    int rc = render(src, NULL, lim, &out, err, sizeof err);
    CHECK_EQ(rc, code);
    if (!strstr(err, needle)) {
        fprintf(stderr, "    error \"%s\" does not mention \"%s\"\n", err, needle);
        CHECK(0);
    }
    buf_deinit(&out);
}

TEST(output_limit)
{
    struct jinja_limits lim = {.max_output = 1000};
    expect_error("{% for i in range(100) %}0123456789abcdef{% endfor %}", &lim, ERR_LIMIT,
                 "output exceeded");
    expect_error("{{ 'x' * 5000 }}", &lim, ERR_LIMIT, "MemoryError");
}

TEST(step_limit_stops_long_loops)
{
    struct jinja_limits lim = {.max_steps = 100000};
    expect_error("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
                 "{% endfor %}{% endfor %}{% endfor %}",
                 &lim, ERR_LIMIT, "step limit");
}

TEST(range_is_bounded_like_the_sandbox)
{
    expect_error("{{ range(1000000)|length }}", NULL, ERR_INVAL, "OverflowError");
}

TEST(recursion_limit)
{
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, ERR_INVAL,
                 "RecursionError");
    /* deep nesting in the source is refused at compile time */
    char src[4096];
    size_t k = 0;
    k += (size_t)snprintf(src, sizeof src, "{{ ");
    for (int i = 0; i < 500; i++)
        src[k++] = '(';
    src[k++] = '1';
    for (int i = 0; i < 500; i++)
        src[k++] = ')';
    snprintf(src + k, sizeof src - k, " }}");
    struct jinja_template *t = NULL;
    char err[256];
    CHECK_EQ(jinja_compile(src, strlen(src), &t, err, sizeof err), ERR_PARSE);
    CHECK(strstr(err, "nested too deeply") != NULL);
}

TEST(memory_limit)
{
    struct jinja_limits lim = {.max_memory = 1 << 20};
    expect_error("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
                 &lim, ERR_LIMIT, "MemoryError");
}

/* where_of: "(line L, column C)" for the first `mark` in src, C counted in characters. */
static void where_of(const char *src, const char *mark, char *out, size_t n)
{
    const char *at = strstr(src, mark), *line_start = src;
    int line = 1, col = 1;
    for (const char *p = src; p < at; p++)
        if (*p == '\n')
            line++, line_start = p + 1;
    for (const char *p = line_start; p < at; p++)
        col += ((unsigned char)*p & 0xC0) != 0x80;
    snprintf(out, n, "(line %d, column %d)", line, col);
}

static void expect_compile_error_at(const char *src, const char *cls, const char *mark)
{
    struct jinja_template *t = NULL;
    char err[256], where[64];
    CHECK_EQ(jinja_compile(src, strlen(src), &t, err, sizeof err), ERR_PARSE);
    CHECK(t == NULL);
    CHECK(strstr(err, cls) == err);
    where_of(src, mark, where, sizeof where);
    if (!strstr(err, where))
        TEST_FAIL_AT("%s: want %s in \"%s\"", src, where, err);
}

TEST(syntax_errors_have_lines_and_columns)
{
    /* the parser's errors point at the token where parsing stopped */
    expect_compile_error_at("line one\n{% if x %}\n{{ 1 + }}\n{% endif %}", "TemplateSyntaxError",
                            "}}");
    expect_compile_error_at("a\n  {% if %}", "TemplateSyntaxError", "%}");
    expect_compile_error_at("x\n{% do x %}", "TemplateSyntaxError", "do");
    /* the lexer's at the offending character; columns count characters, not bytes */
    expect_compile_error_at("h\xc3\xa9llo {{ 1 }}\n  \xc3\xa9\xe2\x82\xac {{ x $ }}",
                            "TemplateSyntaxError", "$");
    expect_compile_error_at("ok\n\xf0\x9f\x98\x80{{ 'abc", "TemplateSyntaxError", "'abc");
    /* unknown filters and tests at their names */
    expect_compile_error_at("{{ x | trim | nosuch }}", "TemplateAssertionError", "nosuch");
    expect_compile_error_at("\n\n{% if x is nosuch %}{% endif %}", "TemplateAssertionError",
                            "nosuch");
}

/* fuzz finding: formatting widths above int range overflowed, and the cap then looped */
TEST(regression_huge_format_width)
{
    expect_error("{{ '%99999999999d' % 1 }}", NULL, ERR_INVAL, "too big");
    expect_error("{{ '{:99999999999}'.format(1) }}", NULL, ERR_INVAL, "Too many");
}

/* fuzz finding: continue_final_message wrote a terminator into an empty output buffer */
TEST(regression_continue_final_empty_output)
{
    struct jinja_template *t;
    char err[256];
    REQUIRE(jinja_compile("", 0, &t, err, sizeof err) == 0);
    json_t *msgs = json_loads("[{\"role\": \"assistant\", \"content\": \"\"}]", 0, NULL);
    struct chat_input in = {.messages = msgs, .continue_final_message = true};
    struct buf out;
    buf_init(&out, 0);
    CHECK_EQ(chat_template_render(t, &in, NULL, &out, err, sizeof err), 0);
    CHECK_EQ(out.n, 0);
    buf_deinit(&out);
    json_decref(msgs);
    jinja_free(t);
}

struct job {
    const struct jinja_template *t;
    json_t *vars;
    int ok;
};

static void *render_many(void *arg)
{
    struct job *j = arg;
    struct buf a, b;
    char err[256];
    buf_init(&a, 0);
    buf_init(&b, 0);
    jinja_render(j->t, j->vars, NULL, NULL, &a, err, sizeof err);
    j->ok = 1;
    for (int i = 0; i < 200; i++) {
        buf_reset(&b);
        jinja_render(j->t, j->vars, NULL, NULL, &b, err, sizeof err);
        j->ok &= b.n == a.n && memcmp(a.p, b.p, a.n) == 0;
    }
    buf_deinit(&a);
    buf_deinit(&b);
    return NULL;
}

TEST(compiled_template_is_shared_by_threads)
{
    static const char src[] = "{% set ns = namespace(n=0) %}{% for m in messages %}"
                              "{% set ns.n = ns.n + 1 %}{{ m.role }}:{{ m.content|upper }}"
                              "{{ loop.index }}{% endfor %}{{ ns.n }}{{ messages|tojson }}";
    struct jinja_template *t;
    char err[256];
    REQUIRE(jinja_compile(src, sizeof src - 1, &t, err, sizeof err) == 0);
    json_t *vars = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"héllo\"},"
                              "{\"role\": \"assistant\", \"content\": \"wörld\"}]}",
                              0, NULL);
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){t, vars, 0};
        REQUIRE(pthread_create(&th[i], NULL, render_many, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].ok);
    }
    json_decref(vars);
    jinja_free(t);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
