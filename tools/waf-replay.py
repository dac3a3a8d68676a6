#!/usr/bin/env python3
"""Replays a JSON-lines request corpus against a running gateway and reports, per category, the
share of attack lines refused and the share of benign lines passed.

  tools/waf-replay.py --target 127.0.0.1:8080 FILE [FILE...] [--paranoia 1] [--sample N]
                      [--min-blocked 97] [--max-false-positives 3] [--json OUT]

Line format (OWASP CRS regression suite as JSON lines, and tests/waf/benign.jsonl):
{"id","category","expect":"attack"|"benign","method","uri","headers":{},"body","meta":{...}}.
meta.version is the request line's protocol token, meta.raw_b64 raw bytes to send verbatim,
meta.autocomplete=false means Host / Content-Length / Connection are not added.

A line is *refused* when the answer's status is 400 or more, or when the gateway closes the
connection without an answer (the backends behind the replay route answer 200 to everything).
Attack lines whose rule is above --paranoia are not counted (the CRS expects them caught only at
higher levels). Exit status 1 when a --min-blocked / --max-false-positives bound is missed."""
import argparse, base64, json, socket, sys
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor


def raw_request(d, host):
    meta = d.get("meta") or {}
    if meta.get("raw_b64"):
        return base64.b64decode(meta["raw_b64"])
    body = d.get("body")
    body_b = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else b""
    version = meta.get("version", "HTTP/1.1")
    line = f"{d.get('method', 'GET')} {d.get('uri', '/')}" + (f" {version}" if version else "")
    headers = list((d.get("headers") or {}).items())
    names = {k.lower() for k, _ in headers}
    if meta.get("autocomplete", True):
        if "host" not in names:
            headers.append(("Host", host))
        if body_b and "content-length" not in names and "transfer-encoding" not in names:
            headers.append(("Content-Length", str(len(body_b))))
        if "connection" not in names:
            headers.append(("Connection", "close"))
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogateescape") + body_b


def send(target, data, timeout):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(data)
            buf = b""
            while b"\r\n" not in buf and len(buf) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            # Read on to see a refusal's code, bounded (an answer that passed is not read on).
            first = buf.split(b"\r\n", 1)[0].split()
            passed = len(first) > 1 and first[1].isdigit() and int(first[1]) < 400
            for _ in range(0 if passed else 16):
                if b"MW-" in buf or len(buf) > 65536:
                    break
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except (OSError, socket.timeout):
        return 0, ""
    first = buf.split(b"\r\n", 1)[0].split()
    status = int(first[1]) if len(first) > 1 and first[1].isdigit() else 0
    code = ""
    i = buf.find(b"MW-")
    if i >= 0:
        code = buf[i:i + 10].decode("ascii", "replace").strip('"<>, ')
    return status, code


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--target", required=True, help="host:port of the gateway")
    ap.add_argument("--host", default="localhost", help="Host header added when a line has none")
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--sample", type=int, default=0, help="every N-th line only")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--min-blocked", type=float)
    ap.add_argument("--max-false-positives", type=float)
    ap.add_argument("--misses", action="store_true", help="list attack lines that passed and benign lines refused")
    ap.add_argument("--json", help="write the per-line results here")
    a = ap.parse_args()
    lines = []
    for f in a.files:
        with open(f, encoding="utf-8") as fh:
            lines += [json.loads(l) for l in fh if l.strip()]
    if a.sample > 1:
        lines = lines[:: a.sample]
    lines = [d for d in lines if d["expect"] != "attack" or ((d.get("meta") or {}).get("paranoia_level") or 1) <= a.paranoia]
    with ThreadPoolExecutor(a.threads) as pool:
        results = list(pool.map(lambda d: send(a.target, raw_request(d, a.host), a.timeout), lines))
    stats = OrderedDict()
    out = []
    for d, (status, code) in zip(lines, results):
        refused = status == 0 or status >= 400
        s = stats.setdefault(d["category"], [0, 0, 0, 0])
        if d["expect"] == "attack":
            s[0] += 1
            s[1] += refused
            if a.misses and not refused:
                print(f"PASSED  {d['id']} {d['method']} {d['uri'][:120]}")
        else:
            s[2] += 1
            s[3] += not refused
            if a.misses and refused:
                print(f"REFUSED {d['id']} {status} {code} {d['method']} {d['uri'][:120]}")
        out.append({"id": d["id"], "expect": d["expect"], "status": status, "code": code})
    pct = lambda n, t: 100.0 * n / t if t else 100.0
    print(f"| category | attack lines | refused | benign lines | passed |")
    print(f"|---|---:|---:|---:|---:|")
    tot = [0, 0, 0, 0]
    for c in sorted(stats):
        s = stats[c]
        tot = [x + y for x, y in zip(tot, s)]
        print(f"| {c} | {s[0]} | {pct(s[1], s[0]):.1f}% | {s[2]} | {pct(s[3], s[2]):.1f}% |")
    print(f"| **all** | {tot[0]} | {pct(tot[1], tot[0]):.1f}% | {tot[2]} | {pct(tot[3], tot[2]):.1f}% |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh)
    ok = True
    if a.min_blocked is not None and tot[0] and pct(tot[1], tot[0]) < a.min_blocked:
        print(f"FAIL: {pct(tot[1], tot[0]):.1f}% of attack lines refused, below {a.min_blocked}%")
        ok = False
    if a.max_false_positives is not None and tot[2] and 100 - pct(tot[3], tot[2]) > a.max_false_positives:
        print(f"FAIL: {100 - pct(tot[3], tot[2]):.1f}% of benign lines refused, above {a.max_false_positives}%")
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
