# kiln: the one build. See README.md.
#
#   make                 build everything into build/
#   make test            build and run every test; last line "N passed, N failed"
#   make SAN=address test  the same under ASan+UBSan, in build-asan/
#   make bench           run the benchmarks
#   make bench-serve     kiln serve against llama.cpp's server, vLLM's serving metrics
#   make fuzz            build the libFuzzer drivers (clang) and run each for FUZZ_SECONDS
#   WERROR=1             turn warnings into errors (CI sets it)

CC       ?= cc
SAN      ?=
WERROR   ?= 0
FIXTURES ?= $(abspath ../shared/fixtures)
FUZZ_SECONDS ?= 60

ifeq ($(SAN),)
  BUILD ?= build
  SANFLAGS :=
else ifeq ($(SAN),address)
  BUILD ?= build-asan
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SAN),thread)
  BUILD ?= build-tsan
  SANFLAGS := -fsanitize=thread
else
  $(error SAN must be empty, address or thread)
endif

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla
ifeq ($(WERROR),1)
  WARN += -Werror
endif

PKGS    := jansson libpcre2-8 libutf8proc libzmq libevent libevent_openssl libnghttp2 openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || \
                echo -ljansson -lpcre2-8 -lutf8proc -lzmq -levent -lnghttp2 -lssl -lcrypto) \
              -lhttp_parser

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) $(SANFLAGS) $(PKG_CFLAGS) -I. -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -lpthread

# nvcc: detected here, used by kernels/ once it has .cu files.
NVCC := $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))

COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
COMMON_LIB := $(BUILD)/libkiln_common.a

