#!/usr/bin/env bash
# Cost of rate limits on the whole gateway: one menwei (release, 1 worker, core 1) with three
# routes told apart by Host: no limit, a local limit, a cluster limit on Redis (Redis, nginx
# backend and wrk on core 0). Limits are set high so nothing is refused: this measures the
# decision's cost, interleaved in rounds. Then the memory per tracked key at 1M keys.
#   bench/ratelimit.sh [ROUNDS] [SECONDS]     (run bench/run.sh once first: it writes bench/out)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"; cd "$root"
. bench/lib.sh
rounds="${1:-3}"; secs="${2:-10}"
out="$root/bench/out"; rel="${CARGO_TARGET_DIR:-$root/target}/release"
[ -f "$out/nginx.conf" ] || { echo "run bench/run.sh first (it writes bench/out)" >&2; exit 1; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build --release -p menwei --quiet
BACK=18900; MW=18906; ADMIN=18907; REDIS=18908
for p in $BACK $MW $ADMIN $REDIS; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "bench: port $p is already in use" >&2; exit 1; fi
done
pol="$out/rl-policies"; rm -rf "$pol"; mkdir -p "$pol"
cat > "$pol/gateway.toml" <<TOML
[server]
admin = "127.0.0.1:$ADMIN"
grace_period = "0s"
[[listener]]
name = "public"
addr = "127.0.0.1:$MW"
[state]
redis = "redis://127.0.0.1:$REDIS/0"
TOML
cat > "$pol/routes.toml" <<TOML
[[upstream]]
name = "backend"
backends = ["127.0.0.1:$BACK"]
[[limit]]
name = "local"
key = ["client-ip"]
rate = "100000000/s"
burst = 100000000
[[limit]]
name = "cluster"
key = ["client-ip"]
rate = "100000000/s"
burst = 100000000
scope = "cluster"
[[route]]
name = "none"
host = "none.bench"
prefix = "/"
upstream = "backend"
[[route]]
name = "local"
host = "local.bench"
prefix = "/"
upstream = "backend"
limits = ["local"]
[[route]]
name = "cluster"
host = "cluster.bench"
prefix = "/"
upstream = "backend"
limits = ["cluster"]
TOML
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 nginx -c "$out/nginx.conf" -p "$out" & pids+=($!)
taskset -c 0 redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no >/dev/null & pids+=($!)
sleep 0.5
taskset -c 1 "$rel/menwei" run --policies "$pol" >"$out/rl-access.log" 2>"$out/rl-menwei.log" & mw=$!; pids+=($mw)
wait_serving "http://127.0.0.1:$MW/small.json" -H "Host: none.bench" || { echo "see $out/rl-menwei.log" >&2; exit 1; }
results="$out/ratelimit.tsv"; echo -e "round\ttarget\treq_s\tp99_ms\tcpu_us_per_req" > "$results"
for r in $(seq 1 "$rounds"); do
  for t in none local cluster; do
    wrk_round "$r" "$t" "http://127.0.0.1:$MW/small.json" "$mw" "$secs" "$results" \
      || { echo "the limit is too low" >&2; exit 1; }
  done
done
medians "$results" none local cluster
echo "$(ratio "$results" local none), $(ratio "$results" cluster local)"
echo "memory per tracked key:"
cargo run --release --quiet -p menwei-ratelimit --example memory
