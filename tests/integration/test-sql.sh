# test-sql.sh - `elohim import csv`, `elohim sql` and `elohim sqllogictest`
# end to end: import with type inference, JSON/CSV output, --explain,
# fallback, bad input (exit 1, nothing imported), usage errors (exit 2),
# and every sqllogictest script in the shared folder on the CPU.
. tests/integration/lib.sh
D="$TMP/data"

printf 'region,price,qty,note\nnorth,2.5,4,"a, b"\nsouth,1,3,"multi\nline"\r\nnorth,4.0,1,\neast,,2,x\n' > "$TMP/sales.csv"
expect_exit 0 "$BIN" import csv "$TMP/sales.csv" --table sales --data "$D" --json
expect_json "$TMP/out"
python3 - "$TMP/out" <<'PY' && ok || bad "import --json fields"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rows"] == 4 and d["columns"] == 4, d
assert d["types"] == ["TEXT", "REAL", "INTEGER", "TEXT"], d
PY
expect_exit 1 "$BIN" import csv "$TMP/sales.csv" --table sales --data "$D"
expect_contains "$TMP/err" "already exists"

expect_exit 0 "$BIN" sql --data "$D" --json "SELECT region, SUM(qty) AS q, AVG(price), COUNT(*) FROM sales GROUP BY region ORDER BY q DESC"
expect_json "$TMP/out"
python3 - "$TMP/out" <<'PY' && ok || bad "sql --json result"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["columns"] == ["region", "q", "AVG(price)", "COUNT(*)"], d["columns"]
assert d["rows"] == [["north", 5, 3.25, 2], ["south", 3, 1.0, 1], ["east", 2, None, 1]], d["rows"]
assert d["engine"] == "cpu", d
PY
# the dataframe case
expect_exit 0 "$BIN" sql --data "$D" --csv "SELECT price * qty AS total FROM sales"
if [ "$(cat "$TMP/out")" = "$(printf 'total\n10.0\n3.0\n4.0\n')" ]; then ok; else bad "csv output: $(cat "$TMP/out")"; fi
# fallback with a reason
expect_exit 0 "$BIN" sql --data "$D" --explain --json "SELECT a.region FROM sales a JOIN sales b ON a.qty = b.qty"
expect_contains "$TMP/out" '"engine":"sqlite"'
expect_contains "$TMP/err" "join"
expect_exit 0 "$BIN" sql --data "$D" --explain "SELECT COUNT(*) FROM sales WHERE qty BETWEEN 2 AND 4"
expect_contains "$TMP/out" "3"
expect_contains "$TMP/err" "engine: cpu"
expect_exit 0 "$BIN" sql --data "$D" --device sqlite --json "SELECT COUNT(*) FROM sales"
expect_contains "$TMP/out" '"engine":"sqlite"'
# text with embedded newline survives
expect_exit 0 "$BIN" sql --data "$D" --json "SELECT note FROM sales WHERE region = 'south'"
expect_contains "$TMP/out" 'multi\nline'

# bad input: SQL errors exit 1, usage exits 2
expect_exit 1 "$BIN" sql --data "$D" "SELECT nosuch FROM sales"
expect_contains "$TMP/err" "nosuch"
expect_exit 2 "$BIN" sql --data "$D"
expect_exit 2 "$BIN" sql --data "$D" --device tpu "SELECT 1"
expect_exit 2 "$BIN" import csv
expect_exit 2 "$BIN" import csv "$TMP/sales.csv"
if ! "$BIN" doctor --json | grep -q '"available":true'; then
    expect_exit 2 "$BIN" sql --data "$D" --device cuda "SELECT 1"
    expect_contains "$TMP/err" "cuda"
    expect_exit 2 "$BIN" sqllogictest --device cuda "$SHARED/sqllogictest/evidence/in2.test"
fi

# a bad row: line number, nothing imported
printf 'a,b\n1,2\n3,"x\n' > "$TMP/bad.csv"
expect_exit 1 "$BIN" import csv "$TMP/bad.csv" --table bad --data "$D"
expect_contains "$TMP/err" "line 3"
expect_exit 1 "$BIN" sql --data "$D" "SELECT * FROM bad"
printf 'a,b\n1,2\n3\n' > "$TMP/short.csv"
expect_exit 1 "$BIN" import csv "$TMP/short.csv" --table short --data "$D"
expect_contains "$TMP/err" "line 3: expected 2 fields, found 1"
expect_exit 1 "$BIN" import csv "$TMP/missing.csv" --table m --data "$D"

# several statements run in order, as in the sqlite3 shell
expect_exit 0 "$BIN" sql --data "$D" "CREATE TABLE m(x INTEGER); INSERT INTO m VALUES(4),(5); SELECT SUM(x) FROM m;"
if [ "$(cat "$TMP/out")" = "9" ]; then ok; else bad "multi-statement: $(cat "$TMP/out")"; fi
expect_exit 1 "$BIN" sql --data "$D" "   "

# ELOHIM_DATA is the default data folder
ELOHIM_DATA="$D" expect_exit 0 "$BIN" sql "SELECT COUNT(*) FROM sales"
expect_contains "$TMP/out" "4"

# sqllogictest: every shared script passes on the CPU
scripts=$(ls "$SHARED"/sqllogictest/evidence/*.test "$SHARED"/sqllogictest/random/groupby/*.test)
expect_exit 0 "$BIN" sqllogictest --device cpu --json $scripts
expect_json "$TMP/out"
python3 - "$TMP/out" <<'PY' && ok || bad "sqllogictest totals"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["files"]) == 17, len(d["files"])
assert d["failed"] == 0 and d["passed"] == d["queries"] > 130000, d
assert d["ours"] > 0.85 * d["queries"], d
print("sqllogictest: %d queries, %d on ours, %d on sqlite" % (d["queries"], d["ours"], d["sqlite"]))
PY
# and a wrong expectation is caught
printf 'query I nosort\nSELECT 1\n----\n2\n' > "$TMP/wrong.test"
expect_exit 1 "$BIN" sqllogictest "$TMP/wrong.test"
expect_contains "$TMP/err" "mismatch"
finish
