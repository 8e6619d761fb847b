/*
 * safetensors: files written here (in a mkdtemp folder or in memory) round-trip; the
 * stories260K fixture opens with the shapes Python's json module reads from its header;
 * sharded models open through their index; and each malformed input is refused with the
 * right code and a message naming the tensor or field at fault.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/safetensors.h"
#include "tests/test.h"

#define LABEL "t.safetensors"

/* ---- building files ---- */

struct blob {
    uint8_t *p;
    size_t n;
};

/* make_st: the 8-byte length, header, then data_n data bytes, byte i of the data being
 * (i * 7 + 1) & 0xff. */
static struct blob make_st(const char *header, size_t data_n)
{
    size_t h = strlen(header);
    struct blob b = {malloc(8 + h + data_n + 1), 8 + h + data_n};
    for (int i = 0; i < 8; i++)
        b.p[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b.p + 8, header, h);
    for (size_t i = 0; i < data_n; i++)
        b.p[8 + h + i] = (uint8_t)(i * 7 + 1);
    return b;
}

static uint8_t data_byte(size_t i)
{
    return (uint8_t)(i * 7 + 1);
}

/* open_mem: st_open_memory on make_st(header, data_n); *bp keeps the bytes when not NULL. */
static int open_mem(const char *header, size_t data_n, struct st_model **m, char *err,
                    struct blob *bp)
{
    struct blob b = make_st(header, data_n);
    err[0] = '\0';
    int rc = st_open_memory(b.p, b.n, LABEL, m, err, 512);
    if (bp)
        *bp = b;
    else
        free(b.p);
    return rc;
}

/* refused: the header is refused with code, and the message holds every given piece. */
#define REFUSED(header, data_n, code, ...)                                                         \
    do {                                                                                           \
        char err_[512];                                                                            \
        struct st_model *m_ = NULL;                                                                \
        int rc_ = open_mem((header), (data_n), &m_, err_, NULL);                                   \
        CHECK_STREQ(err_name(rc_), err_name(code));                                                \
        CHECK(m_ == NULL);                                                                         \
        st_model_free(m_);                                                                         \
        const char *want_[] = {__VA_ARGS__};                                                       \
        for (size_t i_ = 0; i_ < sizeof want_ / sizeof *want_; i_++)                               \
            if (!strstr(err_, want_[i_]))                                                          \
                TEST_FAIL_AT("\"%s\" not in message \"%s\"", want_[i_], err_);                     \
        if (strchr(err_, '\n'))                                                                    \
            TEST_FAIL_AT("message has a newline: \"%s\"", err_);                                   \
    } while (0)

/* A temporary folder, removed (with its files) by tmp_done. */
static void tmp_make(char *dir)
{
    strcpy(dir, "/tmp/kiln-st-XXXXXX");
    if (!mkdtemp(dir))
        dir[0] = '\0';
}

