# test-server.sh - the server end to end on loopback (tests/server/e2e.py:
# setup wizard, auth, roles, grants, audit query, founder, malformed input,
# limits, slow clients, static files, back-off, metrics), then /metrics and
# the alert rules through promtool, and the Grafana dashboard against the
# metric names the server really exports.
. tests/integration/lib.sh
mkdir -p "$TMP/e2e"
cp -r web "$TMP/e2e/web"
if timeout 240 python3 tests/server/e2e.py "$BIN" "$TMP/e2e" "$TMP/e2e/web" >"$TMP/e2e.log" 2>&1; then
    ok
else
    bad "tests/server/e2e.py"
    cat "$TMP/e2e.log" >&2
fi
tail -n 1 "$TMP/e2e.log"

metrics="$TMP/e2e/metrics.txt"
if [ -s "$metrics" ]; then ok; else bad "no /metrics capture"; fi
if command -v promtool >/dev/null 2>&1; then
    if promtool check metrics <"$metrics" >"$TMP/promtool.log" 2>&1; then ok; else
        bad "promtool check metrics"; cat "$TMP/promtool.log" >&2; fi
    if promtool check rules deploy/prometheus/alerts.yml >"$TMP/rules.log" 2>&1; then ok; else
        bad "promtool check rules"; cat "$TMP/rules.log" >&2; fi
else
    echo "promtool not installed (Debian package prometheus): using our own format check" >&2
fi
# Our own check of the text format, and of every metric the dashboard and
# the alerts use against what the server exports.
if python3 tests/server/check_metrics.py "$metrics" deploy/grafana/elohim.json \
        deploy/prometheus/alerts.yml >"$TMP/cm.log" 2>&1; then ok; else
    bad "check_metrics.py"; cat "$TMP/cm.log" >&2; fi
finish
