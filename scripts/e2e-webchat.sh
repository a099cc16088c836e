#!/usr/bin/env bash
# The website chat widget, end to end in a real browser: builds devstack, serves it on a
# free port against a fresh database on $DATABASE_URL's server (OpenAI and Meta are
# devstack's simulators), creates a tenant with a webchat channel (allowed origin: the demo
# page's), an agent and credits, then drives Debian's headless Chromium through
# e2e/webchat.mjs (playwright-core): the demo page, a message and the AI's reply, the
# history after a reload, the rate-limit message, HTML in a reply shown as text, keyboard
# use, and the script refused to a site that is not allowed. Screenshots go to
# $E2E_ARTIFACTS (default e2e/artifacts).
#
# Prints `e2e: N passed, N failed` and, when E2E_RESULT_FILE is set, writes "N M" there.
# A browser that cannot be installed or started is a failure, never a skip.
#
# Needs DATABASE_URL (a server where the user may create databases), psql, Node.js. Alone:
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/e2e-webchat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/browser.sh

: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server (scripts/test.sh starts one)}"
artifacts="${E2E_ARTIFACTS:-$PWD/e2e/artifacts}"
mkdir -p "$artifacts"

fail_setup() {
  echo "FAILED: $*" >&2
  echo "e2e: 0 passed, 1 failed"
  [ -n "${E2E_RESULT_FILE:-}" ] && echo "0 1" >"$E2E_RESULT_FILE"
  exit 1
}

browser_ensure || fail_setup "the browser could not be installed"
e2e_node_modules_ensure || fail_setup "playwright-core could not be installed"
command -v psql >/dev/null 2>&1 || fail_setup "psql is required (the postgresql-client package)"

echo "==> building devstack"
cargo build --quiet --locked -p devstack || fail_setup "devstack does not build"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
devstack="$target_dir/debug/devstack"

workdir="$(mktemp -d /tmp/salesagent-e2e.XXXXXX)"
database="e2e_$(date +%s)_$$"
server_url="$DATABASE_URL"
devstack_pid=""
e2e_cleanup() {
  if [ -n "$devstack_pid" ]; then
    kill "$devstack_pid" 2>/dev/null || true
    wait "$devstack_pid" 2>/dev/null || true
  fi
  psql -q "$server_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap e2e_cleanup EXIT
psql -q "$server_url" -c "CREATE DATABASE $database" >/dev/null || fail_setup "cannot create the test database"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
api="http://127.0.0.1:$port"
# The page is served from another origin than the API (localhost, not 127.0.0.1), as a
# business's site is: CORS and the allowed origins are exercised for real.
site="http://localhost:$port"
# A low per-visitor limit, so the test reaches it with a few messages.
export DATABASE_URL="${DATABASE_URL%/*}/$database" DEVSTACK_DIR="$workdir/devstack" PORT="$port" \
  RUST_LOG="${RUST_LOG:-warn}" WEBCHAT_VISITOR_MESSAGES_PER_MINUTE=3
unset REPLY_QUEUE_URL

echo "==> devstack on $api (log: $workdir/devstack.log)"
"$devstack" run >"$workdir/devstack.log" 2>&1 &
devstack_pid=$!
for _ in $(seq 1 120); do
  curl -s -o /dev/null "$api/me" && break
  kill -0 "$devstack_pid" 2>/dev/null || { cat "$workdir/devstack.log" >&2; fail_setup "devstack exited"; }
  sleep 0.5
done
curl -s -o /dev/null "$api/me" || { cat "$workdir/devstack.log" >&2; fail_setup "devstack did not start"; }

echo "==> seeding a tenant, a webchat channel, an agent and credits"
token="$("$devstack" token --sub e2e-tenant --email e2e@example.test --hours 1)"
call() { # method path [json]
  curl -sS -f -X "$1" "$api$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}
}
widget="$(call POST /phone-numbers "{\"platform\":\"webchat\",\"display_name\":\"Website\",\"allowed_origins\":[\"$site\"],\"widget_title\":\"Lisbon Coffee Roasters\",\"widget_greeting\":\"Hi! Ask us anything about our coffee.\",\"widget_color\":\"#7A3E12\"}")" \
  || fail_setup "creating the webchat channel failed"
channel_id="$(echo "$widget" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
widget_key="$(echo "$widget" | python3 -c 'import json,sys; print(json.load(sys.stdin)["widget_key"])')"
call POST /agents "{\"phone_number_id\":\"$channel_id\",\"prompt_id\":\"pmpt_e2e\",\"name\":\"Ava\"}" >/dev/null \
  || fail_setup "linking the agent failed"
"$devstack" credits --user e2e-tenant --amount 50 >/dev/null || fail_setup "granting credits failed"
# A second widget, deleted during the test ("this chat is no longer available").
gone="$(call POST /phone-numbers "{\"platform\":\"webchat\",\"allowed_origins\":[\"$site\"]}")" \
  || fail_setup "creating the second webchat channel failed"
gone_id="$(echo "$gone" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
gone_key="$(echo "$gone" | python3 -c 'import json,sys; print(json.load(sys.stdin)["widget_key"])')"

echo "==> Chromium: $site/webchat-demo/$widget_key"
status=0
E2E_SITE="$site" E2E_API="$api" E2E_WIDGET_KEY="$widget_key" E2E_ARTIFACTS="$artifacts" \
  E2E_VISITOR_LIMIT=3 E2E_GONE_KEY="$gone_key" E2E_GONE_ID="$gone_id" E2E_TENANT_TOKEN="$token" \
  node e2e/webchat.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "==> the browser test failed (devstack's log follows)" >&2
  grep -E 'ERROR|WARN|panicked' "$workdir/devstack.log" | tail -n 30 >&2 || true
fi
exit "$status"
