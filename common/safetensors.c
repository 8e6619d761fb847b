/* safetensors: validated .safetensors reading through mmap (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* bytes of a file's JSON header */
#define ST_MAX_INDEX ((uint64_t)100 << 20)  /* bytes of model.safetensors.index.json */
#define ST_MAX_TENSORS 1000000              /* in a model, all shards together */
#define ST_MAX_SHARDS 4096
#define ST_MAX_SHARD_NAME 255 /* NAME_MAX */
#define ST_NAME_SHOWN 160     /* bytes of a tensor name quoted in a message */
#define ST_PATH_MAX 4096

static const char INDEX_NAME[] = "model.safetensors.index.json";
static const char SINGLE_NAME[] = "model.safetensors";

struct st_file {
    char *label;         /* what messages call the file */
    const uint8_t *base; /* the whole file: our map, or the caller's buffer */
    size_t size;
    bool mapped; /* base is our map: munmap it, st_release may madvise it */
    char *names; /* the file's tensor names, each NUL-terminated; tensors point here */
};

struct st_model {
    struct st_file *files;
    size_t n_files;
    struct st_tensor *tensors; /* sorted by name once every file is read */
    size_t n_tensors;
};

/* One file's header being checked: where messages go and where its data section lies. */
struct st_ctx {
    const char *label;
    char *err;
    size_t errlen;
    const uint8_t *data; /* the data section */
    size_t data_size;
    size_t data_start; /* the data section's offset in the file */
    int file;
};

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {
    [ST_F32] = {"F32", 4},   [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},         [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},           [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES (sizeof DTYPES / sizeof DTYPES[0])

const char *st_dtype_name(enum st_dtype t)
{
    return (size_t)t < N_DTYPES ? DTYPES[t].name : "?";
}

size_t st_dtype_size(enum st_dtype t)
{
    return (size_t)t < N_DTYPES ? DTYPES[t].size : 0;
}

/* ---- messages ---- */

/* quote_name: name as messages show it: at most ST_NAME_SHOWN bytes, cut on a UTF-8
 * boundary, "..." after a cut. out holds ST_NAME_SHOWN + 4 bytes. */
static void quote_name(char *out, const char *name)
{
    size_t n = strlen(name);
    if (n <= ST_NAME_SHOWN) {
        memcpy(out, name, n + 1);
        return;
    }
    size_t k = ST_NAME_SHOWN;
    while (k > 0 && ((unsigned char)name[k] & 0xC0) == 0x80)
        k--;
    memcpy(out, name, k);
    memcpy(out + k, "...", 4);
}

/* st_vfail: formats "<label>: [tensor "<name>": ]<message>" into err, on one line (control
 * characters become '?'); returns code. */
static int st_vfail(char *err, size_t errlen, int code, const char *label, const char *tensor,
                    const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static int st_vfail(char *err, size_t errlen, int code, const char *label, const char *tensor,
                    const char *fmt, va_list ap)
{
    if (!err || !errlen)
        return code;
    char shown[ST_NAME_SHOWN + 4];
    int n;
    if (tensor) {
        quote_name(shown, tensor);
        n = snprintf(err, errlen, "%s: tensor \"%s\": ", label, shown);
    } else {
        n = snprintf(err, errlen, "%s: ", label);
    }
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    for (char *s = err; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    return code;
}

static int st_fail(char *err, size_t errlen, int code, const char *label, const char *tensor,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int st_fail(char *err, size_t errlen, int code, const char *label, const char *tensor,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_vfail(err, errlen, code, label, tensor, fmt, ap);
    va_end(ap);
    return code;
}

static int ctx_fail(const struct st_ctx *c, int code, const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int ctx_fail(const struct st_ctx *c, int code, const char *tensor, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_vfail(c->err, c->errlen, code, c->label, tensor, fmt, ap);
    va_end(ap);
    return code;
}

/* shape_str: "[512, 64]". */
static void shape_str(char *out, size_t outlen, const struct st_tensor *t)
{
    size_t n = (size_t)snprintf(out, outlen, "[");
    for (int i = 0; i < t->n_dims && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    if (n < outlen)
        snprintf(out + n, outlen - n, "]");
}

/* ---- one tensor entry ---- */

static int parse_dtype(const char *s, enum st_dtype *out)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (enum st_dtype)i;
            return 0;
        }
    }
    return ERR_PARSE;
}

/* parse_shape: entry.shape into t->shape and t->n_dims, and t->size from t->dtype. */
static int parse_shape(const struct st_ctx *c, const char *name, const json_t *shape,
                       struct st_tensor *t)
{
    if (!json_is_array(shape))
        return ctx_fail(c, ERR_PARSE, name, "shape: %s",
                        shape ? "must be a list of integers" : "missing");
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS)
        return ctx_fail(c, ERR_PARSE, name, "shape: %zu dimensions, at most %d are supported", nd,
                        ST_MAX_DIMS);
    uint64_t count = 1;
    bool zero = false, overflow = false;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return ctx_fail(c, ERR_PARSE, name, "shape[%zu]: must be a non-negative integer", i);
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] == 0)
            zero = true;
        else if (__builtin_mul_overflow(count, (uint64_t)t->shape[i], &count))
            overflow = true;
    }
    t->n_dims = (int)nd;
    uint64_t bytes = 0;
    if (!zero && (overflow || count > INT64_MAX ||
                  __builtin_mul_overflow(count, (uint64_t)st_dtype_size(t->dtype), &bytes) ||
                  bytes > SIZE_MAX)) {
        char s[256];
        shape_str(s, sizeof s, t);
        return ctx_fail(c, ERR_RANGE, name, "shape %s of %s: the byte size overflows", s,
                        st_dtype_name(t->dtype));
    }
    t->size = (size_t)bytes;
    return 0;
}

