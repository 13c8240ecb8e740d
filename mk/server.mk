# mk/server.mk - the server's additions to the build: Debian packages its
# tests and benchmark need (promtool from `prometheus` validates /metrics and
# the alert rules; `wrk` drives the load test) and the load-test target.
ELOHIM_EXTRA_PKGS += prometheus wrk
export ELOHIM_EXTRA_PKGS

.PHONY: bench-server
bench-server: all
	@bench/load-server.sh $(BUILD)/elohim
