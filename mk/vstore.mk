# vstore.mk - vector store extras.
#   make bench-vector     CPU benchmark: ours vs numpy and faiss-cpu (venv from
#                         bench/requirements-vector.txt), 100K and 1M x 384
.PHONY: bench-vector
bench-vector: all
	@py=$$(scripts/peer-venv.sh bench/requirements-vector.txt) && \
	    $(BUILD)/elohim bench vector --python "$$py"
