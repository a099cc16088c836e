#!/usr/bin/env bash
# Fuzzes the running API against its document: builds devstack, serves it on a free port
# against a fresh database on $DATABASE_URL's server, mints a tenant token, seeds a channel,
# an agent and a conversation, and runs schemathesis over docs/openapi.json. It fails on any
# server error, any response whose body, status code or content type the document does not
# describe. Bounded: FUZZ_MAX_EXAMPLES per operation (default 40) and FUZZ_MAX_TIME seconds
# in all (default 150).
#
# Needs DATABASE_URL (a server where the user may create databases) and psql. Run alone:
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/fuzz-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."

: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server (scripts/test.sh starts one)}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-40}"
MAX_TIME="${FUZZ_MAX_TIME:-150}"
SCHEMATHESIS_VERSION='schemathesis>=4.32,<5'

command -v schemathesis >/dev/null 2>&1 && schemathesis --version | grep -q 'version 4\.' \
  || python3 -m pip install --quiet --disable-pip-version-check "$SCHEMATHESIS_VERSION"
command -v psql >/dev/null 2>&1 || { echo "psql is required (the postgresql-client package)" >&2; exit 1; }

echo "==> building devstack"
cargo build --quiet --locked -p devstack
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
devstack="$target_dir/debug/devstack"

workdir="$(mktemp -d /tmp/salesagent-fuzz.XXXXXX)"
database="fuzz_$(date +%s)_$$"
server_url="$DATABASE_URL"
fuzz_url="${DATABASE_URL%/*}/$database"
devstack_pid=""

fuzz_cleanup() {
  if [ -n "$devstack_pid" ]; then
    kill "$devstack_pid" 2>/dev/null || true
    wait "$devstack_pid" 2>/dev/null || true
  fi
  psql -q "$server_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap fuzz_cleanup EXIT

psql -q "$server_url" -c "CREATE DATABASE $database" >/dev/null

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
api="http://127.0.0.1:$port"
export DATABASE_URL="$fuzz_url" DEVSTACK_DIR="$workdir/devstack" PORT="$port" RUST_LOG="${RUST_LOG:-warn}"
unset REPLY_QUEUE_URL

echo "==> devstack on $api (log: $workdir/devstack.log)"
"$devstack" run >"$workdir/devstack.log" 2>&1 &
devstack_pid=$!
for _ in $(seq 1 120); do
  curl -s -o /dev/null "$api/me" && break
  kill -0 "$devstack_pid" 2>/dev/null || { cat "$workdir/devstack.log" >&2; exit 1; }
  sleep 0.5
done
curl -s -o /dev/null "$api/me" || { echo "devstack did not start" >&2; cat "$workdir/devstack.log" >&2; exit 1; }

echo "==> seeding a tenant, channels, an agent, a template, a conversation and its extraction"
token="$("$devstack" token --sub fuzz-tenant --email fuzz@example.test --hours 2)"
call() { # method path [json]
  curl -sS -f -X "$1" "$api$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
call GET /me >/dev/null
channel="$(call POST /phone-numbers '{"platform":"whatsapp","meta_phone_number_id":"106540352242922","access_token":"EAAG-fuzz","display_name":"Main line","waba_id":"10654035224292"}' | field '["id"]')"
widget_json="$(call POST /phone-numbers '{"platform":"webchat","allowed_origins":["https://shop.example"]}')"
widget="$(echo "$widget_json" | field '["id"]')"
widget_key="$(echo "$widget_json" | field '["widget_key"]')"
agent="$(call POST /agents "{\"phone_number_id\":\"$channel\",\"prompt_id\":\"pmpt_fuzz\",\"name\":\"Ava\"}" | field '["agent_id"]')"
template="$(call POST /templates "{\"phone_number_id\":\"$channel\",\"name\":\"fuzz_order\",\"category\":\"UTILITY\",\"language\":\"en_US\",\"body\":{\"text\":\"Your order {{1}} ships today by courier.\"},\"variables\":[{\"variable_name\":\"order_id\",\"position\":1,\"sample_value\":\"A-1\"}],\"buttons\":[{\"button_type\":\"QUICK_REPLY\",\"button_text\":\"Thanks\"}]}" | field '["template_id"]')"
"$devstack" credits --user fuzz-tenant --amount 5 >/dev/null
"$devstack" inbound --url "$api" --text "Do you ship to Lisbon?" >/dev/null
conversation=""
for _ in $(seq 1 40); do
  conversation="$(call GET /conversations \
    | python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; print(items[0]["conversation_id"] if items else "")')"
  [ -n "$conversation" ] && break
  sleep 0.25
done
[ -n "$conversation" ] || { echo "the seeded conversation did not appear" >&2; exit 1; }
# An extraction of it (the OpenAI simulator scores it), so /extractions/{id} meets a real one.
call POST "/conversations/$conversation/extract" >/dev/null
extraction=""
for _ in $(seq 1 40); do
  extraction="$(call GET /extractions \
    | python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; print(items[0]["extraction_id"] if items else "")')"
  [ -n "$extraction" ] && break
  sleep 0.25
done
[ -n "$extraction" ] || { echo "the seeded extraction did not appear" >&2; exit 1; }

# Half of the generated ids and widget keys, and the admin route's tenant, are ones that
# exist, so the fuzzer reaches the states behind a found resource, not only 404s (for the
# widget: its script, its config, sessions and their limits).
cat >"$workdir/schemathesis.toml" <<TOML
[cache]
enabled = false

[dictionaries.ids]
values = ["$channel", "$widget", "$agent", "$conversation", "$template", "$extraction"]

[dictionaries.widget_keys]
values = ["$widget_key"]

[parameters]
"path.id" = { dictionary = "ids", probability = 0.5 }
"path.widget_key" = { dictionary = "widget_keys", probability = 0.5 }
"body.phone_number_id" = { dictionary = "ids", probability = 0.5 }
"header.x-admin-secret" = "devstack-admin-secret-do-not-deploy"
"body.user_id" = "fuzz-tenant"
TOML

echo "==> schemathesis (at most $MAX_EXAMPLES examples per operation, ${MAX_TIME}s)"
status=0
schemathesis --config-file "$workdir/schemathesis.toml" run docs/openapi.json \
  --url "$api" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --phases examples,coverage,fuzzing \
  --seed "${FUZZ_SEED:-20261125}" \
  --workers 1 \
  --no-color \
  --generation-database none \
  --suppress-health-check all \
  --report junit --report-dir "$workdir/report" || status=$?
if [ "$status" -ne 0 ]; then
  echo "==> the API does not do what docs/openapi.json says (devstack's log follows)" >&2
  grep -E 'ERROR|panicked' "$workdir/devstack.log" | tail -n 40 >&2 || true
fi
exit "$status"