static void tmp_done(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

static void write_st(const char *dir, const char *name, const char *header, size_t data_n)
{
    struct blob b = make_st(header, data_n);
    write_file(dir, name, b.p, b.n);
    free(b.p);
}

/* ---- valid files ---- */

TEST(dtype_table)
{
    CHECK_STREQ(st_dtype_name(ST_F32), "F32");
    CHECK_STREQ(st_dtype_name(ST_BF16), "BF16");
    CHECK_STREQ(st_dtype_name(ST_F8_E5M2), "F8_E5M2");
    CHECK_EQ(st_dtype_size(ST_F64), 8);
    CHECK_EQ(st_dtype_size(ST_F16), 2);
    CHECK_EQ(st_dtype_size(ST_BOOL), 1);
    CHECK_EQ(st_dtype_size(ST_F8_E4M3), 1);
}

static const char ROUND_HDR[] =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"w.bf16\": {\"dtype\": \"BF16\", \"shape\": [2, 3], \"data_offsets\": [40, 52]},"
    " \"w.f32\": {\"dtype\": \"F32\", \"shape\": [2, 4], \"data_offsets\": [0, 32]},"
    " \"w.f16\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [32, 40]}}   ";

TEST(file_round_trip)
{
    char dir[64], path[128], err[512] = "";
    tmp_make(dir);
    REQUIRE(dir[0]);
    write_st(dir, "a.safetensors", ROUND_HDR, 52);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    struct st_model *m = NULL;
    int rc = st_open_file(path, &m, err, sizeof err);
    CHECK_STREQ(err, "");
    REQUIRE(rc == 0 && m);
    CHECK_EQ(st_count(m), 3);
    CHECK(st_at(m, 3) == NULL);
    static const struct {
        const char *name;
        enum st_dtype dtype;
        int n_dims;
        int64_t d0, d1;
        size_t begin, size;
    } want[] = {{"w.bf16", ST_BF16, 2, 2, 3, 40, 12},
                {"w.f16", ST_F16, 1, 4, 0, 32, 8},
                {"w.f32", ST_F32, 2, 2, 4, 0, 32}};
    size_t data_start = 8 + strlen(ROUND_HDR);
    for (size_t i = 0; i < 3; i++) {
        const struct st_tensor *t = st_find(m, want[i].name);
        REQUIRE(t != NULL);
        CHECK_STREQ(t->name, want[i].name);
        CHECK_EQ(t->dtype, want[i].dtype);
        CHECK_EQ(t->n_dims, want[i].n_dims);
        CHECK_EQ(t->shape[0], want[i].d0);
        if (want[i].n_dims > 1)
            CHECK_EQ(t->shape[1], want[i].d1);
        CHECK_EQ(t->size, want[i].size);
        CHECK_EQ(t->file, 0);
        CHECK_EQ(t->file_offset, data_start + want[i].begin);
        int same = 1;
        for (size_t k = 0; k < t->size; k++)
            same &= ((const uint8_t *)t->data)[k] == data_byte(want[i].begin + k);
        CHECK(same);
        st_release(m, t);
        CHECK_EQ(((const uint8_t *)t->data)[0], data_byte(want[i].begin)); /* faults back in */
    }
    /* st_at visits each tensor once */
    int seen = 0;
    for (size_t i = 0; i < st_count(m); i++)
        seen |= st_at(m, i) == st_find(m, st_at(m, i)->name) ? 1 << i : 0;
    CHECK_EQ(seen, 7);
    CHECK(st_find(m, "w") == NULL);
    CHECK(st_find(m, "__metadata__") == NULL);
    CHECK(st_find(m, "w.f32x") == NULL);
    st_model_free(m);
    tmp_done(dir);
}

TEST(memory_round_trip_and_release_is_noop)
{
    char err[512];
    struct st_model *m = NULL;
    struct blob b;
    REQUIRE(open_mem(ROUND_HDR, 52, &m, err, &b) == 0);
    const struct st_tensor *t = st_find(m, "w.f16");
    REQUIRE(t != NULL);
    CHECK(t->data == b.p + 8 + strlen(ROUND_HDR) + 32);
    st_release(m, t);
    CHECK_EQ(((const uint8_t *)t->data)[1], data_byte(33));
    st_model_free(m);
    free(b.p);
}

static const struct st_model *open_fixture(struct st_model **m)
{
    char dir[1024], err[512] = "";
    snprintf(dir, sizeof dir, "%s/models/stories260K", test_fixtures());
    int rc = st_open_model(dir, m, err, sizeof err);
    if (rc)
        fprintf(stderr, "    %s: %s\n", dir, err);
    return rc ? NULL : *m;
}

TEST(fixture_stories260k)
{
    struct st_model *m = NULL;
    REQUIRE(open_fixture(&m) != NULL);
    CHECK_EQ(st_count(m), 47); /* embed, 5 layers x 9, norm */
    const struct st_tensor *e = st_find(m, "model.embed_tokens.weight");
    REQUIRE(e != NULL);
    CHECK_EQ(e->dtype, ST_F32);
    CHECK_EQ(e->n_dims, 2);
    CHECK_EQ(e->shape[0], 512);
    CHECK_EQ(e->shape[1], 64);
    CHECK_EQ(e->size, 131072);
    CHECK_EQ(e->file_offset, 8 + 4856);
    const struct st_tensor *g = st_find(m, "model.layers.0.mlp.gate_proj.weight");
    REQUIRE(g != NULL);
    CHECK_EQ(g->shape[0], 172);
    CHECK_EQ(g->shape[1], 64);
    CHECK_EQ(g->file_offset, 8 + 4856 + 175360);
    const struct st_tensor *k = st_find(m, "model.layers.4.self_attn.k_proj.weight");
    REQUIRE(k != NULL);
    CHECK_EQ(k->shape[0], 32);
    CHECK_EQ(k->shape[1], 64);
    const struct st_tensor *n = st_find(m, "model.norm.weight");
    REQUIRE(n != NULL);
    CHECK_EQ(n->n_dims, 1);
    CHECK_EQ(n->shape[0], 64);
    CHECK_EQ(n->file_offset + n->size, 1044992); /* the last bytes of the file */
    /* the mapped bytes are the file's bytes */
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/model.safetensors", test_fixtures());
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    uint8_t buf[256];
    fseek(f, (long)g->file_offset, SEEK_SET);
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK_EQ(got, sizeof buf);
    CHECK(memcmp(buf, g->data, sizeof buf) == 0);
    st_release(m, e);
    CHECK(memcmp(buf, g->data, sizeof buf) == 0);
    st_model_free(m);
}

TEST(fixture_as_file)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/models/stories260K/model.safetensors", test_fixtures());
    struct st_model *m = NULL;
    REQUIRE(st_open_file(path, &m, err, sizeof err) == 0);
    CHECK_EQ(st_count(m), 47);
    CHECK(st_find(m, "model.layers.3.mlp.up_proj.weight") != NULL);
    st_model_free(m);
}

