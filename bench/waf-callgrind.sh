#!/usr/bin/env bash
# Request inspection's cost inside the real gateway, counted rather than timed: a release gateway
# runs under callgrind with its cache simulation, inspection `block` and then `off` (the policy of
# bench/waf.sh), while a driver replays the benign portal set over one keep-alive connection:
# one pass to warm up, then PASSES counted passes. Prints instructions and simulated cache-line
# misses and mispredicted branches per request for both, and inspection's share (on - off).
# Instructions repeat to within 1 %; inspection's share of the misses moves by about +-20 code
# and +-60 data lines per request between runs of the same binary (connection and timer events
# differ), far less than wrk's req/s on this machine: the tool for deciding whether a change to
# the engine helps, before bench/waf.sh measures it on the clock.
#
#   bench/waf-callgrind.sh [PASSES]          (default 2; ~1 minute per pass and mode)
#   MENWEI=/path/to/menwei bench/waf-callgrind.sh   (another build; SKIP_BUILD=1 skips cargo)
#
# The simulated caches are callgrind's: 32 KiB first level for code and data, and a last level
# of 1 MiB standing for this machine's per-core L2. Mispredicted branches (conditional and
# indirect) come from callgrind's simple predictor, cruder than the hardware's. The kernel's own
# work (sockets, TCP) is not simulated, so absolute misses are lower than on the hardware;
# compare builds, not machines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. "$root/bench/lib.sh"
passes="${1:-2}"
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p menwei -p menwei-demo --quiet
rel="${CARGO_TARGET_DIR:-$root/target}/release"
bin="${MENWEI:-$rel/menwei}"
out="$root/bench/out/waf-callgrind"; rm -rf "$out"; mkdir -p "$out"
BACK=18970; PORT=18971; ADMIN=18972
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
"$rel/menwei-demo" --echo "127.0.0.1:$BACK" --name echo > /dev/null & pids+=($!)

policy() { waf_policy "$PORT" "$ADMIN" "$1" "$BACK"; } # mode

# The driver: every request of the set over one keep-alive connection, PASSES times; exits
# non-zero if a benign request is refused (a broken gateway must not look cheap).
cat > "$out/drive.py" <<'PY'
import http.client, json, sys
port, passes, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
reqs = [json.loads(l) for l in open(path, encoding="utf-8")]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(passes):
    for d in reqs:
        h = {k: v for k, v in d["headers"].items() if k.lower() not in ("host", "content-length", "connection")}
        body = (d.get("body") or "").encode("utf-8", "surrogateescape") or None
        c.request(d["method"], d["uri"], body=body, headers=h)
        r = c.getresponse()
        r.read()
        if r.status >= 400:
            sys.exit(f"{d['id']}: status {r.status}")
print(len(reqs) * passes)
PY

measure() { # mode
  local mode=$1 vp f n
  mkdir -p "$out/$mode"; policy "$mode" > "$out/$mode/gateway.toml"
  valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes --LL=1048576,16,64 \
    --callgrind-out-file="$out/cg.$mode.%p" "$bin" run --policies "$out/$mode" \
    > "$out/$mode.stdout" 2> "$out/$mode.err" & vp=$!
  # Up to 5 minutes: under callgrind on a busy machine the gateway can take minutes to start.
  local ready=""
  for _ in $(seq 1 1000); do
    curl -fs -o /dev/null "http://127.0.0.1:$ADMIN/readyz" && { ready=1; break; }
    sleep 0.3
  done
  [ -n "$ready" ] || { echo "waf-callgrind: the $mode gateway never became ready (see $out/$mode.err)" >&2; exit 1; }
  python3 "$out/drive.py" "$PORT" 1 tests/waf/benign.jsonl > /dev/null
  callgrind_control -z "$vp" > /dev/null 2>&1
  n=$(python3 "$out/drive.py" "$PORT" "$passes" tests/waf/benign.jsonl)
  callgrind_control -d "$vp" > /dev/null 2>&1
  sleep 1; kill -INT "$vp"; wait "$vp" 2>/dev/null || true
  f=$(ls -S "$out"/cg."$mode".* | head -1)
  callgrind_annotate --show=Ir,I1mr,D1mr,D1mw,ILmr,DLmr,DLmw,Bcm,Bim "$f" 2>/dev/null \
    | awk -v m="$mode" -v n="$n" '/PROGRAM TOTALS/ {for (i = 1; i <= 17; i += 2) {gsub(",", "", $i)};
        printf "%s %d %.1f %.1f %.1f %.1f %.1f %.1f\n", m, n, $1/n, $3/n, ($5+$7)/n, $9/n, ($11+$13)/n, ($15+$17)/n}' \
    >> "$out/totals.txt"
}
measure block
measure off
python3 - "$out/totals.txt" <<'PY'
import sys
rows = {l.split()[0]: [float(x) for x in l.split()[2:]] for l in open(sys.argv[1])}
on, off = rows["block"], rows["off"]
names = ["instructions", "L1 code misses", "L1 data misses", "LL code misses", "LL data misses",
         "mispredicted branches"]
print(f"per request of the benign set       {'off':>10} {'on':>10} {'on - off':>10} {'on / off':>9}")
for i, name in enumerate(names):
    print(f"{name:36} {off[i]:10.1f} {on[i]:10.1f} {on[i] - off[i]:10.1f} {on[i] / off[i]:9.2f}")
PY
