# embed.mk - sentence embeddings: the encoder's element-wise loops and the
# tokenizer are hot, so src/embed builds at -O3 (vectorized loops).
$(BUILD)/src/embed/%.o: CFLAGS += -O3
# Floating-point traps are never enabled here; without -ftrapping-math the
# compiler may if-convert the clamps in the vectorized exp/erf loops.
$(BUILD)/src/embed/%.o: CFLAGS += -fno-trapping-math