TEST(zero_length_tensors_and_empty_data)
{
    char err[512];
    struct st_model *m = NULL;
    struct blob b;
    /* an empty tensor inside another's bytes is no overlap; zero dims with huge others are
     * zero elements, not an overflow */
    REQUIRE(open_mem("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                     " \"z\": {\"dtype\": \"F32\", \"shape\": [0, 4], \"data_offsets\": [4, 4]},"
                     " \"h\": {\"dtype\": \"BF16\", \"shape\": [4611686018427387904, "
                     "4611686018427387904, 0], \"data_offsets\": [8, 8]}}",
                     8, &m, err, &b) == 0);
    const struct st_tensor *z = st_find(m, "z"), *h = st_find(m, "h");
    REQUIRE(z && h);
    CHECK_EQ(z->size, 0);
    CHECK_EQ(z->shape[0], 0);
    CHECK_EQ(h->size, 0);
    CHECK(h->data == b.p + b.n); /* the end of the data: never dereferenced */
    st_release(m, z);
    st_model_free(m);
    free(b.p);
    /* no data section at all */
    REQUIRE(open_mem("{\"e\": {\"dtype\": \"I8\", \"shape\": [0], \"data_offsets\": [0, 0]}}", 0,
                     &m, err, NULL) == 0);
    CHECK_EQ(st_count(m), 1);
    CHECK_EQ(st_find(m, "e")->size, 0);
    st_model_free(m);
    /* a scalar: shape [] holds one element */
    REQUIRE(open_mem("{\"s\": {\"dtype\": \"F64\", \"shape\": [], \"data_offsets\": [0, 8]}}", 8,
                     &m, err, NULL) == 0);
    CHECK_EQ(st_find(m, "s")->n_dims, 0);
    CHECK_EQ(st_find(m, "s")->size, 8);
    st_model_free(m);
}

TEST(empty_header_and_metadata_only)
{
    char err[512];
    struct st_model *m = NULL;
    REQUIRE(open_mem("{}", 0, &m, err, NULL) == 0);
    CHECK_EQ(st_count(m), 0);
    CHECK(st_find(m, "x") == NULL);
    CHECK(st_at(m, 0) == NULL);
    st_model_free(m);
    REQUIRE(open_mem("{\"__metadata__\": {\"format\": \"pt\", \"k\": \"v\"}}    ", 16, &m, err,
                     NULL) == 0);
    CHECK_EQ(st_count(m), 0);
    st_model_free(m);
    REQUIRE(open_mem("{\"__metadata__\": null}", 0, &m, err, NULL) == 0);
    CHECK_EQ(st_count(m), 0);
    st_model_free(m);
}

TEST(many_tensors_found)
{
    enum { N = 1000 };
    char *hdr = malloc(N * 96 + 8), *p = hdr, err[512];
    p += sprintf(p, "{");
    for (int i = 0; i < N; i++)
        p += sprintf(p,
                     "%s\"model.layers.%d.w\": {\"dtype\": \"U8\", \"shape\": [2], "
                     "\"data_offsets\": [%d, %d]}",
                     i ? ", " : "", N - 1 - i, 2 * i, 2 * i + 2);
    sprintf(p, "}");
    struct st_model *m = NULL;
    struct blob b;
    int rc = open_mem(hdr, 2 * N, &m, err, &b);
    free(hdr);
    REQUIRE(rc == 0);
    CHECK_EQ(st_count(m), N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%d.w", i);
        const struct st_tensor *t = st_find(m, name);
        size_t begin = 2 * (size_t)(N - 1 - i);
        bad += !t || strcmp(t->name, name) || *(const uint8_t *)t->data != data_byte(begin);
    }
    CHECK_EQ(bad, 0);
    st_model_free(m);
    free(b.p);
}

