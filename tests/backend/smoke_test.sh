#!/usr/bin/env bash
# Starts the backend on a free port and checks a few endpoints with curl.
set -euo pipefail
BIN=${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-zproxy}/tests/backend/zproxy-test-backend
[ -x "$BIN" ] || BIN=tests/backend/zproxy-test-backend
TMP=${TEST_TMPDIR:-$(mktemp -d)}
"$BIN" --listen 127.0.0.1:0 --name smoke --log "$TMP/log" >"$TMP/out" 2>"$TMP/err" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$TMP/out" 2>/dev/null && break; sleep 0.05; done
ADDR=$(sed -n 's/^listening on //p' "$TMP/out")
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(curl -sS --max-time 5 "http://$ADDR/")" = "hello from smoke" ] || fail "/"
[ "$(curl -sS --max-time 5 "http://$ADDR/bytes/100000" | wc -c)" = 100000 ] || fail "/bytes"
[ "$(curl -sS --max-time 5 "http://$ADDR/chunked/100000" | wc -c)" = 100000 ] || fail "/chunked"
cmp <(curl -sS --max-time 5 "http://$ADDR/bytes/70000") \
    <(curl -sS --max-time 5 "http://$ADDR/close/70000") || fail "/close differs from /bytes"
[ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://$ADDR/status/418")" = 418 ] ||
  fail "/status"
head -c 300000 /dev/urandom >"$TMP/body"
cmp "$TMP/body" <(curl -sS --max-time 5 --data-binary @"$TMP/body" "http://$ADDR/echo-body") ||
  fail "/echo-body"
curl -sS --max-time 5 --data-binary @"$TMP/body" "http://$ADDR/echo" | grep -q '"body_len":300000' ||
  fail "/echo body_len"
grep -q '^conn 127.0.0.1:' "$TMP/log" || fail "log has no conn line"
grep -q '^req GET /bytes/100000$' "$TMP/log" || fail "log has no req line"
echo "backend smoke test passed"
