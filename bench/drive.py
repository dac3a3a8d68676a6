"""Sends N sequential keep-alive GETs (bench/callgrind.sh's load: exact, repeatable counts)."""
import http.client
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/small.json"
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", path, headers={"User-Agent": "drive", "Accept": "*/*"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
