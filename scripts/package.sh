#!/usr/bin/env bash
# Builds every function's Lambda artifact (target/lambda/<function>/bootstrap) with ONE
# cargo-lambda invocation for the whole workspace, in release mode. This is the only way the
# artifacts are built: `sam build` runs it too (through the root Makefile), so both give the
# same binaries from the same build.
#   scripts/package.sh                          # host architecture
#   ARCH=arm64 scripts/package.sh               # template.yaml's default architecture
#   ARCH=x86_64 scripts/package.sh --install agents DIR
#                                               # ...then copy agents' bootstrap into DIR
#                                               # (what each Makefile target of `sam build` does)
# ARCH=arm64 needs the aarch64-unknown-linux-gnu Rust target (rustup target add ...);
# cargo-lambda links it with zig (the ziglang package from PyPI), no cross toolchain needed.
set -euo pipefail
cd "$(dirname "$0")/.."

install_function="" install_dir=""
if [ "${1:-}" = "--install" ]; then
  [ $# -eq 3 ] || { echo "usage: $0 [--install FUNCTION DIR]" >&2; exit 2; }
  install_function="$2" install_dir="$3"
  [ -f "functions/$install_function/Cargo.toml" ] || { echo "no function crate functions/$install_function" >&2; exit 2; }
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--install FUNCTION DIR]" >&2; exit 2
fi

command -v cargo-lambda >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check cargo-lambda ziglang

arch="${ARCH:-$(uname -m)}"
case "$arch" in
  x86_64|amd64) target_flag=--x86-64 elf_machine=3e arch=x86_64 ;;
  aarch64|arm64) target_flag=--arm64 elf_machine=b7 arch=arm64 ;;
  *) echo "unsupported architecture $arch" >&2; exit 1 ;;
esac

# Every crate under functions/ is one Lambda function; one invocation builds them all, so the
# shared dependency graph is resolved, compiled and feature-unified once.
functions=() packages=()
for manifest in functions/*/Cargo.toml; do
  functions+=("$(basename "$(dirname "$manifest")")")
  packages+=(--package "${functions[-1]}")
done

cargo lambda build --release "$target_flag" "${packages[@]}"

target_dir="${CARGO_TARGET_DIR:-target}"

# target/lambda/<function>/bootstrap has no architecture in its path: check that what is
# there is what was asked for (ELF e_machine) before anything ships it.
machine_of() { od -An -tx1 -j18 -N1 "$1" | tr -d ' \n'; }

if [ -n "$install_function" ]; then
  bootstrap="$target_dir/lambda/$install_function/bootstrap"
  [ -f "$bootstrap" ] || { echo "cargo-lambda produced no $bootstrap" >&2; exit 1; }
  [ "$(machine_of "$bootstrap")" = "$elf_machine" ] || { echo "$bootstrap is not a $arch binary" >&2; exit 1; }
  mkdir -p "$install_dir"
  cp "$bootstrap" "$install_dir/bootstrap"
  echo "$install_function ($arch): $(du -h "$bootstrap" | cut -f1) -> $install_dir/bootstrap"
  exit 0
fi

echo
echo "Lambda artifacts ($arch):"
for function in "${functions[@]}"; do
  bootstrap="$target_dir/lambda/$function/bootstrap"
  [ "$(machine_of "$bootstrap")" = "$elf_machine" ] || { echo "$bootstrap is not a $arch binary" >&2; exit 1; }
  printf '  %-40s %s\n' "$bootstrap" "$(du -h "$bootstrap" | cut -f1)"
done
