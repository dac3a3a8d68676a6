# Shared by bench/run.sh, bench/ratelimit.sh, bench/mask.sh, bench/ab.sh, bench/waf.sh and bench/waf-callgrind.sh (sourced): one measured wrk round against a
# gateway told apart by Host, and medians of the rounds.

# wait_serving URL [CURL_ARGS...]   waits up to 10 s for URL to answer 2xx (a gateway compiles its
#   policy, rule sets included, before it listens); says which URL never did and fails otherwise.
wait_serving() {
  local url=$1; shift
  for _ in $(seq 100); do curl -fs -o /dev/null "$@" "$url" && return 0; sleep 0.1; done
  echo "$url: not serving after 10 s" >&2; return 1
}

# wrk_round ROUND TARGET URL PID SECS RESULTS [LABEL]
#   warms up 2 s, then measures SECS s with `Host: TARGET.bench`; appends
#   round, LABEL (default TARGET), req/s, p99 ms and the gateway's CPU µs per request (from
#   /proc/PID/stat).
wrk_round() {
  local r=$1 t=$2 url=$3 pid=$4 secs=$5 results=$6 label=${7:-$2} hz b a res rps n p99 cpu
  hz=$(getconf CLK_TCK)
  taskset -c 0 wrk -t1 -c32 -d2s -H "Host: $t.bench" "$url" >/dev/null
  b=$(awk '{print $14+$15}' "/proc/$pid/stat")
  res=$(taskset -c 0 wrk -t1 -c32 -d"${secs}s" --latency -H "Host: $t.bench" "$url")
  a=$(awk '{print $14+$15}' "/proc/$pid/stat")
  if echo "$res" | grep -q Non-2xx; then echo "$t: refused requests" >&2; return 1; fi
  rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
  n=$(echo "$res" | awk '/requests in/ {print $1}')
  p99=$(echo "$res" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v=v*1000}; print v}')
  cpu=$(awk -v a="$a" -v b="$b" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (a-b)/hz*1e6/n}')
  echo -e "$r\t$label\t$rps\t$p99\t$cpu" | tee -a "$results"
}

# medians RESULTS TARGET...   prints the median req/s, p99 and CPU per target.
medians() {
  python3 - "$@" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for t in sys.argv[2:]:
    med = lambda k: statistics.median(float(r[k]) for r in rows if r["target"] == t)
    print(f"{t:14} {med('req_s'):9.0f} req/s  p99 {med('p99_ms'):6.3f} ms  {med('cpu_us_per_req'):6.1f} us CPU/req")
PY
}

# ratio RESULTS A B   prints median req/s of A divided by that of B.
ratio() {
  python3 - "$@" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda t: statistics.median(float(r["req_s"]) for r in rows if r["target"] == t)
print(f"{sys.argv[2]}/{sys.argv[3]} = {med(sys.argv[2]) / med(sys.argv[3]):.3f}x")
PY
}

# waf_policy PORT ADMIN MODE BACKEND_PORT   prints the policy of the request-inspection benchmarks
#   (bench/waf.sh, bench/waf-callgrind.sh): one worker, no access log, one route to the echo
#   backend, inspection MODE (block / detect / off) at the default paranoia.
waf_policy() {
  cat <<TOML
[server]
admin = "127.0.0.1:$2"
threads = 1
[[listener]]
name = "public"
addr = "127.0.0.1:$1"
[access_log]
enabled = false
[[upstream]]
name = "echo"
backends = ["127.0.0.1:$4"]
[[route]]
name = "all"
prefix = "/"
upstream = "echo"
[limits]
max_body_bytes = "1MiB"
max_uri_bytes = "16KiB"
max_header_bytes = "64KiB"
[[waf]]
name = "replay"
default = true
mode = "$3"
TOML
}
