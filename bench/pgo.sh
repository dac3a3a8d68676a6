#!/usr/bin/env bash
# A profile-guided (PGO) release build of menwei: an instrumented build serves the benchmarks'
# own traffic for about a minute (bench/run.sh: plain proxying of small and 16 KiB answers;
# bench/waf.sh: the benign portal set with inspection off and on; bench/mask.sh: citizen records
# with masking off and on), then menwei is built again with the counts it gathered, so the
# compiler lays out and inlines for the paths that traffic takes. Measured in docs/benchmarks.md
# ("Profile-guided build"): 7-11 % less CPU per request on the plain and masked routes.
#
#   bench/pgo.sh      (about 20 minutes on 2 cores: two full builds and the training runs)
#
# Prints the optimised binary's path, target/pgo/use/release/menwei. Compare it with the usual build
# with `bench/ab.sh target/release/menwei target/pgo/use/release/menwei` (after bench/run.sh), or
# `B=target/pgo/use/release/menwei bench/waf.sh` / `bench/mask.sh`. Needs the rustup component
# llvm-tools (added if missing: its llvm-profdata matches rustc's LLVM, Debian's does not) and what
# the benchmarks need (wrk, nginx; installed by them if missing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"; cd "$root"
pgo="$root/target/pgo"; data="$pgo/profiles"
find_profdata() { find "$(rustc --print sysroot)" -name llvm-profdata -type f 2>/dev/null | head -1; }
profdata="$(find_profdata)"
if [ -z "$profdata" ]; then
  rustup component add llvm-tools >&2
  profdata="$(find_profdata)"
fi
[ -x "$profdata" ] || { echo "pgo: llvm-profdata not found (rustup component add llvm-tools)" >&2; exit 1; }

echo "pgo: instrumented build (target/pgo/gen)" >&2
mkdir -p "$data"
export CARGO_TARGET_DIR="$pgo/gen" RUSTFLAGS="-Cprofile-generate=$data"
cargo build --release -p menwei -p menwei-demo -p passthrough --quiet
# Every instrumented program (build scripts included) writes a file named after its own binary,
# which all its processes add to: menwei's is the one a run of menwei alone leaves.
rm -f "$data"/*.profraw
"$CARGO_TARGET_DIR/release/menwei" --version > /dev/null
menwei_profile="$(ls "$data"/*.profraw)"
[ "$(echo "$menwei_profile" | wc -l)" = 1 ] || { echo "pgo: expected one profile, found: $menwei_profile" >&2; exit 1; }

echo "pgo: training (logs in target/pgo/train-*.txt)" >&2
# The scripts use the binaries built above: building another set of packages would unify
# features differently and build menwei again.
export SKIP_BUILD=1
bench/run.sh 1 3 > "$pgo/train-run.txt" 2>&1
COST_ONLY=1 bench/waf.sh "" 1 5 > "$pgo/train-waf.txt" 2>&1
NO_CRITERION=1 bench/mask.sh 1 5 > "$pgo/train-mask.txt" 2>&1
# A gateway writes its counts when it exits, which it does after the benchmark scripts return.
waited=0
while pgrep -f "$CARGO_TARGET_DIR/release/menwei run" > /dev/null; do
  [ "$waited" -lt 150 ] || { echo "pgo: a training gateway still runs after 30 s; its counts would be missing" >&2; exit 1; }
  sleep 0.2; waited=$((waited + 1))
done
"$profdata" merge -o "$pgo/menwei.profdata" "$menwei_profile"

echo "pgo: optimised build (target/pgo/use)" >&2
export CARGO_TARGET_DIR="$pgo/use" RUSTFLAGS="-Cprofile-use=$pgo/menwei.profdata"
cargo build --release -p menwei --quiet
echo "$CARGO_TARGET_DIR/release/menwei"