/* parse_offsets: entry.data_offsets, checked against the data section and t->size. */
static int parse_offsets(const struct st_ctx *c, const char *name, const json_t *offs,
                         struct st_tensor *t)
{
    const json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(b) ||
        !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return ctx_fail(c, ERR_PARSE, name, "data_offsets: %s",
                        offs ? "must be [begin, end], two non-negative integers" : "missing");
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (begin > end)
        return ctx_fail(c, ERR_RANGE, name, "data_offsets [%" PRIu64 ", %" PRIu64 "]: begin > end",
                        begin, end);
    if (end > c->data_size)
        return ctx_fail(c, ERR_RANGE, name,
                        "data_offsets [%" PRIu64 ", %" PRIu64 "] end past the data section's %zu "
                        "bytes",
                        begin, end, c->data_size);
    if (end - begin != t->size) {
        char s[256];
        shape_str(s, sizeof s, t);
        return ctx_fail(c, ERR_RANGE, name,
                        "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                        " bytes, shape %s of %s needs %zu",
                        begin, end, end - begin, s, st_dtype_name(t->dtype), t->size);
    }
    t->data = c->data + begin;
    t->file_offset = c->data_start + (size_t)begin;
    return 0;
}

static int parse_entry(const struct st_ctx *c, const char *name, const json_t *v,
                       struct st_tensor *t)
{
    if (!json_is_object(v))
        return ctx_fail(c, ERR_PARSE, name, "must be an object with dtype, shape and data_offsets");
    const json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt))
        return ctx_fail(c, ERR_PARSE, name, "dtype: %s", dt ? "must be a string" : "missing");
    if (parse_dtype(json_string_value(dt), &t->dtype))
        return ctx_fail(c, ERR_PARSE, name, "dtype: unknown dtype \"%.32s\"",
                        json_string_value(dt));
    int rc = parse_shape(c, name, json_object_get(v, "shape"), t);
    return rc ? rc : parse_offsets(c, name, json_object_get(v, "data_offsets"), t);
}

/* ---- one file's header ---- */

static int check_metadata(const struct st_ctx *c, json_t *md)
{
    if (json_is_null(md))
        return 0;
    if (!json_is_object(md))
        return ctx_fail(c, ERR_PARSE, NULL, "__metadata__: must be an object of strings");
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v)
    {
        if (!json_is_string(v)) {
            char shown[ST_NAME_SHOWN + 4];
            quote_name(shown, key);
            return ctx_fail(c, ERR_PARSE, NULL, "__metadata__: \"%s\" must be a string", shown);
        }
    }
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const struct st_tensor *x = a, *y = b;
    if (x->file_offset != y->file_offset)
        return x->file_offset < y->file_offset ? -1 : 1;
    return (x->size > y->size) - (x->size < y->size);
}