/* ---- malformed files ---- */

#define T1(body) "{\"x.w\": " body "}"
#define F32_64 "\"dtype\": \"F32\", \"shape\": [64]"

TEST(truncated_files)
{
    char dir[64], path[128], err[512];
    tmp_make(dir);
    REQUIRE(dir[0]);
    struct blob b = make_st(ROUND_HDR, 52);
    size_t h = strlen(ROUND_HDR);
    static const struct {
        size_t keep; /* bytes kept, from the end when > 1000 */
        int code;
        const char *piece;
    } cuts[] = {
        {0, ERR_PARSE, "too short"},
        {3, ERR_PARSE, "too short"},
        {7, ERR_PARSE, "too short"},
        {8, ERR_RANGE, "header length"},
        {20, ERR_RANGE, "header length"},
        {1000 + 53, ERR_RANGE, "header length"},
        {1000 + 1, ERR_RANGE, "\"w.bf16\": data_offsets [40, 52]"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        size_t n = cuts[i].keep >= 1000 ? b.n - (cuts[i].keep - 1000) : cuts[i].keep;
        write_file(dir, "cut.safetensors", b.p, n);
        snprintf(path, sizeof path, "%s/cut.safetensors", dir);
        struct st_model *m = NULL;
        err[0] = '\0';
        int rc = st_open_file(path, &m, err, sizeof err);
        CHECK_STREQ(err_name(rc), err_name(cuts[i].code));
        CHECK(m == NULL);
        if (!strstr(err, cuts[i].piece) || !strstr(err, path))
            TEST_FAIL_AT("cut at %zu: \"%s\" lacks \"%s\" or the path", n, err, cuts[i].piece);
    }
    /* cut inside the data: the last tensor's end is past the data section */
    write_file(dir, "cut.safetensors", b.p, 8 + h + 45);
    struct st_model *m = NULL;
    int rc = st_open_file(path, &m, err, sizeof err);
    CHECK_STREQ(err_name(rc), "ERR_RANGE");
    CHECK(strstr(err, "tensor \"w.bf16\": data_offsets [40, 52]") != NULL);
    CHECK(strstr(err, "45 bytes") != NULL);
    write_file(dir, "cut.safetensors", b.p, b.n);
    CHECK_EQ(st_open_file(path, &m, err, sizeof err), 0);
    st_model_free(m);
    free(b.p);
    tmp_done(dir);
}

TEST(header_length_past_file)
{
    char err[512];
    struct st_model *m = NULL;
    uint8_t b[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK_EQ(st_open_memory(b, sizeof b, LABEL, &m, err, sizeof err), ERR_RANGE);
    CHECK(strstr(err, LABEL ": header length 100 runs past the end of the file (8 bytes") != NULL);
    b[0] = 9; /* one byte too many */
    CHECK_EQ(st_open_memory(b, sizeof b, LABEL, &m, err, sizeof err), ERR_RANGE);
    b[0] = 8; /* fits exactly: "{}" and spaces... but the bytes are zeros: not JSON */
    CHECK_EQ(st_open_memory(b, sizeof b, LABEL, &m, err, sizeof err), ERR_PARSE);
    CHECK(strstr(err, "header: not valid JSON") != NULL);
    CHECK_EQ(st_open_memory(NULL, 0, LABEL, &m, err, sizeof err), ERR_PARSE);
    CHECK(strstr(err, LABEL ": 0 bytes, too short") != NULL);
}

TEST(header_length_absurd)
{
    char err[512];
    struct st_model *m = NULL;
    uint8_t b[16] = {1, 0, 0, 0x40, 6, 0, 0, 0, '{', '}'}; /* > 100 MiB */
    CHECK_EQ(st_open_memory(b, sizeof b, LABEL, &m, err, sizeof err), ERR_LIMIT);
    CHECK(strstr(err, "above the 100 MiB limit") != NULL);
    memset(b, 0xff, 8);
    CHECK_EQ(st_open_memory(b, sizeof b, LABEL, &m, err, sizeof err), ERR_LIMIT);
    CHECK(strstr(err, "header length 18446744073709551615") != NULL);
    CHECK(m == NULL);
}

TEST(header_not_json_or_not_object)
{
    REFUSED("{\"a\": ", 0, ERR_PARSE, LABEL ": header: not valid JSON");
    REFUSED("not json", 0, ERR_PARSE, "header: not valid JSON");
    REFUSED("{} trailing", 0, ERR_PARSE, "header: not valid JSON");
    REFUSED("", 0, ERR_PARSE, "header: not valid JSON");
    REFUSED("[1, 2]", 0, ERR_PARSE, "header: must be a JSON object");
    REFUSED("{\"a\": \"\\u0000\"}", 0, ERR_PARSE, "header: not valid JSON");
}

TEST(entry_not_object_or_fields_missing)
{
    REFUSED(T1("[1]"), 0, ERR_PARSE, "tensor \"x.w\": must be an object");
    REFUSED(T1("{\"shape\": [1], \"data_offsets\": [0, 4]}"), 4, ERR_PARSE,
            "tensor \"x.w\": dtype: missing");
    REFUSED(T1("{\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 4]}"), 4, ERR_PARSE,
            "tensor \"x.w\": dtype: must be a string");
    REFUSED(T1("{\"dtype\": \"F32\", \"data_offsets\": [0, 4]}"), 4, ERR_PARSE,
            "tensor \"x.w\": shape: missing");
    REFUSED(T1("{" F32_64 "}"), 256, ERR_PARSE, "tensor \"x.w\": data_offsets: missing");
}

TEST(unknown_dtype)
{
    REFUSED(T1("{\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 1]}"), 1, ERR_PARSE,
            "tensor \"x.w\": dtype: unknown dtype \"F7\"");
    REFUSED(T1("{\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}"), 4, ERR_PARSE,
            "unknown dtype \"f32\"");
}

TEST(shape_malformed)
{
    REFUSED(T1("{\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}"), 16, ERR_PARSE,
            "tensor \"x.w\": shape: must be a list of integers");
    REFUSED(T1("{\"dtype\": \"F32\", \"shape\": [4, -1], \"data_offsets\": [0, 16]}"), 16,
            ERR_PARSE, "tensor \"x.w\": shape[1]: must be a non-negative integer");
    REFUSED(T1("{\"dtype\": \"F32\", \"shape\": [64.5], \"data_offsets\": [0, 16]}"), 16, ERR_PARSE,
            "tensor \"x.w\": shape[0]: must be a non-negative integer");
    REFUSED(T1("{\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 16]}"), 16,
            ERR_PARSE, "shape[0]");
    REFUSED(T1("{\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}"), 1,
            ERR_PARSE, "tensor \"x.w\": shape: 9 dimensions, at most 8");
    REFUSED(T1("{\"dtype\": \"U8\", \"shape\": [99999999999999999999], \"data_offsets\": [0, 1]}"),
            1, ERR_PARSE, "header: not valid JSON");
}

TEST(shape_overflow)
{
    REFUSED(T1("{\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], "
               "\"data_offsets\": [0, 4]}"),
            4, ERR_RANGE,
            "tensor \"x.w\": shape [1099511627776, 1099511627776] of F32: the byte size "
            "overflows");
    /* fits as a count, overflows as bytes */
    REFUSED(T1("{\"dtype\": \"F64\", \"shape\": [4611686018427387904], \"data_offsets\": [0, 8]}"),
            8, ERR_RANGE, "tensor \"x.w\": shape [4611686018427387904] of F64");
    /* count above INT64_MAX */
    REFUSED(T1("{\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, "
               "8]}"),
            8, ERR_RANGE, "byte size overflows");
    /* a product that fits, but no file holds it */
    REFUSED(T1("{\"dtype\": \"U8\", \"shape\": [65536, 65536], \"data_offsets\": [0, 4294967296]}"),
            8, ERR_RANGE, "tensor \"x.w\": data_offsets [0, 4294967296] end past");
}

TEST(data_offsets_malformed)
{
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [0]}"), 256, ERR_PARSE,
            "tensor \"x.w\": data_offsets: must be [begin, end]");
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [0, 256, 512]}"), 512, ERR_PARSE,
            "tensor \"x.w\": data_offsets: must be");
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [0, 256.0]}"), 256, ERR_PARSE,
            "tensor \"x.w\": data_offsets: must be");
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [-256, 0]}"), 256, ERR_PARSE,
            "tensor \"x.w\": data_offsets: must be");
    REFUSED(T1("{" F32_64 ", \"data_offsets\": {\"0\": 256}}"), 256, ERR_PARSE,
            "tensor \"x.w\": data_offsets: must be");
}

