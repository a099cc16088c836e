#!/usr/bin/env bash
# Contacts benchmarks against a running devstack (build it with --release first; see
# docs/benchmarks.md): a 50,000-row CSV import through POST /contacts/import, and the tag
# query GET /contacts?tag=&tag=&exclude_tag= over a tenant with 100,000 contacts.
#   API=http://127.0.0.1:3000 DEVSTACK=target/release/devstack scripts/bench-contacts.sh
set -euo pipefail
api="${API:-http://127.0.0.1:3000}"
devstack="${DEVSTACK:-target/release/devstack}"
runs="${RUNS:-3}"
queries="${QUERIES:-200}"
work="$(mktemp -d /tmp/bench-contacts.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# 50,000 rows; row i gets two of 20 tags (t{i%20} and t{(7i+3)%20}: rows with i%20 = 1 carry
# t1 and t10, 5% of them) and a distinct phone from `base`.
make_csv() { # file base
  python3 - "$1" "$2" <<'PY'
import sys
path, base = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("name,phone,email,company,tags\n")
    for i in range(50_000):
        n = base + i
        f.write(f"Person {n},+1415{n:07d},p{n}@example.com,Acme {n % 97},t{i % 20};t{(i * 7 + 3) % 20}\n")
PY
}
seconds() { python3 -c 'import statistics,sys; xs=sorted(float(l) for l in sys.stdin); print(f"n={len(xs)} min={xs[0]:.3f}s p50={statistics.median(xs):.3f}s p95={xs[int(len(xs)*0.95)-1]:.3f}s max={xs[-1]:.3f}s")'; }

echo "==> seeding a tenant with 100,000 contacts (before the import runs: 150,000 newer contacts of other tenants follow)"
tags_token="$("$devstack" token --sub "bench-tags-$$" --email "bench-tags-$$@example.test")"
for base in 2000000 3000000; do
  make_csv "$work/seed.csv" "$base"
  curl -sS -X POST "$api/contacts/import" -H "Authorization: Bearer $tags_token" \
    -H 'Content-Type: text/csv' --data-binary @"$work/seed.csv" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("    seeded", r["created"], "skipped", r["skipped_count"], file=sys.stderr)'
done
echo "==> import: $runs runs of 50,000 rows, each into a fresh tenant"
for run in $(seq 1 "$runs"); do
  import_token="$("$devstack" token --sub "bench-import-$run-$$" --email "bench$run-$$@example.test")"
  make_csv "$work/import.csv" 5000000
  curl -sS -o "$work/import.json" -w '%{time_total}\n' -X POST "$api/contacts/import" \
    -H "Authorization: Bearer $import_token" -H 'Content-Type: text/csv' --data-binary @"$work/import.csv"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   ", {k: r[k] for k in r if k != "skipped"}, file=sys.stderr)' "$work/import.json"
done | seconds

echo "==> tag query over the 100,000 contacts ($queries requests)"
for _ in $(seq 1 "$queries"); do
  curl -sS -o /dev/null -w '%{time_total}\n' \
    "$api/contacts?tag=t1&tag=t10&exclude_tag=t5&limit=50" -H "Authorization: Bearer $tags_token"
done | seconds
