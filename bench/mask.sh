#!/usr/bin/env bash
# Cost of masking on the whole gateway, then the masker against serde_json in process.
# One menwei (release, 1 worker, core 1); wrk and the backends on core 0. Routes told apart by
# Host, each pair the same citizen JSON answer (96 records, 16 KiB, the size the masking issue names;
# COUNT=N for another) with masking off and with the demo's citizen-pii profile (field rules +
# detectors), interleaved in rounds:
#   plain / masked                 the demo citizen-records backend (it builds every answer: the
#                                  backend is the bottleneck, as with a real department system)
#   plain-static / masked-static   the same document as a file served by nginx (the gateway is
#                                  the bottleneck: this is the masker's whole cost)
#   bench/mask.sh [ROUNDS] [SECONDS]
#   NO_CRITERION=1 bench/mask.sh ...   (the gateway rounds only, without the in-process benchmark)
#   B=/path/to/other/menwei bench/mask.sh ...   (a second build on the same routes beside this one,
#                                   the two builds swapping places every round: A/B of a change)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"; cd "$root"
. bench/lib.sh
rounds="${1:-3}"; secs="${2:-10}"; count="${COUNT:-96}"
out="$root/bench/out"; rel="${CARGO_TARGET_DIR:-$root/target}/release"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p menwei -p menwei-demo --quiet  # SKIP_BUILD=1: the binaries already built (bench/pgo.sh)
BACK=18910; STATIC=18911; MW=18916; ADMIN=18917; MW_B=18918; ADMIN_B=18919
for p in $BACK $STATIC $MW $ADMIN $MW_B $ADMIN_B; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "bench: port $p is already in use" >&2; exit 1; fi
done
pol="$out/mask-policies"; rm -rf "$pol"; mkdir -p "$pol"
cat > "$pol/gateway.toml" <<TOML
[server]
admin = "127.0.0.1:$ADMIN"
grace_period = "0s"
[access_log]
enabled = false
[[listener]]
name = "public"
addr = "127.0.0.1:$MW"
TOML
cat > "$pol/routes.toml" <<TOML
[[upstream]]
name = "citizens"
backends = ["127.0.0.1:$BACK"]
[[upstream]]
name = "static"
backends = ["127.0.0.1:$STATIC"]
[[route]]
name = "plain"
host = "plain.bench"
prefix = "/"
upstream = "citizens"
[[route]]
name = "masked"
host = "masked.bench"
prefix = "/"
upstream = "citizens"
mask = "citizen-pii"
[[route]]
name = "plain-static"
host = "plain-static.bench"
prefix = "/"
upstream = "static"
[[route]]
name = "masked-static"
host = "masked-static.bench"
prefix = "/"
upstream = "static"
mask = "citizen-pii"
[[mask]]
name = "citizen-pii"
fields = [
  { name = "name", style = "name" },
  { name = "idCard", style = "id-card" },
  { name = "mobile", style = "mobile" },
  { name = "bankCard", style = "bank-card" },
  { name = "*address", style = "address" },
]
TOML
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 "$rel/menwei-demo" --citizens "127.0.0.1:$BACK" >/dev/null & pids+=($!)
sleep 0.5
www="$out/mask-www"; mkdir -p "$www"
curl -s "http://127.0.0.1:$BACK/citizens/?count=$count" > "$www/citizens.json"
cat > "$out/mask-nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $out/mask-nginx.pid;
error_log $out/mask-nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  types { application/json json; }
  server { listen 127.0.0.1:$STATIC; root $www; }
}
NGX
taskset -c 0 nginx -c "$out/mask-nginx.conf" -p "$out" & pids+=($!)
taskset -c 1 "$rel/menwei" run --policies "$pol" >/dev/null 2>"$out/mask-menwei.log" & mw=$!; pids+=($mw)
if [ -n "${B:-}" ]; then
  pol_b="$out/mask-policies-b"; rm -rf "$pol_b"; cp -r "$pol" "$pol_b"
  sed -i "s/127.0.0.1:$MW\"/127.0.0.1:$MW_B\"/; s/127.0.0.1:$ADMIN\"/127.0.0.1:$ADMIN_B\"/" "$pol_b/gateway.toml"
  taskset -c 1 "$B" run --policies "$pol_b" >/dev/null 2>"$out/mask-menwei-b.log" & mw_b=$!; pids+=($mw_b)
fi
for p in $ADMIN ${B:+$ADMIN_B}; do
  wait_serving "http://127.0.0.1:$p/readyz" || exit 1
done
url="http://127.0.0.1:$MW/citizens/?count=$count"
size=$(curl -s -H "Host: plain.bench" "$url" | wc -c)
echo "answer: $size bytes"
results="$out/mask.tsv"; echo -e "round\ttarget\treq_s\tp99_ms\tcpu_us_per_req" > "$results"
builds="a"; [ -n "${B:-}" ] && builds="a b"
for r in $(seq 1 "$rounds"); do
  order="$builds"; [ -n "${B:-}" ] && [ $((r % 2)) = 0 ] && order="b a"
  for build in $order; do
    port=$MW; pid=$mw; prefix=""
    [ "$build" = b ] && { port=$MW_B; pid=$mw_b; prefix="b-"; }
    for t in plain masked plain-static masked-static; do
      case $t in *static) url="http://127.0.0.1:$port/citizens.json" ;; *) url="http://127.0.0.1:$port/citizens/?count=$count" ;; esac
      wrk_round "$r" "$t" "$url" "$pid" "$secs" "$results" "$prefix$t"
    done
  done
done
for prefix in "" ${B:+b-}; do
  [ -n "$prefix" ] && echo "B ($B):"
  medians "$results" "${prefix}plain" "${prefix}masked" "${prefix}plain-static" "${prefix}masked-static"
  echo "demo backend: $(ratio "$results" "${prefix}masked" "${prefix}plain"); static backend: $(ratio "$results" "${prefix}masked-static" "${prefix}plain-static")"
done
cleanup; trap - EXIT
[ -n "${NO_CRITERION:-}" ] && exit 0
echo "== the masker in process (criterion): menwei-mask streaming vs serde_json parse + serialise"
cargo bench -p menwei-mask --bench mask -- --warm-up-time 1 --measurement-time 3 2>/dev/null \
  | grep -E '^mask|thrpt:' | grep -v '%' || true
