#!/usr/bin/env bash
# Loopback throughput of menwei against a bare Pingora pass-through and nginx, interleaved.
#
#   bench/run.sh [ROUNDS] [SECONDS]        (defaults: 3 rounds of 10 s per target and body size)
#   MENWEI=/path/to/menwei bench/run.sh ...   (measure that menwei binary, e.g. bench/pgo.sh's build)
#
# Layout on a 2-core machine: the load generator (wrk) and the backend (nginx serving static JSON)
# share core 0; the proxy under test runs alone on core 1, with one worker. Each round measures, for a
# ~300-byte and a ~16 KiB JSON body: the backend directly, nginx as reverse proxy (as configured
# before: no access log; and "nginxlog", doing menwei's per-request work: a JSON access line per
# request, buffered, and the same forwarding headers), the bare Pingora pass-through
# (bench/passthrough, Pingora defaults) and menwei (release build, a policy with the demo's
# settings: health checks, access log to a file). Reported: req/s, p50, p99, proxy CPU per
# request (from /proc), and ratios. Compare ratios within one run; rounds vary 8-28 % here.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. "$root/bench/lib.sh"
rounds="${1:-3}"; secs="${2:-10}"; conns="${CONNS:-32}"
out="$root/bench/out"; rm -rf "$out"; mkdir -p "$out/www"

for tool in wrk nginx taskset; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light util-linux >/dev/null; break; }
done
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p menwei -p passthrough --quiet  # SKIP_BUILD=1: the binaries already built (bench/pgo.sh)
rel="${CARGO_TARGET_DIR:-$root/target}/release"

python3 - "$out/www" <<'PY'
import json, sys
d = sys.argv[1]
small = {"code": 0, "message": "ok", "data": {"id": 1, "name": "张伟", "department": "社会保障局",
         "status": "approved", "updated": "2026-11-22T08:00:00+08:00", "items": [1, 2, 3]}}
s = json.dumps(small, ensure_ascii=False)
s += " " * max(0, 300 - len(s.encode()))
open(f"{d}/small.json", "w").write(s)
rows = [{"id": i, "name": "市民%d" % i, "district": "徐汇区", "score": i * 7 % 100} for i in range(400)]
b = json.dumps({"code": 0, "data": rows}, ensure_ascii=False)
while len(b.encode()) > 16384: rows.pop(); b = json.dumps({"code": 0, "data": rows}, ensure_ascii=False)
open(f"{d}/big.json", "w").write(b)
PY

BACK=18900; NGX=18901; PASS=18902; MW=18903; ADMIN=18904; NGXLOG=18905
nginx_top() { # the lines every nginx here starts with; $1 names its pid and error log
  cat <<NGX
worker_processes 1;
daemon off;
pid $out/$1.pid;
error_log $out/$1-error.log warn;
events { worker_connections 4096; }
NGX
}
{ nginx_top nginx; cat <<NGX
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACK; keepalive 128; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$BACK; root $out/www; default_type application/json; }
}
NGX
} > "$out/nginx.conf"
nginx_proxy() { # a reverse proxy to the backend on port $1; $2: more lines for its location
  cat <<NGX
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACK; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Request-Id \$request_id;
$2
    }
  }
}
NGX
}
{ nginx_top nginx-proxy; echo "http {"; echo "  access_log off;"; nginx_proxy $NGX ""; } > "$out/nginx-proxy.conf"
# nginx doing what menwei does per request: a JSON access line per request (buffered, as menwei's
# writer thread batches its lines) and the same forwarding headers. The plain "nginx" target above
# logs nothing and sets fewer headers; both are reported.
{ nginx_top nginx-log; cat <<NGX
http {
  log_format menwei escape=json '{"timestamp":"\$time_iso8601","request_id":"\$request_id","client":"\$remote_addr",'
    '"method":"\$request_method","host":"\$host","path":"\$uri","route":"all","upstream":"backend",'
    '"backend":"\$upstream_addr","status":\$status,"bytes":\$body_bytes_sent,"duration_ms":\$request_time}';
  access_log $out/nginx-access.log menwei buffer=64k flush=1s;
NGX
  nginx_proxy $NGXLOG '      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      add_header X-Request-Id $request_id;'
} > "$out/nginx-log.conf"
mkdir -p "$out/policies"
cat > "$out/policies/gateway.toml" <<TOML
[server]
threads = 1
admin = "127.0.0.1:$ADMIN"
grace_period = "0s"

[[listener]]
name = "public"
addr = "127.0.0.1:$MW"

[access_log]
enabled = true
TOML
cat > "$out/policies/routes.toml" <<TOML
[[upstream]]
name = "backend"
backends = ["127.0.0.1:$BACK"]

[upstream.health]
path = "/small.json"

[[route]]
name = "echo"
prefix = "/echo/"
upstream = "backend"

[[route]]
name = "all"
prefix = "/"
upstream = "backend"
TOML

for p in $BACK $NGX $PASS $MW $ADMIN $NGXLOG; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "bench: port $p is already in use; stop what listens there" >&2; exit 1; fi
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 nginx -c "$out/nginx.conf" -p "$out" & pids+=($!)
taskset -c 1 nginx -c "$out/nginx-proxy.conf" -p "$out" & pids+=($!)
taskset -c 1 nginx -c "$out/nginx-log.conf" -p "$out" & pids+=($!)
taskset -c 1 "$rel/passthrough" "127.0.0.1:$PASS" "127.0.0.1:$BACK" 1 2>"$out/passthrough.log" & pass_pid=$!; pids+=($pass_pid)
taskset -c 1 "${MENWEI:-$rel/menwei}" run --policies "$out/policies" >"$out/access.log" 2>"$out/menwei.log" & mw_pid=$!; pids+=($mw_pid)
for p in $BACK $NGX $PASS $MW $NGXLOG; do wait_serving "http://127.0.0.1:$p/small.json"; done
ngx_worker_pid() { # the worker of the nginx whose master's pid is in file $1
  local w
  for w in $(pgrep -f "nginx: worker process"); do
    if [ "$(ps -o ppid= -p "$w" | tr -d ' ')" = "$(cat "$1")" ]; then echo "$w"; return 0; fi
  done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v); print v } else { sub(/s/,"",v); print v*1000 } }'; }

