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
#   B=/path/to/other/menwei bench/waf.sh ...   (a second build measured beside this one, off and
#                                   on, the two builds swapping places every round: A/B of a change)
#   WARM=0 bench/waf.sh "" 60 1     (many 1-second rounds, no warm-up after the first: off and on
#                                   measured close together, their per-round ratio steadier)
#   (default corpus: ../shared/corpora/waf/crs-v4.28.0.jsonl, else the sample in tests/waf)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. "$root/bench/lib.sh"
corpus="${1:-$root/../shared/corpora/waf/crs-v4.28.0.jsonl}"
[ -f "$corpus" ] || corpus="$root/tests/waf/crs-sample.jsonl"
rounds="${2:-3}"; secs="${3:-10}"
out="$root/bench/out/waf"; rm -rf "$out"; mkdir -p "$out"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p menwei -p menwei-demo --quiet  # SKIP_BUILD=1: the binaries already built (bench/pgo.sh)
rel="${CARGO_TARGET_DIR:-$root/target}/release"
BACK=18950; ON=18951; ON_ADMIN=18952; OFF=18953; OFF_ADMIN=18954
B_ON=18955; B_ON_ADMIN=18956; B_OFF=18957; B_OFF_ADMIN=18958
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
# The backend shares core 0 with wrk: core 1 is the gateway's alone.
taskset -c 0 "$rel/menwei-demo" --echo "127.0.0.1:$BACK" --name echo > /dev/null & pids+=($!)
policy() { waf_policy "$1" "$2" "$3" "$BACK"; } # port admin mode
declare -A port pid admin
# start_gateway NAME PORT ADMIN MODE BINARY: one gateway on core 1 with policy() in $out/NAME.
start_gateway() {
  mkdir -p "$out/$1"; policy "$2" "$3" "$4" > "$out/$1/gateway.toml"
  taskset -c 1 "$5" run --policies "$out/$1" > /dev/null 2> "$out/$1.log" & pids+=($!)
  pid[$1]=$!; port[$1]=$2; admin[$1]=$3
}
start_gateway on $ON $ON_ADMIN block "$rel/menwei"
start_gateway off $OFF $OFF_ADMIN off "$rel/menwei"
targets="off on"
if [ -n "${B:-}" ]; then
  start_gateway b-on $B_ON $B_ON_ADMIN block "$B"
  start_gateway b-off $B_OFF $B_OFF_ADMIN off "$B"
  targets="off on b-off b-on"
fi
for p in "${admin[@]}"; do
  wait_serving "http://127.0.0.1:$p/readyz" || exit 1
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
  # With B, the two builds swap places every round (which one is measured first matters here).
  order="$targets"; [ -n "${B:-}" ] && [ $((r % 2)) = 0 ] && order="b-off b-on off on"
  for t in $order; do
    # WARM=0 skips the warm-up after the first round: with many short rounds (bench/waf.sh "" 60 1)
    # off and on are measured closer together in time, so the machine's drift cancels better.
    warm="${WARM:-2}"; [ "$r" = 1 ] && [ "$warm" = 0 ] && warm=2
    if [ "$warm" != 0 ]; then
      taskset -c 0 wrk -t1 -c32 -d"${warm}s" -s "$out/benign.lua" "http://127.0.0.1:${port[$t]}" > /dev/null
    fi
    b=$(awk '{print $14+$15}' "/proc/${pid[$t]}/stat"); bu=$(awk '{print $14}' "/proc/${pid[$t]}/stat")
    # Time the hypervisor gave core 1 to someone else (steal) during the round: a round with
    # much of it measured a shared machine, not the gateway.
    sb=$(awk '$1 == "cpu1" {print $9}' /proc/stat)
    res=$(taskset -c 0 wrk -t1 -c32 -d"${secs}s" -s "$out/benign.lua" "http://127.0.0.1:${port[$t]}")
    a=$(awk '{print $14+$15}' "/proc/${pid[$t]}/stat"); au=$(awk '{print $14}' "/proc/${pid[$t]}/stat")
    sa=$(awk '$1 == "cpu1" {print $9}' /proc/stat)
    rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$res" | awk '/requests in/ {print $1}')
    cpu=$(awk -v a="$a" -v b="$b" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (a-b)/hz*1e6/n}')
    usr=$(awk -v a="$au" -v b="$bu" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (a-b)/hz*1e6/n}')
    steal=$(awk -v a="$sa" -v b="$sb" -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.0f", (a-b)/hz/s*100}')
    echo "round $r inspection $t: $rps req/s, gateway CPU $cpu us/req (user $usr), core 1 stolen ${steal}%"
    echo "$r $t $rps $cpu" >> "$out/rps.txt"
  done
done
python3 - "$out/rps.txt" <<'PY'
import sys, collections, statistics, random
v, c = collections.defaultdict(list), collections.defaultdict(list)
for l in open(sys.argv[1]):
    r, t, x, u = l.split(); v[t].append(float(x)); c[t].append(float(u))
for b in ("", "b-"):
    if not v[b + "on"]:
        continue
    on, off = statistics.median(v[b + "on"]), statistics.median(v[b + "off"])
    print(f"{'B: ' if b else ''}median of {len(v[b + 'on'])} rounds: inspection off {off:.0f} req/s ({statistics.median(c[b + 'off']):.1f} us CPU/req), "
          f"on {on:.0f} req/s ({statistics.median(c[b + 'on']):.1f} us CPU/req), ratio on/off {on / off:.2f}")
    # The same ratio taken round by round (off and on measured one after the other, so a slow
    # spell of the machine weighs on both), with a 90 % bootstrap interval of its median: the
    # figure to compare with a target, since this machine's speed drifts from round to round.
    # And the gateway's CPU per request, off over on, round by round: what the req/s ratio is
    # when the gateway alone limits the rate. In rounds where wrk and the backend (core 0)
    # cannot keep the gateway busy, req/s no longer measures the gateway's cost.
    rng = random.Random(1)
    def interval(xs):
        boot = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(2000))
        return f"median {statistics.median(xs):.3f}, 90% interval {boot[100]:.3f}-{boot[1899]:.3f}"
    paired = [a / o for a, o in zip(v[b + "on"], v[b + "off"])]
    print(f"{'B: ' if b else ''}per-round ratio on/off: {interval(paired)} (rounds: {' '.join(f'{x:.2f}' for x in paired)})")
    cpu = [o / a for a, o in zip(c[b + "on"], c[b + "off"])]
    print(f"{'B: ' if b else ''}per-round CPU-per-request ratio off/on: {interval(cpu)}")
if v["b-on"]:
    cost = lambda b: statistics.median(c[b + "on"]) - statistics.median(c[b + "off"])
    print(f"inspection's CPU per request (on - off): this build {cost(''):.1f} us, B {cost('b-'):.1f} us")
PY
