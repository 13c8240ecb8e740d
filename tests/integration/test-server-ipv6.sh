# test-server-ipv6.sh - `elohim serve --listen` with IPv6: malformed forms
# are usage errors (exit 2); [::1]:PORT answers /healthz over the IPv6
# loopback (curl -g) and not over IPv4, prints its URL in brackets and
# audits an IPv6 client's address; [::]:PORT takes IPv4 clients too, logged
# as plain IPv4. The server part is skipped when the machine has no ::1.
. tests/integration/lib.sh

expect_exit 2 "$BIN" serve --listen '[::1'
expect_contains "$TMP/err" "without ']'"
expect_exit 2 "$BIN" serve --listen '::1:8420'
expect_contains "$TMP/err" "brackets"
expect_exit 2 "$BIN" serve --listen '[::1]8420'
expect_exit 2 "$BIN" serve --listen '[::1]:'
expect_contains "$TMP/err" "bad port"
expect_exit 2 "$BIN" serve --listen '[::1]:65536'
expect_exit 2 "$BIN" serve --listen '[]:8420'
expect_contains "$TMP/err" "empty address"
expect_exit 2 "$BIN" serve --listen ':8420'
expect_exit 2 "$BIN" serve --listen '[127.0.0.1]:8420'
expect_contains "$TMP/err" "not an IPv6 address"
echo '{"listen": "[::1"}' >"$TMP/bad.json"
expect_exit 2 "$BIN" serve --config "$TMP/bad.json"
expect_contains "$TMP/err" "'listen'"

if ! grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
    echo "skip: no IPv6 loopback (::1 is not in /proc/net/if_inet6)"
    finish
    exit
fi

# serve LISTEN NAME: starts a server on a fresh data dir; sets PID and PORT.
serve() {
    "$BIN" serve --data "$TMP/$2" --listen "$1" >"$TMP/$2.out" 2>"$TMP/$2.err" &
    PID=$!
    PORT=
    for _ in $(seq 1 100); do
        PORT=$(sed -n 's|^elohim serve: listening on http://\[.*\]:\([0-9]*\)/.*|\1|p' "$TMP/$2.out")
        [ -n "$PORT" ] && break
        sleep 0.1
    done
    if [ -n "$PORT" ]; then ok; else bad "serve --listen $1 did not start"; cat "$TMP/$2.err" >&2; fi
}
stop() { kill -TERM "$PID"; if wait "$PID"; then ok; else bad "server exit status"; fi; }
# audit_ips NAME: the client addresses of the failed logins in its audit log
audit_ips() {
    python3 -c 'import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (d,) in db.execute("SELECT details FROM audit_log WHERE action = ? ORDER BY id", ("LOGIN_FAILED",)):
    print(json.loads(d)["ip"])' "$TMP/$1/elohim.db"
}
login='{"username": "nobody", "password": "not the password"}'

serve '[::1]:0' v6
expect_contains "$TMP/v6.out" "listening on http://[::1]:"
if curl -gsf -o "$TMP/health" "http://[::1]:$PORT/healthz"; then ok; else bad "GET /healthz over [::1]"; fi
expect_contains "$TMP/health" '"ok"'
if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/healthz"; then
    bad "[::1] must not answer on 127.0.0.1"; else ok; fi
curl -gs -o /dev/null -X POST -H 'Content-Type: application/json' -d "$login" \
    "http://[::1]:$PORT/api/v1/auth/login"
stop
if [ "$(audit_ips v6)" = "::1" ]; then ok; else bad "audited address '$(audit_ips v6)' (want ::1)"; fi

serve '[::]:0' any
if curl -gsf -o /dev/null "http://[::1]:$PORT/healthz"; then ok; else bad "[::] over ::1"; fi
if curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; then ok; else bad "[::] over 127.0.0.1"; fi
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "$login" \
    "http://127.0.0.1:$PORT/api/v1/auth/login"
stop
if [ "$(audit_ips any)" = "127.0.0.1" ]; then ok; else
    bad "audited address '$(audit_ips any)' (want 127.0.0.1, not ::ffff:127.0.0.1)"; fi
finish
