#!/usr/bin/env bash
# Install the Debian packages the test suite needs: PostgreSQL server binaries for the
# throw-away cluster the storage tests start, and go-sendxmpp, a real client for the interop
# tests. Idempotent; does nothing when all are there.
set -euo pipefail

need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
command -v go-sendxmpp >/dev/null || need+=(go-sendxmpp)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
