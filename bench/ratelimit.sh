#!/usr/bin/env bash
# Cost of rate limits on the whole gateway: one menwei (release, 1 worker, core 1) with three
# routes told apart by Host: no limit, a local limit, a cluster limit on Redis (Redis, nginx
# backend and wrk on core 0). Limits are set high so nothing is refused: this measures the
# decision's cost, interleaved in rounds. Then the memory per tracked key at 1M keys.
#   bench/ratelimit.sh [ROUNDS] [SECONDS]     (run bench/run.sh once first: it writes bench/out)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"; cd "$root"
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
sleep 1.5
results="$out/ratelimit.tsv"; echo -e "round\ttarget\treq_s\tp99_ms\tcpu_us_per_req" > "$results"
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  for t in none local cluster; do
    url="http://127.0.0.1:$MW/small.json"
    taskset -c 0 wrk -t1 -c32 -d2s -H "Host: $t.bench" "$url" >/dev/null
    b=$(awk '{print $14+$15}' /proc/$mw/stat)
    res=$(taskset -c 0 wrk -t1 -c32 -d"${secs}s" --latency -H "Host: $t.bench" "$url")
    a=$(awk '{print $14+$15}' /proc/$mw/stat)
    if echo "$res" | grep -q Non-2xx; then echo "$t: refused requests: the limit is too low" >&2; exit 1; fi
    rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$res" | awk '/requests in/ {print $1}')
    p99=$(echo "$res" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v=v*1000}; print v}')
    cpu=$(awk -v a="$a" -v b="$b" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (a-b)/hz*1e6/n}')
    echo -e "$r\t$t\t$rps\t$p99\t$cpu" | tee -a "$results"
  done
done
python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda t, k: statistics.median(float(r[k]) for r in rows if r["target"] == t)
for t in ("none", "local", "cluster"):
    print(f"{t:8} {med(t,'req_s'):9.0f} req/s  p99 {med(t,'p99_ms'):6.3f} ms  {med(t,'cpu_us_per_req'):5.1f} us CPU/req")
print(f"local/none = {med('local','req_s')/med('none','req_s'):.3f}x, cluster/local = {med('cluster','req_s')/med('local','req_s'):.3f}x")
PY
echo "memory per tracked key:"
cargo run --release --quiet -p menwei-ratelimit --example memory