TEMPLATES_SRC := $(sort $(wildcard templates/*.c))
TEMPLATES_OBJ := $(TEMPLATES_SRC:%.c=$(BUILD)/%.o)
TEMPLATES_LIB := $(BUILD)/libkiln_templates.a

# the worker: models, backends, and the C references of the kernels
WORKER_SRC := $(sort $(wildcard worker/*.c kernels/ref/*.c))
WORKER_OBJ := $(WORKER_SRC:%.c=$(BUILD)/%.o)
WORKER_LIB := $(BUILD)/libkiln_worker.a

# the HTTP frontend
FRONTEND_SRC := $(sort $(wildcard frontend/*.c))
FRONTEND_OBJ := $(FRONTEND_SRC:%.c=$(BUILD)/%.o)
FRONTEND_LIB := $(BUILD)/libkiln_frontend.a

# the serving benchmark (kiln bench serve): load generator, datasets, metrics
BENCHLIB_SRC := $(sort $(wildcard bench/*.c))
BENCHLIB_OBJ := $(BENCHLIB_SRC:%.c=$(BUILD)/%.o)
BENCHLIB_LIB := $(BUILD)/libkiln_bench.a

CLI_SRC := $(sort $(wildcard cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)

# Each test binary links its module and what that module depends on (STYLE.md).
TEST_SRC  := $(sort $(wildcard tests/common/test_*.c))
TEST_BINS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TTEST_SRC  := $(sort $(wildcard tests/templates/test_*.c))
TTEST_BINS := $(TTEST_SRC:tests/%.c=$(BUILD)/tests/%)
WTEST_SRC  := $(sort $(wildcard tests/worker/test_*.c))
WTEST_BINS := $(WTEST_SRC:tests/%.c=$(BUILD)/tests/%)
FTEST_SRC  := $(sort $(wildcard tests/frontend/test_*.c))
FTEST_BINS := $(FTEST_SRC:tests/%.c=$(BUILD)/tests/%)
BTEST_SRC  := $(sort $(wildcard tests/benchserve/test_*.c))
BTEST_BINS := $(BTEST_SRC:tests/%.c=$(BUILD)/tests/%)
# tools the benchmark's Python tests drive (not tests themselves)
BTOOL_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/benchserve/tool_*.c))
# programs the end-to-end tests start (not tests themselves)
E2E_TOOLS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/e2e/*.c))
# tools the Python model tests drive (not tests themselves)
MODEL_TOOLS := $(BUILD)/tests/model/forward_runner $(BUILD)/tests/model/sampler_driver

BENCH_SRC  := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BINS := $(BENCH_SRC:tests/%.c=$(BUILD)/tests/%)

FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BUILD := build-fuzz
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

.PHONY: all test bench bench-serve fuzz fuzz-build clean print-nvcc run deps
all: deps $(BUILD)/kiln $(TEST_BINS) $(TTEST_BINS) $(WTEST_BINS) $(FTEST_BINS) $(MODEL_TOOLS) \
     $(E2E_TOOLS) $(BENCH_BINS) $(BTEST_BINS) $(BTOOL_BINS)

# deps: installs the Debian and PyPI dependencies once, when they are missing.
DEPS_STAMP := $(BUILD)/.deps-ok
deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@pkg-config --exists $(PKGS) && test -e /usr/include/http_parser.h && \
	    python3 -c "import tokenizers, jinja2, numpy, pytest, zmq, openai, httpx, h2, prometheus_client, gguf" 2>/dev/null || \
	    .ci/install-deps
	@mkdir -p $(BUILD) && touch $@

# run: serve the stories260K model on http://127.0.0.1:8000/v1 (Ctrl-C stops it).
run: all
	$(BUILD)/kiln serve --model $(FIXTURES)/models/stories260K --served-model-name stories260K

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TEMPLATES_LIB): $(TEMPLATES_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(WORKER_LIB): $(WORKER_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FRONTEND_LIB): $(FRONTEND_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BENCHLIB_LIB): $(BENCHLIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kiln: $(CLI_OBJ) $(BENCHLIB_LIB) $(FRONTEND_LIB) $(WORKER_LIB) $(TEMPLATES_LIB) \
               $(COMMON_LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/benchserve/%: $(BUILD)/tests/benchserve/%.o $(BENCHLIB_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/frontend/%: $(BUILD)/tests/frontend/%.o $(FRONTEND_LIB) $(TEMPLATES_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/e2e/%: $(BUILD)/tests/e2e/%.o $(FRONTEND_LIB) $(TEMPLATES_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/templates/%: $(BUILD)/tests/templates/%.o $(TEMPLATES_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/common/%: $(BUILD)/tests/common/%.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/worker/%: $(BUILD)/tests/worker/%.o $(WORKER_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/model/%: $(BUILD)/tests/model/%.o $(WORKER_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/bench/%: $(BUILD)/tests/bench/%.o $(WORKER_LIB) $(TEMPLATES_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

test: all
	KILN_FIXTURES=$(FIXTURES) KILN_BUILD=$(BUILD) tests/run_tests.sh $(BUILD)

bench: all
	KILN_FIXTURES=$(FIXTURES) KILN_BUILD=$(BUILD) tests/bench/run_bench.sh $(BUILD)

# bench-serve: kiln serve against llama.cpp's llama-server, side by side (builds the peer once)
bench-serve: all
	KILN_FIXTURES=$(FIXTURES) KILN_BUILD=$(BUILD) tests/bench/bench_serve.sh $(BUILD)

# libFuzzer drivers: clang, ASan+UBSan, linked with the common sources built for fuzzing.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -I. $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(COMMON_SRC) $(TEMPLATES_SRC) \
                 $(wildcard common/*.h templates/*.h frontend/*.c frontend/*.h)
	@mkdir -p $(FUZZ_BUILD)
	clang $(FUZZ_CFLAGS) $< $(COMMON_SRC) $(TEMPLATES_SRC) $(PKG_LIBS) -lm -lpthread -o $@

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	KILN_FIXTURES=$(FIXTURES) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run_fuzz.sh $(FUZZ_BUILD)

print-nvcc:
	@echo "$(if $(NVCC),$(NVCC),nvcc not found)"

clean:
	rm -rf build build-asan build-tsan build-fuzz

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
