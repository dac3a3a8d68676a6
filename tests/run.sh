#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then runs format and lint
# gates, a compile check of the fuzz targets, every unit test, every end-to-end test, and `menwei
# check` on the shipped policies.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need=()
command -v cmake >/dev/null || need+=(cmake)          # Pingora's zlib-ng build
command -v openssl >/dev/null || need+=(openssl)      # development certificates, TLS tests
command -v curl >/dev/null || need+=(curl)            # HTTP/2 tests
command -v redis-server >/dev/null || need+=(redis-server)  # cluster limits and sessions (each test starts its own)
command -v node >/dev/null || need+=(nodejs)          # the demo OpenID provider, the browser driver
command -v npm >/dev/null || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)          # sign-in tests in a real browser (never a downloaded one)
command -v python3 >/dev/null || need+=(python3 python3-pip)  # PyPI gmssl, an independent SM2 signer
if [ ${#need[@]} -gt 0 ]; then
  echo "tests: installing ${need[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== node packages" >&2
# Exactly the locked versions: panva's oidc-provider (demo provider), playwright-core, and
# sm-crypto (the SM2 library of front ends, an interop counterpart).
for d in deploy/idp tests/browser tests/interop; do
  npm ci --prefix "$d" --no-audit --no-fund --silent
done
echo "== python packages" >&2
# PyPI gmssl: another independent SM2 implementation (interop tests only, never production).
python3 -c 'import gmssl' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'gmssl==3.2.2' \
  || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'gmssl==3.2.2'

echo "== format" >&2
cargo fmt --all -- --check
# The fuzz crates are outside the workspace, so `--all` does not reach them.
for f in gateway/*/fuzz/Cargo.toml; do cargo fmt --manifest-path "$f" -- --check; done
echo "== clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build binaries" >&2
cargo build --workspace --bins --quiet
echo "== fuzz targets compile" >&2
# The fuzz crates (gateway/*/fuzz) are outside the workspace (cargo-fuzz builds them with
# libFuzzer's instrumentation), so nothing else would notice an API change breaking them. Their
# lockfiles pin the workspace's versions plus libfuzzer-sys and arbitrary. After a dependency
# change in the workspace, refresh each from the workspace's own:
#   cp Cargo.lock gateway/X/fuzz/ && cargo check --manifest-path gateway/X/fuzz/Cargo.toml --bins
for f in gateway/*/fuzz/Cargo.toml; do
  CARGO_TARGET_DIR="$root/target/fuzz-check" cargo check --locked --quiet --manifest-path "$f" --bins
done
echo "== shipped policies" >&2
certs/make-dev-certs.sh >/dev/null
# --offline: the demo's Redis is not running here (tests/tests/cluster.rs covers the connection check).
target/debug/menwei check --offline policies
for d in policies/examples/*/; do target/debug/menwei check --offline "$d"; done
echo "== tests" >&2
log="$(mktemp)"
set +e
cargo test --workspace --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '; ([0-9]+) failed' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo "summary: $passed passed, $failed failed"
exit "$status"
