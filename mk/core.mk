# Benchmark programs that drive one layer directly (bench/c/*.c), built on
# demand: make bench-bins
BENCH_C_SRCS := $(wildcard bench/c/*.c)
BENCH_C_BINS := $(BENCH_C_SRCS:bench/c/%.c=$(BUILD)/bench/%)
.PHONY: bench-bins
bench-bins: $(BENCH_C_BINS)
$(BUILD)/bench/%: bench/c/%.c $(LIB_OBJS) $(CU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O3 -o $@ $< $(LIB_OBJS) $(CU_OBJS) $(CUDA_LIBS) $(LIBS)
