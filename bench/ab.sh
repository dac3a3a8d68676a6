#!/usr/bin/env bash
# Two menwei builds side by side, interleaved, against the bare Pingora pass-through: whether a
# change moved req/s or CPU per request beyond this machine's round-to-round noise.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS] [small|big]
#
# Needs bench/out from bench/run.sh (its backend nginx and policy). Same layout as bench/run.sh:
# wrk and the backend on core 0, the proxy under test alone on core 1. Build the old binary with
# `git checkout REV -- gateway && cargo build --release -p menwei && cp target/release/menwei /tmp/old`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"; cd "$root"
old="$1"; new="$2"; rounds="${3:-5}"; secs="${4:-8}"; size="${5:-small}"
out="$root/bench/out"; rel="${CARGO_TARGET_DIR:-$root/target}/release"
[ -f "$out/nginx.conf" ] && [ -d "$out/policies" ] || { echo "run bench/run.sh first (it writes bench/out)" >&2; exit 1; }
BACK=18900; PASS=18902; A=18913; A_ADMIN=18914; B=18915; B_ADMIN=18916
ab="$out/ab"; rm -rf "$ab"; mkdir -p "$ab/a" "$ab/b"
for side in a b; do
  port=$([ $side = a ] && echo $A || echo $B); admin=$([ $side = a ] && echo $A_ADMIN || echo $B_ADMIN)
  cp "$out/policies/"*.toml "$ab/$side/"
  sed -i "s/^admin = .*/admin = \"127.0.0.1:$admin\"/; s/^addr = .*/addr = \"127.0.0.1:$port\"/" "$ab/$side/gateway.toml"
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 nginx -c "$out/nginx.conf" -p "$out" & pids+=($!)
taskset -c 1 "$rel/passthrough" "127.0.0.1:$PASS" "127.0.0.1:$BACK" 1 2>/dev/null & pass=$!; pids+=($pass)
taskset -c 1 "$old" run --policies "$ab/a" >"$ab/a.access.log" 2>"$ab/a.log" & a=$!; pids+=($a)
taskset -c 1 "$new" run --policies "$ab/b" >"$ab/b.access.log" 2>"$ab/b.log" & b=$!; pids+=($b)
. bench/lib.sh
for p in $PASS $A $B; do wait_serving "http://127.0.0.1:$p/$size.json"; done
res="$ab/results.tsv"; echo -e "round\ttarget\treq_s\tp99_ms\tcpu_us_per_req" > "$res"
for r in $(seq 1 "$rounds"); do
  # old and new swap places every round: a target measured right after another is not always
  # the same one (a run of the same binary in both places differed by 5 % without this).
  order="pingora old new"; [ $((r % 2)) = 0 ] && order="pingora new old"
  for t in $order; do
    case $t in pingora) port=$PASS; pid=$pass;; old) port=$A; pid=$a;; new) port=$B; pid=$b;; esac
    wrk_round "$r" "$t" "http://127.0.0.1:$port/$size.json" "$pid" "$secs" "$res"
  done
done
python3 - "$res" <<'PY'
import csv, sys, statistics, collections
v, c, l = (collections.defaultdict(list) for _ in range(3))
for row in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    t = row["target"]
    v[t].append(float(row["req_s"])); c[t].append(float(row["cpu_us_per_req"])); l[t].append(float(row["p99_ms"]))
m = {t: statistics.median(v[t]) for t in v}; mc = {t: statistics.median(c[t]) for t in c}
ml = {t: statistics.median(l[t]) for t in l}
for t in ("pingora", "old", "new"):
    print(f"{t:8} {m[t]:8.0f} req/s  {mc[t]:5.1f} us CPU/req  p99 {ml[t]:5.2f} ms  ({m[t] / m['pingora']:.2f}x the pass-through, p99 {ml[t] - ml['pingora']:+.2f} ms)")
per = [float(n) / float(o) for o, n in zip(v["old"], v["new"])]
print(f"new/old: {m['new'] / m['old']:.3f}x req/s (per round {', '.join(f'{p:.2f}' for p in per)}), CPU {mc['new'] / mc['old']:.3f}x")
PY