TEST(data_offsets_out_of_range)
{
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [0, 256]}"), 255, ERR_RANGE,
            "tensor \"x.w\": data_offsets [0, 256] end past the data section's 255 bytes");
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [256, 0]}"), 256, ERR_RANGE,
            "tensor \"x.w\": data_offsets [256, 0]: begin > end");
    REFUSED(T1("{" F32_64 ", \"data_offsets\": [9223372036854775807, 9223372036854775807]}"), 256,
            ERR_RANGE, "end past the data section");
}

TEST(data_offsets_size_mismatch)
{
    char err[512];
    struct st_model *m = NULL;
    const char *hdr = "{\"model.norm.weight\": {" F32_64 ", \"data_offsets\": [0, 100]}}";
    CHECK_EQ(open_mem(hdr, 256, &m, err, NULL), ERR_RANGE);
    CHECK_STREQ(err, LABEL ": tensor \"model.norm.weight\": data_offsets [0, 100] hold 100 bytes, "
                           "shape [64] of F32 needs 256");
    REFUSED(T1("{\"dtype\": \"BF16\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}"), 24,
            ERR_RANGE, "hold 24 bytes, shape [2, 3] of BF16 needs 12");
}

TEST(overlapping_tensors)
{
    REFUSED("{\"a\": {\"dtype\": \"U8\", \"shape\": [10], \"data_offsets\": [0, 10]},"
            " \"b\": {\"dtype\": \"U8\", \"shape\": [10], \"data_offsets\": [9, 19]}}",
            19, ERR_RANGE, "tensor \"b\": data_offsets [9, 19] overlap tensor \"a\" at [0, 10]");
    /* the same range twice, and one inside another */
    REFUSED("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]},"
            " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]}}",
            8, ERR_RANGE, "overlap tensor");
    REFUSED("{\"big\": {\"dtype\": \"U8\", \"shape\": [16], \"data_offsets\": [0, 16]},"
            " \"c\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [20, 22]},"
            " \"in\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8]}}",
            22, ERR_RANGE, "tensor \"in\": data_offsets [6, 8] overlap tensor \"big\" at [0, 16]");
    /* touching is fine */
    char err[512];
    struct st_model *m = NULL;
    CHECK_EQ(open_mem("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
                      " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]}}",
                      8, &m, err, NULL),
             0);
    st_model_free(m);
}

