# embed.mk - sentence embeddings: the encoder's element-wise loops and the
# tokenizer are hot, so src/embed builds at -O3 (vectorized loops).
$(BUILD)/src/embed/%.o: CFLAGS += -O3