/* check_overlaps: sorts t[0..n) by offset and refuses two non-empty tensors sharing a byte
 * (empty tensors occupy nothing, wherever they point). */
static int check_overlaps(const struct st_ctx *c, struct st_tensor *t, size_t n)
{
    if (n > 1)
        qsort(t, n, sizeof *t, cmp_offset);
    const struct st_tensor *prev = NULL; /* the last non-empty one: it reaches furthest */
    for (size_t i = 0; i < n; i++) {
        if (!t[i].size)
            continue;
        if (prev && t[i].file_offset < prev->file_offset + prev->size) {
            char shown[ST_NAME_SHOWN + 4];
            quote_name(shown, prev->name);
            size_t b = t[i].file_offset - c->data_start, pb = prev->file_offset - c->data_start;
            return ctx_fail(c, ERR_RANGE, t[i].name,
                            "data_offsets [%zu, %zu] overlap tensor \"%s\" at [%zu, %zu]", b,
                            b + t[i].size, shown, pb, pb + prev->size);
        }
        prev = &t[i];
    }
    return 0;
}

/* parse_entries: appends the tensors of the header object root to m->tensors. */
static int parse_entries(struct st_model *m, const struct st_ctx *c, json_t *root)
{
    json_t *md = json_object_get(root, "__metadata__"), *v;
    int rc = md ? check_metadata(c, md) : 0;
    if (rc)
        return rc;
    size_t count = json_object_size(root) - (md != NULL), name_bytes = 0;
    if (count > ST_MAX_TENSORS - m->n_tensors)
        return ctx_fail(c, ERR_LIMIT, NULL, "%zu tensors, more than the %d a model may have",
                        m->n_tensors + count, ST_MAX_TENSORS);
    const char *key;
    json_object_foreach(root, key, v) name_bytes += strlen(key) + 1;
    struct st_file *f = &m->files[c->file];
    struct st_tensor *t = realloc(m->tensors, (m->n_tensors + count + 1) * sizeof *t);
    if (t)
        m->tensors = t;
    f->names = malloc(name_bytes + 1);
    if (!t || !f->names)
        return ctx_fail(c, ERR_NOMEM, NULL, "out of memory");
    struct st_tensor *first = t + m->n_tensors;
    char *p = f->names;
    size_t i = 0;
    json_object_foreach(root, key, v)
    {
        if (v == md)
            continue;
        size_t l = strlen(key) + 1;
        memcpy(p, key, l);
        memset(&first[i], 0, sizeof first[i]);
        first[i].name = p;
        first[i].file = c->file;
        if ((rc = parse_entry(c, p, v, &first[i])))
            return rc;
        p += l;
        i++;
    }
    if ((rc = check_overlaps(c, first, count)))
        return rc;
    m->n_tensors += count;
    return 0;
}

