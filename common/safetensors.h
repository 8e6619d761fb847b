/*
 * safetensors: reads Hugging Face .safetensors weight files, validated, through mmap.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON header
 * ({"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"k": "v"}}), then the data section; offsets are relative to the data
 * section. st_open maps the file read-only and checks everything before handing out a
 * tensor: header length within the file and under a cap, valid JSON, every entry's dtype
 * known, shape a list of non-negative integers whose element count and byte size do not
 * overflow, data_offsets inside the data section with end - begin equal to the byte size,
 * and no two tensors overlapping. A file that fails any check is refused with a one-line
 * message naming the file, the tensor and the field; nothing is ever read outside the map.
 *
 * A model may be one model.safetensors or shards listed by model.safetensors.index.json
 * ({"weight_map": {"tensor name": "model-00001-of-00002.safetensors", ...}});
 * st_open_model opens whichever the directory has and looks tensors up across shards.
 *
 * Ownership: a struct st_model owns its maps; tensor data pointers stay valid until
 * st_model_free. Threads: immutable after opening; any number of threads may read.
 */
#ifndef KILN_SAFETENSORS_H
#define KILN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* Element types a file may declare. kiln computes with F32, F16 and BF16 weights; the
 * others are recognized so that a model using them is refused by name, not misread. */
enum st_dtype {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_F8_E4M3,
    ST_F8_E5M2,
};

#define ST_MAX_DIMS 8

struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* inside the file's read-only map; size bytes, aligned only as the
                         file's header length makes it; never dereference when size is 0 */
    size_t size;
    size_t file_offset; /* of data in its file (for madvise) */
    int file;           /* index of its file in the model (0 for a single file) */
};

struct st_model;

/* st_dtype_name: "F32", "BF16", ...; st_dtype_size: bytes per element (1 for BOOL/F8). */
const char *st_dtype_name(enum st_dtype t);
size_t st_dtype_size(enum st_dtype t);

/*
 * st_open_model: opens DIR/model.safetensors, or, when DIR/model.safetensors.index.json
 * exists, every shard its weight_map names (shard names must be plain file names in DIR;
 * every tensor must be in the shard the map names). Returns 0 and *out, or ERR_IO (a file
 * is missing or unreadable), ERR_PARSE (malformed header, index or shape), ERR_RANGE
 * (offsets or sizes out of bounds), ERR_LIMIT (header above 100 MiB, more than 1,000,000
 * tensors or 4,096 shards), ERR_NOMEM; err holds the message.
 */
int st_open_model(const char *dir, struct st_model **out, char *err, size_t errlen);

/* st_open_file: the same for one .safetensors file; messages name it by path. A file that
 * is truncated or rewritten while it is mapped can still fault (SIGBUS) on access. */
int st_open_file(const char *path, struct st_model **out, char *err, size_t errlen);

/*
 * st_open_memory: the same checks on a .safetensors image already in memory, base[0..size)
 * (base may be NULL when size is 0); messages name it `label`. Nothing is copied or mapped:
 * the tensors point into base, which must outlive the model, and st_release does nothing
 * for them. For tests and fuzzing. Returns 0 and *out, or the codes of st_open_model but
 * ERR_IO.
 */
int st_open_memory(const void *base, size_t size, const char *label, struct st_model **out,
                   char *err, size_t errlen);

/* st_model_free: unmaps the files and frees m and its tensors; NULL is allowed. */
void st_model_free(struct st_model *m);

/* st_find: the tensor called name, or NULL (a binary search over the sorted names). */
const struct st_tensor *st_find(const struct st_model *m, const char *name);

/* st_count / st_at: iterate the tensors (in no particular order). */
size_t st_count(const struct st_model *m);
const struct st_tensor *st_at(const struct st_model *m, size_t i);

/* st_release: tells the kernel that t's pages will not be read again (MADV_DONTNEED on the
 * whole pages inside it), so that a loader copying weights does not keep the file's pages
 * resident beside its copy. Reading t afterwards still works (pages fault back in). */
void st_release(const struct st_model *m, const struct st_tensor *t);

#endif