TEST(duplicate_names)
{
    REFUSED("{\"dup.w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
            " \"dup.w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}",
            2, ERR_PARSE, "duplicate", "dup.w");
}

TEST(metadata_malformed)
{
    REFUSED("{\"__metadata__\": [\"pt\"]}", 0, ERR_PARSE, "__metadata__: must be an object");
    REFUSED("{\"__metadata__\": {\"format\": 1}}", 0, ERR_PARSE,
            "__metadata__: \"format\" must be a string");
}

TEST(messages_stay_on_one_line)
{
    REFUSED(T1("{\"dtype\": \"F\\n7\", \"shape\": [1], \"data_offsets\": [0, 1]}"), 1, ERR_PARSE,
            "unknown dtype \"F?7\"");
    REFUSED("{\"a\\nb\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1,
            ERR_PARSE, "tensor \"a?b\"");
    /* a long name is cut, at a UTF-8 boundary */
    char hdr[1024], *p = hdr;
    p += sprintf(p, "{\"");
    for (int i = 0; i < 100; i++)
        p += sprintf(p, "\xc3\xa9"); /* é, 200 bytes */
    sprintf(p, "\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 1]}}");
    char err[512];
    struct st_model *m = NULL;
    CHECK_EQ(open_mem(hdr, 1, &m, err, NULL), ERR_PARSE);
    const char *q = strstr(err, "tensor \"");
    REQUIRE(q != NULL);
    CHECK(strstr(err, "\xc3\xa9...\": dtype") != NULL);
    CHECK_EQ(strstr(err, "...") - (q + 8), 160);
}

