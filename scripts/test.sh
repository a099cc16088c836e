#!/usr/bin/env bash
# The one command that runs every check and test: formatting, lints, the SAM template
# (cfn-lint, sam validate --lint, the Makefile that `sam build` runs), the whole test suite
# against a real PostgreSQL and moto's SQS, and a property-based fuzzer (schemathesis) that
# checks devstack against docs/openapi.json, and the website chat widget end to end in
# headless Chromium (scripts/e2e-webchat.sh). It installs what it needs (apt/pip) and, when
# DATABASE_URL / MOTO_ENDPOINT are unset, starts a throwaway cluster and a moto server that
# it stops afterwards, also when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/moto.sh
source scripts/lib/sam.sh

step() { printf '\n==> %s\n' "$*"; }

step "tools"
python3 -m pip --version >/dev/null 2>&1 || { echo "python3 with pip is required" >&2; exit 1; }
command -v cfn-lint >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check cfn-lint
{ command -v schemathesis >/dev/null 2>&1 && schemathesis --version | grep -q 'version 4\.'; } \
  || python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
command -v make >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq make; }
sam_cli_ensure

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cfn-lint template.yaml"
cfn-lint template.yaml

step "sam validate --lint (offline, no credentials)"
sam_validate_lint

step "Makefile targets of sam build"
sam_makefile_check

cleanup() { moto_stop; pg_throwaway_stop; }
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  step "PostgreSQL"
  pg_throwaway_start
fi

if [ -z "${MOTO_ENDPOINT:-}" ]; then
  step "moto (SQS)"
  moto_start
fi

step "cargo test (workspace)"
test_log="$(mktemp /tmp/salesagent-tests.XXXXXX)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$test_log"

step "website chat widget in headless Chromium (e2e/webchat.mjs)"
e2e_result="$(mktemp /tmp/salesagent-e2e-result.XXXXXX)"
e2e_status=0
E2E_RESULT_FILE="$e2e_result" scripts/e2e-webchat.sh || e2e_status=$?
# A run that died before counting (or wrote nothing) is one failure, never zero.
read -r e2e_passed e2e_failed <"$e2e_result" || true
[ -n "${e2e_failed:-}" ] || { e2e_passed=0; e2e_failed=1; }
[ "$e2e_status" -eq 0 ] || [ "$e2e_failed" -gt 0 ] || e2e_failed=1

step "API fuzzing: devstack against docs/openapi.json (schemathesis)"
scripts/fuzz-api.sh

# The fuzzer's report ends the output otherwise; the last line counts every Rust test and
# every check of the browser test.
awk -v e2e_passed="$e2e_passed" -v e2e_failed="$e2e_failed" \
  '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed + e2e_passed, failed + e2e_failed }' "$test_log"
rm -f "$test_log" "$e2e_result"
exit "$e2e_status"
