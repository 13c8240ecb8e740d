# embed.mk - sentence embeddings: the encoder's element-wise loops and the
# tokenizer are hot, so src/embed builds at -O3 (vectorized loops).
$(BUILD)/src/embed/%.o: CFLAGS += -O3
# Floating-point traps are never enabled here; without -ftrapping-math the
# compiler may if-convert the clamps in the vectorized exp/erf loops.
$(BUILD)/src/embed/%.o: CFLAGS += -fno-trapping-math
# The Hopper kernels (wgmma, TMA) exist only for the arch-specific sm_90a
# target; elsewhere the encoder keeps its portable path (elo__sm90_ff_ok).
$(BUILD)/src/embed/embed-sm90.cu.o: NVCCFLAGS := $(filter-out -gencode=%,$(NVCCFLAGS)) \
    -gencode=arch=compute_90a,code=sm_90a