results="$out/results.tsv"; echo -e "round\tsize\ttarget\treq_s\tp50_ms\tp99_ms\tcpu_us_per_req" > "$results"
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  for size in small big; do
    for target in direct nginx nginxlog pingora menwei; do
      case $target in
        direct) port=$BACK; pid="";;
        nginx) port=$NGX; pid=$(ngx_worker_pid "$out/nginx-proxy.pid");;
        nginxlog) port=$NGXLOG; pid=$(ngx_worker_pid "$out/nginx-log.pid");;
        pingora) port=$PASS; pid=$pass_pid;;
        menwei) port=$MW; pid=$mw_pid;;
      esac
      url="http://127.0.0.1:$port/$size.json"
      taskset -c 0 wrk -t1 -c"$conns" -d2s "$url" >/dev/null 2>&1 || true   # warm-up
      before=0; [ -n "$pid" ] && before=$(cpu_ticks "$pid")
      res=$(taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
      after=0; [ -n "$pid" ] && after=$(cpu_ticks "$pid")
      rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
      total=$(echo "$res" | awk '/requests in/ {print $1}')
      p50=$(to_ms "$(echo "$res" | awk '$1=="50%" {print $2}')")
      p99=$(to_ms "$(echo "$res" | awk '$1=="99%" {print $2}')")
      cpu="-"; [ -n "$pid" ] && cpu=$(awk -v a="$after" -v b="$before" -v n="$total" -v hz="$hz" 'BEGIN { printf "%.1f", (a-b)/hz*1e6/n }')
      non2xx=$(echo "$res" | awk '/Non-2xx/ {print $NF}')
      [ -n "$non2xx" ] && { echo "$target $size: $non2xx non-2xx responses" >&2; exit 1; }
      echo -e "$r\t$size\t$target\t$rps\t$p50\t$p99\t$cpu" | tee -a "$results"
    done
  done
done

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(size, target, key):
    v = [float(r[key]) for r in rows if r["size"] == size and r["target"] == target and r[key] != "-"]
    return statistics.median(v) if v else float("nan")
print()
print("median over rounds | size  | target   |    req/s |  p50 ms |  p99 ms | proxy CPU us/req")
for size in ("small", "big"):
    for t in ("direct", "nginx", "nginxlog", "pingora", "menwei"):
        print(f"                   | {size:5} | {t:8} | {med(size,t,'req_s'):8.0f} | {med(size,t,'p50_ms'):7.3f} | {med(size,t,'p99_ms'):7.3f} | {med(size,t,'cpu_us_per_req'):6.1f}")
for size in ("small", "big"):
    m, p, n, nl = (med(size, t, "req_s") for t in ("menwei", "pingora", "nginx", "nginxlog"))
    dp99 = med(size, "menwei", "p99_ms") - med(size, "pingora", "p99_ms")
    print(f"{size}: menwei/pingora = {m/p:.2f}x, menwei/nginx = {m/n:.2f}x, menwei/nginx+log = {m/nl:.2f}x, "
          f"pingora/nginx = {p/n:.2f}x, menwei p99 - pingora p99 = {dp99:+.3f} ms")
PY
