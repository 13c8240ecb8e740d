# gpuos.mk - the GPU-native runtime: its CUDA code must round exactly as the
# CPU path does (no fused multiply-add), for pixel-identical frames.
$(BUILD)/src/gpuos/%.cu.o: NVCCFLAGS += -fmad=false
