#!/usr/bin/env bash
# Instructions per request, repeatable whatever the machine's noise: runs the bare Pingora
# pass-through and menwei under callgrind, 300 warm-up + 2000 counted keep-alive requests each,
# and prints instructions/request and menwei's per-phase breakdown.
#   bench/callgrind.sh          (needs valgrind and nginx; run bench/run.sh once first for bench/out)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"; cd "$root"
out="$root/bench/out"; rel="${CARGO_TARGET_DIR:-$root/target}/release"
[ -f "$out/nginx.conf" ] || { echo "run bench/run.sh first (it writes bench/out)" >&2; exit 1; }
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release -p menwei -p passthrough --quiet
taskset -c 0 nginx -c "$out/nginx.conf" -p "$out" & ngx=$!
trap 'kill $ngx 2>/dev/null || true' EXIT
sleep 0.5
measure() { # name port cmd...
  local name=$1 port=$2; shift 2
  rm -f "$out"/cg."$name".*
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$name.%p" "$@" >"$out/cg-$name.stdout" 2>"$out/cg-$name.err" &
  local vp=$!
  for _ in $(seq 1 200); do curl -fs -o /dev/null "http://127.0.0.1:$port/small.json" && break; sleep 0.3; done
  python3 bench/drive.py "$port" 300
  callgrind_control -z "$vp" >/dev/null
  python3 bench/drive.py "$port" 2000
  callgrind_control -d "$vp" >/dev/null
  sleep 1; kill -INT "$vp"; wait "$vp" 2>/dev/null || true
  local f; f=$(ls -S "$out"/cg."$name".* | head -1)
  callgrind_annotate "$f" 2>/dev/null | awk -v n="$name" '/PROGRAM TOTALS/ {gsub(",","",$1); printf "%-8s %6.1f k instructions/request\n", n, $1/2000/1000}'
  if [ "$name" = menwei ]; then
    callgrind_annotate --inclusive=yes "$f" 2>/dev/null | grep -E "pipeline.rs:<menwei_core::pipeline::Gateway as pingora_proxy::proxy_trait::ProxyHttp>::[a-z_]+::\{\{closure\}\}$" \
      | awk '{gsub(",","",$1); p=$NF; sub(/.*ProxyHttp>::/,"",p); sub(/::.*/,"",p); printf "  %-26s %6.1f k\n", p, $1/2000/1000}'
  fi
}
measure pingora 18902 "$rel/passthrough" 127.0.0.1:18902 127.0.0.1:18900 1
measure menwei 18903 "$rel/menwei" run --policies "$out/policies"