/* parse_file: checks file `file` of m (its bytes already in place) and adds its tensors. */
static int parse_file(struct st_model *m, int file, char *err, size_t errlen)
{
    const struct st_file *f = &m->files[file];
    struct st_ctx c = {.label = f->label, .err = err, .errlen = errlen, .file = file};
    if (f->size < 8)
        return ctx_fail(&c, ERR_PARSE, NULL,
                        "%zu bytes, too short to hold the 8-byte header length", f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | f->base[i];
    if (n > ST_MAX_HEADER)
        return ctx_fail(&c, ERR_LIMIT, NULL, "header length %" PRIu64 " is above the 100 MiB limit",
                        n);
    if (n > f->size - 8)
        return ctx_fail(&c, ERR_RANGE, NULL,
                        "header length %" PRIu64 " runs past the end of the file (%zu bytes "
                        "follow the length)",
                        n, f->size - 8);
    c.data_start = 8 + (size_t)n;
    c.data = f->base + c.data_start;
    c.data_size = f->size - c.data_start;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->base + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ctx_fail(&c, ERR_PARSE, NULL, "header: not valid JSON at byte %d: %s", je.position,
                        je.text);
    int rc = json_is_object(root) ? parse_entries(m, &c, root)
                                  : ctx_fail(&c, ERR_PARSE, NULL, "header: must be a JSON object");
    json_decref(root);
    return rc;
}

/* ---- models ---- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

/* finish: sorts the tensors by name for st_find; a name in two shards is refused. */
static int finish(struct st_model *m, char *err, size_t errlen)
{
    if (m->n_tensors > 1)
        qsort(m->tensors, m->n_tensors, sizeof *m->tensors, cmp_name);
    for (size_t i = 1; i < m->n_tensors; i++) {
        const struct st_tensor *a = &m->tensors[i - 1], *b = &m->tensors[i];
        if (strcmp(a->name, b->name) == 0)
            return st_fail(err, errlen, ERR_PARSE, m->files[b->file].label, b->name, "also in %s",
                           m->files[a->file].label);
    }
    return 0;
}

/* add_file: appends an empty file called label to m; *idx is its index. */
static int add_file(struct st_model *m, const char *label, int *idx, char *err, size_t errlen)
{
    struct st_file *f = realloc(m->files, (m->n_files + 1) * sizeof *f);
    if (!f)
        return st_fail(err, errlen, ERR_NOMEM, label, NULL, "out of memory");
    m->files = f;
    f += m->n_files;
    memset(f, 0, sizeof *f);
    m->n_files++;
    if (!(f->label = strdup(label)))
        return st_fail(err, errlen, ERR_NOMEM, label, NULL, "out of memory");
    *idx = (int)(m->n_files - 1);
    return 0;
}

/* map_file: maps path read-only into f. */
static int map_file(const char *path, struct st_file *f, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, errlen, ERR_IO, path, NULL, "cannot open: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st)) {
        rc = st_fail(err, errlen, ERR_IO, path, NULL, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = st_fail(err, errlen, ERR_IO, path, NULL, "not a regular file");
    } else if (st.st_size == 0) {
        f->base = (const uint8_t *)"";
        f->size = 0;
    } else {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = st_fail(err, errlen, ERR_IO, path, NULL, "cannot map: %s", strerror(errno));
        } else {
            f->base = p;
            f->size = (size_t)st.st_size;
            f->mapped = true;
        }
    }
    close(fd);
    return rc;
}

/* open_one: a model of the one file at path (base == NULL) or in base[0..size). */
static int open_one(const char *path, const void *base, size_t size, const char *label,
                    struct st_model **out, char *err, size_t errlen)
{
    int file, rc = ERR_NOMEM;
    struct st_model *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) {
        st_fail(err, errlen, rc, label, NULL, "out of memory");
        goto fail_model;
    }
    if ((rc = add_file(m, label, &file, err, errlen)))
        goto fail_model;
    if (path) {
        rc = map_file(path, &m->files[file], err, errlen);
    } else {
        m->files[file].base = size ? base : (const void *)"";
        m->files[file].size = size;
    }
    if (rc || (rc = parse_file(m, file, err, errlen)) || (rc = finish(m, err, errlen)))
        goto fail_model;
    *out = m;
    return 0;

fail_model:
    st_model_free(m);
    return rc;
}

int st_open_file(const char *path, struct st_model **out, char *err, size_t errlen)
{
    return open_one(path, NULL, 0, path, out, err, errlen);
}

int st_open_memory(const void *base, size_t size, const char *label, struct st_model **out,
                   char *err, size_t errlen)
{
    return open_one(NULL, base, size, label, out, err, errlen);
}

/* ---- sharded models ---- */

static int join_path(char *path, const char *dir, const char *name, char *err, size_t errlen)
{
    int n = snprintf(path, ST_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= ST_PATH_MAX)
        return st_fail(err, errlen, ERR_IO, dir, NULL, "path to %s too long", name);
    return 0;
}

