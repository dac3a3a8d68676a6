#!/usr/bin/env bash
# Request inspection, measured end to end on loopback:
#  1. detection: tools/waf-replay.py over the OWASP CRS 4.28 regression corpus and our benign
#     government-portal set, against a release gateway whose one route (inspection: block,
#     paranoia 1) forwards to the demo echo backend;
#  2. cost: wrk req/s of the same gateway cycling through the benign set, inspection on vs off,
#     interleaved rounds (compare ratios within one run).
#
#   bench/waf.sh [CORPUS.jsonl] [ROUNDS] [SECONDS]
#   TRAFFIC=get bench/waf.sh ...   (cost measured on the benign set's GET requests only)
#   COST_ONLY=1 bench/waf.sh ...    (skip the detection replays)
#   (default corpus: ../shared/corpora/waf/crs-v4.28.0.jsonl, else the sample in tests/waf)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
corpus="${1:-$root/../shared/corpora/waf/crs-v4.28.0.jsonl}"
[ -f "$corpus" ] || corpus="$root/tests/waf/crs-sample.jsonl"
rounds="${2:-3}"; secs="${3:-10}"
out="$root/bench/out/waf"; rm -rf "$out"; mkdir -p "$out/on" "$out/off"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p menwei -p menwei-demo --quiet
rel="${CARGO_TARGET_DIR:-$root/target}/release"
BACK=18950; ON=18951; ON_ADMIN=18952; OFF=18953; OFF_ADMIN=18954
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
# The backend shares core 0 with wrk: core 1 is the gateway's alone.
taskset -c 0 "$rel/menwei-demo" --echo "127.0.0.1:$BACK" --name echo > /dev/null & pids+=($!)
policy() { # port admin mode
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
backends = ["127.0.0.1:$BACK"]
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
policy $ON $ON_ADMIN block > "$out/on/gateway.toml"
policy $OFF $OFF_ADMIN off > "$out/off/gateway.toml"
taskset -c 1 "$rel/menwei" run --policies "$out/on" > /dev/null 2> "$out/on.log" & on_pid=$!; pids+=($on_pid)
taskset -c 1 "$rel/menwei" run --policies "$out/off" > /dev/null 2> "$out/off.log" & off_pid=$!; pids+=($off_pid)
for p in $ON_ADMIN $OFF_ADMIN; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/readyz" >/dev/null && break; sleep 0.1; done
done

if [ -z "${COST_ONLY:-}" ]; then
echo "## detection: $corpus"
python3 tools/waf-replay.py --target "127.0.0.1:$ON" "$corpus" || true
echo "## false positives: tests/waf/benign.jsonl"
python3 tools/waf-replay.py --target "127.0.0.1:$ON" tests/waf/benign.jsonl || true
fi

TRAFFIC="${TRAFFIC:-all}" python3 - tests/waf/benign.jsonl "$out/benign.lua" <<'PY'
import json, os, sys
reqs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
if os.environ.get("TRAFFIC") == "get":
    reqs = [d for d in reqs if d["method"] == "GET"]
def lua(s): return "\"" + "".join(chr(b) if b < 128 and (chr(b).isalnum() or chr(b) in " /?=&.-_:;,%+") else "\\%03d" % b for b in s.encode()) + "\""
with open(sys.argv[2], "w") as f:
    f.write("local reqs = {\n")
    for d in reqs:
        h = {k: v for k, v in d["headers"].items() if k.lower() not in ("host", "content-length")}
        f.write("{%s,%s,{%s},%s},\n" % (lua(d["method"]), lua(d["uri"]), ",".join("[%s]=%s" % (lua(k), lua(v)) for k, v in h.items()), lua(d["body"] or "")))
    f.write("}\nlocal i = 0\nrequest = function()\n  i = i % #reqs + 1\n  local r = reqs[i]\n  local body = nil\n  if #r[4] > 0 then body = r[4] end\n  return wrk.format(r[1], r[2], r[3], body)\nend\n")
PY
echo "## cost: req/s on the benign set (${TRAFFIC:-all} requests; one gateway thread on core 1, wrk on core 0)"
hz=$(getconf CLK_TCK)
for r in $(seq "$rounds"); do
  for t in off on; do
    port=$([ $t = on ] && echo $ON || echo $OFF); pid=$([ $t = on ] && echo $on_pid || echo $off_pid)
    taskset -c 0 wrk -t1 -c32 -d2s -s "$out/benign.lua" "http://127.0.0.1:$port" > /dev/null
    b=$(awk '{print $14+$15}' "/proc/$pid/stat")
    res=$(taskset -c 0 wrk -t1 -c32 -d"${secs}s" -s "$out/benign.lua" "http://127.0.0.1:$port")
    a=$(awk '{print $14+$15}' "/proc/$pid/stat")
    rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$res" | awk '/requests in/ {print $1}')
    cpu=$(awk -v a="$a" -v b="$b" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (a-b)/hz*1e6/n}')
    echo "round $r inspection $t: $rps req/s, gateway CPU $cpu us/req"
    echo "$r $t $rps $cpu" >> "$out/rps.txt"
  done
done
python3 - "$out/rps.txt" <<'PY'
import sys, collections, statistics
v, c = collections.defaultdict(list), collections.defaultdict(list)
for l in open(sys.argv[1]):
    r, t, x, u = l.split(); v[t].append(float(x)); c[t].append(float(u))
on, off = statistics.median(v["on"]), statistics.median(v["off"])
print(f"median of {len(v['on'])} rounds: inspection off {off:.0f} req/s ({statistics.median(c['off']):.1f} us CPU/req), "
      f"on {on:.0f} req/s ({statistics.median(c['on']):.1f} us CPU/req), ratio on/off {on / off:.2f}")
PY
