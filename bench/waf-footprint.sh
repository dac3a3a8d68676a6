#!/usr/bin/env bash
# Request inspection's memory footprint, counted: the engine alone (the timing example, in
# process) inspects the benign portal set under callgrind, and between two inspections touches
# 1 MiB of other memory, as the rest of a request's work in the gateway does (the kernel's socket
# work, Pingora's buffers). The simulated last-level cache is 1 MiB, standing for this machine's
# per-core second-level cache; so what inspection then reads from beyond it (ILmr code lines,
# DLmr data lines) is what its code and tables occupy per request, the cost that instruction
# counts miss: on this machine an inspection takes about 2.8 us with warm caches and about 5 us
# after the touching (`POLLUTE_KB=1024 target/release/examples/timing FILE 20`). Deterministic,
# unlike the clock; the pollution loop's own counts are taken out.
#
#   bench/waf-footprint.sh [FILE] [PASSES]    (default: tests/waf/benign.jsonl, 2 passes; ~1 min)
#
# Prints per inspection: instructions (Ir), mispredicted branches (Bcm), code and data lines read
# from beyond the first level (I1mr, D1mr) and from beyond the last (ILmr, DLmr); then the
# functions with the most lines from beyond the last level.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
file="${1:-$root/tests/waf/benign.jsonl}"; passes="${2:-2}"
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p menwei-waf --example timing --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/timing"
out="$root/bench/out/waf-footprint"; rm -rf "$out"; mkdir -p "$out"
n=$(( $(wc -l < "$file") * passes ))
POLLUTE_KB=1024 valgrind --tool=callgrind --branch-sim=yes --cache-sim=yes --LL=1048576,16,64 \
  --toggle-collect='timing::timed' --callgrind-out-file="$out/cg.out" "$bin" "$file" "$passes" \
  > "$out/timing.txt" 2> "$out/valgrind.txt"
callgrind_annotate --auto=no --show=Ir,Bcm,I1mr,D1mr,ILmr,DLmr --threshold=100 "$out/cg.out" > "$out/annotate.txt" 2> /dev/null
python3 - "$out/annotate.txt" "$n" <<'PY'
import re, sys
rows, n = open(sys.argv[1]).read().splitlines(), float(sys.argv[2])
def counts(line):
    # Six counts, each a number or '.', a number maybe followed by its percentage; then the name.
    toks, vals = line.split(), []
    while toks and len(vals) < 6:
        t = toks.pop(0)
        if t == "." or re.fullmatch(r"[\d,]+", t):
            vals.append(0.0 if t == "." else float(t.replace(",", "")))
            if toks and toks[0].startswith("("):
                while toks and not toks.pop(0).endswith(")"):
                    pass
        else:
            return None
    return (vals, " ".join(toks)) if len(vals) == 6 and toks else None
total = pollute = None
funcs = []
for line in rows:
    c = counts(line)
    if not c:
        continue
    vals, name = c
    if "PROGRAM TOTALS" in name:
        total = vals
    elif re.search(r":timing::pollute( |$)", name):
        # The loop's own lines, and what of the standard library was inlined into it.
        pollute = [a + b for a, b in zip(pollute or [0.0] * 6, vals)]
    elif ":" in name:
        funcs.append((vals, name))
if total is None or pollute is None:
    sys.exit("waf-footprint: counts not found in callgrind's output")
own = [t - p for t, p in zip(total, pollute)]
print("per inspection: %.0f instructions, %.1f mispredicted branches, %.1f/%.1f code/data lines from beyond the first level, %.1f/%.1f from beyond the last"
      % tuple(v / n for v in own))
print("most lines from beyond the last level (code, data), per inspection:")
funcs.sort(key=lambda f: -(f[0][4] + f[0][5]))
for vals, name in funcs[:15]:
    name = re.sub(r"/root/\.cargo/registry/src/[^/]+/", "", name)
    name = re.sub(r" \[[^\]]*\]$", "", name)
    print("  %6.1f %6.1f  %s" % (vals[4] / n, vals[5] / n, name[:110]))
PY
