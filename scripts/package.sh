#!/usr/bin/env bash
# Builds every function's Lambda artifact (target/lambda/<function>/bootstrap) with
# cargo-lambda, in release mode, for this machine's architecture by default.
#   scripts/package.sh            # host architecture
#   ARCH=arm64 scripts/package.sh # what template.yaml deploys by default (needs the
#                                 # aarch64-unknown-linux-gnu target: rustup target add ...)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-lambda >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check cargo-lambda ziglang

case "${ARCH:-$(uname -m)}" in
  x86_64|amd64) target_flag=--x86-64 ;;
  aarch64|arm64) target_flag=--arm64 ;;
  *) echo "unsupported architecture ${ARCH:-$(uname -m)}" >&2; exit 1 ;;
esac

# Every crate under functions/ is one Lambda function.
packages=()
for manifest in functions/*/Cargo.toml; do
  packages+=(--package "$(basename "$(dirname "$manifest")")")
done

cargo lambda build --release "$target_flag" "${packages[@]}"

target_dir="${CARGO_TARGET_DIR:-target}"
echo
echo "Lambda artifacts:"
for bootstrap in "$target_dir"/lambda/*/bootstrap; do
  printf '  %-40s %s\n' "$bootstrap" "$(du -h "$bootstrap" | cut -f1)"
done