/* read_index: the whole index file, NUL-terminated, at most ST_MAX_INDEX bytes. */
static int read_index(const char *path, char **out, size_t *n, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, errlen, ERR_IO, path, NULL, "cannot open: %s", strerror(errno));
    struct stat st;
    char *p = NULL;
    size_t got = 0;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        rc = st_fail(err, errlen, ERR_IO, path, NULL, "not a readable regular file");
    else if ((uint64_t)st.st_size > ST_MAX_INDEX)
        rc = st_fail(err, errlen, ERR_LIMIT, path, NULL, "%lld bytes, above the 100 MiB limit",
                     (long long)st.st_size);
    else if (!(p = malloc((size_t)st.st_size + 1)))
        rc = st_fail(err, errlen, ERR_NOMEM, path, NULL, "out of memory");
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = st_fail(err, errlen, ERR_IO, path, NULL, "read failed");
        else
            got += (size_t)r;
    }
    close(fd);
    if (rc) {
        free(p);
        return rc;
    }
    p[got] = '\0';
    *out = p;
    *n = got;
    return 0;
}

/* plain_name: a file name inside the model directory: no '/', not "." or "..". */
static bool plain_name(const char *s, size_t n)
{
    return n > 0 && n <= ST_MAX_SHARD_NAME && !memchr(s, '/', n) && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* check_index: the index's shape; *wm_out is its weight_map. */
static int check_index(json_t *root, json_t **wm_out, char *err, size_t errlen)
{
    if (!json_is_object(root))
        return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, NULL, "must be a JSON object");
    const json_t *md = json_object_get(root, "metadata");
    if (md && !json_is_null(md) && !json_is_object(md))
        return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, NULL, "metadata: must be an object");
    json_t *wm = json_object_get(root, "weight_map"), *v;
    if (json_is_null(wm))
        wm = NULL;
    if (!json_is_object(wm))
        return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, NULL, "weight_map: %s",
                       wm ? "must be an object {tensor: shard file}" : "missing");
    if (json_object_size(wm) > ST_MAX_TENSORS)
        return st_fail(err, errlen, ERR_LIMIT, INDEX_NAME, NULL,
                       "weight_map: %zu tensors, more than the %d a model may have",
                       json_object_size(wm), ST_MAX_TENSORS);
    const char *key;
    json_object_foreach(wm, key, v)
    {
        if (!json_is_string(v))
            return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, key,
                           "weight_map: the shard must be a file name string");
        if (!plain_name(json_string_value(v), json_string_length(v))) {
            char shown[ST_NAME_SHOWN + 4];
            quote_name(shown, json_string_value(v));
            return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, key,
                           "weight_map: shard \"%s\" is not a plain file name", shown);
        }
    }
    *wm_out = wm;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* list_shards: the distinct shard names of weight_map, sorted (they point into wm). */
static int list_shards(json_t *wm, const char ***out, size_t *n_out, char *err, size_t errlen)
{
    const char **s = malloc((json_object_size(wm) + 1) * sizeof *s), *key;
    size_t n = 0, u = 0;
    json_t *v;
    if (!s)
        return st_fail(err, errlen, ERR_NOMEM, INDEX_NAME, NULL, "out of memory");
    json_object_foreach(wm, key, v) s[n++] = json_string_value(v);
    if (n > 1)
        qsort(s, n, sizeof *s, cmp_str);
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(s[u - 1], s[i]) != 0)
            s[u++] = s[i];
    if (u > ST_MAX_SHARDS) {
        free(s);
        return st_fail(err, errlen, ERR_LIMIT, INDEX_NAME, NULL,
                       "weight_map: %zu shard files, more than %d", u, ST_MAX_SHARDS);
    }
    *out = s;
    *n_out = u;
    return 0;
}

static int open_shards(struct st_model *m, const char *dir, const char **shards, size_t n,
                       char *err, size_t errlen)
{
    char path[ST_PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        int file, rc;
        if ((rc = join_path(path, dir, shards[i], err, errlen)) ||
            (rc = add_file(m, shards[i], &file, err, errlen)) ||
            (rc = map_file(path, &m->files[file], err, errlen)) ||
            (rc = parse_file(m, file, err, errlen)))
            return rc;
    }
    return finish(m, err, errlen);
}

/* check_weight_map: every tensor of weight_map is in the shard it names (file i is
 * shards[i]). */
