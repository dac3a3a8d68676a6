#!/usr/bin/env bash
# The menwei demo, in the foreground: demo department backends + menwei with the shipped policies.
#   public  http://127.0.0.1:8080   (https://localhost:8443 with development certificates)
#   admin   http://127.0.0.1:9901   (/metrics /healthz /readyz /policy)
#   echo service      at /echo/      (backend 127.0.0.1:9001)
#   citizen records   at /citizens/  (backend 127.0.0.1:9002)
#   Redis             127.0.0.1:6390 (cluster rate-limit counters, SSO sessions)
#   OpenID provider   http://127.0.0.1:9000 (deploy/idp; users alice, bob, carol; DEMO ONLY)
# Ctrl-C or SIGTERM stops everything this script started.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
profile="${MENWEI_PROFILE:-dev}"   # MENWEI_PROFILE=release for the optimised build
target_sub=$([ "$profile" = release ] && echo release || echo debug)

command -v cargo >/dev/null || { echo "demo: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "demo: openssl is required for development certificates" >&2; exit 1; }
if ! command -v cmake >/dev/null; then
  echo "demo: installing cmake (needed to build Pingora's zlib)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq cmake >/dev/null; else sudo apt-get install -y cmake; fi
fi

if ! command -v redis-server >/dev/null; then
  echo "demo: installing redis-server (shared counters of cluster rate limits)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; else sudo apt-get install -y redis-server; fi
fi

if ! command -v node >/dev/null; then
  echo "demo: installing Node.js (runs the demo OpenID provider)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; else sudo apt-get install -y nodejs npm; fi
fi
[ -d deploy/idp/node_modules/oidc-provider ] || npm ci --prefix deploy/idp --no-audit --no-fund --silent

certs/make-dev-certs.sh >/dev/null
echo "demo: building menwei and the demo backends ($profile profile)..." >&2
cargo build --profile "$profile" -p menwei -p menwei-demo --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/$target_sub"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >&2 &
pids+=($!)
node deploy/idp/server.mjs deploy/idp/demo.json >&2 &
pids+=($!)
"$bin/menwei-demo" --echo 127.0.0.1:9001 --citizens 127.0.0.1:9002 >&2 &
pids+=($!)
"$bin/menwei" run --policies policies &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:9901/readyz 2>/dev/null && break
  sleep 0.1
done
cat >&2 <<'MSG'

menwei demo is running (Ctrl-C to stop). Try:
  curl -s http://127.0.0.1:8080/echo/hello -H 'X-User-Id: forged'      # the forged header never reaches the backend
  open http://127.0.0.1:8080/citizens/?count=3 in a browser: sign in as alice / alice-pw
      (bob / bob-pw: staff; carol / carol-pw: auditor; demo-only passwords), then /staff/ and
      http://127.0.0.1:8080/.menwei/logout
  curl -si http://127.0.0.1:8080/citizens/                              # API client without a session: 401
  curl -s http://127.0.0.1:8080/.menwei/jwks.json                       # keys backends verify X-Menwei-Assertion with
  curl -sk --http2 https://localhost:8443/echo/tls                      # HTTPS + HTTP/2 (dev certificates)
  curl -s http://127.0.0.1:8080/nowhere                                 # 404 with a stable code and request id
  curl -s http://127.0.0.1:9901/policy                                  # served policy version, hash, backends
  curl -s http://127.0.0.1:9901/metrics | grep menwei_
  edit policies/*.toml: valid edits apply within a second, broken ones are refused (see the log)

MSG
wait -n "${pids[@]}"
