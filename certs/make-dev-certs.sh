#!/usr/bin/env bash
# Makes development certificates under certs/dev/ (never committed: see .gitignore):
#   ca.pem / ca.key             a throw-away development CA
#   localhost.pem / .key        leaf for localhost, 127.0.0.1, ::1
#   gov.pem / gov.key           leaf for gov.localhost and *.gov.localhost (a second SNI name)
#   session.key                 32 random bytes (hex) sealing SSO session cookies
#   assertion.key               P-256 PKCS#8 key signing the identity assertion to backends
#   oidc-client-secret          the demo OpenID client's secret (matches deploy/idp/demo.json)
# Usage: certs/make-dev-certs.sh [OUT_DIR]   (default: certs/dev next to this script)
set -euo pipefail
out="${1:-$(cd "$(dirname "$0")" && pwd)/dev}"
mkdir -p "$out"
cd "$out"
umask 077
# SSO secrets: made once, kept across runs (sessions survive a restart of the demo).
[ -s session.key ] || openssl rand -hex 32 > session.key
[ -s assertion.key ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out assertion.key 2>/dev/null
[ -s oidc-client-secret ] || echo "demo-only-client-secret-change-me" > oidc-client-secret
chmod 600 session.key assertion.key oidc-client-secret
if [ -s localhost.pem ] && [ -s gov.pem ] && openssl x509 -checkend 86400 -noout -in localhost.pem >/dev/null 2>&1; then
  exit 0
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=menwei development CA" -keyout ca.key -out ca.pem 2>/dev/null
leaf() { # name, SAN
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
leaf localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf gov "DNS:gov.localhost,DNS:*.gov.localhost"
chmod 600 ./*.key
echo "development certificates written to $out"
