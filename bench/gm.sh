#!/usr/bin/env bash
# menwei-gm (RustCrypto underneath) beside OpenSSL 3 on this machine, in one run:
#   SM3 over 1 KiB and 8 KiB, SM4 (menwei: GCM; OpenSSL 3.0 has no SM4-GCM, so SM4-CTR, the
#   bulk part of GCM), SM2 sign and verify.
# Usage: bench/gm.sh   (prints both; the figures go to docs/benchmarks.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== menwei-gm (criterion)"
cargo bench -p menwei-gm --bench gm -- --warm-up-time 1 --measurement-time 3 2>/dev/null \
  | grep -E '^(sm|  )|time:|thrpt:' || true
echo "== OpenSSL $(openssl version | cut -d' ' -f2)"
openssl speed -seconds 3 -bytes 1024 -evp sm3 2>/dev/null | tail -1
openssl speed -seconds 3 -bytes 8192 -evp sm3 2>/dev/null | tail -1
openssl speed -seconds 3 -bytes 1024 -evp sm4-ctr 2>/dev/null | tail -1
openssl speed -seconds 3 -bytes 8192 -evp sm4-ctr 2>/dev/null | tail -1
openssl speed -seconds 3 sm2 2>/dev/null | tail -2