TEST(small_err_buffers)
{
    char err[8];
    struct st_model *m = NULL;
    uint8_t b[8] = {0};
    CHECK_EQ(st_open_memory(b, 4, LABEL, &m, err, sizeof err), ERR_PARSE);
    CHECK_EQ(strlen(err), 7);
    CHECK_EQ(st_open_memory(b, 4, LABEL, &m, NULL, 0), ERR_PARSE);
}

TEST(file_errors)
{
    char err[512], dir[64], path[128];
    struct st_model *m = NULL;
    CHECK_EQ(st_open_file("/nonexistent/kiln/x.safetensors", &m, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "/nonexistent/kiln/x.safetensors: cannot open") != NULL);
    tmp_make(dir);
    REQUIRE(dir[0]);
    CHECK_EQ(st_open_file(dir, &m, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "not a regular file") != NULL);
    CHECK_EQ(st_open_model(dir, &m, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "neither model.safetensors nor model.safetensors.index.json") != NULL);
    CHECK(strstr(err, dir) != NULL);
    write_file(dir, "model.safetensors", "", 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_EQ(st_open_model(dir, &m, err, sizeof err), ERR_PARSE);
    CHECK_STREQ(err, "model.safetensors: 0 bytes, too short to hold the 8-byte header length");
    CHECK(m == NULL);
    tmp_done(dir);
}

/* ---- sharded models ---- */

static const char SHARD1[] =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"embed\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},"
    " \"l0.q\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [16, 24]}}";
static const char SHARD2[] =
    "{\"l1.q\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]},"
    " \"norm\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}";
#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"

/* sharded_dir: two shards and an index whose weight_map is map_json. */
static void sharded_dir(char *dir, const char *map_json)
{
    tmp_make(dir);
    if (!dir[0])
        return;
    write_st(dir, S1, SHARD1, 24);
    write_st(dir, S2, SHARD2, 8);
    size_t cap = strlen(map_json) + 64;
    char *idx = malloc(cap);
    snprintf(idx, cap, "{\"metadata\": {\"total_size\": 32}, \"weight_map\": %s}", map_json);
    write_file(dir, "model.safetensors.index.json", idx, strlen(idx));
    free(idx);
}

static const char GOOD_MAP[] =
    "{\"embed\": \"" S1 "\", \"l0.q\": \"" S1 "\", \"l1.q\": \"" S2 "\", \"norm\": \"" S2 "\"}";

TEST(sharded_model)
{
    char dir[64], err[512] = "";
    sharded_dir(dir, GOOD_MAP);
    REQUIRE(dir[0]);
    write_st(dir, "model.safetensors", "{}", 0); /* the index wins */
    struct st_model *m = NULL;
    int rc = st_open_model(dir, &m, err, sizeof err);
    CHECK_STREQ(err, "");
    REQUIRE(rc == 0);
    CHECK_EQ(st_count(m), 4);
    const struct st_tensor *e = st_find(m, "embed"), *n = st_find(m, "norm");
    const struct st_tensor *q0 = st_find(m, "l0.q"), *q1 = st_find(m, "l1.q");
    REQUIRE(e && n && q0 && q1);
    CHECK_EQ(e->file, q0->file);
    CHECK_EQ(n->file, q1->file);
    CHECK(e->file != n->file);
    CHECK_EQ(e->file_offset, 8 + strlen(SHARD1));
    CHECK_EQ(n->file_offset, 8 + strlen(SHARD2) + 4);
    CHECK_EQ(((const uint8_t *)n->data)[0], data_byte(4));
    CHECK_EQ(((const uint8_t *)q0->data)[7], data_byte(23));
    CHECK_EQ(q1->dtype, ST_F16);
    CHECK_EQ(q1->shape[0], 2);
    st_release(m, e);
    st_model_free(m);
    tmp_done(dir);
}

/* sharded_refused: st_open_model on a sharded dir with map_json fails with code and a
 * message holding piece (and, when not NULL, piece2). */
static void sharded_refused(const char *map_json, int code, const char *piece, const char *piece2)
{
    char dir[64], err[512] = "";
    sharded_dir(dir, map_json);
    if (!dir[0]) {
        TEST_FAIL_AT("mkdtemp failed");
        return;
    }
    struct st_model *m = NULL;
    int rc = st_open_model(dir, &m, err, sizeof err);
    if (rc != code || m || !strstr(err, piece) || (piece2 && !strstr(err, piece2)))
        TEST_FAIL_AT("%.200s: got %s \"%s\", want %s with \"%s\"", map_json, err_name(rc), err,
                     err_name(code), piece);
    st_model_free(m);
    tmp_done(dir);
}

TEST(sharded_tensor_not_in_named_shard)
{
    sharded_refused("{\"embed\": \"" S2 "\", \"norm\": \"" S2 "\"}", ERR_PARSE,
                    "model.safetensors.index.json: tensor \"embed\": weight_map names " S2
                    ", which has no such tensor",
                    NULL);
    sharded_refused("{\"ghost\": \"" S1 "\", \"norm\": \"" S2 "\"}", ERR_PARSE,
                    "tensor \"ghost\": weight_map names " S1, NULL);
}

TEST(sharded_bad_shard_names)
{
    sharded_refused("{\"embed\": \"../" S1 "\"}", ERR_PARSE, "tensor \"embed\"",
                    "shard \"../" S1 "\" is not a plain file name");
    sharded_refused("{\"embed\": \"sub/" S1 "\"}", ERR_PARSE, "tensor \"embed\"", "sub/");
    sharded_refused("{\"embed\": \"..\"}", ERR_PARSE, "tensor \"embed\"", "\"..\" is not");
    sharded_refused("{\"embed\": \".\"}", ERR_PARSE, "tensor \"embed\"", "\".\" is not");
    sharded_refused("{\"embed\": \"\"}", ERR_PARSE, "tensor \"embed\"", "\"\" is not");
    sharded_refused("{\"embed\": 3}", ERR_PARSE, "tensor \"embed\": weight_map: the shard", NULL);
}

TEST(sharded_missing_shard_file)
{
    sharded_refused("{\"embed\": \"" S1 "\", \"x\": \"model-00003-of-00003.safetensors\"}", ERR_IO,
                    "model-00003-of-00003.safetensors: cannot open", NULL);
}

TEST(sharded_index_malformed)
{
    sharded_refused("[\"" S1 "\"]", ERR_PARSE, "weight_map: must be an object", NULL);
    sharded_refused("null", ERR_PARSE, "model.safetensors.index.json: weight_map: missing", NULL);
    sharded_refused("{\"embed\": \"" S1 "\"", ERR_PARSE,
                    "model.safetensors.index.json: not valid JSON", NULL);
    sharded_refused("{\"embed\": \"" S1 "\", \"embed\": \"" S1 "\"}", ERR_PARSE, "duplicate",
                    "embed");
    char dir[64], err[512];
    struct st_model *m = NULL;
    sharded_dir(dir, "{}");
    REQUIRE(dir[0]);
    write_file(dir, "model.safetensors.index.json", "{\"weight_map\": {}, \"metadata\": 1}", 33);
    CHECK_EQ(st_open_model(dir, &m, err, sizeof err), ERR_PARSE);
    CHECK(strstr(err, "metadata: must be an object") != NULL);
    tmp_done(dir);
}

TEST(sharded_tensor_in_two_shards)
{
    char dir[64], err[512];
    sharded_dir(dir, GOOD_MAP);
    REQUIRE(dir[0]);
    write_st(dir, S2,
             "{\"norm\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]},"
             " \"embed\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}",
             8);
    struct st_model *m = NULL;
    CHECK_EQ(st_open_model(dir, &m, err, sizeof err), ERR_PARSE);
    CHECK(strstr(err, "tensor \"embed\": also in") != NULL);
    tmp_done(dir);
}

TEST(sharded_shard_errors_name_the_shard)
{
    char dir[64], err[512];
    sharded_dir(dir, GOOD_MAP);
    REQUIRE(dir[0]);
    write_st(dir, S2, "{\"norm\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}",
             8);
    struct st_model *m = NULL;
    CHECK_EQ(st_open_model(dir, &m, err, sizeof err), ERR_RANGE);
    CHECK(strstr(err, S2 ": tensor \"norm\": data_offsets [0, 4] hold 4 bytes") != NULL);
    tmp_done(dir);
}

TEST(sharded_too_many_shards)
{
    size_t cap = 4100 * 64;
    char *map = malloc(cap), *p = map;
    p += sprintf(p, "{");
    for (int i = 0; i < 4097; i++)
        p += sprintf(p, "%s\"t%d\": \"s%d.safetensors\"", i ? ", " : "", i, i);
    sprintf(p, "}");
    sharded_refused(map, ERR_LIMIT, "weight_map: 4097 shard files, more than 4096", NULL);
    free(map);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
