# ElohimOS - one binary, build/elohim.
#
#   make            build (CUDA objects when nvcc is found; CUDA=0 to skip)
#   make test       install what is missing, build, run every test that needs no GPU
#   make asan       ASan+UBSan build running the unit tests
#   make bench      benchmarks on this machine (ours vs the peers)
#   make fuzz       build the libFuzzer harnesses and run each for FUZZ_SECONDS
#   make run        install, build, fetch the model, run the main job
#   make model      fetch the default embedding model
#   make bundle     the CUDA binary + the libraries a GPU machine lacks (.bundle/)

CC      ?= gcc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA    ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
BUILD   ?= build
PYTHON  ?= python3

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wvla
OPT     ?= -O2 -g
CFLAGS_BASE := -std=c11 $(WARN) $(OPT) -D_GNU_SOURCE -Iinclude -Isrc -pthread \
               -ffp-contract=off -fno-strict-aliasing
PKGS    := jansson libsodium sqlite3 libpng libmicrohttpd libutf8proc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS    := $(PKG_LIBS) -lm -ldl -lrt -pthread
CFLAGS  += $(CFLAGS_BASE) $(PKG_CFLAGS)

# Sources: every .c under src/ except the CLI's main is the library; every
# *.cu is the CUDA side (linked only when CUDA=1; its entry points are weak
# in the C code, so CUDA=0 links the same service code).
LIB_SRCS  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
CU_SRCS   := $(wildcard src/*/*.cu)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/src/cli/main.o

ifeq ($(CUDA),1)
CU_ARCH   ?= -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90
NVCCFLAGS := -O3 -std=c++17 $(CU_ARCH) -Iinclude -Isrc -Xcompiler -fPIC,-Wall \
             --expt-relaxed-constexpr -lineinfo
CU_OBJS   := $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/targets/x86_64-linux/lib \
             -lcudart_static -lstdc++
else
CU_OBJS   :=
CUDA_LIBS :=
endif

BIN := $(BUILD)/elohim

# Quiet by default; `make V=1` shows the commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all test unit-tests integration-tests asan bench fuzz run model deps \
        clean bundle gpu-check check-cuda-build
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(BIN): $(MAIN_OBJ) $(LIB_OBJS) $(CU_OBJS)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CUDA_LIBS) $(LIBS)

# ---- tests ---------------------------------------------------------------
UNIT_SRCS  := $(wildcard tests/unit/test-*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(CU_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(LIB_OBJS) $(CU_OBJS) $(CUDA_LIBS) $(LIBS) -lcmocka

deps:
	@scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all unit-bins
	@scripts/run-tests.sh $(BUILD)

unit-bins: $(UNIT_BINS)

asan:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory BUILD=build-asan CUDA=0 \
	    OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    all unit-bins
	@ASAN_OPTIONS=detect_leaks=1 scripts/run-tests.sh build-asan unit

bench: deps all
	@scripts/bench.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

model:
	@scripts/fetch-model.sh

run: deps all model
	@scripts/run-main.sh

bundle:
	@scripts/gpu-bundle.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# Per-subsystem additions (extra flags, extra targets) live in mk/<name>.mk,
# one file per subsystem so that subsystems never edit the same lines.
-include $(wildcard mk/*.mk)

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(CU_OBJS:.o=.d)