static int check_weight_map(const struct st_model *m, json_t *wm, const char **shards, size_t n,
                            char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *name = json_string_value(v);
        const char **s = bsearch(&name, shards, n, sizeof *shards, cmp_str);
        const struct st_tensor *t = st_find(m, key);
        if (!s || !t || t->file != (int)(s - shards))
            return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, key,
                           "weight_map names %s, which has no such tensor", name);
    }
    return 0;
}

static int open_sharded(const char *dir, const char *index_path, struct st_model **out, char *err,
                        size_t errlen)
{
    char *text = NULL;
    size_t n = 0, n_shards = 0;
    const char **shards = NULL;
    struct st_model *m = NULL;
    int rc = read_index(index_path, &text, &n, err, errlen);
    if (rc)
        return rc;
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je), *wm = NULL;
    free(text);
    if (!root)
        return st_fail(err, errlen, ERR_PARSE, INDEX_NAME, NULL, "not valid JSON at byte %d: %s",
                       je.position, je.text);
    if ((rc = check_index(root, &wm, err, errlen)) ||
        (rc = list_shards(wm, &shards, &n_shards, err, errlen)))
        goto fail_root;
    if (!(m = calloc(1, sizeof *m))) {
        rc = st_fail(err, errlen, ERR_NOMEM, INDEX_NAME, NULL, "out of memory");
        goto fail_shards;
    }
    if ((rc = open_shards(m, dir, shards, n_shards, err, errlen)) ||
        (rc = check_weight_map(m, wm, shards, n_shards, err, errlen)))
        goto fail_model;
    free(shards);
    json_decref(root);
    *out = m;
    return 0;

fail_model:
    st_model_free(m);
fail_shards:
    free(shards);
fail_root:
    json_decref(root);
    return rc;
}

int st_open_model(const char *dir, struct st_model **out, char *err, size_t errlen)
{
    char path[ST_PATH_MAX];
    struct stat st;
    *out = NULL;
    int rc = join_path(path, dir, INDEX_NAME, err, errlen);
    if (rc)
        return rc;
    if (stat(path, &st) == 0)
        return open_sharded(dir, path, out, err, errlen);
    if (errno != ENOENT)
        return st_fail(err, errlen, ERR_IO, path, NULL, "cannot stat: %s", strerror(errno));
    if ((rc = join_path(path, dir, SINGLE_NAME, err, errlen)))
        return rc;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return st_fail(err, errlen, ERR_IO, dir, NULL, "neither %s nor %s exists", SINGLE_NAME,
                       INDEX_NAME);
    rc = open_one(path, NULL, 0, SINGLE_NAME, out, err, errlen);
    return rc;
}

/* ---- access ---- */

void st_model_free(struct st_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_files; i++) {
        struct st_file *f = &m->files[i];
        if (f->mapped)
            munmap((void *)f->base, f->size);
        free(f->label);
        free(f->names);
    }
    free(m->files);
    free(m->tensors);
    free(m);
}

const struct st_tensor *st_find(const struct st_model *m, const char *name)
{
    size_t lo = 0, hi = m ? m->n_tensors : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, m->tensors[mid].name);
        if (c == 0)
            return &m->tensors[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t st_count(const struct st_model *m)
{
    return m ? m->n_tensors : 0;
}

const struct st_tensor *st_at(const struct st_model *m, size_t i)
{
    return m && i < m->n_tensors ? &m->tensors[i] : NULL;
}

void st_release(const struct st_model *m, const struct st_tensor *t)
{
    if (!m || !t || t->file < 0 || (size_t)t->file >= m->n_files || !t->size)
        return;
    const struct st_file *f = &m->files[t->file];
    uintptr_t base = (uintptr_t)f->base, begin = (uintptr_t)t->data, end = begin + t->size;
    long page = sysconf(_SC_PAGESIZE);
    if (!f->mapped || page <= 0 || begin < base || end > base + f->size)
        return;
    uintptr_t first = (begin + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    uintptr_t last = end / (uintptr_t)page * (uintptr_t)page;
    if (first < last)
        madvise((void *)first, last - first, MADV_DONTNEED);
}
